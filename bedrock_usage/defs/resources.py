"""Resources: the warehouse (DuckDB) and the state store."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from ..connections.store import StateStore
from ..settings import warehouse_path
from ..storage.warehouse import open_warehouse


class WarehouseResource(DuckDBResource):
    """The analysts' DuckDB file. Unlike the stock `get_connection`, the connection is
    closed even when the block raises (a leaked connection would keep the file locked),
    and a busy file is retried for BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS, then reported
    with what to do. The schema is created and migrated on first use."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_warehouse(self.database) as connection:
            yield connection


class StateStoreResource(dg.ConfigurableResource):
    """Connections, encrypted credentials and the event log (SQLite under
    BEDROCK_USAGE_HOME). Secrets never pass through Dagster config or metadata."""

    def get(self) -> StateStore:
        return StateStore()


def default_resources() -> dict[str, object]:
    return {
        "warehouse": WarehouseResource(database=str(warehouse_path())),
        "state_store": StateStoreResource(),
    }
