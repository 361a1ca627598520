"""The state store: connections, their encrypted credentials, region health and the
integration event log — in SQLite under BEDROCK_USAGE_HOME, or in PostgreSQL when
BEDROCK_USAGE_STATE_URL names one (a deployment whose runs share no disk).

SQLite in WAL mode lets the processes of one machine (webserver, daemon, run workers,
the CLI) read it at once while one writes. `secure_delete` zeroes deleted content, and
a TRUNCATE checkpoint empties the WAL, so a disconnected secret leaves no trace in any
file. On PostgreSQL a disconnect deletes the rows in one transaction and rewrites the
tables that held them (VACUUM FULL); PostgreSQL does not promise that the old row
versions' bytes are gone from its write-ahead log, its backups or the disk's free
blocks (docs/deploying.md says so, and recommends role-based connections, which store no key).

Both speak the same SQL: statements use sqlite3's placeholders (? and :name), turned
into psycopg2's for PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import UserError
from ..processes import ProcessId, this_process
from ..settings import redacted_url, state_path, state_url

SCHEMA = """
CREATE TABLE IF NOT EXISTS connections (
    connection_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE,
    regions TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    access_key_id TEXT,
    secret_ciphertext TEXT,
    role_arn TEXT,
    external_id TEXT,
    profile TEXT,
    backfill_days INTEGER NOT NULL,
    initial_sync TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS region_health (
    connection_id TEXT NOT NULL,
    region TEXT NOT NULL,
    last_success_at TEXT,
    last_synced_day TEXT,
    failure_kind TEXT,
    failure_code TEXT,
    failure_message TEXT,
    failure_next_action TEXT,
    failed_at TEXT,
    PRIMARY KEY (connection_id, region)
);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    region TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    failure_kind TEXT,
    message TEXT NOT NULL,
    next_action TEXT
);
CREATE INDEX IF NOT EXISTS events_by_connection ON events (connection_id, event_id);
CREATE TABLE IF NOT EXISTS recorded_once (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sensor_cursors (
    sensor TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
-- Stores made before sensor_cursors kept the permission sensor's cursor alone here: it
-- is carried over once, and the old row removed.
CREATE TABLE IF NOT EXISTS alert_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT NOT NULL
);
INSERT INTO sensor_cursors (sensor, cursor)
    SELECT 'permission_failure_sensor', cursor FROM alert_cursor WHERE true
    ON CONFLICT (sensor) DO NOTHING;
DELETE FROM alert_cursor;
CREATE TABLE IF NOT EXISTS sync_attempts (
    connection_id TEXT PRIMARY KEY,
    run_id TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_started TEXT,
    phase TEXT NOT NULL,
    day_range TEXT NOT NULL,
    started_at TEXT NOT NULL,
    failed_regions TEXT
);
-- Billing sources: a CUR 2.0 export and the credential of its bucket (a key pair's
-- secret encrypted as a connection's is; a role or a profile stores nothing secret).
CREATE TABLE IF NOT EXISTS billing_sources (
    billing_source_id TEXT PRIMARY KEY,
    s3_uri TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    access_key_id TEXT,
    secret_ciphertext TEXT,
    role_arn TEXT,
    external_id TEXT,
    profile TEXT,
    created_at TEXT NOT NULL,
    last_read_at TEXT,
    periods_read TEXT
);
-- Monthly budgets (bedrock-usage budgets): a limit in USD over all spend or one scope.
CREATE TABLE IF NOT EXISTS budgets (
    name TEXT PRIMARY KEY,
    monthly_usd TEXT NOT NULL,
    scope_kind TEXT,
    scope_value TEXT,
    thresholds TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Each alert condition by its key, sent once: a process claims a delivery with a lease,
-- so two evaluating at once never send it twice; a failed delivery is retried.
CREATE TABLE IF NOT EXISTS alert_states (
    alert_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    lease_until TEXT,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    first_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
-- Optional permissions a sync tried (e.g. reading application inference profiles): a
-- missing one fails nothing, and status and doctor say what it would add.
CREATE TABLE IF NOT EXISTS optional_permissions (
    connection_id TEXT NOT NULL,
    region TEXT NOT NULL,
    permission TEXT NOT NULL,
    missing_code TEXT,
    advice TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, region, permission)
);
"""


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Connection:
    """A stored connection. `secret_ciphertext` is encrypted; nothing here is plaintext."""

    connection_id: str
    account_id: str
    regions: tuple[str, ...]
    auth_method: str  # "keys", "role" or "profile"
    access_key_id: str | None
    secret_ciphertext: str | None = field(repr=False)
    role_arn: str | None
    external_id: str | None
    profile: str | None
    backfill_days: int
    initial_sync: str  # "pending", "running", "done", "failed", "skipped"
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RegionHealth:
    connection_id: str
    region: str
    last_success_at: str | None
    last_synced_day: str | None
    failure_kind: str | None
    failure_code: str | None
    failure_message: str | None
    failure_next_action: str | None
    failed_at: str | None

    @property
    def needs_attention(self) -> bool:
        return self.failure_kind is not None


@dataclass(frozen=True)
class SyncAttempt:
    """A sync that began and has not ended: running, or its process died."""

    connection_id: str
    run_id: str | None
    host: str
    pid: int
    process_started: str | None
    phase: str  # "fetching", "writing data points", "rebuilding usage", "publishing"
    day_range: str
    started_at: str
    failed_regions: str | None  # comma-separated, once the fetch has ended

    @property
    def process(self) -> ProcessId:
        return ProcessId(self.host, self.pid, self.process_started)


@dataclass(frozen=True)
class Event:
    event_id: int
    at: str
    connection_id: str
    region: str | None
    action: str
    outcome: str
    error_code: str | None
    failure_kind: str | None
    message: str
    next_action: str | None


# Stores whose schema this process has already ensured (each open would otherwise
# re-run the DDL under a write lock).
_SCHEMA_READY: set[str] = set()
# PostgreSQL's only difference in the schema.
_POSTGRES_SCHEMA = SCHEMA.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


class _Db:
    """An open connection to the store that answers rows as dicts, in either dialect."""

    def __init__(self, raw, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def execute(self, sql: str, params=()) -> _Result:
        if not self.postgres:
            return _Result(self.raw.execute(sql, params))
        cursor = self.raw.cursor()
        cursor.execute(_NAMED.sub(r"%(\1)s", sql.replace("?", "%s")), params or None)
        return _Result(cursor)


class _Result:
    def __init__(self, cursor) -> None:
        self.cursor = cursor
        self.rowcount = cursor.rowcount

    def _dict(self, row) -> dict:
        if isinstance(row, sqlite3.Row):
            return dict(row)
        return dict(zip((c[0] for c in self.cursor.description), row, strict=True))

    def fetchone(self) -> dict | None:
        row = self.cursor.fetchone()
        return None if row is None else self._dict(row)

    def fetchall(self) -> list[dict]:
        return [self._dict(row) for row in self.cursor.fetchall()]


# The key under which the first day of the date partitions is recorded once.
PARTITION_START = "partition_start"


class DuplicateConnectionError(Exception):
    """The connection's name or account was stored by another process first."""


def _use_wal(raw: sqlite3.Connection, wait_seconds: float = 30) -> None:
    """Switch a new state store to WAL (the file keeps it, so later connections only read
    it). Processes creating the store at once take turns: SQLite refuses a switch that
    meets another connection's transaction with "locked" at once, not after its busy wait."""
    deadline = time.monotonic() + wait_seconds
    while raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            raw.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class StateStore:
    """`path`: a SQLite file. Without one, BEDROCK_USAGE_STATE_URL's PostgreSQL database
    when it is set, else state.sqlite3 in BEDROCK_USAGE_HOME."""

    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        self.url = None if path is not None else (url or state_url())
        self.path = None if self.url else (path or state_path())

    @property
    def location(self) -> str:
        """Where the store is, for messages (a URL without its password)."""
        return redacted_url(self.url) if self.url else str(self.path)

    @contextmanager
    def _db(self) -> Iterator[_Db]:
        if self.url:
            with _postgres(self.url) as db:
                yield db
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not self.path.exists()
        raw = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        if created:  # SQLite gives its -wal and -shm files the same mode
            os.chmod(self.path, 0o600)
        raw.row_factory = sqlite3.Row
        try:
            _use_wal(raw)
            raw.execute("PRAGMA secure_delete=ON")
            raw.execute("PRAGMA busy_timeout=30000")
            if str(self.path) not in _SCHEMA_READY:
                raw.executescript(SCHEMA)
                _SCHEMA_READY.add(str(self.path))
            yield _Db(raw, postgres=False)
        finally:
            raw.close()

    @contextmanager
    def transaction(self) -> Iterator[_Db]:
        with self._db() as db:
            if not db.postgres:
                db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.raw.commit() if db.postgres else db.execute("COMMIT")
            except BaseException:
                db.raw.rollback() if db.postgres else db.execute("ROLLBACK")
                raise

    # Connections -------------------------------------------------------------

    def get(self, connection_id: str) -> Connection | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM connections WHERE connection_id = ?", [connection_id]
            ).fetchone()
        return _connection(row) if row else None

    def by_account(self, account_id: str) -> Connection | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM connections WHERE account_id = ?", [account_id]
            ).fetchone()
        return _connection(row) if row else None

    def all(self) -> list[Connection]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM connections ORDER BY connection_id").fetchall()
        return [_connection(row) for row in rows]

    def add(self, connection: Connection) -> None:
        values = {
            **connection.__dict__,
            "regions": json.dumps(list(connection.regions)),
        }
        columns = ", ".join(values)
        placeholders = ", ".join(f":{name}" for name in values)
        try:
            with self.transaction() as db:
                db.execute(f"INSERT INTO connections ({columns}) VALUES ({placeholders})", values)
        except Exception as error:
            # SQLite's and psycopg2's IntegrityError: the name or the account was taken
            # by another process between our check and this insert.
            if any(cls.__name__ == "IntegrityError" for cls in type(error).__mro__):
                raise DuplicateConnectionError(connection.connection_id) from error
            raise

    def update(self, connection_id: str, **changes: object) -> None:
        if "regions" in changes:
            changes["regions"] = json.dumps(list(changes["regions"]))  # type: ignore[arg-type]
        changes["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        with self.transaction() as db:
            db.execute(
                f"UPDATE connections SET {assignments} WHERE connection_id = :connection_id",
                {**changes, "connection_id": connection_id},
            )

    def has_secrets(self) -> bool:
        if self.path is not None and not self.path.exists():
            return False
        with self._db() as db:
            row = db.execute(
                "SELECT (SELECT count(*) FROM connections WHERE secret_ciphertext IS NOT NULL)"
                " + (SELECT count(*) FROM billing_sources WHERE secret_ciphertext IS NOT NULL)"
                " AS n"
            ).fetchone()
        return row["n"] > 0

    def remove(self, connection_id: str) -> None:
        """Delete the connection and its credentials. The event log stays, as history;
        `scrub` then wipes the deleted bytes from disk."""
        with self.transaction() as db:
            for table in ("connections", "region_health", "sync_attempts", "optional_permissions"):
                db.execute(f"DELETE FROM {table} WHERE connection_id = ?", [connection_id])

    def scrub(self, timeout: float = 30.0) -> bool:
        """SQLite: push every change into the main file and empty the WAL: with
        secure_delete on, no freed page keeps an old secret. A reader in another process
        that holds an old snapshot pins the WAL; this retries until `timeout` and returns
        whether the WAL could be emptied. PostgreSQL: rewrite the tables that held
        credentials, so their files keep no dead row version."""
        if self.url:
            with self._db() as db:
                db.raw.autocommit = True
                db.execute("VACUUM FULL connections, region_health, sync_attempts, billing_sources")
            return True
        deadline = time.monotonic() + timeout
        with self._db() as db:
            # A checkpoint waits for readers as long as busy_timeout: within `timeout`.
            db.execute(f"PRAGMA busy_timeout={int(min(timeout, 30) * 1000)}")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
            while True:
                busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()["busy"]
                if not busy or time.monotonic() > deadline:
                    return not busy
                time.sleep(0.2)

    # Billing sources ----------------------------------------------------------------

    def add_billing_source(self, source: dict) -> None:
        columns = ", ".join(source)
        placeholders = ", ".join(f":{name}" for name in source)
        try:
            with self.transaction() as db:
                db.execute(
                    f"INSERT INTO billing_sources ({columns}) VALUES ({placeholders})", source
                )
        except Exception as error:
            if any(cls.__name__ == "IntegrityError" for cls in type(error).__mro__):
                raise DuplicateConnectionError(source["billing_source_id"]) from error
            raise

    def billing_source(self, billing_source_id: str) -> dict | None:
        with self._db() as db:
            return db.execute(
                "SELECT * FROM billing_sources WHERE billing_source_id = ?", [billing_source_id]
            ).fetchone()

    def billing_sources(self) -> list[dict]:
        if self.path is not None and not self.path.exists():
            return []
        with self._db() as db:
            return db.execute("SELECT * FROM billing_sources ORDER BY billing_source_id").fetchall()

    def billing_source_read(self, billing_source_id: str, periods: list[str]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE billing_sources SET last_read_at = ?, periods_read = ? "
                "WHERE billing_source_id = ?",
                [now_iso(), json.dumps(periods), billing_source_id],
            )

    def remove_billing_source(self, billing_source_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "DELETE FROM billing_sources WHERE billing_source_id = ?", [billing_source_id]
            )

    # Budgets and the alerts sent -------------------------------------------------

    def set_budget(self, budget: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO budgets (name, monthly_usd, scope_kind, scope_value, thresholds, "
                "created_at) VALUES (:name, :monthly_usd, :scope_kind, :scope_value, "
                ":thresholds, :created_at) ON CONFLICT (name) DO UPDATE SET "
                "monthly_usd = excluded.monthly_usd, scope_kind = excluded.scope_kind, "
                "scope_value = excluded.scope_value, thresholds = excluded.thresholds",
                {**budget, "created_at": now_iso()},
            )

    def budgets(self) -> list[dict]:
        with self._db() as db:
            return db.execute("SELECT * FROM budgets ORDER BY name").fetchall()

    def remove_budget(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM budgets WHERE name = ?", [name]).rowcount > 0

    def alert_states(self) -> dict[str, dict]:
        with self._db() as db:
            return {r["alert_key"]: r for r in db.execute("SELECT * FROM alert_states").fetchall()}

    def claim_alert(
        self, key: str, kind: str, state: str, message: str, payload: str, lease_seconds: int
    ) -> bool:
        """Take the delivery of `key` in `state` (firing or cleared): True for exactly one
        process when the key is new or changes state, or when its delivery failed and no
        other process holds the lease. The row is written before anything is sent."""
        now = datetime.now(UTC)
        lease = (now + timedelta(seconds=lease_seconds)).replace(microsecond=0).isoformat()
        at = now.replace(microsecond=0).isoformat()
        with self.transaction() as db:
            inserted = db.execute(
                "INSERT INTO alert_states VALUES (?, ?, ?, ?, ?, 0, ?, 1, NULL, ?, ?) "
                "ON CONFLICT (alert_key) DO NOTHING",
                [key, kind, state, message, payload, lease, at, at],
            ).rowcount
            if inserted:
                return True
            return (
                db.execute(
                    "UPDATE alert_states SET state = ?, message = ?, payload = ?, lease_until = ?, "
                    "attempts = CASE WHEN state = ? THEN attempts + 1 ELSE 1 END, "
                    "delivered = CASE WHEN state = ? THEN delivered ELSE 0 END, changed_at = ? "
                    "WHERE alert_key = ? AND (state <> ? OR (delivered = 0 "
                    "AND (lease_until IS NULL OR lease_until < ?)))",
                    [state, message, payload, lease, state, state, at, key, state, at],
                ).rowcount
                > 0
            )

    def forget_alerts(self) -> None:
        """Forget every alert sent (the demo's re-run starts its story again)."""
        with self.transaction() as db:
            db.execute("DELETE FROM alert_states")

    def finish_alert(self, key: str, error: str | None) -> None:
        """Record a delivery: done, or failed with `error` (retried at the next tick)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE alert_states SET delivered = ?, last_error = ?, lease_until = NULL "
                "WHERE alert_key = ?",
                [0 if error else 1, error, key],
            )

    # Facts recorded once, never changed (the first day of the date partitions) --------

    def record_once(self, key: str, value: str) -> str:
        """Record `value` under `key` unless something is recorded already; return what
        is recorded (the first writer wins, also among processes)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO recorded_once VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                [key, value],
            )
            return db.execute("SELECT value FROM recorded_once WHERE key = ?", [key]).fetchone()[
                "value"
            ]

    def recorded(self, key: str) -> str | None:
        """What is recorded under `key`; None, without creating a state store file, when
        nothing is."""
        if self.path is not None and not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT value FROM recorded_once WHERE key = ?", [key]).fetchone()
        return row["value"] if row else None

    # Sensors' progress, one cursor per sensor -----------------------------------------

    def sensor_cursor(self, sensor: str) -> dict | None:
        """What `sensor` last read (for the permission sensor: the last event and the
        regions it has flagged), or None before its first evaluation."""
        with self._db() as db:
            row = db.execute(
                "SELECT cursor FROM sensor_cursors WHERE sensor = ?", [sensor]
            ).fetchone()
        return json.loads(row["cursor"]) if row else None

    def save_sensor_cursor(self, sensor: str, cursor: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sensor_cursors VALUES (?, ?) "
                "ON CONFLICT (sensor) DO UPDATE SET cursor = excluded.cursor",
                [sensor, json.dumps(cursor)],
            )

    # Sync attempts ----------------------------------------------------------------

    def begin_attempt(
        self, connection_id: str, run_id: str | None, day_range: str, phase: str
    ) -> None:
        """Record that this process syncs `connection_id` now (replacing the record of
        an earlier attempt: `attempts.reap` has reported it first if it died)."""
        me = this_process()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sync_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (connection_id) DO UPDATE SET run_id = excluded.run_id, "
                "host = excluded.host, pid = excluded.pid, "
                "process_started = excluded.process_started, phase = excluded.phase, "
                "day_range = excluded.day_range, started_at = excluded.started_at, "
                "failed_regions = NULL",
                [connection_id, run_id, me.host, me.pid, me.started, phase, day_range, now_iso()],
            )

    def set_phase(
        self, connection_id: str, phase: str, failed_regions: list[str] | None = None
    ) -> None:
        me = this_process()
        with self.transaction() as db:
            db.execute(
                "UPDATE sync_attempts SET phase = ?, "
                "failed_regions = coalesce(?, failed_regions) "
                "WHERE connection_id = ? AND pid = ? AND host = ?",
                [
                    phase,
                    None if failed_regions is None else ",".join(failed_regions),
                    connection_id,
                    me.pid,
                    me.host,
                ],
            )

    def end_attempt(self, connection_id: str) -> None:
        me = this_process()
        with self.transaction() as db:
            db.execute(
                "DELETE FROM sync_attempts WHERE connection_id = ? AND pid = ? AND host = ?",
                [connection_id, me.pid, me.host],
            )

    def attempts(self) -> list[SyncAttempt]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM sync_attempts ORDER BY connection_id").fetchall()
        return [SyncAttempt(**row) for row in rows]

    def attempt(self, connection_id: str) -> SyncAttempt | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM sync_attempts WHERE connection_id = ?", [connection_id]
            ).fetchone()
        return SyncAttempt(**row) if row else None

    def abandon_attempt(self, attempt: SyncAttempt) -> bool:
        """Drop an attempt whose process is gone; False if another process took over."""
        with self.transaction() as db:
            dropped = db.execute(
                "DELETE FROM sync_attempts WHERE connection_id = ? AND pid = ? AND host = ? "
                "AND started_at = ?",
                [attempt.connection_id, attempt.pid, attempt.host, attempt.started_at],
            ).rowcount
        return dropped == 1

    def claim_initial_sync(self, connection_id: str) -> bool:
        with self.transaction() as db:
            claimed = db.execute(
                "UPDATE connections SET initial_sync = 'running', updated_at = ? "
                "WHERE connection_id = ? AND initial_sync = 'pending'",
                [now_iso(), connection_id],
            ).rowcount
        return claimed == 1

    # Region health and events -------------------------------------------------

    def region_health(self, connection_id: str) -> dict[str, RegionHealth]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM region_health WHERE connection_id = ?", [connection_id]
            ).fetchall()
        return {row["region"]: RegionHealth(**row) for row in rows}

    def record_region_success(self, connection_id: str, region: str, last_day: str) -> None:
        with self.transaction() as db:
            db.execute(
                """
                INSERT INTO region_health (connection_id, region, last_success_at, last_synced_day)
                SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM connections WHERE connection_id = ?)
                ON CONFLICT (connection_id, region) DO UPDATE SET
                    last_success_at = excluded.last_success_at,
                    last_synced_day = CASE
                        WHEN coalesce(region_health.last_synced_day, '') > excluded.last_synced_day
                        THEN region_health.last_synced_day ELSE excluded.last_synced_day END,
                    failure_kind = NULL, failure_code = NULL, failure_message = NULL,
                    failure_next_action = NULL, failed_at = NULL
                """,
                [connection_id, region, now_iso(), last_day, connection_id],
            )

    def record_region_failure(
        self, connection_id: str, region: str, kind: str, code: str, message: str, next_action: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                """
                INSERT INTO region_health (connection_id, region, failure_kind, failure_code,
                                           failure_message, failure_next_action, failed_at)
                SELECT ?, ?, ?, ?, ?, ?, ?
                WHERE EXISTS (SELECT 1 FROM connections WHERE connection_id = ?)
                ON CONFLICT (connection_id, region) DO UPDATE SET
                    failure_kind = excluded.failure_kind, failure_code = excluded.failure_code,
                    failure_message = excluded.failure_message,
                    failure_next_action = excluded.failure_next_action,
                    failed_at = excluded.failed_at
                """,
                [connection_id, region, kind, code, message, next_action, now_iso(), connection_id],
            )

    def record_optional_permission(
        self,
        connection_id: str,
        region: str,
        permission: str,
        missing_code: str | None,
        advice: str | None,
    ) -> None:
        """What a sync found of an optional permission: granted (`missing_code` None), or
        missing with the error AWS gave and what granting it would add."""
        with self.transaction() as db:
            db.execute(
                """
                INSERT INTO optional_permissions
                    (connection_id, region, permission, missing_code, advice, checked_at)
                SELECT ?, ?, ?, ?, ?, ?
                WHERE EXISTS (SELECT 1 FROM connections WHERE connection_id = ?)
                ON CONFLICT (connection_id, region, permission) DO UPDATE SET
                    missing_code = excluded.missing_code, advice = excluded.advice,
                    checked_at = excluded.checked_at
                """,
                [connection_id, region, permission, missing_code, advice, now_iso(),
                 connection_id],
            )  # fmt: skip

    def missing_optional_permissions(self, connection_id: str | None = None) -> list[dict]:
        """The optional permissions the last sync found missing, per connection and region."""
        query = "SELECT * FROM optional_permissions WHERE missing_code IS NOT NULL"
        params: list = []
        if connection_id is not None:
            query += " AND connection_id = ?"
            params.append(connection_id)
        with self._db() as db:
            return db.execute(
                query + " ORDER BY connection_id, region, permission", params
            ).fetchall()

    def log_event(
        self,
        connection_id: str,
        action: str,
        outcome: str,
        message: str,
        region: str | None = None,
        error_code: str | None = None,
        failure_kind: str | None = None,
        next_action: str | None = None,
    ) -> None:
        values = {
            "at": now_iso(),
            "connection_id": connection_id,
            "region": region,
            "action": action,
            "outcome": outcome,
            "error_code": error_code,
            "failure_kind": failure_kind,
            "message": message,
            "next_action": next_action,
        }
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO events ({', '.join(values)}) "
                f"VALUES ({', '.join(':' + name for name in values)})",
                values,
            )

    def events(
        self, connection_id: str | None = None, limit: int = 100, after_event_id: int = 0
    ) -> list[Event]:
        """Newest first; `after_event_id` keeps only events logged after that one."""
        query = "SELECT * FROM events WHERE event_id > ?"
        params: list[object] = [after_event_id]
        if connection_id:
            query += " AND connection_id = ?"
            params.append(connection_id)
        query += " ORDER BY event_id DESC LIMIT ?"
        params.append(limit)
        with self._db() as db:
            rows = db.execute(query, params).fetchall()
        return [Event(**row) for row in rows]


_CONNECTION_FIELDS = {f.name for f in fields(Connection)}


def _connection(row: dict) -> Connection:
    # Stores written before version 0.2 have a sync_started_at column; it is not read.
    values = {k: v for k, v in row.items() if k in _CONNECTION_FIELDS}
    values["regions"] = tuple(json.loads(values["regions"]))
    return Connection(**values)


@contextmanager
def _postgres(url: str) -> Iterator[_Db]:
    """A session of the PostgreSQL store: this process's idle one when it has it (a run
    reads and writes the store dozens of times; each new session forks a server process),
    else a new one. A block that raises closes its session; one that ends leaves nothing
    uncommitted behind (what it did not commit is rolled back, as closing would), and the
    session as a new one is."""
    try:
        import psycopg2
    except ImportError:
        raise UserError(
            "BEDROCK_USAGE_STATE_URL names a PostgreSQL database, but psycopg2 is not "
            "installed: pip install 'bedrock-usage[deploy]'."
        ) from None
    raw = _idle_session(url) or psycopg2.connect(url, connect_timeout=10)
    try:
        if url not in _SCHEMA_READY:
            with raw.cursor() as cursor:
                # Processes starting at once must not race to create the same tables.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('bedrock_usage_state'))")
                cursor.execute(_POSTGRES_SCHEMA)
            raw.commit()
            _SCHEMA_READY.add(url)
        yield _Db(raw, postgres=True)
        raw.rollback()  # ends what a read began; a committed write is kept
        raw.autocommit = False  # as a new session is (`scrub` turns it on)
    except BaseException:
        raw.close()
        raise
    _keep_idle(url, raw)


# One idle PostgreSQL session per store URL, for this process only (a forked child must
# not share its parent's socket): (pid, session).
_IDLE: dict[str, tuple[int, object]] = {}
_IDLE_TURN = threading.Lock()
_INHERITED: list = []


def _idle_session(url: str):
    """The kept session, when it still answers (the server may have restarted, or ended
    it, since): one round trip, against a new server process for a new session."""
    with _IDLE_TURN:
        kept = _IDLE.pop(url, None)
    if kept is None:
        return None
    pid, raw = kept
    if pid != os.getpid():
        _INHERITED.append(raw)  # closing it here would end the parent's session
        return None
    if raw.closed:
        return None
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT 1")
        raw.rollback()
    except Exception:  # noqa: BLE001 - any failure: a new session instead
        raw.close()
        return None
    return raw


def _keep_idle(url: str, raw) -> None:
    with _IDLE_TURN:
        if url not in _IDLE:
            _IDLE[url] = (os.getpid(), raw)
            return
    raw.close()  # another thread's session is kept already
