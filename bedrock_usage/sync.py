"""One sync: read a connection's regions from CloudWatch, store the answers, and
rebuild the daily usage rows from them.

`sync_usage` does a whole sync in one call (a notebook, the benchmark); the Dagster
assets, which the CLI and the schedule run, call its halves (`fetch_regions` +
`store_fetches` for the raw data points, `rebuild_usage` for the daily table), so a
day and a year-long backfill go through the same code. Each region is read on its own:
one region's failure is reported and leaves that region's stored rows untouched,
while the others are written.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import duckdb
import pandas as pd

from .days import DayRange
from .extraction.errors import RegionFailure
from .extraction.fetch import RegionFetch, fetch_region
from .storage.warehouse import (
    known_model_ids,
    open_warehouse,
    publish_snapshot,
    rebuild_usage,
    replace_datapoints,
    transaction,
)


@dataclass(frozen=True)
class SyncTarget:
    """What to read: one AWS account through one session, in these regions."""

    connection_id: str
    account_id: str
    regions: tuple[str, ...]
    session: boto3.Session = field(repr=False)


@dataclass
class SyncResult:
    connection_id: str
    account_id: str
    day_range: DayRange
    synced_at: datetime
    fetches: list[RegionFetch]
    usage: pd.DataFrame

    @property
    def rows_written(self) -> int:
        return len(self.usage)

    @property
    def failures(self) -> list[RegionFailure]:
        return [f.failure for f in self.fetches if f.failure is not None]

    @property
    def succeeded_regions(self) -> list[str]:
        return [f.region for f in self.fetches if f.ok]

    @property
    def get_metric_data_calls(self) -> int:
        return sum(f.get_metric_data_calls for f in self.fetches)

    @property
    def metrics_requested(self) -> int:
        return sum(f.metrics_requested for f in self.fetches)


def now_utc() -> datetime:
    """Naive UTC, as DuckDB TIMESTAMP columns store it."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


WarehouseOpener = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def fetch_regions(
    target: SyncTarget,
    day_range: DayRange,
    open_connection: WarehouseOpener,
    on_region_done: Callable[[RegionFetch], None] | None = None,
) -> list[RegionFetch]:
    """Read every region of `target`, including the models stored for it before (they
    may be idle for longer than ListMetrics can see)."""
    with open_connection() as connection:
        known = known_model_ids(connection, target.connection_id)
    fetches = []
    for region in target.regions:
        fetch = fetch_region(target.session, region, day_range, known.get(region, ()))
        fetches.append(fetch)
        if on_region_done:
            on_region_done(fetch)
    return fetches


def store_fetches(
    connection: duckdb.DuckDBPyConnection,
    connection_id: str,
    account_id: str,
    fetches: list[RegionFetch],
    fetched_at: datetime,
) -> None:
    """Replace the stored data points of every region that answered."""
    for fetch in fetches:
        if fetch.ok:
            replace_datapoints(
                connection,
                connection_id,
                account_id,
                fetch.region,
                fetch.day_range,
                fetch.datapoints,
                fetched_at,
            )


def sync_usage(
    target: SyncTarget,
    day_range: DayRange,
    warehouse_path: Path | str,
    on_region_done: Callable[[RegionFetch], None] | None = None,
) -> SyncResult:
    synced_at = now_utc()
    fetches = fetch_regions(
        target, day_range, lambda: open_warehouse(warehouse_path), on_region_done
    )
    usage = pd.DataFrame()
    if any(f.ok for f in fetches):
        with open_warehouse(warehouse_path) as connection:
            with transaction(connection):
                store_fetches(
                    connection, target.connection_id, target.account_id, fetches, synced_at
                )
                usage = rebuild_usage(connection, target.connection_id, day_range)
            publish_snapshot(connection, warehouse_path)
    return SyncResult(target.connection_id, target.account_id, day_range, synced_at, fetches, usage)
