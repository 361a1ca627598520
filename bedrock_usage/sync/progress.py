"""What a caller in the same process is told while a sync runs: each region as it
finishes, and each CloudWatch call (the CLI's progress lines, the demo's story).

The sync runs as a Dagster run of the code location's job, which Dagster rebuilds from
its definitions: a callable cannot travel in run config or a resource's fields. So a
caller opens `watching(SyncProgress(...))` around the run, and the asset reads
`watched()` once and hands it on as arguments (`fetch_and_store(..., progress)`).
Outside any `watching` — the daemon's runs, the UI's — nothing is told."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..extraction.fetch import FetchProgress, ProgressListener, RegionFetch


@dataclass(frozen=True)
class SyncProgress:
    on_region_done: Callable[[RegionFetch], None] | None = None
    on_progress: ProgressListener | None = None


SILENT = SyncProgress()
_watchers: list[SyncProgress] = []


@contextmanager
def watching(progress: SyncProgress) -> Iterator[None]:
    """Tell `progress` about every sync this process runs inside the block."""
    _watchers.append(progress)
    try:
        yield
    finally:
        _watchers.remove(progress)


def watched() -> SyncProgress:
    """Everyone watching now, as one SyncProgress (SILENT when nobody is)."""
    watchers = list(_watchers)
    if not watchers:
        return SILENT

    def region_done(fetch: RegionFetch) -> None:
        for watcher in watchers:
            if watcher.on_region_done:
                watcher.on_region_done(fetch)

    def progress(step: FetchProgress) -> None:
        for watcher in watchers:
            if watcher.on_progress:
                watcher.on_progress(step)

    return SyncProgress(region_done, progress)
