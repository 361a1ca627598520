"""Before the bill does: budgets with month-end forecasts, spend anomalies and models new to
an account — evaluated from the warehouse, each condition alerted once.

**Budgets** (`bedrock-usage budgets set`) are kept in the state store, so the daemon, the
CLI and every deployment see the same. Month-to-date spend is the bill's net cost where
a billing source covers the month, else the estimate (`basis` says which). The forecast
is the run rate of the month's complete UTC days (those before today): month-to-date over
complete days × days in the month. It is not made on the 1st (no complete day yet).

**Anomalies**: a complete day's estimated spend of one model (base model id) in one
connection is an anomaly when it is at least
`median + max(6 × 1.4826 × MAD, median, BEDROCK_USAGE_ANOMALY_MIN_USD)` over the 28
complete days before it (days without usage count as $0; at least 7 days of the model's
history are needed): robust to a single earlier spike (median and MAD ignore it), at
least double the usual, and never for small change. The last 3 complete days are
evaluated every time, so late data that changes a day re-evaluates it.

**New models**: a model's first day of usage in an account, when the account had usage
before (the first sync of an account announces nothing).

**Once per condition**: each condition has a key (`budget:NAME:2026-12:threshold:80`,
`budget:NAME:2026-12:forecast`, `anomaly:CONNECTION:MODEL:DAY`, `new_model:ACCOUNT:MODEL`).
Its delivery is claimed in the state store before anything is sent (`claim_alert`): of two
processes evaluating at once, one sends. Every alert goes to the event log (`events`,
action `alert`); to the webhook and Slack when configured. A delivery that fails is
retried at the next evaluation; a condition that stops holding (a forecast back under the
budget, a day revised by late data) is announced as cleared. A crossed threshold stays
crossed for its month: crossing it again does not alert again.
"""

from __future__ import annotations

import calendar
import json
import statistics
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import duckdb

from . import settings
from .connections.store import StateStore, now_iso
from .days import utc_today
from .errors import ExitCode, UserError
from .settings import snapshot_path
from .storage.lake import Lake
from .storage.owners import UNASSIGNED, owned_usage
from .storage.warehouse import open_warehouse, warehouse_target

SCOPES = ("account", "connection", "owner", "model")
DEFAULT_THRESHOLDS = (50, 80, 100)
BASELINE_DAYS = 28
MIN_HISTORY_DAYS = 7
EVALUATED_DAYS = 3
MAD_FACTOR = 6 * 1.4826
LEASE_SECONDS = 120


@dataclass(frozen=True)
class Budget:
    name: str
    monthly_usd: Decimal
    scope_kind: str | None
    scope_value: str | None
    thresholds: tuple[int, ...]

    def describe(self) -> str:
        scope = f"{self.scope_kind} {self.scope_value}" if self.scope_kind else "all spend"
        return f"{self.name} (${self.monthly_usd}/month, {scope})"


def set_budget(
    name: str,
    monthly_usd: str,
    scope: dict[str, str | None],
    thresholds: str | None,
    store: StateStore | None = None,
) -> Budget:
    """Store a budget (replacing one of the same name)."""
    try:
        amount = Decimal(monthly_usd)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount <= 0:
        raise UserError(f"--monthly-usd {monthly_usd!r}: give an amount above 0, e.g. 5000.",
                        ExitCode.USAGE)  # fmt: skip
    given = {kind: value for kind, value in scope.items() if value}
    if len(given) > 1:
        raise UserError(
            f"A budget covers one scope: give one of --{', --'.join(given)} (or none for all "
            "spend).", ExitCode.USAGE,
        )  # fmt: skip
    try:
        levels = tuple(sorted({int(t) for t in (thresholds or "").split(",") if t.strip()}))
    except ValueError:
        levels = (0,)
    levels = levels or DEFAULT_THRESHOLDS
    if any(t <= 0 or t > 1000 for t in levels):
        raise UserError(
            f"--thresholds {thresholds!r}: give percentages of the budget between 1 and 1000, "
            "e.g. 50,80,100.", ExitCode.USAGE,
        )  # fmt: skip
    [(kind, value)] = given.items() or [(None, None)]
    budget = Budget(name, amount, kind, value, levels)
    (store or StateStore()).set_budget(
        {"name": name, "monthly_usd": str(amount), "scope_kind": kind, "scope_value": value,
         "thresholds": json.dumps(list(levels))}
    )  # fmt: skip
    return budget


def budgets(store: StateStore | None = None) -> list[Budget]:
    return [
        Budget(
            row["name"],
            Decimal(row["monthly_usd"]),
            row["scope_kind"],
            row["scope_value"],
            tuple(json.loads(row["thresholds"])),
        )  # fmt: skip
        for row in (store or StateStore()).budgets()
    ]


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    month: str
    month_to_date_usd: Decimal
    basis: str  # billed or estimated
    complete_days: int
    forecast_usd: Decimal | None

    @property
    def used_share(self) -> float:
        return float(self.month_to_date_usd / self.budget.monthly_usd)

    def as_dict(self) -> dict:
        return {
            "name": self.budget.name, "monthly_usd": str(self.budget.monthly_usd),
            "scope": f"{self.budget.scope_kind}={self.budget.scope_value}"
            if self.budget.scope_kind else "all",
            "thresholds": list(self.budget.thresholds), "month": self.month,
            "month_to_date_usd": str(self.month_to_date_usd), "basis": self.basis,
            "used_percent": round(100 * self.used_share, 1),
            "forecast_usd": None if self.forecast_usd is None else str(self.forecast_usd),
        }  # fmt: skip


def forecast(month_to_date_complete: Decimal, complete_days: int, days_in_month: int):
    """Month-end spend at the run rate of the complete days; None before the first."""
    if complete_days <= 0:
        return None
    rate = month_to_date_complete / complete_days
    return (rate * days_in_month).quantize(Decimal("0.01"))


_SCOPE_SQL = {
    "account": "account_id = $scope",
    "connection": "connection_id = $scope",
    "model": "(base_model_id = $scope OR model_id = $scope)",
}
_BILL_SCOPE_SQL = {
    "account": "account_id = $scope",
    "connection": "account_id IN (SELECT account_id FROM bedrock_usage_daily "
    "WHERE connection_id = $scope)",
    "model": "model_id = $scope",
}


def budget_status(db: duckdb.DuckDBPyConnection, budget: Budget, today: date) -> BudgetStatus:
    first = today.replace(day=1)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    complete_days = (today - first).days
    scope = {"scope": budget.scope_value, "first": first, "today": today}
    if budget.scope_kind == "owner":
        usage_from, usage_where = "bedrock_usage_daily_by_owner", "team = $scope"
        bill_from, bill_where = "bedrock_billed_daily_by_owner", "team = $scope"
    else:
        usage_from = bill_from = None
        usage_where = _SCOPE_SQL.get(budget.scope_kind, "true")
        bill_where = _BILL_SCOPE_SQL.get(budget.scope_kind, "true")
    usage_from = usage_from or "bedrock_cost_daily"
    bill_from = bill_from or "bedrock_billed_daily"
    billed = db.execute(
        f"""SELECT count(*), coalesce(sum(net_unblended_cost_usd), 0),
            coalesce(sum(net_unblended_cost_usd) FILTER (usage_date < $today), 0)
        FROM {bill_from} WHERE usage_date >= $first AND usage_date <= $today AND {bill_where}""",
        {k: v for k, v in scope.items() if f"${k}" in f"{bill_where} $first $today"},
    ).fetchone()
    if billed[0]:
        basis, total, complete = "billed", billed[1], billed[2]
    else:
        basis = "estimated"
        total, complete = db.execute(
            f"""SELECT coalesce(sum(estimated_cost_usd), 0),
                coalesce(sum(estimated_cost_usd) FILTER (usage_date < $today), 0)
            FROM {usage_from}
            WHERE usage_date >= $first AND usage_date <= $today AND {usage_where}""",
            {k: v for k, v in scope.items() if f"${k}" in f"{usage_where} $first $today"},
        ).fetchone()
    total, complete = Decimal(total).quantize(Decimal("0.01")), Decimal(complete)
    projected = forecast(complete, complete_days, days_in_month)
    if projected is not None:
        # The month cannot end under what is spent already: the day in progress may hold
        # more than the complete days' rate (the first use of the month, a spike today).
        projected = max(projected, total)
    return BudgetStatus(budget, f"{first:%Y-%m}", total, basis, complete_days, projected)


@dataclass(frozen=True)
class Condition:
    """Something that holds now and deserves one alert."""

    key: str
    kind: str  # threshold, forecast, anomaly, new_model
    text: str
    details: dict = field(default_factory=dict)
    subject: str = ""  # the event log's connection column: a connection, or budget:NAME


@dataclass
class Evaluation:
    firing: list[Condition] = field(default_factory=list)
    # Keys evaluated this time: one of them that fired before and is not firing now has
    # cleared. (Thresholds never clear within their month.)
    evaluated: set[str] = field(default_factory=set)
    statuses: list[BudgetStatus] = field(default_factory=list)


def evaluate(
    db: duckdb.DuckDBPyConnection, store: StateStore, today: date, min_usd: float
) -> Evaluation:
    result = Evaluation()
    for budget in budgets(store):
        status = budget_status(db, budget, today)
        result.statuses.append(status)
        prefix = f"budget:{budget.name}:{status.month}"
        crossed = [t for t in budget.thresholds if status.used_share * 100 >= t]
        # Only the highest threshold crossed: thresholds crossed at once say one thing.
        for level in crossed[-1:]:
            if status.used_share * 100 >= level:
                result.firing.append(Condition(
                    f"{prefix}:threshold:{level}", "threshold",
                    f"Budget {budget.describe()}: {level}% reached — ${status.month_to_date_usd}"
                    f" {status.basis} in {status.month} ({100 * status.used_share:.1f}%).",
                    status.as_dict(), f"budget:{budget.name}",
                ))  # fmt: skip
        key = f"{prefix}:forecast"
        result.evaluated.add(key)
        if (status.forecast_usd is not None and status.forecast_usd > budget.monthly_usd
                and status.month_to_date_usd < budget.monthly_usd):  # fmt: skip
            result.firing.append(Condition(
                key, "forecast",
                f"Budget {budget.describe()}: forecast ${status.forecast_usd} by the end of "
                f"{status.month} (run rate of {status.complete_days} complete days; "
                f"${status.month_to_date_usd} {status.basis} so far).",
                status.as_dict(), f"budget:{budget.name}",
            ))  # fmt: skip
    _anomalies(db, today, min_usd, result)
    _new_models(db, today, result)
    return result


def _anomalies(db, today: date, min_usd: float, result: Evaluation) -> None:
    last = today - timedelta(days=1)
    first = last - timedelta(days=EVALUATED_DAYS + BASELINE_DAYS - 1)
    rows = db.execute(
        """SELECT connection_id, any_value(account_id), base_model_id, usage_date,
            sum(estimated_cost_usd)::DOUBLE
        FROM bedrock_cost_daily
        WHERE usage_date BETWEEN ? AND ? AND estimated_cost_usd IS NOT NULL
        GROUP BY connection_id, base_model_id, usage_date""",
        [first, last],
    ).fetchall()
    series: dict[tuple[str, str], dict[date, float]] = {}
    accounts: dict[str, str] = {}
    for connection_id, account_id, model, day, usd in rows:
        series.setdefault((connection_id, model), {})[day] = usd
        accounts[connection_id] = account_id
    for (connection_id, model), spend in series.items():
        who = f"{connection_id} (account {accounts[connection_id]}) {model}"
        details = {"connection_id": connection_id, "account_id": accounts[connection_id],
                   "model_id": model}  # fmt: skip
        _anomalous_days(f"anomaly:{connection_id}:{model}", who, details, spend, last,
                        min_usd, result)  # fmt: skip
    # And per owner (team), where owners are assigned.
    owned, params = owned_usage("usage_date BETWEEN ? AND ?", [first, last])
    by_team = db.execute(
        f"""WITH owned AS ({owned})
        SELECT team, usage_date, sum(estimated_cost_usd)::DOUBLE FROM owned
        WHERE team <> '{UNASSIGNED}' AND estimated_cost_usd IS NOT NULL GROUP BY ALL""",
        params,
    ).fetchall()
    teams: dict[str, dict[date, float]] = {}
    for team, day, usd in by_team:
        teams.setdefault(team, {})[day] = usd
    for team, spend in teams.items():
        _anomalous_days(f"anomaly:owner:{team}", f"team {team}", {"team": team}, spend, last,
                        min_usd, result)  # fmt: skip


def _anomalous_days(prefix, who, details, spend, last, min_usd, result: Evaluation) -> None:
    since = min(spend)
    for offset in range(EVALUATED_DAYS):
        day = last - timedelta(days=offset)
        key = f"{prefix}:{day}"
        result.evaluated.add(key)
        window = [day - timedelta(days=d) for d in range(1, BASELINE_DAYS + 1)]
        history = [spend.get(d, 0.0) for d in window if d >= since]
        if len(history) < MIN_HISTORY_DAYS:
            continue
        median = statistics.median(history)
        mad = statistics.median(abs(x - median) for x in history)
        threshold = median + max(MAD_FACTOR * mad, median, min_usd)
        value = spend.get(day, 0.0)
        if value >= threshold:
            result.firing.append(Condition(
                key, "anomaly",
                f"Spend anomaly: {who} on {day}: ${value:.2f} estimated, against a baseline "
                f"of ${median:.2f}/day (median of {len(history)} days; alert at "
                f"${threshold:.2f}).",
                {**details, "day": str(day), "usd": round(value, 6),
                 "baseline_usd": round(median, 6), "mad_usd": round(mad, 6),
                 "threshold_usd": round(threshold, 6)},
                _subject(details),
            ))  # fmt: skip


def _new_models(db, today: date, result: Evaluation) -> None:
    first_evaluated = today - timedelta(days=EVALUATED_DAYS)
    rows = db.execute(
        """WITH firsts AS (
            SELECT account_id, any_value(connection_id) AS connection_id, base_model_id,
                min(usage_date) AS first_day
            FROM bedrock_usage_daily
            WHERE input_tokens + output_tokens + invocations > 0
            GROUP BY account_id, base_model_id
        ), accounts AS (
            SELECT account_id, min(first_day) AS account_first FROM firsts GROUP BY ALL
        )
        SELECT f.account_id, f.connection_id, f.base_model_id, f.first_day
        FROM firsts f JOIN accounts a USING (account_id)
        WHERE f.first_day >= ? AND f.first_day > a.account_first
        ORDER BY ALL""",
        [first_evaluated],
    ).fetchall()
    for account_id, connection_id, model, day in rows:
        result.firing.append(Condition(
            f"new_model:{account_id}:{model}", "new_model",
            f"New model in account {account_id} ({connection_id}): {model}, first used on {day}.",
            {"account_id": account_id, "connection_id": connection_id, "model_id": model,
             "first_day": str(day)},
            connection_id,
        ))  # fmt: skip


def _subject(details: dict) -> str:
    """The event log's connection column for an alert: its connection, owner or budget."""
    if details.get("connection_id"):
        return details["connection_id"]
    if details.get("team"):
        return f"owner:{details['team']}"
    return f"budget:{details.get('name')}"


Sender = Callable[[dict], str | None]  # returns None when sent, else the error


def deliver(evaluation: Evaluation, store: StateStore, senders: list[Sender]) -> list[dict]:
    """Send each new condition, each that cleared, and each earlier failed delivery once;
    return what was sent (or failed)."""
    known = store.alert_states()
    firing = {c.key: c for c in evaluation.firing}
    outbox: list[tuple[Condition, str]] = []
    for key, condition in firing.items():
        previous = known.get(key)
        if previous is None or not previous["delivered"] or previous["state"] != "firing":
            if previous is not None and previous["state"] == "cleared" and previous["delivered"]:
                continue  # announced and cleared already: once per condition
            outbox.append((condition, "firing"))
    for key, previous in known.items():
        if key in firing or key not in evaluation.evaluated or previous["kind"] == "threshold":
            continue
        if previous["state"] == "firing" or (previous["state"] == "cleared"
                                             and not previous["delivered"]):  # fmt: skip
            details = json.loads(previous["payload"])
            subject = _subject(details)
            condition = Condition(key, previous["kind"], f"Cleared: {previous['message']}",
                                  details, subject)  # fmt: skip
            outbox.append((condition, "cleared"))
    sent = []
    for condition, state in outbox:
        payload = {
            "key": condition.key, "kind": condition.kind, "state": state,
            "text": condition.text, "details": condition.details, "at": now_iso(),
        }  # fmt: skip
        remembered = condition.text.removeprefix("Cleared: ")
        if not store.claim_alert(condition.key, condition.kind, state, remembered,
                                 json.dumps(condition.details), LEASE_SECONDS):  # fmt: skip
            continue  # another process has it
        errors = [error for send in senders if (error := send(payload))]
        store.finish_alert(condition.key, "; ".join(errors) or None)
        store.log_event(
            condition.subject, "alert", "failed" if errors else state, condition.text,
            error_code="DeliveryFailed" if errors else None,
            next_action=f"Not delivered ({'; '.join(errors)}): retried at the next "
            "evaluation." if errors else None,
        )  # fmt: skip
        sent.append({**payload, "delivered": not errors, "errors": errors})
    return sent


def webhook_sender(url: str, timeout: float = 10.0) -> Sender:
    """POST the alert as JSON; any answer but 2xx, or none, is a failed delivery."""

    def send(payload: dict) -> str | None:
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "bedrock-usage"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return None
                return f"webhook answered HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return f"webhook answered HTTP {error.code}"
        except Exception as error:  # noqa: BLE001 - any failure is retried, and reported
            return f"webhook: {type(error).__name__}: {getattr(error, 'reason', error)}"

    return send


@contextmanager
def reading_spend() -> Iterator[duckdb.DuckDBPyConnection | None]:
    """What alerts read: the analysts' copy of a warehouse file (refreshed after every
    write, never locked by one), or the lake; None before anything was synced."""
    target = warehouse_target()
    if isinstance(target, Lake):
        with open_warehouse(target, read_only=True) as db:
            yield db
        return
    copy = snapshot_path(target)
    if not copy.exists():
        yield None
        return
    with duckdb.connect(str(copy), read_only=True) as db:
        yield db


def senders(extra: list[Sender] | None = None) -> list[Sender]:
    """The webhook when BEDROCK_USAGE_ALERT_WEBHOOK_URL is set, then `extra` (Slack)."""
    url = settings.alert_webhook_url()
    return ([webhook_sender(url)] if url else []) + (extra or [])


def check_alerts(
    extra: list[Sender] | None = None,
    store: StateStore | None = None,
    today: date | None = None,
) -> tuple[Evaluation, list[dict]]:
    """Evaluate every budget, anomaly and new model now and deliver what is due."""
    store = store or StateStore()
    today = today or utc_today()
    with reading_spend() as db:
        if db is None:
            return Evaluation(), []
        evaluation = evaluate(db, store, today, settings.anomaly_min_usd())
    return evaluation, deliver(evaluation, store, senders(extra))


def budget_statuses(
    db: duckdb.DuckDBPyConnection, today: date, store: StateStore | None = None
) -> list[BudgetStatus]:
    return [budget_status(db, budget, today) for budget in budgets(store)]


def budget_severity(status: BudgetStatus) -> str | None:
    """ERROR when over the budget, WARN when past its highest threshold below 100 % or
    forecast over it, else None."""
    if status.used_share >= 1:
        return "ERROR"
    near = [t for t in status.budget.thresholds if t < 100]
    if (near and status.used_share * 100 >= max(near)) or (
        status.forecast_usd is not None and status.forecast_usd > status.budget.monthly_usd
    ):
        return "WARN"
    return None
