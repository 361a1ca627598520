"""Resources: the warehouse (DuckDB), the state store and the sync settings.

Every setting a run uses is a resource field. A setting present in the environment is
an `EnvVar` (the UI shows its name; it is read when a run starts); an absent one shows
its default. A launch's config or a test can pass values instead; either way the
readers in `settings.py` check them.
"""

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from .. import settings
from ..connections.store import StateStore
from ..storage.lake import Lake
from ..storage.warehouse import WriterLimits, open_warehouse, warehouse_target
from ..sync.regions import SyncOptions


class WarehouseResource(DuckDBResource):
    """The analysts' DuckDB file. Unlike the stock `get_connection`, `open_db` (and
    `get_connection`, for code written against dagster-duckdb) closes the handle even
    when the block raises (a leaked connection would keep the file locked),
    and a busy file is retried for BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS, then reported
    with what to do. The schema is created and migrated on first use."""

    database: str = Field(
        default="",
        description="The warehouse file (BEDROCK_USAGE_WAREHOUSE). Empty: "
        "$BEDROCK_USAGE_HOME/warehouse.duckdb, resolved when a run uses it.",
    )
    lock_timeout_seconds: str = Field(
        default=str(settings.DEFAULT_LOCK_TIMEOUT_SECONDS),
        description="Seconds a write waits for a busy warehouse file "
        "(BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS, 0-86400).",
    )

    memory_limit: str = Field(
        default=settings.DEFAULT_WAREHOUSE_MEMORY_LIMIT,
        description="DuckDB's memory_limit while a run writes "
        "(BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT, e.g. 256MB or 2GB; more spills to disk).",
    )
    threads: int = Field(
        default=settings.DEFAULT_WAREHOUSE_THREADS,
        description="DuckDB's threads while a run writes (BEDROCK_USAGE_WAREHOUSE_THREADS).",
    )

    @property
    def path(self) -> Path | Lake:
        """The file, or the DuckLake when BEDROCK_USAGE_LAKE_CATALOG is set."""
        return Path(self.database) if self.database else warehouse_target()

    def check(self) -> None:
        settings.lock_timeout_seconds(self.lock_timeout_seconds)
        self._limits().config()

    def _limits(self) -> WriterLimits:
        return WriterLimits(self.memory_limit, self.threads)

    @contextmanager
    def open_db(self) -> Iterator[duckdb.DuckDBPyConnection]:
        timeout = settings.lock_timeout_seconds(self.lock_timeout_seconds)
        with open_warehouse(self.path, timeout=timeout, limits=self._limits()) as db:
            yield db

    def get_connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self.open_db()


class StateStoreResource(dg.ConfigurableResource):
    """Connections, encrypted credentials and the event log (SQLite under
    BEDROCK_USAGE_HOME). Secrets never pass through Dagster config or metadata."""

    def get(self) -> StateStore:
        return StateStore()


class SyncSettingsResource(dg.ConfigurableResource):
    """How a sync reads CloudWatch and judges what it read. Numbers are checked when a
    run uses them: a bad value fails the run with the setting named."""

    lookback_days: int = Field(
        default=settings.DEFAULT_LOOKBACK_DAYS,
        description="Days before yesterday the schedule re-reads for late data "
        "(BEDROCK_USAGE_LOOKBACK_DAYS, 0-60).",
    )
    region_concurrency: int = Field(
        default=settings.DEFAULT_REGION_CONCURRENCY,
        description="Regions of a connection read at the same time, each with its own "
        "client (BEDROCK_USAGE_REGION_CONCURRENCY, 1-32).",
    )
    reconcile_tolerance: str = Field(
        default=str(settings.DEFAULT_RECONCILE_TOLERANCE),
        description="Share by which models and the region total may differ before the "
        "totals_reconcile check warns (BEDROCK_USAGE_RECONCILE_TOLERANCE, 0-1).",
    )
    extra_model_ids: str = Field(
        default="",
        description="Comma-separated model ids read in every region although no listing "
        "shows them (BEDROCK_USAGE_EXTRA_MODEL_IDS).",
    )

    def options(self) -> SyncOptions:
        return SyncOptions(
            region_concurrency=settings.region_concurrency(self.region_concurrency),
            extra_model_ids=tuple(settings.extra_model_ids(self.extra_model_ids)),
        )

    def lookback(self) -> int:
        return settings.lookback_days(self.lookback_days)

    def tolerance(self) -> float:
        return settings.reconcile_tolerance(self.reconcile_tolerance)

    def check(self) -> None:
        """Every field at once, before a run reads or writes anything."""
        self.options()
        self.lookback()
        self.tolerance()


class PriceListResource(dg.ConfigurableResource):
    """Where list prices are read: AWS's public Price List offer files, or a mirror."""

    url: str = Field(
        default=settings.DEFAULT_PRICE_LIST_URL,
        description="Base URL of the offer files (BEDROCK_USAGE_PRICE_LIST_URL).",
    )

    def base_url(self) -> str:
        return settings.price_list_url(self.url)


def _configured(resource: type[dg.ConfigurableResource], **variables: str):
    """`resource` with each field named in `variables` an `EnvVar` when the environment
    sets that variable (the UI shows it by name, read when a run starts), else the
    field's own default."""
    values = {}
    for field_name, variable in variables.items():
        if os.environ.get(variable, "").strip():
            integer = resource.model_fields[field_name].annotation is int
            values[field_name] = dg.EnvVar.int(variable) if integer else dg.EnvVar(variable)
    return resource(**values)


def default_resources() -> dict[str, object]:
    return {
        "warehouse": _configured(
            WarehouseResource,
            database="BEDROCK_USAGE_WAREHOUSE",
            lock_timeout_seconds="BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS",
            memory_limit="BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT",
            threads="BEDROCK_USAGE_WAREHOUSE_THREADS",
        ),
        "state_store": StateStoreResource(),
        "price_list": _configured(PriceListResource, url="BEDROCK_USAGE_PRICE_LIST_URL"),
        "sync_settings": _configured(
            SyncSettingsResource,
            lookback_days="BEDROCK_USAGE_LOOKBACK_DAYS",
            region_concurrency="BEDROCK_USAGE_REGION_CONCURRENCY",
            reconcile_tolerance="BEDROCK_USAGE_RECONCILE_TOLERANCE",
            extra_model_ids="BEDROCK_USAGE_EXTRA_MODEL_IDS",
        ),
    }
