"""The local Dagster instance's storage: Dagster's own SQLite storage, except that a batch
of asset events is written in one transaction per database instead of two per event.

A year backfill of one connection is one run over 365 partitions of three assets, so
Dagster records 1,095 planned and 1,095 materialization events. Dagster hands them over
as batches (`DAGSTER_EVENT_BATCH_SIZE`) but its SQLite event log writes a batch one event
at a time, each in a connection and an fsync'd commit of its own in the run's database and
again in the index database: ≈9 ms an event, most of a backfill's time on this machine
(benchmarks/RESULTS.md). The rows written are the same as one at a time.

`bedrock_usage/defs/dagster.yaml` selects it; a deployment on PostgreSQL (`deploy/`) uses
Dagster's PostgreSQL storage, which batches materializations itself.
"""

import os
from collections.abc import Sequence

from .dagster_internals import (
    ASSET_EVENTS,
    ConfigurableClassData,
    DagsterSqliteStorage,
    EventLogEntry,
    SqliteEventLogStorage,
    db_result,
    event_logs_directory,
)

# Dagster buffers a batch's events only when this is set; the batches it forms are one
# step's materializations and one run's planned events (1,100 for a year of three assets).
EVENT_BATCH_SIZE = "2000"


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event log whose `store_event_batch` writes consecutive asset events in one
    transaction in the run's database and one in the index database."""

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        pending: list[EventLogEntry] = []
        for event in events:
            if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS:
                pending.append(event)
                continue
            self._store_asset_events(pending)
            pending = []
            self.store_event(event)
        self._store_asset_events(pending)

    def _store_asset_events(self, events: list[EventLogEntry]) -> None:
        """What `store_event` does for each asset event, in two transactions."""
        if not events:
            return
        statements = [self.prepare_insert_event(event) for event in events]
        for run_id in dict.fromkeys(event.run_id for event in events):
            with self.run_connection(run_id) as conn:
                for event, statement in zip(events, statements, strict=True):
                    if event.run_id == run_id:
                        conn.execute(statement)
        with self.index_transaction() as conn:
            event_ids = []
            for statement in statements:
                with db_result(conn, statement) as result:
                    event_ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, events, event_ids)
            for event, event_id in _last_of_each_kind(events, event_ids):
                self._store_asset_event(conn, event, event_id)


def _last_of_each_kind(
    events: list[EventLogEntry], event_ids: list[int]
) -> list[tuple[EventLogEntry, int]]:
    """The last event of each asset and event type, in the order they came. The asset
    table's row keeps only each kind's latest values (last materialization, last run,
    last timestamp), so applying these leaves it as applying every event would — as
    Dagster's PostgreSQL storage does for a batch of materializations."""
    last = {}
    for position, event in enumerate(events):
        last[(event.get_dagster_event().asset_key, event.dagster_event_type)] = position
    return [(events[position], event_ids[position]) for position in sorted(last.values())]


class BatchingSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite instance storage (same files under DAGSTER_HOME) with the batching
    event log. Building it asks Dagster to hand asset events over in batches, in every
    process that opens the instance (CLI, webserver, daemon, run workers); a
    DAGSTER_EVENT_BATCH_SIZE already set is kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        super().__init__(base_dir, inst_data)
        self._event_log_storage = BatchingSqliteEventLogStorage(event_logs_directory(base_dir))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict
    ) -> "BatchingSqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)
