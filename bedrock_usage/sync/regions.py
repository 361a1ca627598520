"""One sync's two halves: read a connection's regions from CloudWatch and store the
answers (`fetch_regions` + `store_fetches`), then rebuild the daily usage rows from
them (`rebuild_usage`). The Dagster assets call them — and the CLI, the schedule, the
sensor, the demo and the benchmark all run those assets — so a day and a year-long
backfill go through the same code. Each region is read on its own: one region's
failure is reported and leaves that region's stored rows untouched, while the others
are written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import duckdb

from ..days import DayRange
from ..extraction.fetch import ProgressListener, RegionFetch, fetch_region
from ..settings import DEFAULT_REGION_CONCURRENCY
from ..storage.warehouse import (
    WarehouseOpener,
    known_series,
    replace_datapoints,
)


@dataclass(frozen=True)
class SyncTarget:
    """What to read: one AWS account through one session, in these regions."""

    connection_id: str
    account_id: str
    regions: tuple[str, ...]
    session: boto3.Session = field(repr=False)


@dataclass(frozen=True)
class SyncOptions:
    """How a sync reads: regions at a time, and model ids always read (the resource
    `sync_settings` fills these from the settings)."""

    region_concurrency: int = DEFAULT_REGION_CONCURRENCY
    extra_model_ids: tuple[str, ...] = ()


DEFAULT_OPTIONS = SyncOptions()


def now_utc() -> datetime:
    """Naive UTC, as DuckDB TIMESTAMP columns store it."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def fetch_regions(
    target: SyncTarget,
    day_range: DayRange,
    open_db: WarehouseOpener,
    on_region_done: Callable[[RegionFetch], None] | None = None,
    on_progress: ProgressListener | None = None,
    options: SyncOptions = DEFAULT_OPTIONS,
) -> list[RegionFetch]:
    """Read every region of `target`, including the models stored for it before (they
    may be idle for longer than ListMetrics can see). Regions are read at the same time,
    up to `options.region_concurrency`, each with its own client; the results come
    back in the connection's region order. An interrupt stops every region at its next
    call."""
    with open_db() as db:
        known = known_series(db, target.connection_id)
    stop = threading.Event()
    workers = max(1, min(options.region_concurrency, len(target.regions)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="region")
    try:
        futures = {
            pool.submit(
                fetch_region,
                target.session,
                region,
                day_range,
                known.get(region),
                on_progress,
                stop,
                options.extra_model_ids,
            ): region
            for region in target.regions
        }
        done: dict[str, RegionFetch] = {}
        for future in as_completed(futures):
            fetch = future.result()
            done[fetch.region] = fetch
            if on_region_done:
                on_region_done(fetch)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[region] for region in target.regions]


def store_fetches(
    db: duckdb.DuckDBPyConnection,
    connection_id: str,
    account_id: str,
    fetches: list[RegionFetch],
    fetched_at: datetime,
) -> None:
    """Replace the stored data points of every region that answered."""
    for fetch in fetches:
        if fetch.ok:
            replace_datapoints(
                db,
                connection_id,
                account_id,
                fetch.region,
                fetch.day_range,
                fetch.datapoints,
                fetched_at,
            )
