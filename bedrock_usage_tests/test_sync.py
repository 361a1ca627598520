"""A whole sync against the emulator: CloudWatch's numbers land exactly in DuckDB."""

from __future__ import annotations

import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.extraction.errors import FailureKind
from bedrock_usage.sync import SyncTarget, sync_usage

from .conftest import ACCOUNT, days_ago, seed_daily, session_for

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_EU = "eu.amazon.nova-pro-v1:0"


def _table(
    path,
    sql="SELECT region, model_id, sum(input_tokens), sum(invocations) "
    "FROM bedrock_usage_daily GROUP BY ALL ORDER BY ALL",
):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _target(reader, regions=("us-east-1", "eu-west-1")):
    return SyncTarget("acme", ACCOUNT, regions, session_for(reader))


def test_a_sync_writes_exact_totals_per_region_and_model(aws, reader, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    d1, d2 = days_ago(2), days_ago(1)
    seed_daily(aws, "InputTokenCount", HAIKU, {d1: 1200, d2: 800})
    seed_daily(aws, "Invocations", HAIKU, {d1: 12, d2: 8})
    seed_daily(aws, "InputTokenCount", None, {d1: 1300, d2: 800})  # 100 tokens unattributed
    seed_daily(aws, "Invocations", None, {d1: 12, d2: 8})
    seed_daily(aws, "InputTokenCount", NOVA_EU, {d2: 999_999_999_999_999}, region="eu-west-1")
    seed_daily(aws, "InputTokenCount", None, {d2: 999_999_999_999_999}, region="eu-west-1")
    result = sync_usage(_target(reader), DayRange(d1, d2), path)
    assert result.failures == []
    assert result.rows_written == 4
    assert _table(path) == [
        ("eu-west-1", NOVA_EU, 999_999_999_999_999, 0),
        ("us-east-1", "(unattributed)", 100, 0),
        ("us-east-1", HAIKU, 2000, 20),
    ]
    assert sync_usage(_target(reader), DayRange(d1, d2), path).rows_written == 4
    assert _table(path, "SELECT count(*) FROM bedrock_usage_daily") == [(4,)]
    assert _table(
        path, "SELECT count(*) FROM cloudwatch_daily_datapoints WHERE model_id = '(region total)'"
    ) == [(5,)]


def test_late_data_is_picked_up_by_the_next_sync(aws, reader, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    sync_usage(_target(reader, ("us-east-1",)), DayRange(day, day), path)
    seed_daily(aws, "Invocations", HAIKU, {day: 2}, hours=1)
    sync_usage(_target(reader, ("us-east-1",)), DayRange(day, day), path)
    assert _table(path) == [("us-east-1", HAIKU, 0, 7)]


def test_a_denied_region_keeps_its_rows_and_the_others_are_written(aws, reader, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    seed_daily(aws, "Invocations", NOVA_EU, {day: 3}, region="eu-west-1")
    sync_usage(_target(reader), DayRange(day, day), path)
    seed_daily(aws, "Invocations", HAIKU, {day: 1}, hours=1)
    seed_daily(aws, "Invocations", NOVA_EU, {day: 1}, region="eu-west-1", hours=1)
    aws.deny_region(reader, "eu-west-1")
    result = sync_usage(_target(reader), DayRange(day, day), path)
    assert [(f.region, f.kind, f.code) for f in result.failures] == [
        ("eu-west-1", FailureKind.PERMISSION, "AccessDenied")
    ]
    assert result.succeeded_regions == ["us-east-1"]
    assert _table(path) == [("eu-west-1", NOVA_EU, 0, 3), ("us-east-1", HAIKU, 0, 6)]


def test_a_model_seen_in_an_earlier_sync_is_read_after_it_goes_quiet(aws, reader, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    custom = "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/p1"
    seed_daily(aws, "Invocations", custom, {days_ago(3): 9})
    seed_daily(aws, "Invocations", None, {days_ago(3): 9})
    target = _target(reader, ("us-east-1",))
    sync_usage(target, DayRange(days_ago(3), days_ago(3)), path)
    aws.advance_clock(days=20)  # the model goes quiet: ListMetrics no longer shows it
    result = sync_usage(target, DayRange(days_ago(10), days_ago(0)), path)
    assert result.fetches[0].models_listed == set()
    assert _table(path) == [("us-east-1", custom, 0, 9)]
