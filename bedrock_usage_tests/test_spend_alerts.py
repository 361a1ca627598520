"""Budgets, forecasts, anomalies and new models: each alerted once, to a real webhook
receiver, the event log and (in the daemon) the spend alert sensor."""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bedrock_usage.days import DayRange, utc_today
from bedrock_usage.spend_alerts import check_alerts, forecast

from .conftest import ACCOUNT, seed_daily

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # $0.25 per million input tokens
SONNET = "anthropic.claude-3-5-sonnet-20241022-v2:0"  # $3 per million input tokens
NOVA = "amazon.nova-lite-v1:0"


class Receiver:
    """A webhook endpoint: records each JSON body; answers `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.status == 200:
                    receiver.bodies.append(body)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self, kind: str | None = None) -> list[str]:
        return [b["key"] for b in self.bodies if kind in (None, b["kind"])]


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def _as_of() -> date:
    """A day to evaluate as of with at least 3 complete days in its month, in the synced
    range: today from the 4th, else the last day of the month before."""
    today = utc_today()
    return today if today.day >= 4 else today.replace(day=1) - timedelta(days=1)


def _history(aws, cli_in_process, as_of: date) -> dict[date, Decimal]:
    """40 days: Haiku flat at $1/day, Sonnet at $6/day with a $60 day two days before
    `as_of`, and Nova Lite first used the day before it. Returns the estimated spend of
    each day."""
    days = [as_of - timedelta(days=n) for n in range(1, 41)]
    spike = as_of - timedelta(days=2)
    seed_daily(aws, "InputTokenCount", HAIKU, {d: 4_000_000 for d in days})
    sonnet = {d: 20_000_000 if d == spike else 2_000_000 for d in days}
    seed_daily(aws, "InputTokenCount", SONNET, sonnet)
    seed_daily(aws, "InputTokenCount", NOVA, {as_of - timedelta(days=1): 1_000})
    for model in (HAIKU, SONNET):
        seed_daily(aws, "Invocations", model, {d: 10 for d in days})
    key = aws.create_reader(ACCOUNT, "reader")
    backfill = (utc_today() - days[-1]).days
    result = cli_in_process(
        "connect", "prod", "--account-id", ACCOUNT, "--regions", "us-east-1",
        "--access-key-id", key.access_key_id, "--backfill-days", str(backfill),
        secret=key.secret_access_key,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {d: Decimal(1) + Decimal(3) * sonnet[d] / 1_000_000 for d in days}


def _alert_here(monkeypatch, home, receiver) -> None:
    """Evaluate in this process against `home`, posting to `receiver`, with a $1 minimum
    for anomalies (the history's dollars are small)."""
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(home))
    monkeypatch.setenv("BEDROCK_USAGE_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("BEDROCK_USAGE_ANOMALY_MIN_USD", "1")


def test_the_forecast_is_the_run_rate_of_complete_days():
    assert forecast(Decimal("300"), 10, 30) == Decimal("900.00")
    assert forecast(Decimal("100"), 3, 31) == Decimal("1033.33")
    assert forecast(Decimal("0"), 0, 30) is None  # the 1st: no complete day yet


def test_a_spike_a_budget_and_a_new_model_alert_once_and_a_flat_series_never(
    aws, cli_in_process, home, receiver, monkeypatch
):
    as_of = _as_of()
    spend = _history(aws, cli_in_process, as_of)
    _alert_here(monkeypatch, home, receiver)
    month_to_date = sum(v for d, v in spend.items() if d.month == as_of.month and d < as_of)
    # A budget 90 % used: 80 alerts (50 is passed too), 100 not yet.
    budget = (month_to_date / Decimal("0.9")).quantize(Decimal("0.01"))
    made = cli_in_process("budgets", "set", "team", "--monthly-usd", str(budget),
                          "--connection", "prod")  # fmt: skip
    assert made.returncode == 0, made.stderr

    # Sonnet's team: its spend is the team's, so the team's day is an anomaly too.
    assert cli_in_process("owners", "set", "--team", "writers", "--model", SONNET).returncode == 0
    check_alerts(today=as_of)
    spike = as_of - timedelta(days=2)
    # The forecast is over the budget unless the month is nearly over (tested above).
    days_in_month = calendar.monthrange(as_of.year, as_of.month)[1]
    over = forecast(month_to_date, as_of.day - 1, days_in_month) > budget
    assert sorted(receiver.keys()) == sorted([
        f"anomaly:prod:{SONNET}:{spike}", f"anomaly:owner:writers:{spike}",
        *([f"budget:team:{as_of:%Y-%m}:forecast"] if over else []),
        f"budget:team:{as_of:%Y-%m}:threshold:80",  # 50 % too, said by the higher one
        f"new_model:{ACCOUNT}:{NOVA}",
    ])  # fmt: skip
    [anomaly] = [b for b in receiver.bodies if b["key"].startswith("anomaly:prod")]
    assert anomaly["state"] == "firing"
    assert {k: anomaly["details"][k] for k in ("connection_id", "model_id", "day", "usd",
                                               "baseline_usd")} == {
        "connection_id": "prod", "model_id": SONNET, "day": str(spike), "usd": 60.0,
        "baseline_usd": 6.0,
    }  # fmt: skip
    [threshold] = [b for b in receiver.bodies if b["key"].endswith("threshold:80")]
    assert threshold["details"]["month_to_date_usd"] == str(month_to_date.quantize(Decimal("0.01")))
    assert threshold["details"]["basis"] == "estimated"
    # Haiku's flat $1/day never alerts.
    assert not [k for k in receiver.keys() if HAIKU in k]

    # Evaluated again (a restarted sensor, another process): nothing is sent twice.
    receiver.bodies.clear()
    _, sent = check_alerts(today=as_of)
    assert sent == [] and receiver.bodies == []
    # The budget raised above the spend, then lowered again: 80 % crossed twice in a
    # month alerts once (and 50 %, under it, not at all); the forecast that fell under
    # the budget is announced as cleared.
    cli_in_process("budgets", "set", "team", "--monthly-usd", str(budget * 10),
                   "--connection", "prod")  # fmt: skip
    check_alerts(today=as_of)
    assert [(b["key"].rsplit(":", 1)[-1], b["state"]) for b in receiver.bodies] == (
        [("forecast", "cleared")] if over else []
    )
    receiver.bodies.clear()
    cli_in_process("budgets", "set", "team", "--monthly-usd", str(budget),
                   "--connection", "prod")  # fmt: skip
    check_alerts(today=as_of)
    assert not [k for k in receiver.keys() if "threshold" in k]
    # The event log has every alert, as kind `alert`.
    events = json.loads(cli_in_process("events", "--json").stdout)
    alerts = [e for e in events if e["action"] == "alert"]
    assert {e["outcome"] for e in alerts} == ({"firing", "cleared"} if over else {"firing"})
    assert any(e["connection_id"] == "prod" and SONNET in e["message"] for e in alerts)


def test_a_webhook_that_is_down_is_retried_and_the_event_log_says_so(
    aws, cli_in_process, home, receiver, monkeypatch
):
    as_of = _as_of()
    _history(aws, cli_in_process, as_of)
    _alert_here(monkeypatch, home, receiver)
    receiver.status = 503
    _, sent = check_alerts(today=as_of)
    assert len(sent) == 2 and not any(item["delivered"] for item in sent)  # spike, new model
    failed = [e for e in json.loads(cli_in_process("events", "--json").stdout)
              if e["action"] == "alert"]  # fmt: skip
    assert {e["outcome"] for e in failed} == {"failed"}
    assert all("webhook answered HTTP 503" in e["next_action"] for e in failed)
    receiver.status = 200
    check_alerts(today=as_of)
    assert sorted(receiver.keys()) == [
        f"anomaly:prod:{SONNET}:{as_of - timedelta(days=2)}",
        f"new_model:{ACCOUNT}:{NOVA}",
    ]
    receiver.bodies.clear()
    check_alerts(today=as_of)
    assert receiver.bodies == []  # delivered: never again


def test_the_cost_asset_grades_budgets_and_the_daemon_sensor_sends_once(
    aws, reader, bedrock_home, receiver, monkeypatch
):
    """In Dagster: the check on bedrock_cost_daily (WARN near, ERROR over) and the sensor."""
    import dagster as dg

    from bedrock_usage.defs.alerts import AlertResource
    from bedrock_usage.defs.local_runs import instance, run_sync
    from bedrock_usage.defs.resources import StateStoreResource
    from bedrock_usage.defs.sensors import spend_alert_sensor
    from bedrock_usage.spend_alerts import set_budget

    from .dagster_helpers import connect

    # Today so far (a sync may read the day in progress): in this month on any day.
    today = utc_today()
    seed_daily(aws, "InputTokenCount", SONNET, {today: 10_000_000}, hours=1)  # $30
    connect(reader, "prod", regions="us-east-1", backfill_days=1)
    set_budget("over", "20", {"connection": "prod"}, "50,100")
    set_budget("roomy", "1000", {"model": HAIKU}, None)
    result = run_sync("prod", DayRange(today, today))
    [check] = [e for e in result.get_asset_check_evaluations()
               if e.check_name == "budgets_within_limits"]  # fmt: skip
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    # Spent today only: the complete days' rate is $0, but the month cannot end under $30.
    forecast_text = "not yet" if today.day == 1 else "$30.00"
    assert check.description.startswith(
        f"over ($20/month, connection prod): $30.00 estimated in {today:%Y-%m} (150%), "
        f"forecast {forecast_text} — OVER"
    )
    monkeypatch.setenv("BEDROCK_USAGE_ALERT_WEBHOOK_URL", receiver.url)
    context = dg.build_sensor_context(
        instance=instance(),
        resources={"state_store": StateStoreResource(), "alerts": AlertResource()},
    )
    first = spend_alert_sensor(context)
    second = spend_alert_sensor(context)
    # 50 % and 100 % crossed at once: the higher says it; "roomy" is far from its limit.
    assert receiver.keys("threshold") == [f"budget:over:{today:%Y-%m}:threshold:100"]
    assert "1 alert(s) sent" in first.skip_message
    assert "0 alert(s) sent" in second.skip_message


def test_two_processes_evaluating_at_once_send_each_alert_once(
    aws, cli_in_process, home, receiver, monkeypatch
):
    as_of = _as_of()
    _history(aws, cli_in_process, as_of)
    _alert_here(monkeypatch, home, receiver)
    # Each process imports first, then all evaluate at the same moment.
    script = (
        "import sys, time; from datetime import date; from bedrock_usage.spend_alerts import "
        "check_alerts; time.sleep(max(0, float(sys.argv[2]) - time.time())); "
        "check_alerts(today=date.fromisoformat(sys.argv[1]))"
    )
    start = str(time.time() + 8)
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(as_of), start]) for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    assert sorted(receiver.keys()) == [
        f"anomaly:prod:{SONNET}:{as_of - timedelta(days=2)}",
        f"new_model:{ACCOUNT}:{NOVA}",
    ]
