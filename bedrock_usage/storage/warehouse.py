"""Writing and reading the DuckDB warehouse.

A DuckDB file has one read-write process at a time, and even a read-only reader in
another process blocks writers. So the file is opened only for the length of a write,
a busy file is retried with backoff for a bounded time, and each sync replaces its
(connection, region, day range) windows in a single transaction: a re-run never
duplicates, late data updates values, and a failure keeps the old rows. The usage
table is always recomputed from the stored data points, so it can be rebuilt without
calling AWS again.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ..days import DayRange
from ..extraction.metrics import MANTLE_METRIC_NAMES, KnownSeries
from ..settings import lock_timeout_seconds, snapshot_path
from ..shaping.daily import (
    NO_PROJECT,
    PROJECT_COLUMNS,
    TOTAL,
    USAGE_COLUMNS,
    project_ids,
    shape_daily_usage,
    shape_project_usage,
)
from .costs import PRICES_TABLE, create_cost_views
from .frames import insert_frame
from .schema import MIGRATIONS, ensure_schema

RAW_COLUMNS = [
    "usage_date",
    "connection_id",
    "account_id",
    "region",
    "model_id",
    "project_id",
    "metric_name",
    "statistic",
    "value",
    "fetched_at",
]


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file for longer than we wait."""


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


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: on any error the file keeps exactly what it had."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def replace_datapoints(
    connection: duckdb.DuckDBPyConnection,
    connection_id: str,
    account_id: str,
    region: str,
    day_range: DayRange,
    datapoints: pd.DataFrame,
    fetched_at: datetime,
) -> int:
    """Replace one region's stored CloudWatch answers for `day_range` (the dimensionless
    series is stored with model_id '(region total)'). Run inside `transaction`."""
    connection.execute(
        "DELETE FROM cloudwatch_daily_datapoints WHERE connection_id = ? AND region = ? "
        "AND usage_date BETWEEN ? AND ?",
        [connection_id, region, day_range.first, day_range.last],
    )
    rows = datapoints.assign(
        model_id=datapoints.model_id.fillna(TOTAL),
        project_id=project_ids(datapoints),
        connection_id=connection_id,
        account_id=account_id,
        region=region,
        fetched_at=fetched_at,
    ).reindex(columns=RAW_COLUMNS)
    insert_frame(connection, "cloudwatch_daily_datapoints", RAW_COLUMNS, rows)
    return len(rows)


def rebuild_usage(
    connection: duckdb.DuckDBPyConnection, connection_id: str, day_range: DayRange
) -> pd.DataFrame:
    """Recompute a connection's usage rows for `day_range` from the stored data points
    (no AWS call) and replace them. Run inside `transaction`. A row's synced_at is when
    its region's data points were fetched, so a region that failed keeps its old time.
    Returns the rows written. Regions are shaped one at a time: a year of one region's
    data points is held in memory, never the whole connection's."""
    window = "connection_id = ? AND usage_date BETWEEN ? AND ?"
    params = [connection_id, day_range.first, day_range.last]
    regions = connection.execute(
        f"SELECT DISTINCT region FROM cloudwatch_daily_datapoints WHERE {window} ORDER BY 1",
        params,
    ).fetchall()
    usage_parts, project_parts = [], []
    for (region,) in regions:
        stored = connection.execute(
            "SELECT usage_date, account_id, model_id, project_id, metric_name, statistic, "
            "value, max(fetched_at) OVER () AS fetched_at FROM cloudwatch_daily_datapoints "
            f"WHERE {window} AND region = ?",
            [*params, region],
        ).df()
        stored["usage_date"] = pd.to_datetime(stored["usage_date"]).dt.date
        stored["model_id"] = stored["model_id"].where(stored["model_id"] != TOTAL, None)
        for (account_id, fetched_at), points in stored.groupby(["account_id", "fetched_at"]):
            key = (connection_id, account_id, region, fetched_at)
            usage_parts.append(shape_daily_usage(points, *key))
            project_parts.append(shape_project_usage(points, *key))
        del stored
    usage = _concat(usage_parts, USAGE_COLUMNS)
    by_project = _concat(project_parts, PROJECT_COLUMNS)
    for table, frame, columns in (
        ("bedrock_usage_daily", usage, USAGE_COLUMNS),
        ("bedrock_usage_daily_by_project", by_project, PROJECT_COLUMNS),
    ):
        connection.execute(
            f"DELETE FROM {table} WHERE connection_id = ? AND usage_date BETWEEN ? AND ?",
            [connection_id, day_range.first, day_range.last],
        )
        insert_frame(connection, table, columns, frame.reindex(columns=columns))
    return usage


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def usage_row_count(connection: duckdb.DuckDBPyConnection) -> int:
    return connection.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]


def known_series(
    connection: duckdb.DuckDBPyConnection, connection_id: str
) -> dict[str, KnownSeries]:
    """Every model id (and mantle project-model pair) ever stored for this connection,
    by region and endpoint."""
    rows = connection.execute(
        "SELECT DISTINCT region, model_id, project_id, metric_name IN "
        "(SELECT unnest(?::VARCHAR[])) AS mantle "
        "FROM cloudwatch_daily_datapoints WHERE connection_id = ? AND model_id <> ?",
        [sorted(MANTLE_METRIC_NAMES), connection_id, TOTAL],
    ).fetchall()
    known: dict[str, KnownSeries] = {}
    for region, model_id, project_id, mantle in rows:
        series = known.setdefault(region, KnownSeries())
        if project_id != NO_PROJECT:
            series.projects.add((project_id, model_id))
        elif mantle:
            series.mantle.add(model_id)
        else:
            series.runtime.add(model_id)
    return known


ANALYST_TABLES = ("bedrock_usage_daily", "bedrock_usage_daily_by_project")


def publish_snapshot(
    connection: duckdb.DuckDBPyConnection,
    warehouse: Path | str,
    changed: dict[str, DayRange | None] | None = None,
) -> Path:
    """Refresh the analysts' copy of the usage tables, the prices and the cost views, as
    committed, and swap it in
    atomically. A reader holding the old copy keeps reading it and never blocks the
    pipeline, which a reader of the warehouse itself would.

    `changed` names what a sync rewrote: {connection_id: day range, or None for all of
    that connection}. Then the previous copy's bytes are copied (the file system's
    speed, no DuckDB work) and only those windows are replaced in it, so a daily sync
    costs the same however much history is stored. Without it, or without a previous
    copy of this schema, the copy is built whole."""
    target = snapshot_path(warehouse)
    staging = target.with_name(f"{target.name}.tmp")
    for leftover in (staging, staging.with_name(f"{staging.name}.wal")):
        leftover.unlink(missing_ok=True)
    incremental = changed is not None and _snapshot_is_current(target)
    if incremental:
        shutil.copyfile(target, staging)
    quoted = str(staging).replace("'", "''")
    connection.execute(f"ATTACH '{quoted}' AS analysts_snapshot")
    try:
        connection.execute("BEGIN TRANSACTION")
        if incremental:
            _replace_windows(connection, changed)
        else:
            # The usage tables only: the raw data points are larger and for audit.
            for table in ANALYST_TABLES:
                connection.execute(
                    f"CREATE TABLE analysts_snapshot.{table} AS SELECT * FROM {table} "
                    "ORDER BY usage_date, connection_id, region"
                )
            connection.execute(
                f"CREATE TABLE analysts_snapshot.{SNAPSHOT_VERSION_TABLE} AS "
                "SELECT max(version) AS version FROM schema_version"
            )
            connection.execute(
                f"CREATE TABLE analysts_snapshot.{PRICES_TABLE} AS "
                f"SELECT * FROM {PRICES_TABLE} WHERE false"
            )
        # The price table is small: copied whole, so a refresh of prices shows too.
        connection.execute(f"DELETE FROM analysts_snapshot.{PRICES_TABLE}")
        connection.execute(
            f"INSERT INTO analysts_snapshot.{PRICES_TABLE} SELECT * FROM {PRICES_TABLE} "
            "ORDER BY model_id, region, token_type, effective_from"
        )
        create_cost_views(connection, "analysts_snapshot")
        connection.execute("COMMIT")
    finally:
        connection.execute("DETACH analysts_snapshot")
    os.replace(staging, target)
    return target


SNAPSHOT_VERSION_TABLE = "snapshot_schema_version"


def _snapshot_is_current(path: Path) -> bool:
    """The previous copy exists, opens, and was written by this schema version."""
    if not path.exists():
        return False
    try:
        with duckdb.connect(str(path), read_only=True) as snapshot:
            version = snapshot.execute(f"SELECT version FROM {SNAPSHOT_VERSION_TABLE}").fetchone()[
                0
            ]
    except duckdb.Error:
        return False  # locked by nobody but damaged or older: rebuilt whole
    return version == MIGRATIONS[-1][0]


def _replace_windows(
    connection: duckdb.DuckDBPyConnection, changed: dict[str, DayRange | None]
) -> None:
    for table in ANALYST_TABLES:
        for connection_id, day_range in changed.items():
            window = "connection_id = ?"
            params: list[object] = [connection_id]
            if day_range is not None:
                window += " AND usage_date BETWEEN ? AND ?"
                params += [day_range.first, day_range.last]
            connection.execute(f"DELETE FROM analysts_snapshot.{table} WHERE {window}", params)
            connection.execute(
                f"INSERT INTO analysts_snapshot.{table} SELECT * FROM {table} WHERE {window}",
                params,
            )


def stored_connection_rows(path: Path | str, connection_id: str) -> int:
    """Raw and usage rows stored for a connection (0 when there is no warehouse)."""
    if not Path(path).exists():
        return 0
    with open_warehouse(path) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM bedrock_usage_daily WHERE connection_id = $id) + "
            "(SELECT count(*) FROM cloudwatch_daily_datapoints WHERE connection_id = $id)",
            {"id": connection_id},
        ).fetchone()[0]


def purge_connection(
    path: Path | str, connection_id: str, before_delete: Callable[[], None] | None = None
) -> int:
    """Delete every stored row of a connection; returns the usage rows deleted.
    `before_delete` runs once the warehouse is held (a busy file raises before it)."""
    if not Path(path).exists():
        if before_delete:
            before_delete()
        return 0
    with open_warehouse(path) as connection:
        if before_delete:
            before_delete()
        with transaction(connection):
            deleted = connection.execute(
                "SELECT count(*) FROM bedrock_usage_daily WHERE connection_id = ?",
                [connection_id],
            ).fetchone()[0]
            for table in (
                "bedrock_usage_daily",
                "bedrock_usage_daily_by_project",
                "cloudwatch_daily_datapoints",
            ):
                connection.execute(f"DELETE FROM {table} WHERE connection_id = ?", [connection_id])
        publish_snapshot(connection, path, {connection_id: None})
    return deleted


def usage_rows(path: Path | str, connection_id: str | None = None, since=None) -> pd.DataFrame:
    """Usage rows and token sums per connection, account, region and model, read from the
    analysts' snapshot when there is one (so asking never blocks a sync), else from the
    warehouse read-only, waiting at most a few seconds for a busy file."""
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
    if snapshot_path(path).exists():
        path = snapshot_path(path)
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
