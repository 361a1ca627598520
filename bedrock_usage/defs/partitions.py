"""Partitions: UTC days × connections.

The day dimension starts at BEDROCK_USAGE_START_DATE when set; else at the oldest day
CloudWatch could answer when the first connection was made (recorded once in the state
store, so the partition view and its materialized partitions stay put from day to day,
and no partition counts as missing a day that could never have been synced). Before any
connection it is today - 454. The connection dimension follows the state store through
`connection_partitions_sensor`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date

import dagster as dg

from ..connections.store import PARTITION_START, StateStore
from ..days import DayRange, oldest_readable_day
from ..settings import start_date

CONNECTION_DIMENSION = "connection"
DATE_DIMENSION = "date"


def first_partition_day() -> date:
    explicit = start_date()
    if explicit is not None:
        return explicit
    try:
        recorded = StateStore().recorded(PARTITION_START)
    except Exception:  # noqa: BLE001 - a broken state store is reported by whatever uses it
        recorded = None
    return date.fromisoformat(recorded) if recorded else oldest_readable_day()


connection_partitions = dg.DynamicPartitionsDefinition(name=CONNECTION_DIMENSION)
usage_partitions = dg.MultiPartitionsDefinition(
    {
        DATE_DIMENSION: dg.DailyPartitionsDefinition(
            start_date=first_partition_day().isoformat(), timezone="UTC"
        ),
        CONNECTION_DIMENSION: connection_partitions,
    }
)


def partition_key(connection_id: str, day: str) -> str:
    return str(dg.MultiPartitionKey({CONNECTION_DIMENSION: connection_id, DATE_DIMENSION: day}))


def partition_days(partition_keys: list[str]) -> Iterator[tuple[str, tuple[str, date]]]:
    """Each partition key with its connection and day."""
    for key in partition_keys:
        dimensions = usage_partitions.get_partition_key_from_str(str(key)).keys_by_dimension
        yield (
            key,
            (dimensions[CONNECTION_DIMENSION], date.fromisoformat(dimensions[DATE_DIMENSION])),
        )


def windows_by_connection(partition_keys: list[str]) -> dict[str, DayRange]:
    """The run's partitions as one day range per connection (a backfill is a rectangle)."""
    days: dict[str, list[date]] = defaultdict(list)
    for _, (connection_id, day) in partition_days(partition_keys):
        days[connection_id].append(day)
    return {
        connection_id: DayRange(min(dates), max(dates)) for connection_id, dates in days.items()
    }


def range_tags(
    connection_id: str, day_range: DayRange, through: str | None = None
) -> dict[str, str]:
    """Run tags that target one connection over a range of days, as one run; with
    `through`, every connection from `connection_id` to `through` in the partitions'
    order (a rectangle: those connections × those days)."""
    return {
        "dagster/asset_partition_range_start": partition_key(connection_id, str(day_range.first)),
        "dagster/asset_partition_range_end": partition_key(
            through or connection_id, str(day_range.last)
        ),
    }


def fleet_batches(ordered: list[str], due: set[str], size: int) -> list[list[str]]:
    """The `due` connections in runs of at most `size`, each run's connections adjacent
    in `ordered` (the connection dimension's own order), so each batch is one range."""
    batches: list[list[str]] = []
    current: list[str] = []
    for connection_id in ordered:
        if connection_id in due:
            current.append(connection_id)
            if len(current) < size:
                continue
        if current:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def connection_id_of(tags: dict[str, str]) -> str | None:
    """The id of the (first) connection a run targets, read from its partition tags."""
    if f"dagster/partition/{CONNECTION_DIMENSION}" in tags:
        return tags[f"dagster/partition/{CONNECTION_DIMENSION}"]
    key = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    if not key:
        return None
    return usage_partitions.get_partition_key_from_str(key).keys_by_dimension[CONNECTION_DIMENSION]
