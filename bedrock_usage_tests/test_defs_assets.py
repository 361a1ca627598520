"""The assets in real Dagster runs against the emulator: one run per backfill, exact
numbers in DuckDB, and checks that say what is wrong and what to do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from bedrock_usage.days import DayRange
from bedrock_usage.defs.local_runs import instance, run_sync
from bedrock_usage.extraction.fetch import lower_bound_calls
from bedrock_usage.extraction.metrics import MANTLE_METRICS, USAGE_METRICS

from .conftest import ACCOUNT, OTHER_ACCOUNT, days_ago, seed_daily
from .dagster_helpers import by_partition, connect, run_totals

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
ROOT = Path(__file__).resolve().parents[1]


def _checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _step_failure(result):
    """The run's one failed step's error."""
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.error


def _usage(home):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT region, model_id, sum(invocations)::BIGINT, count(*) FROM bedrock_usage_daily "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_a_year_backfill_is_one_run_with_the_fewest_calls(aws, reader, bedrock_home):
    first, last = days_ago(365), days_ago(1)
    every_day = {first + timedelta(days=d): 1 + d % 7 for d in range(365)}
    seed_daily(aws, "Invocations", HAIKU, every_day, hours=1)
    seed_daily(aws, "Invocations", NOVA, every_day, hours=1)
    seed_daily(aws, "Invocations", None, {d: 2 * n for d, n in every_day.items()}, hours=1)
    connect(reader, "prod", regions="us-east-1")
    aws.log.reset()
    result = run_sync("prod", DayRange(first, last))
    assert result.success
    runs = instance().get_runs()
    assert len(runs) == 1
    series = 3 * len(USAGE_METRICS) + len(MANTLE_METRICS)  # two models, two totals
    assert aws.log.count("GetMetricData") == lower_bound_calls(series, 365) == 1
    invocations = 2 * sum(every_day.values())
    assert _usage(bedrock_home) == [
        ("us-east-1", HAIKU, invocations // 2, 365),
        ("us-east-1", NOVA, invocations // 2, 365),
    ]
    materializations = result.get_asset_materialization_events()
    assert len(materializations) == 3 * 365  # data points, usage, cost
    # The run's totals are one event of the run, on no partition.
    totals = run_totals(result.run_id, "cloudwatch_datapoints")
    assert totals["run_get_metric_data_calls"] == 1
    assert totals["run_metrics_requested"] == series
    # Counted when read, so still right after the run dropped the stored data points.
    with duckdb.connect(str(bedrock_home / "warehouse.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM cloudwatch_daily_datapoints").fetchone()[0]
    assert stored == 3 * 365  # Invocations of both models and of the region total
    assert totals["run_datapoints_by_region"] == {"prod/us-east-1": stored}
    assert totals["run_models_seen"] == sorted([HAIKU, NOVA])
    assert run_totals(result.run_id, "bedrock_usage_daily")["run_rows"] == 730
    # Each partition carries its own day's figures, so Dagster's plots draw each day.
    points = by_partition(result, "cloudwatch_datapoints")
    usage = by_partition(result, "bedrock_usage_daily")
    assert len(points) == len(usage) == 365
    for day, n in every_day.items():
        key = ("prod", str(day))
        assert points[key]["datapoints"] == 3
        assert (points[key]["regions_read"], points[key]["regions_not_read"]) == (
            "us-east-1",
            "none",
        )
        assert (usage[key]["dagster/row_count"], usage[key]["invocations"]) == (2, 2 * n)
        assert usage[key]["input_tokens"] == usage[key]["cache_read_input_tokens"] == 0
        assert not any(name.startswith("run_") for name in usage[key] | points[key])
    usage_metadata = usage["prod", str(last)]
    assert usage_metadata["dagster/table_name"] == "bedrock_usage_daily"
    schema = usage_metadata["dagster/column_schema"]
    assert schema.columns[0].name == "usage_date" and schema.columns[0].description
    checks = _checks(result)
    assert all(check.passed for check in checks.values()), checks


def test_a_denied_region_fails_its_check_with_the_fix_and_keeps_its_rows(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    seed_daily(aws, "Invocations", NOVA, {day: 3}, region="eu-west-1")
    connect(reader, "prod")
    assert run_sync("prod", DayRange(day, day)).success
    seed_daily(aws, "Invocations", NOVA, {day: 100}, region="eu-west-1", hours=1)
    aws.deny_region(reader, "eu-west-1")
    result = run_sync("prod", DayRange(day, day))
    # Partial: every region that could be read is stored, rebuilt and priced, then the
    # blocking every_region_read check fails the last step, and with it the run.
    assert not result.success
    assert instance().get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "bedrock_cost_daily"
    assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
    assert {e.asset_key.path[0] for e in result.get_asset_materialization_events()} == {
        "cloudwatch_datapoints", "bedrock_usage_daily", "bedrock_cost_daily",
    }  # fmt: skip
    read = _checks(result)["every_region_read"]
    assert not read.passed and read.severity.value == "ERROR"
    assert read.metadata["regions_not_read"].value == {"prod": ["eu-west-1"]}
    assert "Partial sync" in read.description and "eu-west-1" in read.description
    assert result.dagster_run.tags["bedrock_usage/failed_regions"] == "prod/eu-west-1"
    for asset in ("cloudwatch_datapoints", "bedrock_usage_daily"):
        [figures] = by_partition(result, asset).values()
        assert (figures["regions_read"], figures["regions_not_read"]) == ("us-east-1", "eu-west-1")
    check = _checks(result)["cloudwatch_permissions"]
    assert not check.passed and check.severity.value == "ERROR"
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["connection"] == "prod" and metadata["account"] == ACCOUNT
    assert metadata["region"] == "eu-west-1" and metadata["error_code"] == "AccessDenied"
    assert "cloudwatch:GetMetricData" in metadata["next_action"]
    assert _usage(bedrock_home) == [("eu-west-1", NOVA, 3, 1), ("us-east-1", HAIKU, 5, 1)]
    # The next sync that reads the region clears it everywhere.
    aws.allow_region(reader, "eu-west-1")
    again = run_sync("prod", DayRange(day, day))
    assert again.success and _checks(again)["every_region_read"].passed
    [figures] = by_partition(again, "bedrock_usage_daily").values()
    assert figures["regions_read"] == "eu-west-1, us-east-1"
    assert figures["regions_not_read"] == "none"
    assert _usage(bedrock_home) == [("eu-west-1", NOVA, 103, 1), ("us-east-1", HAIKU, 5, 1)]


def test_every_region_failing_fails_the_run_with_the_explanation(aws, reader, bedrock_home):
    connect(reader, "prod", regions="us-east-1")
    aws.delete_access_key(reader)
    result = run_sync("prod", DayRange(days_ago(1), days_ago(1)))
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "InvalidClientTokenId" in message and "access key" in message


def _connect_with_models_above_the_total(aws, reader):
    """Yesterday, the models add up to 110 invocations and the region total to 100 (10%
    over): connected as 'prod' in us-east-1. Returns the day."""
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 90})
    seed_daily(aws, "Invocations", NOVA, {day: 20})
    seed_daily(aws, "Invocations", None, {day: 100})
    connect(reader, "prod", regions="us-east-1")
    return day


def test_models_above_the_region_total_raise_a_reconciliation_warning(aws, reader, bedrock_home):
    day = _connect_with_models_above_the_total(aws, reader)
    result = run_sync("prod", DayRange(day, day))
    check = _checks(result)["totals_reconcile"]
    assert not check.passed and check.severity.value == "WARN"
    [gap] = check.metadata["largest_gaps"].value
    assert (gap["metric_name"], gap["region_total"], gap["models_sum"], gap["gap"]) == (
        "Invocations",
        100.0,
        110.0,
        10.0,
    )
    assert "late data" in check.description


def test_a_run_takes_its_settings_from_the_resource_config(aws, reader, bedrock_home):
    day = _connect_with_models_above_the_total(aws, reader)
    tolerant = {"sync_settings": {"reconcile_tolerance": "0.2", "region_concurrency": 1}}
    result = run_sync("prod", DayRange(day, day), resources=tolerant)
    check = _checks(result)["totals_reconcile"]
    assert check.passed and check.metadata["tolerance"].value == 0.2


def test_a_bad_resource_value_fails_the_run_before_anything_is_read(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 90})
    connect(reader, "prod", regions="us-east-1")
    aws.log.reset()
    result = run_sync(
        "prod", DayRange(day, day), resources={"sync_settings": {"reconcile_tolerance": "5%"}}
    )
    assert not result.success
    assert "BEDROCK_USAGE_RECONCILE_TOLERANCE='5%' is not usable" in _step_failure(result).message
    assert aws.log.count("GetMetricData") == 0 and aws.log.count("ListMetrics") == 0


def test_a_stale_connection_fails_the_freshness_check(aws, reader, bedrock_home):
    connect(reader, "prod", regions="us-east-1")
    old = days_ago(10)
    result = run_sync("prod", DayRange(old, old))
    check = _checks(result)["fresh"]
    assert not check.passed
    assert check.metadata["stale_regions"].value == {"prod/us-east-1": str(old)}


def test_the_permission_check_stays_failed_until_the_region_reads_again(aws, reader, bedrock_home):
    other = aws.create_reader(OTHER_ACCOUNT)
    connect(reader, "prod")
    connect(other, "research", regions="us-east-1")
    window = DayRange(days_ago(1), days_ago(1))
    aws.deny_region(reader, "eu-west-1")
    assert not _checks(run_sync("prod", window))["cloudwatch_permissions"].passed
    research = _checks(run_sync("research", window))["cloudwatch_permissions"]
    assert not research.passed
    assert research.metadata["connection"].value == "prod"
    assert "1 region(s) cannot be read" in research.description
    aws.allow_region(reader, "eu-west-1")
    assert _checks(run_sync("prod", window))["cloudwatch_permissions"].passed


def test_a_run_out_of_duckdb_memory_says_which_setting_to_raise_and_keeps_the_rows(
    aws, reader, bedrock_home
):
    first, last = days_ago(30), days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {first + timedelta(days=d): 3 for d in range(30)})
    connect(reader, "prod", regions="us-east-1")
    assert run_sync("prod", DayRange(first, last)).success
    before = _usage(bedrock_home)
    assert before == [("us-east-1", HAIKU, 90, 30)]

    seed_daily(aws, "Invocations", HAIKU, {last: 5})  # late data: the last day is now 8
    starved = run_sync(
        "prod", DayRange(first, last), resources={"warehouse": {"memory_limit": "1MB"}}
    )
    assert not starved.success
    error = _step_failure(starved)
    assert "DuckDB needed more memory than this run allows" in error.message
    assert "Raise BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT" in error.message
    assert error.cls_name == "Failure"  # the message alone, no traceback to read
    assert _usage(bedrock_home) == before

    assert run_sync("prod", DayRange(first, last)).success
    assert _usage(bedrock_home) == [("us-east-1", HAIKU, 95, 30)]


def test_the_windows_gaps_are_merged_largest_first():
    from bedrock_usage.defs.checks import _largest_first

    first = pd.DataFrame({"region": ["a", "b"], "gap": [-9.0, 2.0]})
    second = pd.DataFrame({"region": ["c", "d"], "gap": [5.0, -1.0]})
    empty = first.iloc[0:0]
    merged = _largest_first([empty, first, second], "gap")
    assert merged.region.tolist() == ["a", "c", "b", "d"]
    assert _largest_first([empty, empty], "gap").empty
    projects = pd.DataFrame({"m": [10, 3], "p": [0, 30]})
    assert _largest_first([projects], "m", "p").m.tolist() == [3, 10]
