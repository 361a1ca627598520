"""The spend report: its numbers to the cent from a warehouse with known figures, one
self-contained file, every chart drawn in a real browser, and the Dagster asset."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from bedrock_usage.report import write_report

from .conftest import chromium_page
from .test_spend_alerts import HAIKU, SONNET, _as_of, _history


def _chart_data(page: str, name: str) -> list[dict]:
    [raw] = re.findall(rf'<script type="application/json" id="chart-data-{name}">(.*?)</script>',
                       page)  # fmt: skip
    return json.loads(raw)


@pytest.fixture
def report(aws, cli_in_process, home, monkeypatch, tmp_path):
    as_of = _as_of()
    spend = _history(aws, cli_in_process, as_of)
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(home))
    assert cli_in_process("owners", "set", "--team", "writers", "--model", SONNET).returncode == 0
    where, built = write_report(as_of, tmp_path / "report.html", today=as_of)
    return as_of, spend, where, built


def test_the_report_holds_the_months_figures_to_the_cent(report, tmp_path):
    as_of, spend, where, built = report
    page = (tmp_path / "report.html").read_text()
    assert where == str(tmp_path / "report.html") and page == built.html
    first = as_of.replace(day=1)
    days = [d for d in spend if first <= d < as_of]
    total = sum(spend[d] for d in days)
    assert built.headline["estimated_usd"] == f"${total:,.2f}"
    assert built.headline["through"] == str(as_of - timedelta(days=1))
    # The chart's own data, read back from the file: each day's dollars per model.
    daily = _chart_data(page, "daily_spend")
    by_model = {(row["day"], row["model"]): row["usd"] for row in daily}
    spike = as_of - timedelta(days=2)
    assert by_model[(str(spike), SONNET)] == 60.0 and by_model[(str(spike), HAIKU)] == 1.0
    assert {day for day, _ in by_model} == {str(d) for d in days}
    assert Decimal(str(sum(row["usd"] for row in daily))) == total
    # The previous month's line, day by day, where it had usage.
    previous = _chart_data(page, "previous_month")
    assert all(row["usd"] in (7.0, 61.0) for row in previous)
    # The account table and the owner who owns Sonnet.
    assert f"<td>111122223333</td><td>${total:,.2f}</td>" in page
    writers = sum(spend[d] - 1 for d in days)  # Sonnet's share: all but Haiku's $1/day
    assert (
        f"<td>writers</td><td>(unassigned)</td><td>(unassigned)</td><td>${writers:,.2f}</td>"
        in (page)
    )
    # Self-contained: nothing fetched at view time.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<svg" in page and len(page.encode()) < 2_000_000


def test_every_chart_of_the_report_renders_in_a_browser(report, tmp_path):
    """Debian's chromium, driven by Playwright."""
    errors: list[str] = []
    with chromium_page() as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: errors.append(f"fetched {r.url}")
                if not r.url.startswith("file:") else None)  # fmt: skip
        page.goto((tmp_path / "report.html").as_uri())
        charts = page.locator("figure.chart")
        names = charts.evaluate_all("els => els.map(e => e.dataset.chart)")
        assert names == ["daily_spend", "daily_tokens", "by_account"]
        for index in range(charts.count()):
            svg = charts.nth(index).locator("svg")
            box = svg.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100
            # Drawn: bars (paths) inside, not an empty frame.
            assert svg.locator("path").count() > 10
    assert errors == []


def test_the_report_asset_writes_the_file_and_shows_its_figures(report, home):
    import dagster as dg

    from bedrock_usage.defs.definitions import defs
    from bedrock_usage.defs.local_runs import instance

    as_of = report[0]
    monkeypatch_home = home  # the report fixture points BEDROCK_USAGE_HOME here
    job = defs.resolve_job_def("bedrock_spend_report_build")
    result = job.execute_in_process(instance=instance(), partition_key=str(as_of.replace(day=1)))
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    path = metadata["report"].value
    assert path == str(monkeypatch_home / "reports" / f"bedrock-spend-{as_of:%Y-%m}.html")
    assert "| estimated usd |" in metadata["headline"].value
    assert isinstance(metadata["headline"], dg.MarkdownMetadataValue)
