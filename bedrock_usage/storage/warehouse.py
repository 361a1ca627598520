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

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from ..days import DayRange
from ..errors import UserError
from ..extraction.metrics import MANTLE_METRIC_NAMES, NO_PROJECT, TOTAL, KnownSeries
from ..frames import literal, one_at_a_time, registered
from ..memory import DUCKDB_WRITER_CONFIG
from ..settings import (
    DEFAULT_WAREHOUSE_MEMORY_LIMIT,
    SettingsError,
    lock_timeout_seconds,
    snapshot_path,
    warehouse_memory_limit,
    warehouse_path,
    warehouse_threads,
)
from ..shaping.daily import (
    POINT_COLUMNS,
    PROJECT_COLUMNS,
    USAGE_COLUMNS,
    model_descriptions,
    project_query,
    usage_query,
)
from .billed import BILLED_TABLE
from .costs import (
    COST_TABLE,
    PRICES_TABLE,
    create_cost_table,
    create_cost_views,
    has_cost_table,
    pricing_fingerprint,
    publish_costs,
)
from .lake import (
    Lake,
    WarehouseBusyError,
    advisory_lock,
    configured_lake,
    connection_turn,
    is_lake,
    open_lake,
    retrying,
)
from .owners import OWNER_RULES_TABLE, TAG_KEYS_TABLE
from .profiles import PROFILES_TABLE
from .quality import window_filter
from .schema import MIGRATIONS, ensure_schema

T = TypeVar("T")
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


@dataclass(frozen=True)
class WriterLimits:
    """DuckDB's memory_limit and threads for a connection that writes."""

    memory_limit: str | None = None  # None: the setting's value
    threads: int | str | None = None

    def config(self) -> dict[str, object]:
        return {
            "memory_limit": warehouse_memory_limit(self.memory_limit),
            "threads": warehouse_threads(self.threads),
            **DUCKDB_WRITER_CONFIG,
        }


def out_of_memory_message(error: duckdb.OutOfMemoryException) -> str:
    """What to do when a writer's DuckDB needed more than its memory_limit."""
    reason = str(error).strip().splitlines()[0]
    return (
        f"DuckDB needed more memory than this run allows ({reason}); what it was writing "
        "was rolled back, so the warehouse keeps its earlier rows. Raise "
        "BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT (or the warehouse resource's memory_limit), "
        f"e.g. to 512MB (the default is {DEFAULT_WAREHOUSE_MEMORY_LIMIT}), or sync fewer "
        "days per run, and run again."
    )


# Where the warehouse is: a DuckDB file, or a DuckLake.
Target = Path | Lake


def warehouse_target() -> Target:
    """The DuckLake when BEDROCK_USAGE_LAKE_CATALOG is set, else the DuckDB file."""
    return configured_lake() or warehouse_path()


@contextmanager
def open_warehouse(
    path: Path | str | Lake,
    read_only: bool = False,
    timeout: float | None = None,
    limits: WriterLimits = WriterLimits(),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB handle on the warehouse, held only inside the `with` block. A writer's
    DuckDB is bounded by `limits`; a reader's keeps DuckDB's defaults."""
    if isinstance(path, Lake):
        db = open_lake(path, True, {}) if read_only else open_lake_writer(path, limits)
        try:
            yield db
        finally:
            db.close()
        return
    path = Path(path)
    created = not read_only and not path.exists()
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    elif not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: run a sync first (bedrock-usage sync NAME or the Dagster "
            "assets), or point BEDROCK_USAGE_WAREHOUSE at the right file."
        )
    config = {} if read_only else limits.config()
    deadline = time.monotonic() + (lock_timeout_seconds() if timeout is None else timeout)
    delay = 0.05
    while True:
        try:
            db = duckdb.connect(str(path), read_only=read_only, config=config)
            if created:
                os.chmod(path, 0o600)  # usage is the account owner's business alone
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
            if not created:
                _refuse_foreign(db, path)
            ensure_schema(db)
        yield db
    finally:
        db.close()


def open_lake_writer(
    lake: Lake, limits: WriterLimits = WriterLimits()
) -> duckdb.DuckDBPyConnection:
    """A writer's DuckDB on `lake`, its schema created or migrated; the caller closes it.
    Writers that first use a new lake would race to create its catalog and tables
    ("Could not attach", "already exists"): they set it up one at a time."""
    with advisory_lock(lake, "bedrock_usage.lake-setup", timeout=120):
        db = open_lake(lake, False, limits.config())
        try:
            retrying(lambda: ensure_schema(db))
        except BaseException:
            db.close()
            raise
    return db


def _refuse_foreign(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write only to a warehouse this pipeline made (it keeps `schema_version`) or to an
    empty DuckDB file: never add tables to another database, or to an analysts' copy."""
    tables = sorted(
        name
        for (name,) in db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    )
    if tables and "schema_version" not in tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise SettingsError(
            "BEDROCK_USAGE_WAREHOUSE",
            str(path),
            f"that DuckDB file holds tables this pipeline did not create ({shown}) and is "
            "not one of its warehouses, so nothing is written to it; name a new file, or "
            "move that one away",
        )


@contextmanager
def transaction(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: on any error the file keeps exactly what it had."""
    db.execute("BEGIN TRANSACTION")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        try:
            db.execute("ROLLBACK")
        except duckdb.TransactionException:
            pass  # a refused COMMIT has already ended the transaction
        raise


def atomically(
    db: duckdb.DuckDBPyConnection,
    work: Callable[[], T],
    connection_id: str | None = None,
) -> T:
    """Run `work` in one transaction; when a DuckLake refuses the commit because another
    writer changed the same table first, run it again whole (`lake.retrying`). Writes of
    one connection's windows name it: on a lake, its writers then take turns."""

    def attempt() -> T:
        with transaction(db):
            return work()

    lake = configured_lake() if connection_id is not None and is_lake(db) else None
    if lake is None:
        return retrying(attempt)  # a file: DuckDB lets one process write at a time
    with connection_turn(lake, connection_id, lock_timeout_seconds()):
        return retrying(attempt)


def replace_datapoints(
    db: duckdb.DuckDBPyConnection,
    connection_id: str,
    account_id: str,
    region: str,
    day_range: DayRange,
    datapoints: pd.DataFrame,
    fetched_at: datetime,
) -> int:
    """Replace one region's stored CloudWatch answers for `day_range` (the dimensionless
    series is stored with model_id '(region total)'). Run inside `transaction`."""
    db.execute(
        "DELETE FROM cloudwatch_daily_datapoints WHERE connection_id = ? AND region = ? "
        "AND usage_date BETWEEN ? AND ?",
        [connection_id, region, day_range.first, day_range.last],
    )
    missing = {c: None for c in ("model_id", "project_id") if c not in datapoints}
    name = registered(db, datapoints.assign(**missing) if missing else datapoints)
    db.execute(
        f"INSERT INTO cloudwatch_daily_datapoints ({', '.join(RAW_COLUMNS)}) "
        "SELECT usage_date, $connection, $account, $region, coalesce(model_id, $total), "
        "coalesce(project_id, $no_project), metric_name, statistic, value, $fetched_at "
        f"FROM {name}",
        {
            "connection": connection_id,
            "account": account_id,
            "region": region,
            "total": TOTAL,
            "no_project": NO_PROJECT,
            "fetched_at": fetched_at,
        },
    )
    return len(datapoints)


@dataclass(frozen=True)
class UsageWritten:
    """What a rebuild wrote: usage rows by region and model, and their tokens."""

    rows_by_region: dict[str, int]
    models: frozenset[str]
    input_tokens: int
    output_tokens: int

    @property
    def rows(self) -> int:
        return sum(self.rows_by_region.values())


def rebuild_usage(
    db: duckdb.DuckDBPyConnection, connection_id: str, day_range: DayRange
) -> UsageWritten:
    """Recompute a connection's usage rows for `day_range` from the stored data points
    (no AWS call) and replace them. Run inside `transaction`. A row's synced_at is when
    its region's data points were fetched, so a region that failed keeps its old time.
    The shaping runs inside DuckDB, a region at a time: no data point becomes a Python
    object."""
    window = "connection_id = $connection AND usage_date BETWEEN $first AND $last"
    params = {"connection": connection_id, "first": day_range.first, "last": day_range.last}
    regions = db.execute(
        "SELECT region, max(fetched_at), list(DISTINCT model_id) "
        f"FROM cloudwatch_daily_datapoints WHERE {window} GROUP BY region ORDER BY region",
        params,
    ).fetchall()
    descriptions = registered(db, model_descriptions({m for *_, models in regions for m in models}))
    points = f"""(
        SELECT {", ".join(c for c in POINT_COLUMNS if c != "synced_at")},
            $synced_at AS synced_at
        FROM cloudwatch_daily_datapoints WHERE {window} AND region = $region
    )"""
    for table, query, columns in (
        ("bedrock_usage_daily", usage_query, USAGE_COLUMNS),
        ("bedrock_usage_daily_by_project", project_query, PROJECT_COLUMNS),
    ):
        db.execute(f"DELETE FROM {table} WHERE {window}", params)
        insert = f"INSERT INTO {table} ({', '.join(columns)}) {query(points, descriptions)}"
        for region, synced_at, _ in regions:
            db.execute(insert, {**params, "region": region, "synced_at": synced_at})
    written = db.execute(
        "SELECT region, model_id, count(*), sum(input_tokens), sum(output_tokens) "
        f"FROM bedrock_usage_daily WHERE {window} GROUP BY ALL",
        params,
    ).fetchall()
    rows_by_region: dict[str, int] = {}
    models, input_tokens, output_tokens = set(), 0, 0
    note_unpublished(db, connection_id, day_range)
    for region, model_id, rows, inputs, outputs in written:
        rows_by_region[region] = rows_by_region.get(region, 0) + rows
        models.add(model_id)
        input_tokens += int(inputs)
        output_tokens += int(outputs)
    return UsageWritten(rows_by_region, frozenset(models), input_tokens, output_tokens)


def usage_row_count(db: duckdb.DuckDBPyConnection) -> int:
    return db.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]


def known_series(db: duckdb.DuckDBPyConnection, connection_id: str) -> dict[str, KnownSeries]:
    """Every model id (and mantle project-model pair) ever stored for this connection,
    by region and endpoint."""
    rows = db.execute(
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


# Opens the warehouse for a writer (`open_warehouse` bound to a target, or a resource's
# `open_db`): the core takes one instead of a path, so Dagster's resource can supply it.
WarehouseOpener = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


ANALYST_TABLES = ("bedrock_usage_daily", "bedrock_usage_daily_by_project")


def note_unpublished(
    db: duckdb.DuckDBPyConnection, connection_id: str, day_range: DayRange | None
) -> None:
    """Inside the transaction that rewrote a connection's window (None: all of it): the
    analysts' copy owes it until a publish copies it. A lake has no copy."""
    if is_lake(db):
        return
    first, last = (day_range.first, day_range.last) if day_range else (None, None)
    db.execute(
        "INSERT INTO unpublished_windows VALUES (?, ?, ?, ?)",
        [uuid.uuid4().hex, connection_id, first, last],
    )


def unpublished_windows(db: duckdb.DuckDBPyConnection) -> dict[str, DayRange | None]:
    """What the analysts' copy owes, per connection (None: every day of it)."""
    owed: dict[str, DayRange | None] = {}
    rows = db.execute(
        "SELECT connection_id, bool_or(first_day IS NULL), min(first_day), max(last_day) "
        "FROM unpublished_windows GROUP BY connection_id ORDER BY connection_id"
    ).fetchall()
    for connection_id, whole, first, last in rows:
        owed[connection_id] = None if whole else DayRange(first, last)
    return owed


def _with_owed(
    changed: dict[str, DayRange | None], owed: dict[str, DayRange | None]
) -> dict[str, DayRange | None]:
    """A sync's windows and what an earlier publish left undone, a span per connection."""
    merged = dict(changed)
    for connection_id, owed_range in owed.items():
        if connection_id not in merged:
            merged[connection_id] = owed_range
            continue
        mine = merged[connection_id]
        if mine is None or owed_range is None:
            merged[connection_id] = None
        else:
            merged[connection_id] = DayRange(
                min(mine.first, owed_range.first), max(mine.last, owed_range.last)
            )
    return merged


def publish_snapshot(
    db: duckdb.DuckDBPyConnection,
    location: Path | str | Lake,
    changed: dict[str, DayRange | None] | None = None,
) -> Path | None:
    """Refresh the analysts' copy of the usage tables, the prices and the cost views, as
    committed, and swap it in
    atomically. A reader holding the old copy keeps reading it and never blocks the
    pipeline, which a reader of the warehouse itself would.

    `changed` names what a sync rewrote: {connection_id: day range, or None for all of
    that connection}. Then only those windows are replaced, in the copy before last (the
    spare, kept as a hard link when the last copy was swapped in: no reader opens it by
    name), brought up to date with the windows the last publish replaced; so a daily
    sync writes the same however much history is stored. When the spare cannot be used
    (an analyst still reads it, it lags more than one publish, or none is kept) the last
    copy's bytes are copied instead (the file system's speed, no DuckDB work). Without
    `changed`, or without a previous copy of this schema, the copy is built whole. A
    publish that rewrote a connection whole (a purge among them) keeps no spare, so no
    file keeps what it removed. A DuckLake has no copy (None): analysts attach the
    lake, whose snapshots never block a writer."""
    if isinstance(location, Lake):
        return None  # analysts attach the lake itself: nothing to copy
    owed_ids = [
        window_id
        for (window_id,) in db.execute("SELECT window_id FROM unpublished_windows").fetchall()
    ]
    if changed is not None:
        changed = _with_owed(changed, unpublished_windows(db))
    target = snapshot_path(location)
    staging = target.with_name(f"{target.name}.tmp")
    spare = spare_path(target)
    for leftover in (staging, staging.with_name(f"{staging.name}.wal")):
        leftover.unlink(missing_ok=True)
    published = _publish_record(db, target)
    lacking = None if changed is None else _attach_previous_copy(db, target, staging, published)
    incremental = lacking is not None
    if not incremental:
        db.execute(
            f"ATTACH {literal(str(staging))} AS analysts_snapshot "
            f"(BLOCK_SIZE {SNAPSHOT_BLOCK_SIZE})"
        )
    try:
        if not incremental:
            # Built whole: the usage tables (the raw data points are larger and for audit)
            # empty, then every connection's rows as a window of its own, below.
            db.execute("BEGIN TRANSACTION")
            for table in ANALYST_TABLES:
                db.execute(
                    f"CREATE TABLE analysts_snapshot.{table} AS SELECT * FROM {table} WHERE false"
                )
            db.execute(
                f"CREATE TABLE analysts_snapshot.{SNAPSHOT_VERSION_TABLE} AS "
                "SELECT max(version) AS version FROM schema_version"
            )
            for table in WHOLE_TABLES:
                db.execute(
                    f"CREATE TABLE analysts_snapshot.{table} AS SELECT * FROM {table} WHERE false"
                )
            create_cost_table(db, "analysts_snapshot")
            db.execute("COMMIT")
            stored = " UNION ".join(f"SELECT connection_id FROM {t}" for t in ANALYST_TABLES)
            changed = {c: None for (c,) in db.execute(f"{stored} ORDER BY 1").fetchall()}
        # The copy stores each usage row's estimate, so cost queries read a table. A
        # price or inference profile changed since the copy was made re-prices every
        # row, below; else only the rewritten windows are priced.
        reprice = incremental and (
            not has_cost_table(db, "analysts_snapshot")
            or pricing_fingerprint(db) != pricing_fingerprint(db, "analysts_snapshot")
        )
        if reprice:
            db.execute("BEGIN TRANSACTION")
            create_cost_table(db, "analysts_snapshot")
            db.execute("COMMIT")
        # A commit per connection's window, DuckDB's cache shed between (a run over many
        # connections holds one window at a time): the staging copy is swapped in whole,
        # so a failure part-way leaves the analysts' copy as it was.
        for connection_id, day_range in one_at_a_time(db, _with_owed(changed, lacking or {})):
            db.execute("BEGIN TRANSACTION")
            _replace_window(db, connection_id, day_range, costs=not reprice)
            db.execute("COMMIT")
        db.execute("BEGIN TRANSACTION")
        # The price table and the bill are small: copied whole, so a refresh of prices or
        # a read of the bill shows too.
        db.execute(f"DELETE FROM analysts_snapshot.{PRICES_TABLE}")
        db.execute(
            f"INSERT INTO analysts_snapshot.{PRICES_TABLE} SELECT * FROM {PRICES_TABLE} "
            "ORDER BY model_id, region, token_type, effective_from"
        )
        db.execute(f"DELETE FROM analysts_snapshot.{BILLED_TABLE}")
        db.execute(
            f"INSERT INTO analysts_snapshot.{BILLED_TABLE} SELECT * FROM {BILLED_TABLE} "
            "ORDER BY usage_date, account_id, region, usage_type"
        )
        for table in (PROFILES_TABLE, OWNER_RULES_TABLE, TAG_KEYS_TABLE):
            db.execute(f"DELETE FROM analysts_snapshot.{table}")
            db.execute(f"INSERT INTO analysts_snapshot.{table} SELECT * FROM {table}")
        if reprice:
            stored = db.execute("SELECT DISTINCT connection_id FROM bedrock_usage_daily")
            for (connection_id,) in stored.fetchall():
                _price_window(db, connection_id, None)
        create_cost_views(db, "analysts_snapshot")
        _record_publish(db, published, changed)
        db.execute("COMMIT")
    finally:
        db.execute("DETACH analysts_snapshot")
    spare.unlink(missing_ok=True)
    if published is not None and None not in changed.values():
        os.link(target, spare)  # the copy being replaced: the next publish's starting point
    os.replace(staging, target)
    if owed_ids:  # in the copy now (a window noted since stays owed)
        db.execute("DELETE FROM unpublished_windows WHERE list_contains(?, window_id)", [owed_ids])
    return target


SNAPSHOT_VERSION_TABLE = "snapshot_schema_version"
# The analysts' copy is made with 64 KiB blocks, not DuckDB's 256 KiB: a window appended
# to a table whose rows are already stored starts a new segment per column, as large as
# a block, held in memory until the copy is checkpointed at its DETACH. Measured on a
# fleet run of ten connections: 92 such segments, 23 MB, and run peaks of 284-286 MB
# against 257-262 (16 KiB blocks also cut it, but made the copy 2.7x larger; 64 KiB
# leaves it 43.9 MB against 45.4: benchmarks/RESULTS.md). DuckDB 1.2 or newer reads it.
SNAPSHOT_BLOCK_SIZE = 65_536
# Small tables the analysts' copy holds whole, refreshed at every publish.
WHOLE_TABLES = (PRICES_TABLE, BILLED_TABLE, PROFILES_TABLE, OWNER_RULES_TABLE, TAG_KEYS_TABLE)


PRICING_CHUNK_DAYS = 31
# Which publish made a copy, the one before it and the windows it replaced (JSON: a
# connection's [first, last] or null for all of it), so the copy before can catch up.
PUBLISH_TABLE = "snapshot_publish"


def spare_path(target: Path) -> Path:
    """The copy before last, kept beside the analysts' copy for the next publish."""
    return target.with_name(f"{target.stem}.spare{target.suffix}")


def _publish_record(db: duckdb.DuckDBPyConnection, target: Path) -> dict | None:
    """The analysts' copy's publish record (None: no copy, or one without it), read
    through a read-only attachment, which analysts reading the copy do not block."""
    if not target.exists():
        return None
    try:
        db.execute(f"ATTACH {literal(str(target))} AS analysts_published (READ_ONLY)")
    except duckdb.Error:
        return None  # damaged: rebuilt whole
    try:
        row = db.execute(
            f"SELECT publish_id, previous_id, windows FROM analysts_published.{PUBLISH_TABLE}"
        ).fetchone()
    except duckdb.Error:
        row = None  # published before the record was kept
    finally:
        db.execute("DETACH analysts_published")
    if row is None:
        return {"publish_id": None, "previous_id": None, "windows": {}}
    windows = {
        connection_id: DayRange(date.fromisoformat(span[0]), date.fromisoformat(span[1]))
        if span
        else None
        for connection_id, span in json.loads(row[2]).items()
    }
    return {"publish_id": row[0], "previous_id": row[1], "windows": windows}


def _record_publish(
    db: duckdb.DuckDBPyConnection, published: dict | None, changed: dict[str, DayRange | None]
) -> None:
    windows = {
        connection_id: [str(span.first), str(span.last)] if span else None
        for connection_id, span in changed.items()
    }
    db.execute(
        f"CREATE OR REPLACE TABLE analysts_snapshot.{PUBLISH_TABLE} "
        "(publish_id VARCHAR, previous_id VARCHAR, windows VARCHAR)"
    )
    db.execute(
        f"INSERT INTO analysts_snapshot.{PUBLISH_TABLE} VALUES (?, ?, ?)",
        [uuid.uuid4().hex, (published or {}).get("publish_id"), json.dumps(windows)],
    )


def _attach_previous_copy(
    db: duckdb.DuckDBPyConnection, target: Path, staging: Path, published: dict | None
) -> dict[str, DayRange | None] | None:
    """Attach a previous analysts' copy at `staging` as analysts_snapshot: the spare
    when it is one publish behind the copy (then the windows it lacks), else a byte copy
    of the copy ({}). None, with nothing attached or staged, when there is no copy of
    this schema version (it is then built whole). Read through the writer's own
    connection: a second DuckDB instance in the process would cost memory of its own."""
    if published is None:
        return None
    spare = spare_path(target)
    if spare.exists() and published["previous_id"] is not None:
        if os.stat(spare).st_ino != os.stat(target).st_ino:  # a swap cut short links both
            os.replace(spare, staging)
            if _attach_staging(db, staging, publish_id=published["previous_id"]):
                return published["windows"]
        spare.unlink(missing_ok=True)
    shutil.copyfile(target, staging)
    return {} if _attach_staging(db, staging) else None


def _attach_staging(
    db: duckdb.DuckDBPyConnection, staging: Path, publish_id: str | None = None
) -> bool:
    """Attach `staging` when it opens (an analyst reading it holds it), is of this schema
    version and block size (an older copy is built whole once) and, given `publish_id`,
    was made by that publish; else remove it."""
    try:
        db.execute(f"ATTACH {literal(str(staging))} AS analysts_snapshot")
    except duckdb.Error:
        staging.unlink(missing_ok=True)  # damaged, or held: not used
        return False
    try:
        version = db.execute(
            f"SELECT version FROM analysts_snapshot.{SNAPSHOT_VERSION_TABLE}"
        ).fetchone()[0]
        follows = (
            publish_id is None
            or db.execute(
                f"SELECT max(publish_id) FROM analysts_snapshot.{PUBLISH_TABLE}"
            ).fetchone()[0]
            == publish_id
        )
    except duckdb.Error:
        version, follows = None, False  # written before the version was kept: not used
    block_size = db.execute(
        "SELECT block_size FROM pragma_database_size() WHERE database_name = 'analysts_snapshot'"
    ).fetchone()[0]
    if version == MIGRATIONS[-1][0] and follows and block_size == SNAPSHOT_BLOCK_SIZE:
        return True
    db.execute("DETACH analysts_snapshot")
    for path in (staging, staging.with_name(f"{staging.name}.wal")):
        path.unlink(missing_ok=True)
    return False


def _replace_window(
    db: duckdb.DuckDBPyConnection,
    connection_id: str,
    day_range: DayRange | None,
    costs: bool = True,
) -> None:
    window = "connection_id = ?"
    params: list[object] = [connection_id]
    if day_range is not None:
        window += " AND usage_date BETWEEN ? AND ?"
        params += [day_range.first, day_range.last]
    for table in ANALYST_TABLES:
        db.execute(f"DELETE FROM analysts_snapshot.{table} WHERE {window}", params)
        db.execute(
            f"INSERT INTO analysts_snapshot.{table} SELECT * FROM {table} WHERE {window} "
            "ORDER BY usage_date, region",
            params,
        )
    if costs:
        _price_window(db, connection_id, day_range)


def _price_window(
    db: duckdb.DuckDBPyConnection, connection_id: str, day_range: DayRange | None
) -> None:
    """Store the estimates of a connection's window (None: all its days) in the copy, a
    month at a time: the cost view's lookups over a year of one connection at once held
    ≈40 MB more than the run's other steps (benchmarks/memory_phases.py)."""
    if day_range is None:
        first, last = db.execute(
            "SELECT min(usage_date), max(usage_date) FROM bedrock_usage_daily "
            "WHERE connection_id = ?",
            [connection_id],
        ).fetchone()
        db.execute(f"DELETE FROM analysts_snapshot.{COST_TABLE} WHERE connection_id = ?",
                   [connection_id])  # fmt: skip
        if first is None:
            return
        day_range = DayRange(first, last)
    for part in day_range.chunks(PRICING_CHUNK_DAYS):
        publish_costs(db, "analysts_snapshot", *window_filter({connection_id: part}))


def catch_up_snapshot(path: Path | str | Lake) -> list[str]:
    """Publish what the analysts' copy owes: windows committed by a sync or a purge that
    was killed or failed before its publish. Returns the connections republished (none
    when the copy is current, for a lake, or while a sync holds the file: its own
    publish catches up)."""
    if isinstance(path, Lake) or not Path(path).exists():
        return []
    try:
        with open_warehouse(path, read_only=True, timeout=0) as db:
            owed = db.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_name = 'unpublished_windows'"
            ).fetchone()[0] and unpublished_windows(db)
        if not owed:
            return []
        with open_warehouse(path, timeout=min(5.0, lock_timeout_seconds())) as db:
            owed = unpublished_windows(db)
            if owed:
                publish_snapshot(db, path, {})
        return sorted(owed)
    except WarehouseBusyError:
        return []


def _exists(target: Path | str | Lake) -> bool:
    return isinstance(target, Lake) or Path(target).exists()


def stored_connection_rows(path: Path | str | Lake, connection_id: str) -> int:
    """Raw and usage rows stored for a connection (0 when there is no warehouse)."""
    if not _exists(path):
        return 0
    with open_warehouse(path) as db:
        return db.execute(
            "SELECT (SELECT count(*) FROM bedrock_usage_daily WHERE connection_id = $id) + "
            "(SELECT count(*) FROM cloudwatch_daily_datapoints WHERE connection_id = $id)",
            {"id": connection_id},
        ).fetchone()[0]


def purge_connection(
    path: Path | str | Lake, connection_id: str, before_delete: Callable[[], None] | None = None
) -> int:
    """Delete every stored row of a connection; returns the usage rows deleted.
    `before_delete` runs once the warehouse is held (a busy file raises before it)."""
    if not _exists(path):
        if before_delete:
            before_delete()
        return 0
    with open_warehouse(path) as db:
        if before_delete:
            before_delete()

        def delete() -> int:
            deleted = db.execute(
                "SELECT count(*) FROM bedrock_usage_daily WHERE connection_id = ?",
                [connection_id],
            ).fetchone()[0]
            for table in (
                "bedrock_usage_daily",
                "bedrock_usage_daily_by_project",
                "cloudwatch_daily_datapoints",
            ):
                db.execute(f"DELETE FROM {table} WHERE connection_id = ?", [connection_id])
            note_unpublished(db, connection_id, None)
            return deleted

        deleted = atomically(db, delete)
        publish_snapshot(db, path, {connection_id: None})
    return deleted


def usage_rows(
    path: Path | str | Lake, connection_id: str | None = None, since=None
) -> pd.DataFrame:
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
    if not isinstance(path, Lake) and snapshot_path(path).exists():
        path = snapshot_path(path)
    if not _exists(path):
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
    # A status answers within seconds: it waits for a writer at most 10 s.
    timeout = min(10.0, lock_timeout_seconds())
    with open_warehouse(path, read_only=True, timeout=timeout) as db:
        return db.execute(query, params).df()


LAKE_TABLES = (
    "cloudwatch_daily_datapoints",
    "bedrock_usage_daily",
    "bedrock_usage_daily_by_project",
    "bedrock_prices",
    BILLED_TABLE,
    PROFILES_TABLE,
    OWNER_RULES_TABLE,
    TAG_KEYS_TABLE,
)


def copy_into_lake(source: Path, lake: Lake) -> dict[str, int]:
    """Copy every row of the warehouse file `source` into `lake`, which must hold no
    usage yet, in one transaction; then check that each table's rows and sums are the
    file's. Returns the rows copied per table. The file is left as it was (it is brought
    to the current schema first, as any write would)."""
    if not Path(source).exists():
        raise FileNotFoundError(f"No warehouse file at {source}: nothing to copy.")
    with open_warehouse(source):
        pass
    with open_warehouse(lake) as db:
        db.execute(f"ATTACH {literal(str(source))} AS local_file (READ_ONLY)")
        try:
            held = {
                table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in LAKE_TABLES[:3]
            }
            if any(held.values()):
                raise LakeNotEmptyError(
                    f"{lake} already holds usage ({held}); nothing was copied. Copy into a "
                    "new, empty lake (a new catalog database and data path)."
                )

            def copy() -> None:
                for table in (PRICES_TABLE, TAG_KEYS_TABLE):  # the file's, refreshed
                    db.execute(f"DELETE FROM {table}")
                for table in LAKE_TABLES:
                    columns = ", ".join(_columns(db, table))
                    order = (
                        " ORDER BY usage_date, region"
                        if "usage_date" in _columns(db, table)
                        else ""
                    )
                    db.execute(
                        f"INSERT INTO {table} ({columns}) "
                        f"SELECT {columns} FROM local_file.{table}{order}"
                    )

            atomically(db, copy)
            copied = {}
            for table in LAKE_TABLES:
                totals = f"SELECT count(*), {_checksum(table)} FROM"
                lake_totals = db.execute(f"{totals} {table}").fetchone()
                file_totals = db.execute(f"{totals} local_file.{table}").fetchone()
                if lake_totals != file_totals:
                    raise UserError(
                        f"{table}: the lake holds {lake_totals}, the file {file_totals} — the "
                        "copy is not exact; do not switch to the lake, and report this."
                    )
                copied[table] = lake_totals[0]
        finally:
            db.execute("DETACH local_file")
    return copied


class LakeNotEmptyError(RuntimeError):
    """The lake to copy a warehouse file into already holds usage."""


def _columns(db: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        name
        for (name,) in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_catalog = current_database() ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def _checksum(table: str) -> str:
    """An exact sum over the table's numbers, to compare two copies."""
    return {
        "cloudwatch_daily_datapoints": "sum(value::DECIMAL(38,6))",
        "bedrock_usage_daily": "sum(input_tokens + output_tokens + invocations)",
        "bedrock_usage_daily_by_project": "sum(input_tokens + output_tokens + inferences)",
        PRICES_TABLE: "sum(usd_per_million_tokens)",
        BILLED_TABLE: "sum(net_unblended_cost_usd)",
        PROFILES_TABLE: "count(DISTINCT profile_id)",
        OWNER_RULES_TABLE: "count(DISTINCT rule_id)",
        TAG_KEYS_TABLE: "count(DISTINCT team_key || application_key || cost_center_key)",
    }[table]
