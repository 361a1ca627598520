"""Partition keys: connection × UTC day, and the run's rectangle per connection."""

from datetime import date

from bedrock_usage.days import DayRange
from bedrock_usage.defs.partitions import partition_key, range_tags, windows_by_connection


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
