"""Partition keys: connection × UTC day, and the run's rectangle per connection."""

from datetime import date, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from bedrock_usage.days import DayRange
from bedrock_usage.defs.partitions import (
    CONNECTION_DIMENSION,
    DATE_DIMENSION,
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


def test_the_day_dimension_starts_on_a_fixed_day_not_one_that_moves():
    from bedrock_usage.defs.partitions import DATE_DIMENSION, usage_partitions

    days = usage_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
    assert days.start.date() == date(2025, 1, 1)


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
    partitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def]
    if whole_dimension:
        days = usage_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
        day_keys = days.get_partition_keys(dynamic_partitions_store=dagster)
    else:
        day_keys = [str(date(2026, 11, 27) - timedelta(days=n)) for n in range(365)]
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
