"""The cost asset in real Dagster runs against the emulator: dollars in the metadata,
unpriced usage in a WARN check, and the analysts' copy with the cost views."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.defs.cost_assets import weekly_prices_schedule
from bedrock_usage.defs.definitions import defs
from bedrock_usage.defs.local_runs import instance, run_sync

from .conftest import days_ago, seed_daily
from .dagster_helpers import connect, run_totals

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PROVISIONED = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/k3x9p2m1q8ab"


def _cost_events(result):
    [materialization] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["bedrock_cost_daily"]
    ]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "usage_priced"]
    return materialization.metadata, check


def test_a_sync_estimates_cost_and_flags_unpriced_usage(aws, reader, bedrock_home):
    day = days_ago(2)
    for metric, value in (("InputTokenCount", 1_000_000), ("OutputTokenCount", 1_000_000)):
        seed_daily(aws, metric, HAIKU, {day: value})
        seed_daily(aws, metric, PROVISIONED, {day: 1_000})
        seed_daily(aws, metric, None, {day: value + 1_000})
    connect(reader, "prod", regions="us-east-1")
    result = run_sync("prod", DayRange(day, day))
    assert result.success
    metadata, check = _cost_events(result)
    # The day's figures on its partition, the cost a number Dagster can plot; the run's
    # totals in one event of the run.
    assert metadata["estimated_cost_usd"].value == 1.5
    assert metadata["unpriced_tokens"].value == 2_000
    totals = run_totals(result.run_id, "bedrock_cost_daily")
    assert (totals["run_estimated_cost_usd"], totals["run_unpriced_tokens"]) == ("1.500000", 2_000)
    assert not check.passed and check.severity.value == "WARN"
    [unpriced] = check.metadata["unpriced_by_model"].value
    assert (unpriced["model_id"], unpriced["tokens"]) == (PROVISIONED, 2_000)
    assert unpriced["cause"].startswith("billed by the hour")
    assert "billed by the hour" in check.description

    # Late data: CloudWatch now holds more Haiku tokens for that day; a re-sync updates
    # the cost with the usage, in the analysts' copy too.
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 3_000_000})
    seed_daily(aws, "InputTokenCount", None, {day: 3_000_000})
    again = run_sync("prod", DayRange(day, day))
    assert _cost_events(again)[0]["estimated_cost_usd"].value == 2.25
    snapshot = bedrock_home / "warehouse.snapshot.duckdb"
    with duckdb.connect(str(snapshot), read_only=True) as analyst:
        rows = analyst.execute(
            "SELECT model_id, input_tokens, estimated_cost_usd FROM bedrock_cost_daily "
            "ORDER BY model_id"
        ).fetchall()
        monthly = analyst.execute(
            "SELECT sum(estimated_cost_usd), sum(unpriced_tokens) "
            "FROM bedrock_cost_monthly_by_account"
        ).fetchone()
        tables = {r[0] for r in analyst.execute("SHOW TABLES").fetchall()}
    assert rows == [(HAIKU, 4_000_000, Decimal("2.250000")), (PROVISIONED, 1_000, None)]
    assert monthly == (Decimal("2.250000"), 2_000)
    assert {
        "bedrock_prices",
        "bedrock_cost_daily",
        "bedrock_cost_monthly_by_account",
        "bedrock_cost_monthly_by_provider",
        "bedrock_cost_monthly_by_model",
    } <= tables


def test_the_weekly_price_asset_reads_the_regions_of_every_connection(
    aws, reader, bedrock_home, price_list
):
    _, url = price_list
    connect(reader, "prod", regions="eu-west-1")
    job = defs.resolve_job_def("bedrock_prices_refresh")
    result = job.execute_in_process(
        instance=instance(), run_config={"resources": {"price_list": {"config": {"url": url}}}}
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["regions_read"].value == ["eu-west-1"]
    assert metadata["rows_read"].value == 2
    assert metadata["differences_from_shipped"].value == [
        [HAIKU, "eu-west-1", "input", "0.3", "0.25"],
        [HAIKU, "eu-west-1", "output", "1.5", "1.25"],
    ]
    assert weekly_prices_schedule.cron_schedule == "0 6 * * 1"


def test_an_unreachable_price_list_fails_the_weekly_asset_with_what_to_do(
    aws, reader, bedrock_home
):
    connect(reader, "prod", regions="eu-west-1")
    job = defs.resolve_job_def("bedrock_prices_refresh")
    result = job.execute_in_process(
        instance=instance(),
        run_config={"resources": {"price_list": {"config": {"url": "http://127.0.0.1:9"}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "could not be reached" in message and "shipped snapshot still applies" in message
