"""Each (connection, day) partition's own figures, read back from what a run stored
(its cost: `costs.cost_by_partition`).

Dagster charts a partitioned asset's numeric metadata per partition, so each partition's
materialization carries that day's rows, tokens and cost — never the run's totals, which
a backfill of a year would otherwise draw on every day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import duckdb

from ..days import DayRange
from .quality import window_filter

USAGE_SUMS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "invocations",
)


def by_day(
    db: duckdb.DuckDBPyConnection, select: str, table: str, windows: dict[str, DayRange]
) -> dict[tuple[str, date], tuple]:
    where, params = window_filter(windows)
    rows = db.execute(
        f"SELECT connection_id, usage_date, {select} FROM {table} WHERE {where} GROUP BY ALL",
        params,
    ).fetchall()
    return {(row[0], row[1]): row[2:] for row in rows}


def window_days(windows: dict[str, DayRange]) -> Iterator[tuple[str, date]]:
    for connection_id, day_range in windows.items():
        for day in day_range:
            yield connection_id, day


def usage_by_partition(
    db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]
) -> dict[tuple[str, date], dict[str, int]]:
    """Rows and sums of `bedrock_usage_daily` per connection and day of `windows`; a
    day without usage has zeros."""
    sums = ", ".join(f"sum({column})::BIGINT" for column in USAGE_SUMS)
    found = by_day(db, f"count(*), {sums}", "bedrock_usage_daily", windows)
    names = ("rows", *USAGE_SUMS)
    none = (0,) * len(names)
    return {
        key: dict(zip(names, found.get(key, none), strict=True)) for key in window_days(windows)
    }


def datapoints_by_partition(
    db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]
) -> dict[tuple[str, date], int]:
    """Stored CloudWatch data points per connection and day of `windows`."""
    found = by_day(db, "count(*)", "cloudwatch_daily_datapoints", windows)
    return {key: found[key][0] if key in found else 0 for key in window_days(windows)}
