"""A team deployment's Dagster instance storage: Dagster's PostgreSQL storage (the same
tables, migrations and queries), except that each of its three stores keeps a session
open for the process instead of opening one per call.

Dagster's PostgreSQL stores use SQLAlchemy's NullPool outside the webserver: every read or
write of a run, an event or a tick connects anew (a backend process forked, TLS and
authentication when the server asks for them) and disconnects. A one-connection daily sync
opened 319 sessions that way (`benchmarks/team.py`). Here each store keeps one session and
opens up to `MAX_OVERFLOW` more while threads use it at once. A pooled session idle for
over `PING_AFTER_SECONDS` is checked before it is used again, so a restarted server costs a
reconnect, not an error, while the calls of a burst (a run writing its events) are not
each preceded by a round trip (SQLAlchemy's `pool_pre_ping` doubled the statements); it
is replaced after `RECYCLE_SECONDS`.

Asset events are handed over in batches too (DAGSTER_EVENT_BATCH_SIZE, as for SQLite),
which Dagster's PostgreSQL event log writes with one INSERT per batch.

Dagster also asks PostgreSQL's catalog whether a table or a column of its own schema
exists before many reads and writes: every asset event reflects the asset_keys table's
columns (three catalog queries), and a batch of them checks a table from a second session
while the batch's holds the first (a session opened and closed each time). Its schema only
grows (`dagster instance migrate` adds tables and columns), so a check that found what it
asked for is answered from memory for the rest of the process; one that did not is asked
again each time, so a migration made meanwhile is seen.

`deploy/dagster.yaml` selects it; the package's `deploy` extra installs dagster-postgres.
"""

import functools
import os
import time

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy import event, exc

from .instance_storage import EVENT_BATCH_SIZE

MAX_OVERFLOW = 8
RECYCLE_SECONDS = 600
PING_AFTER_SECONDS = 1.0

# The schema checks of each store (methods of Dagster's SQL stores) remembered once true.
SCHEMA_CHECKS = {
    "_run_storage": (
        "has_run_stats_index_cols",
        "has_bulk_actions_selector_cols",
        "has_backfill_id_column",
        "has_bulk_action_job_name_column",
        "has_backfill_tags_table",
    ),
    "_event_log_storage": ("has_table", "has_asset_key_col", "_has_asset_key_col_on_connection"),
    "_schedule_storage": ("_has_instigators_table", "_has_asset_daemon_asset_evaluations_table"),
}


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event log and schedule stores share nothing but
    their URL, and each hold a small pool of sessions."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data=None, token_provider=None) -> None:  # fmt: skip
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for name, checks in SCHEMA_CHECKS.items():
            store = getattr(self, name)
            _pool(store)
            for check in checks:
                setattr(store, check, _true_once_found(getattr(store, check)))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "PooledPostgresStorage":
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


def _pool(store) -> None:
    """Give `store` (one of Dagster's PostgreSQL stores) a pooled engine, closed with the
    store: Dagster's `dispose` leaves its engines to the garbage collector, which is
    harmless for NullPool but would keep a pool's sessions open."""
    unpooled = store._engine
    store._engine = create_pg_engine(
        store.postgres_url,
        store._token_provider,
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=MAX_OVERFLOW,
        pool_recycle=RECYCLE_SECONDS,
    )
    event.listen(store._engine, "checkin", _idle_from)
    event.listen(store._engine, "checkout", _ping_if_idle)
    unpooled.dispose()
    dispose_store = store.dispose

    def dispose() -> None:
        dispose_store()
        store._engine.dispose()

    store.dispose = dispose


def _true_once_found(check):
    """`check` (a schema check of a store, bound) answered True without asking again once
    it has been True for the same names; a connection argument is not part of the key."""
    found: set[tuple[str, ...]] = set()

    @functools.wraps(check)
    def remembered(*args):
        names = tuple(arg for arg in args if isinstance(arg, str))
        if names in found:
            return True
        result = check(*args)
        if result:
            found.add(names)
        return result

    return remembered


def _idle_from(dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    """Check a session idle for a while; a dead one makes the pool connect anew."""
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as error:  # noqa: BLE001 - any failure: another session
        raise exc.DisconnectionError(str(error)) from error
