"""Writing and reading the DuckDB warehouse.

A DuckDB file has one read-write process at a time, and even a read-only reader in
another process blocks writers. So the file is opened only for the length of a write,
a busy file is retried with backoff for a bounded time, and each sync replaces its
(connection, region, day range) windows in a single transaction: a re-run never
duplicates, late data updates values, and a failure keeps the old rows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ..days import DayRange
from ..shaping.daily import TOTAL, USAGE_COLUMNS
from .schema import ensure_schema

RAW_COLUMNS = [
    "usage_date",
    "connection_id",
    "account_id",
    "region",
    "model_id",
    "metric_name",
    "statistic",
    "value",
    "fetched_at",
]
DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file for longer than we wait."""


@dataclass(frozen=True)
class UsageWindow:
    """The rows of one (connection, region, day range), ready to replace what is stored."""

    connection_id: str
    region: str
    day_range: DayRange
    usage: pd.DataFrame
    datapoints: pd.DataFrame


def lock_timeout_seconds() -> float:
    return float(os.environ.get("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", DEFAULT_LOCK_TIMEOUT_SECONDS))


@contextmanager
def open_warehouse(
    path: Path | str, read_only: bool = False, timeout: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse file, held only inside the `with` block."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: run a sync first (bedrock-usage sync NAME or the Dagster "
            "assets), or point BEDROCK_USAGE_WAREHOUSE at the right file."
        )
    deadline = time.monotonic() + (lock_timeout_seconds() if timeout is None else timeout)
    delay = 0.05
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() + delay > deadline:
                holder = re.search(r"PID (\d+)", str(error))
                raise WarehouseBusyError(
                    f"The warehouse {path} is held by another process"
                    f"{f' (pid {holder[1]})' if holder else ''} and stayed busy. DuckDB allows "
                    "one writer and blocks it while any other process has the file open, even "
                    "read-only: close that session (a DuckDB shell or notebook), then run "
                    "again. Analysts can query a copy of the file instead."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        if not read_only:
            ensure_schema(connection)
        yield connection
    finally:
        connection.close()


def replace_usage_windows(path: Path | str, windows: list[UsageWindow]) -> int:
    """Replace every window's stored rows with its new rows, all in one transaction.
    Returns the number of usage rows written."""
    if not windows:
        return 0
    written = 0
    with open_warehouse(path) as connection:
        connection.execute("BEGIN TRANSACTION")
        try:
            for index, window in enumerate(windows):
                written += _replace_window(connection, window, index)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return written


def _replace_window(connection: duckdb.DuckDBPyConnection, window: UsageWindow, index: int) -> int:
    bounds = [window.connection_id, window.region, window.day_range.first, window.day_range.last]
    for table in ("bedrock_usage_daily", "cloudwatch_daily_datapoints"):
        connection.execute(
            f"DELETE FROM {table} WHERE connection_id = ? AND region = ? "
            "AND usage_date BETWEEN ? AND ?",
            bounds,
        )
    usage = window.usage.reindex(columns=USAGE_COLUMNS)
    datapoints = window.datapoints.reindex(columns=RAW_COLUMNS)
    # Registered frames live until the connection closes; unregistering inside an
    # aborted transaction would raise and hide the real error.
    usage_view, datapoints_view = f"usage_rows_{index}", f"datapoint_rows_{index}"
    connection.register(usage_view, usage)
    connection.register(datapoints_view, datapoints)
    connection.execute(
        f"INSERT INTO bedrock_usage_daily ({', '.join(USAGE_COLUMNS)}) "
        f"SELECT {', '.join(USAGE_COLUMNS)} FROM {usage_view}"
    )
    connection.execute(
        f"INSERT INTO cloudwatch_daily_datapoints ({', '.join(RAW_COLUMNS)}) "
        f"SELECT {', '.join(RAW_COLUMNS)} FROM {datapoints_view}"
    )
    return len(usage)


def known_model_ids(path: Path | str, connection_id: str) -> dict[str, set[str]]:
    """Every model id ever stored for this connection, by region."""
    if not Path(path).exists():
        return {}
    with open_warehouse(path) as connection:
        rows = connection.execute(
            "SELECT DISTINCT region, model_id FROM cloudwatch_daily_datapoints "
            "WHERE connection_id = ? AND model_id <> ?",
            [connection_id, TOTAL],
        ).fetchall()
    known: dict[str, set[str]] = {}
    for region, model_id in rows:
        known.setdefault(region, set()).add(model_id)
    return known


def purge_connection(path: Path | str, connection_id: str) -> int:
    """Delete every stored row of a connection; returns the usage rows deleted."""
    if not Path(path).exists():
        return 0
    with open_warehouse(path) as connection:
        connection.execute("BEGIN TRANSACTION")
        deleted = connection.execute(
            "SELECT count(*) FROM bedrock_usage_daily WHERE connection_id = ?", [connection_id]
        ).fetchone()[0]
        for table in ("bedrock_usage_daily", "cloudwatch_daily_datapoints"):
            connection.execute(f"DELETE FROM {table} WHERE connection_id = ?", [connection_id])
        connection.execute("COMMIT")
    return deleted


def usage_rows(path: Path | str, connection_id: str | None = None, since=None) -> pd.DataFrame:
    """Usage rows and token sums per connection, account, region and model (read-only,
    waiting at most a few seconds for a busy file)."""
    columns = [
        "connection_id",
        "account_id",
        "region",
        "model_id",
        "rows",
        "first_day",
        "last_day",
        "input_tokens",
        "output_tokens",
        "invocations",
    ]
    if not Path(path).exists():
        return pd.DataFrame(columns=columns)
    query = (
        "SELECT connection_id, account_id, region, model_id, count(*) AS rows, "
        "min(usage_date) AS first_day, max(usage_date) AS last_day, "
        "sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens, "
        "sum(invocations)::BIGINT AS invocations FROM bedrock_usage_daily WHERE 1 = 1"
    )
    params: list[object] = []
    if connection_id is not None:
        query += " AND connection_id = ?"
        params.append(connection_id)
    if since is not None:
        query += " AND usage_date >= ?"
        params.append(since)
    query += " GROUP BY ALL ORDER BY connection_id, region, input_tokens DESC"
    with open_warehouse(path, read_only=True, timeout=10) as connection:
        return connection.execute(query, params).df()
