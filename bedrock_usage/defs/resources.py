"""Resources: the warehouse (DuckDB) and the state store."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from .. import settings
from ..connections.store import StateStore
from ..storage.warehouse import open_warehouse


class WarehouseResource(DuckDBResource):
    """The analysts' DuckDB file. Unlike the stock `get_connection`, the connection is
    closed even when the block raises (a leaked connection would keep the file locked),
    and a busy file is retried for BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS, then reported
    with what to do. The schema is created and migrated on first use."""

    database: str = Field(
        default="",
        description="The warehouse file (BEDROCK_USAGE_WAREHOUSE). Empty: "
        "$BEDROCK_USAGE_HOME/warehouse.duckdb, resolved when a run uses it.",
    )

    @property
    def path(self) -> Path:
        return Path(self.database) if self.database else settings.warehouse_path()

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_warehouse(self.path) as connection:
            yield connection


class StateStoreResource(dg.ConfigurableResource):
    """Connections, encrypted credentials and the event log (SQLite under
    BEDROCK_USAGE_HOME). Secrets never pass through Dagster config or metadata."""

    def get(self) -> StateStore:
        return StateStore()


def default_resources() -> dict[str, object]:
    return {
        # An EnvVar shows in the UI by name and is read when a run starts.
        "warehouse": WarehouseResource(
            database=dg.EnvVar("BEDROCK_USAGE_WAREHOUSE")
            if os.environ.get("BEDROCK_USAGE_WAREHOUSE")
            else ""
        ),
        "state_store": StateStoreResource(),
    }
