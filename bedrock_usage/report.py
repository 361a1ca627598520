"""A picture of the spend: one self-contained HTML file per month, built from the
warehouse by `bedrock-usage report` and the Dagster asset `bedrock_spend_report`.

The charts are Vega-Lite specifications rendered to SVG at build time by
vl-convert-python (Vega's own renderer, bundled: no network, no browser, no JavaScript
in the file). Each chart's data travels with it, as JSON beside the SVG, so the numbers
drawn can be read back and checked. The file opens from disk or from a bucket.

Sections: daily spend and tokens by model with the previous month beside it; this month
against the last by account, by owner and, where a bill is connected, estimate against
bill; the week's top movers; budgets and the month's anomalies; and data coverage (days
synced per connection and region, failing regions, unpriced usage), so a gap in the data
is never read as a drop in spend.
"""

from __future__ import annotations

import calendar
import html
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from .connections.store import StateStore
from .days import utc_today
from .errors import ExitCode, UserError
from .settings import snapshot_path
from .spend_alerts import budget_statuses, reading_spend
from .storage.lake import Lake
from .storage.warehouse import warehouse_target

TOP_MODELS = 8
OTHER = "other models"


@dataclass
class Report:
    month: str
    html: str
    headline: dict[str, str]
    charts: dict[str, list[dict]] = field(default_factory=dict)


def _money(value) -> str:
    return "—" if value is None else f"${Decimal(value):,.2f}"


def _month_bounds(month: date) -> tuple[date, date]:
    last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    return month, last


def build_report(
    db: duckdb.DuckDBPyConnection, month: date, today: date, store: StateStore | None = None
) -> Report:
    """The report of `month` (its first day) as of `today` (UTC): a month in progress
    runs to yesterday, the last complete day."""
    store = store or StateStore()
    first, last = _month_bounds(month)
    through = min(last, today - timedelta(days=1))
    previous = (first - timedelta(days=1)).replace(day=1)
    prev_first, prev_last = _month_bounds(previous)
    charts: dict[str, list[dict]] = {}
    sections: list[str] = []

    daily = _rows(db, """
        SELECT usage_date, base_model_id AS model, coalesce(sum(estimated_cost_usd), 0) AS usd,
            sum(input_tokens + output_tokens + cache_read_input_tokens
                + cache_write_input_tokens)::BIGINT AS tokens
        FROM bedrock_cost_daily WHERE usage_date BETWEEN ? AND ? GROUP BY ALL
        """, [first, through])  # fmt: skip
    totals: dict[str, Decimal] = {}
    for row in daily:
        totals[row["model"]] = totals.get(row["model"], Decimal(0)) + row["usd"]
    top = sorted(totals, key=lambda m: (-totals[m], m))[:TOP_MODELS]
    by_day_model: dict[tuple[str, str], dict] = {}
    for row in daily:
        model = row["model"] if row["model"] in top else OTHER
        cell = by_day_model.setdefault((str(row["usage_date"]), model),
                                       {"day": str(row["usage_date"]), "model": model,
                                        "usd": Decimal(0), "tokens": 0})  # fmt: skip
        cell["usd"] += row["usd"]
        cell["tokens"] += row["tokens"]
    ordered = sorted(by_day_model.values(), key=lambda c: (c["day"], c["model"]))
    charts["daily_spend"] = [{**c, "usd": float(round(c["usd"], 2))} for c in ordered]
    prev_daily = _rows(db, """
        SELECT day(usage_date) AS day_of_month, coalesce(sum(estimated_cost_usd), 0) AS usd
        FROM bedrock_cost_daily WHERE usage_date BETWEEN ? AND ? GROUP BY ALL ORDER BY 1
        """, [prev_first, prev_last])  # fmt: skip
    charts["previous_month"] = [
        {"day": str(first.replace(day=r["day_of_month"])), "usd": float(round(r["usd"], 2))}
        for r in prev_daily
        if r["day_of_month"] <= last.day
    ]
    month_total = sum(totals.values(), Decimal(0))
    prev_same_days = sum(
        (r["usd"] for r in prev_daily if r["day_of_month"] <= through.day), Decimal(0)
    ) if through >= first else Decimal(0)  # fmt: skip
    prev_total = sum((r["usd"] for r in prev_daily), Decimal(0))
    headline = {
        "month": f"{first:%Y-%m}",
        "through": str(through) if through >= first else "no complete day yet",
        "estimated_usd": _money(month_total),
        "previous_month_same_days_usd": _money(prev_same_days),
        "previous_month_usd": _money(prev_total),
    }
    sections.append(_chart_section(
        "Daily spend by model",
        f"Estimated USD per UTC day of {first:%B %Y}, stacked by model (the top {TOP_MODELS}; "
        f"the rest as '{OTHER}'); the line is {previous:%B}'s daily total on the same day "
        "of the month.",
        _spend_spec(charts["daily_spend"], charts["previous_month"], first, last),
        "daily_spend", charts, _data("previous_month", charts["previous_month"]),
    ))  # fmt: skip
    sections.append(_chart_section(
        "Daily tokens by model",
        "Input, output and cache tokens CloudWatch counted per UTC day, stacked by model.",
        _tokens_spec(charts["daily_spend"], first, last), "daily_tokens", charts,
    ))  # fmt: skip

    accounts = _rows(db, """
        SELECT account_id,
            coalesce(sum(estimated_cost_usd) FILTER (usage_date BETWEEN $first AND $through), 0)
                AS this_month,
            coalesce(sum(estimated_cost_usd) FILTER (usage_date BETWEEN $prev_first AND $prev_same),
                0) AS last_month_same_days,
            coalesce(sum(estimated_cost_usd) FILTER (usage_date BETWEEN $prev_first AND $prev_last),
                0) AS last_month
        FROM bedrock_cost_daily WHERE usage_date BETWEEN $prev_first AND $through
        GROUP BY ALL ORDER BY this_month DESC, account_id
        """, {"first": first, "through": through, "prev_first": prev_first,
              "prev_same": min(prev_last, prev_first + timedelta(days=(through - first).days)),
              "prev_last": prev_last})  # fmt: skip
    charts["by_account"] = [
        {"account": a["account_id"], "period": period, "usd": float(round(a[column], 2))}
        for a in accounts
        for period, column in (
            (f"{first:%Y-%m} to date", "this_month"),
            (f"{previous:%Y-%m}, same days", "last_month_same_days"),
        )
    ]
    sections.append(_chart_section(
        "This month against the last, by account",
        "Estimated USD: this month to date beside the same days of the month before.",
        _accounts_spec(charts["by_account"]), "by_account", charts,
        _table(["account", "this month to date", "last month, same days", "last month"],
               [[a["account_id"], _money(a["this_month"]), _money(a["last_month_same_days"]),
                 _money(a["last_month"])] for a in accounts]),
    ))  # fmt: skip

    owners = _rows(db, """
        SELECT team, application, cost_center, sum(estimated_cost_usd) AS estimated,
            sum(billed_net_usd) AS billed, sum(cost_usd) AS cost, any_value(cost_basis) AS basis
        FROM bedrock_cost_monthly_by_owner WHERE month = ?
        GROUP BY ALL ORDER BY cost DESC NULLS LAST
        """, [first])  # fmt: skip
    if any(o["team"] != "(unassigned)" for o in owners):
        table = _table(
            ["team", "application", "cost center", "estimated", "billed (net)", "cost", "basis"],
            [[o["team"], o["application"], o["cost_center"], _money(o["estimated"]),
              _money(o["billed"]), _money(o["cost"]), o["basis"]] for o in owners],
        )  # fmt: skip
        sections.append(_section("By owner", "Team, application and cost center "
                                 "(docs/analysts.md, owners); cost is the bill's in a billed "
                                 "month.", table))  # fmt: skip
    bill = _rows(db, """
        SELECT model_id, sum(estimated_usd) AS estimated, sum(billed_net_usd) AS billed
        FROM bedrock_cost_vs_bill_monthly WHERE month = ? GROUP BY ALL
        HAVING sum(billed_net_usd) IS NOT NULL ORDER BY billed DESC
        """, [first])  # fmt: skip
    if bill:
        headline["billed_net_usd"] = _money(sum((b["billed"] for b in bill), Decimal(0)))
        sections.append(_section("Estimate against the bill", "Per model: the estimate from "
                                 "list prices and what the CUR 2.0 export billed, net.",
                                 _table(["model", "estimated", "billed (net)"],
                                        [[b["model_id"], _money(b["estimated"]),
                                          _money(b["billed"])] for b in bill])))  # fmt: skip

    sections.append(_movers(db, through))
    sections.append(_budgets_and_anomalies(db, store, first, last, today, charts, headline))
    sections.append(_coverage(db, store, first, through))
    document = _page(headline, sections)
    return Report(f"{first:%Y-%m}", document, headline, charts)


def _movers(db, through: date) -> str:
    this_week = (through - timedelta(days=6), through)
    last_week = (through - timedelta(days=13), through - timedelta(days=7))
    parts = []
    for label, column in (("model", "base_model_id"), ("account", "account_id")):
        rows = _rows(db, f"""
            SELECT {column} AS name,
                coalesce(sum(estimated_cost_usd) FILTER (usage_date BETWEEN ? AND ?), 0) AS now,
                coalesce(sum(estimated_cost_usd) FILTER (usage_date BETWEEN ? AND ?), 0) AS before
            FROM bedrock_cost_daily WHERE usage_date BETWEEN ? AND ? GROUP BY ALL
            """, [*this_week, *last_week, last_week[0], this_week[1]])  # fmt: skip
        rows.sort(key=lambda r: (-abs(r["now"] - r["before"]), r["name"]))
        parts.append(_table(
            [label, f"{this_week[0]}..{this_week[1]}", f"{last_week[0]}..{last_week[1]}",
             "change"],
            [[r["name"], _money(r["now"]), _money(r["before"]),
              f"{'+' if r['now'] >= r['before'] else '−'}{_money(abs(r['now'] - r['before']))}"]
             for r in rows[:5]],
        ))  # fmt: skip
    return _section("Top movers, week over week", "Estimated USD of the last 7 complete days "
                    "against the 7 before; the largest changes first.", "".join(parts))  # fmt: skip


def _budgets_and_anomalies(db, store, first, last, today, charts, headline) -> str:
    as_of = min(today, last + timedelta(days=1))
    statuses = budget_statuses(db, as_of, store) if first <= today <= last else []
    body = ""
    if statuses:
        charts["budgets"] = [
            {"budget": s.budget.name, "what": what, "usd": float(value)}
            for s in statuses
            for what, value in (("month to date", s.month_to_date_usd),
                                ("forecast", s.forecast_usd or s.month_to_date_usd),
                                ("budget", s.budget.monthly_usd))
        ]  # fmt: skip
        body += _figure("budgets", _budgets_spec(charts["budgets"]), charts["budgets"])
        body += _table(["budget", "month to date", "basis", "used", "forecast", "budget"],
                       [[s.budget.name, _money(s.month_to_date_usd), s.basis,
                         f"{100 * s.used_share:.0f}%", _money(s.forecast_usd),
                         _money(s.budget.monthly_usd)] for s in statuses])  # fmt: skip
    anomalies = [
        json.loads(a["payload"]) for a in store.alert_states().values()
        if a["kind"] == "anomaly"
    ]  # fmt: skip
    anomalies = [a for a in anomalies if str(first) <= a.get("day", "") <= str(last)]
    if anomalies:
        headline["anomalies"] = str(len(anomalies))
        body += _table(["day", "who", "model", "spend", "baseline"],
                       [[a["day"], a.get("connection_id") or a.get("team"),
                         a.get("model_id", ""), _money(a["usd"]), _money(a["baseline_usd"])]
                        for a in sorted(anomalies, key=lambda a: a["day"])])  # fmt: skip
    if not body:
        body = "<p>No budget this month and no anomaly ('bedrock-usage budgets set').</p>"
    return _section(
        "Budgets and anomalies",
        "Budget burn and the month-end forecast (run "
        "rate of complete days); spend anomalies the alerts found this month.",
        body,
    )


def _coverage(db, store: StateStore, first: date, through: date) -> str:
    expected = max(0, (through - first).days + 1)
    rows = _rows(db, """
        SELECT connection_id, region, count(DISTINCT usage_date) AS days
        FROM bedrock_usage_daily WHERE usage_date BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL
        """, [first, through])  # fmt: skip
    failing = []
    for connection in store.all():
        for region, health in store.region_health(connection.connection_id).items():
            if health.needs_attention:
                failing.append([connection.connection_id, region, health.failure_code or "",
                                health.failed_at or ""])  # fmt: skip
    unpriced = _rows(db, """
        SELECT model_id, sum(input_tokens + output_tokens + cache_read_input_tokens
            + cache_write_input_tokens)::BIGINT AS tokens
        FROM bedrock_cost_daily WHERE usage_date BETWEEN ? AND ? AND estimated_cost_usd IS NULL
        GROUP BY ALL HAVING tokens > 0 ORDER BY tokens DESC
        """, [first, through])  # fmt: skip
    body = _table(["connection", "region", f"days with usage (of {expected})"],
                  [[r["connection_id"], r["region"], str(r["days"])] for r in rows])  # fmt: skip
    body += "<h3>Regions failing now</h3>" + (
        _table(["connection", "region", "error", "since"], failing) if failing
        else "<p>None.</p>"
    )  # fmt: skip
    body += "<h3>Usage without a list price (not in the dollars above)</h3>" + (
        _table(["model", "tokens"], [[u["model_id"], f"{u['tokens']:,}"] for u in unpriced])
        if unpriced else "<p>None.</p>"
    )  # fmt: skip
    return _section("Data coverage", "A day or region missing here is missing data, not a drop "
                    "in spend.", body)  # fmt: skip


# Charts ---------------------------------------------------------------------------------

_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


def _days_axis(first: date, last: date) -> dict:
    return {"field": "day", "type": "temporal", "title": "UTC day",
            "scale": {"domain": [str(first), str(last + timedelta(days=1))]},
            "axis": {"format": "%d %b"}}  # fmt: skip


def _spend_spec(values, previous, first, last) -> dict:
    return {
        "$schema": _SCHEMA, "width": 760, "height": 300,
        "title": f"Estimated spend per day, {first:%B %Y}",
        "layer": [
            {"data": {"values": values}, "mark": {"type": "bar"},
             "encoding": {"x": _days_axis(first, last),
                          "y": {"field": "usd", "type": "quantitative", "aggregate": "sum",
                                "title": "Estimated spend (USD per day)"},
                          "color": {"field": "model", "type": "nominal", "title": "Model",
                                    "legend": {"labelLimit": 320, "orient": "bottom",
                                               "columns": 2}}}},
            {"data": {"values": previous}, "mark": {"type": "line", "color": "#444",
                                                    "strokeDash": [4, 3], "point": True},
             "encoding": {"x": _days_axis(first, last),
                          "y": {"field": "usd", "type": "quantitative"}}},
        ],
    }  # fmt: skip


def _tokens_spec(values, first, last) -> dict:
    return {
        "$schema": _SCHEMA, "width": 760, "height": 260,
        "title": f"Tokens per day, {first:%B %Y}", "data": {"values": values}, "mark": "bar",
        "encoding": {"x": _days_axis(first, last),
                     "y": {"field": "tokens", "type": "quantitative", "aggregate": "sum",
                           "title": "Tokens per day"},
                     "color": {"field": "model", "type": "nominal", "title": "Model",
                               "legend": {"labelLimit": 320, "orient": "bottom", "columns": 2}}},
    }  # fmt: skip


def _accounts_spec(values) -> dict:
    return {
        "$schema": _SCHEMA, "width": 560, "height": {"step": 18},
        "title": "Estimated spend by account", "data": {"values": values}, "mark": "bar",
        "encoding": {"y": {"field": "account", "type": "nominal", "title": "AWS account"},
                     "yOffset": {"field": "period"},
                     "x": {"field": "usd", "type": "quantitative",
                           "title": "Estimated spend (USD)"},
                     "color": {"field": "period", "type": "nominal", "title": "Period"}},
    }  # fmt: skip


def _budgets_spec(values) -> dict:
    return {
        "$schema": _SCHEMA, "width": 560, "height": {"step": 18},
        "title": "Budgets: month to date, forecast and budget", "data": {"values": values},
        "mark": "bar",
        "encoding": {"y": {"field": "budget", "type": "nominal", "title": "Budget"},
                     "yOffset": {"field": "what"},
                     "x": {"field": "usd", "type": "quantitative", "title": "USD this month"},
                     "color": {"field": "what", "type": "nominal", "title": "Figure",
                               "sort": ["month to date", "forecast", "budget"]}},
    }  # fmt: skip


def _svg(spec: dict) -> str:
    import vl_convert  # 30 MB of renderer: loaded only to draw

    return vl_convert.vegalite_to_svg(spec)


def _figure(name: str, spec: dict, values) -> str:
    return f'<figure class="chart" data-chart="{name}">{_svg(spec)}</figure>' + _data(name, values)


def _data(name: str, values) -> str:
    """A chart's data beside it, as JSON: what was drawn, readable back."""
    data = json.dumps(values, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="chart-data-{name}">{data}</script>'


def _chart_section(title, text, spec, name, charts, extra: str = "") -> str:
    if name not in charts:
        charts[name] = charts["daily_spend"]
    return _section(title, text, _figure(name, spec, charts[name]) + extra)


def _section(title: str, text: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{body}</section>"


def _table(header: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p>No rows.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 900px; color: #222; }
h1 { margin-bottom: 0.2rem; } section { margin: 2rem 0; }
table { border-collapse: collapse; margin: 0.8rem 0; } td, th { padding: 0.25rem 0.7rem;
border-bottom: 1px solid #ddd; text-align: left; } td:not(:first-child) { text-align: right; }
.headline td { font-size: 1.1rem; } figure { margin: 0.5rem 0; }
"""


def _page(headline: dict[str, str], sections: list[str]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(v)}</td></tr>"
        for k, v in headline.items()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Bedrock spend, {html.escape(headline['month'])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Amazon Bedrock spend, {html.escape(headline['month'])}</h1>"
        "<p>Built by bedrock_usage from CloudWatch's token counts at list prices (and the "
        "bill, where connected). Estimated figures exclude discounts and credits.</p>"
        f'<table class="headline">{rows}</table>{"".join(sections)}</body></html>'
    )


def _rows(db, sql: str, params) -> list[dict]:
    cursor = db.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def report_location(month: str, base: Path) -> Path:
    return base / "reports" / f"bedrock-spend-{month}.html"


def write_report(
    month: date | None = None, out: Path | None = None, today: date | None = None
) -> tuple[str, Report]:
    """Build the report of `month` (default: the current UTC month) from the analysts'
    copy (or the lake) and write it to `out`, by default beside the analysts' copy
    (reports/bedrock-spend-YYYY-MM.html) or under the lake's data path. Returns where it
    went and the report."""
    today = today or utc_today()
    month = (month or today).replace(day=1)
    with reading_spend() as db:
        if db is None:
            raise UserError(
                "Nothing is synced yet, so there is nothing to report: connect an account "
                "('bedrock-usage connect') or run 'make demo' first.", ExitCode.NOT_FOUND,
            )  # fmt: skip
        report = build_report(db, month, today)
    target = warehouse_target()
    if out is None and isinstance(target, Lake):
        return _upload(report, target), report
    path = out or report_location(report.month, snapshot_path(target).parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(report.html, encoding="utf-8")
    staging.replace(path)  # whole or not at all
    return str(path), report


def _upload(report: Report, lake: Lake) -> str:
    """Under the lake's data path: a folder, or s3://bucket/prefix/ (the deployment's
    AWS credentials, as the lake's own files)."""
    name = f"reports/bedrock-spend-{report.month}.html"
    if not lake.data_path.startswith("s3://"):
        path = Path(lake.data_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.html, encoding="utf-8")
        return str(path)
    import boto3

    bucket, _, prefix = lake.data_path.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/{name}".lstrip("/")
    boto3.client("s3").put_object(
        Bucket=bucket, Key=key, Body=report.html.encode(), ContentType="text/html"
    )
    return f"s3://{bucket}/{key}"
