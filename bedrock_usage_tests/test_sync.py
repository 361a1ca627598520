"""A whole sync through the production path (the code location's job, as the CLI and
the schedule run it) against the emulator: CloudWatch's numbers land exactly in DuckDB."""

from __future__ import annotations

import duckdb

from bedrock_usage.connections.store import StateStore
from bedrock_usage.days import DayRange
from bedrock_usage.defs.local_runs import run_sync

from .conftest import days_ago, seed_daily
from .dagster_helpers import connect

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_EU = "eu.amazon.nova-pro-v1:0"


def _table(
    home,
    sql="SELECT region, model_id, sum(input_tokens), sum(invocations) "
    "FROM bedrock_usage_daily GROUP BY ALL ORDER BY ALL",
):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_sync_writes_exact_totals_per_region_and_model(aws, reader, bedrock_home):
    d1, d2 = days_ago(2), days_ago(1)
    seed_daily(aws, "InputTokenCount", HAIKU, {d1: 1200, d2: 800})
    seed_daily(aws, "Invocations", HAIKU, {d1: 12, d2: 8})
    seed_daily(aws, "InputTokenCount", None, {d1: 1300, d2: 800})  # 100 tokens unattributed
    seed_daily(aws, "Invocations", None, {d1: 12, d2: 8})
    seed_daily(aws, "InputTokenCount", NOVA_EU, {d2: 999_999_999_999_999}, region="eu-west-1")
    seed_daily(aws, "InputTokenCount", None, {d2: 999_999_999_999_999}, region="eu-west-1")
    connect(reader, "acme")
    assert run_sync("acme", DayRange(d1, d2)).success
    assert _table(bedrock_home) == [
        ("eu-west-1", NOVA_EU, 999_999_999_999_999, 0),
        ("us-east-1", "(unattributed)", 100, 0),
        ("us-east-1", HAIKU, 2000, 20),
    ]
    assert run_sync("acme", DayRange(d1, d2)).success
    assert _table(bedrock_home, "SELECT count(*) FROM bedrock_usage_daily") == [(4,)]
    assert _table(
        bedrock_home,
        "SELECT count(*) FROM cloudwatch_daily_datapoints WHERE model_id = '(region total)'",
    ) == [(5,)]


def test_late_data_is_picked_up_by_the_next_sync(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    connect(reader, "acme", regions="us-east-1")
    run_sync("acme", DayRange(day, day))
    seed_daily(aws, "Invocations", HAIKU, {day: 2}, hours=1)
    run_sync("acme", DayRange(day, day))
    assert _table(bedrock_home) == [("us-east-1", HAIKU, 0, 7)]


def test_a_denied_region_keeps_its_rows_and_the_others_are_written(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    seed_daily(aws, "Invocations", NOVA_EU, {day: 3}, region="eu-west-1")
    connect(reader, "acme")
    run_sync("acme", DayRange(day, day))
    seed_daily(aws, "Invocations", HAIKU, {day: 1}, hours=1)
    seed_daily(aws, "Invocations", NOVA_EU, {day: 1}, region="eu-west-1", hours=1)
    aws.deny_region(reader, "eu-west-1")
    result = run_sync("acme", DayRange(day, day))
    # One region read and written; the run fails as partial, tagged with the other.
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
    assert result.dagster_run.tags["bedrock_usage/failed_regions"] == "acme/eu-west-1"
    health = StateStore().region_health("acme")
    assert health["eu-west-1"].failure_code == "AccessDenied"
    assert not health["us-east-1"].needs_attention
    assert _table(bedrock_home) == [("eu-west-1", NOVA_EU, 0, 3), ("us-east-1", HAIKU, 0, 6)]


def test_a_model_seen_in_an_earlier_sync_is_read_after_it_goes_quiet(aws, reader, bedrock_home):
    custom = "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/p1"
    seed_daily(aws, "Invocations", custom, {days_ago(3): 9})
    seed_daily(aws, "Invocations", None, {days_ago(3): 9})
    connect(reader, "acme", regions="us-east-1")
    run_sync("acme", DayRange(days_ago(3), days_ago(3)))
    aws.advance_clock(days=20)  # the model goes quiet: ListMetrics no longer shows it
    run_sync("acme", DayRange(days_ago(10), days_ago(1)))
    assert _table(bedrock_home) == [("us-east-1", custom, 0, 9)]


def test_regions_are_read_at_the_same_time_with_the_fewest_calls(aws, reader, bedrock_home):
    day = days_ago(1)
    regions = ["us-east-1", "eu-west-1", "us-west-2"]
    for region in regions:
        seed_daily(aws, "Invocations", HAIKU, {day: 5}, region=region)
    connect(reader, "acme", regions=",".join(regions))
    aws.slow_down(0.5)  # every call takes a while, so reads overlap if they can
    aws.log.reset()
    assert run_sync("acme", DayRange(day, day)).success
    assert aws.log.max_in_flight >= 2
    for region in regions:  # one call per region, as read one by one
        assert aws.log.count("GetMetricData", region=region) == 1
    assert _table(bedrock_home) == [(r, HAIKU, 0, 5) for r in sorted(regions)]
