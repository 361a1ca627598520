"""One sync: read a connection's regions from CloudWatch, shape, and write DuckDB.

The CLI and the Dagster assets both call `sync_usage`, so a day and a year-long
backfill go through the same code. Each region is read on its own: one region's
failure is reported and leaves that region's stored rows untouched, while the others
are written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pandas as pd

from .days import DayRange
from .extraction.errors import RegionFailure
from .extraction.fetch import RegionFetch, fetch_region
from .shaping.daily import TOTAL, shape_daily_usage
from .storage.warehouse import UsageWindow, known_model_ids, replace_usage_windows


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
    rows_written: int

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


def sync_usage(
    target: SyncTarget,
    day_range: DayRange,
    warehouse_path: Path | str,
    on_region_done: Callable[[RegionFetch], None] | None = None,
) -> SyncResult:
    synced_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    known = known_model_ids(warehouse_path, target.connection_id)
    fetches, windows = [], []
    for region in target.regions:
        fetch = fetch_region(target.session, region, day_range, known.get(region, ()))
        fetches.append(fetch)
        if fetch.ok:
            windows.append(_window(target, fetch, synced_at))
        if on_region_done:
            on_region_done(fetch)
    rows = replace_usage_windows(warehouse_path, windows)
    usage = pd.concat([w.usage for w in windows], ignore_index=True) if windows else pd.DataFrame()
    return SyncResult(
        target.connection_id, target.account_id, day_range, synced_at, fetches, usage, rows
    )


def _window(target: SyncTarget, fetch: RegionFetch, synced_at: datetime) -> UsageWindow:
    usage = shape_daily_usage(
        fetch.datapoints, target.connection_id, target.account_id, fetch.region, synced_at
    )
    datapoints = fetch.datapoints.assign(
        model_id=fetch.datapoints.model_id.fillna(TOTAL),
        connection_id=target.connection_id,
        account_id=target.account_id,
        region=fetch.region,
        fetched_at=synced_at,
    )
    return UsageWindow(target.connection_id, fetch.region, fetch.day_range, usage, datapoints)
