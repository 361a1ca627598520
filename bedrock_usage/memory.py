"""Every memory workaround in one place, each with the measurement that justifies it:
giving freed memory back to the operating system (`release_freed_memory`,
`release_garbage`), DuckDB's allocator returning a query's memory at its end
(`DUCKDB_WRITER_CONFIG`), and DuckDB's cache shed between connections (`shed_cache`).

A year of a region arrives as pages of up to 100,800 data points, which botocore parses
into Python objects (≈15 MB a page) before we keep them as arrays. glibc keeps the
freed pages of each thread's arena mapped, so four regions read at the same time would
leave their pages' peak resident for the rest of the run; trimming after each page keeps
the run's memory at what it holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_freed_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def release_garbage() -> None:
    """Collect reference cycles, then give the freed memory back. A region's boto3 client
    and session form cycles that hold botocore's parsed service data (≈8 MB); left to
    Python's rare full collection they stay resident through the store and the rebuild.
    A full collection walks every object the process holds; see `freeze_heap`."""
    gc.collect()
    release_freed_memory()


@cache
def freeze_heap() -> None:
    """Move every object the process holds now (modules, Dagster's run context, pandas')
    out of the garbage collector's sight, once per process: a full collection walked
    them all, 0.12-0.18 s each (ours once per connection, and Python's own during the
    run). They are still freed when no longer referenced, only never by the cycle
    collector. Called as a connection's sync begins; measured on ten one-connection
    runs, alternating: 43.7 CPU-s without, 36.0 with a freeze after the first
    collection, 31.8-35.7 with it at the start (benchmarks/RESULTS.md)."""
    gc.freeze()


# DuckDB's allocator keeps what a query freed for the next one unless a bulk free passes
# this threshold (default 512 MiB): at 1MB the memory of each region's shaping query goes
# back at its end. Measured on a connection-year's rebuild: 184 -> 141 MB resident before
# the commit. Every writer's DuckDB opens with it (`storage.warehouse.WriterLimits`).
DUCKDB_WRITER_CONFIG = {"allocator_bulk_deallocation_flush_threshold": "1MB"}


def shed_cache(db: duckdb.DuckDBPyConnection) -> None:
    """Make a file's DuckDB give back the blocks it keeps cached after a window's work.
    DuckDB keeps what it read and wrote cached up to its memory_limit, so a run over many
    connections would fill it; lowering the limit to almost nothing evicts every block not
    in use (the rest stay, and the lowering is refused), then the limit is set back.
    Measured: a connection-year's rebuild leaves 61 MB resident, 7 MB after this. Not for
    an in-memory DuckDB (a lake's): its own tables would be written to a temp directory."""
    import duckdb

    # The instance's own database, not the current one: a lake's connection uses the lake.
    in_memory = db.execute(
        "SELECT bool_or(path IS NULL) FROM duckdb_databases() WHERE NOT internal"
    ).fetchone()[0]
    if in_memory:
        return
    limit = db.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    try:
        db.execute("SET memory_limit = '1MB'")
    except duckdb.OutOfMemoryException:
        pass  # blocks in use cannot go; every other block was evicted
    db.execute("SET memory_limit = '" + limit.replace("'", "''") + "'")
    release_freed_memory()
