"""Partition keys: connection × UTC day, and the run's rectangle per connection."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import time_machine
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from bedrock_usage.connections.store import PARTITION_START, StateStore
from bedrock_usage.days import DayRange, utc_today
from bedrock_usage.defs.partitions import (
    CONNECTION_DIMENSION,
    DATE_DIMENSION,
    first_partition_day,
    partition_key,
    range_tags,
    usage_partitions,
    windows_by_connection,
)


def test_keys_join_connection_then_day():
    assert partition_key("prod", "2026-11-20") == "prod|2026-11-20"


def test_a_run_rectangle_becomes_one_range_per_connection():
    keys = [partition_key(c, f"2026-11-{d}") for c in ("prod", "research") for d in (20, 21, 22)]
    assert windows_by_connection(keys) == {
        "prod": DayRange(date(2026, 11, 20), date(2026, 11, 22)),
        "research": DayRange(date(2026, 11, 20), date(2026, 11, 22)),
    }


def test_range_tags_name_the_first_and_last_partition():
    tags = range_tags("prod", DayRange(date(2026, 11, 20), date(2026, 11, 22)))
    assert tags == {
        "dagster/asset_partition_range_start": "prod|2026-11-20",
        "dagster/asset_partition_range_end": "prod|2026-11-22",
    }


def test_the_day_dimension_starts_where_history_can_exist_and_never_moves(
    bedrock_home, monkeypatch
):
    """Unset, the first day is today - 454 until the first connection, then the oldest
    day CloudWatch could answer on the day it was made, recorded for good; a set
    BEDROCK_USAGE_START_DATE wins."""
    monkeypatch.delenv("BEDROCK_USAGE_START_DATE", raising=False)
    today = utc_today()
    assert first_partition_day() == today - timedelta(days=454)
    assert not (bedrock_home / "state.sqlite3").exists()  # asking wrote nothing
    store = StateStore()
    assert store.record_once(PARTITION_START, str(today - timedelta(days=454))) == str(
        today - timedelta(days=454)
    )
    with time_machine.travel(datetime.now(UTC) + timedelta(days=40), tick=True):
        assert utc_today() == today + timedelta(days=40)
        assert first_partition_day() == today - timedelta(days=454)  # not moved
        assert store.record_once(PARTITION_START, "2030-01-01") == str(today - timedelta(days=454))
    monkeypatch.setenv("BEDROCK_USAGE_START_DATE", "2025-06-01")
    assert first_partition_day() == date(2025, 6, 1)


@pytest.mark.parametrize("whole_dimension", [False, True], ids=["a year", "every day"])
def test_a_backfill_of_many_connections_is_one_run_per_connection(whole_dimension):
    """What the daemon launches for a UI backfill of every connection (Dagster's own run
    requests for our assets' single-run policy): one run per connection over its whole
    range — never one run over all of them — so a run holds one connection's window."""
    from bedrock_usage.defs.definitions import defs

    connections = ["prod", "research", "staging"]
    dagster = dg.DagsterInstance.ephemeral()
    dagster.add_dynamic_partitions(CONNECTION_DIMENSION, connections)
    graph = defs.resolve_asset_graph()
    partitioned = [  # by connection and day (the bill is by billing period)
        k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == usage_partitions
    ]
    if whole_dimension:
        days = usage_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
        day_keys = days.get_partition_keys(dynamic_partitions_store=dagster)
    else:
        day_keys = [str(utc_today() - timedelta(days=n)) for n in range(1, 366)]
    requested = [
        AssetKeyPartitionKey(asset, partition_key(c, day))
        for asset in partitioned
        for c in connections
        for day in day_keys
    ]
    runs = build_run_requests_with_backfill_policies(requested, graph, dagster)
    window = DayRange(date.fromisoformat(min(day_keys)), date.fromisoformat(max(day_keys)))
    assert sorted((r.tags for r in runs), key=str) == [range_tags(c, window) for c in connections]
    assert all(set(r.asset_selection) == set(partitioned) for r in runs)
