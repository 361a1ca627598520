"""Resources: the warehouse (DuckDB), the state store and the sync settings.

Every setting a run uses is a resource field, made from its one declaration in
`settings.py` (`Setting.field`). A setting present in the environment is an `EnvVar`
(the UI shows its name; it is read when a run starts); an absent one shows its default.
A launch's config or a test can pass values instead; either way the readers in
`settings.py` check them.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from .. import settings
from ..connections.store import StateStore
from ..storage.lake import ALIAS, Lake
from ..storage.warehouse import WriterLimits, open_lake_writer, open_warehouse, warehouse_target
from ..sync.regions import SyncOptions


class WarehouseResource(DuckDBResource):
    """The analysts' DuckDB file. Unlike the stock `get_connection`, `open_db` (and
    `get_connection`, for code written against dagster-duckdb) closes the handle even
    when the block raises (a leaked connection would keep the file locked),
    and a busy file is retried for BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS, then reported
    with what to do. The schema is created and migrated on first use.

    In a run, a DuckLake is opened once (its extensions loaded, its catalog attached, its
    schema checked: ≈0.7 CPU-s and a dozen PostgreSQL sessions) and each `open_db` is a
    cursor of it; the run's end closes it. A block that raises closes it too, so a broken
    catalog session is never reused. A DuckDB file is opened per block (≈0.02 s), since
    holding it would keep other writers out."""

    database: str = settings.WAREHOUSE.field(str)  # empty: $BEDROCK_USAGE_HOME's, at run time
    lock_timeout_seconds: str = settings.LOCK_TIMEOUT.field(str)
    memory_limit: str = settings.WAREHOUSE_MEMORY_LIMIT.field(str)
    threads: int = settings.WAREHOUSE_THREADS.field(int)

    @property
    def path(self) -> Path | Lake:
        """The file, or the DuckLake when BEDROCK_USAGE_LAKE_CATALOG is set."""
        return Path(self.database) if self.database else warehouse_target()

    def check(self) -> None:
        settings.lock_timeout_seconds(self.lock_timeout_seconds)
        self._limits().config()

    def _limits(self) -> WriterLimits:
        return WriterLimits(self.memory_limit, self.threads)

    _in_run: bool = PrivateAttr(default=False)
    _lake: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _lake_turn: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._in_run = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._in_run = False
        self._close_lake()

    @contextmanager
    def open_db(self) -> Iterator[duckdb.DuckDBPyConnection]:
        target = self.path
        if isinstance(target, Lake) and self._in_run:
            with self._lake_cursor(target) as db:
                yield db
            return
        timeout = settings.lock_timeout_seconds(self.lock_timeout_seconds)
        with open_warehouse(target, timeout=timeout, limits=self._limits()) as db:
            yield db

    @contextmanager
    def _lake_cursor(self, lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lake_turn:  # a block on another thread of the run waits, then shares
            if self._lake is None:
                self._lake = open_lake_writer(lake, self._limits())
            cursor = self._lake.cursor()
        try:
            cursor.execute(f"USE {ALIAS}")
            yield cursor
        except BaseException:
            cursor.close()
            self._close_lake()
            raise
        cursor.close()

    def _close_lake(self) -> None:
        with self._lake_turn:
            if self._lake is not None:
                self._lake.close()
                self._lake = None

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

    lookback_days: int = settings.LOOKBACK_DAYS.field(int)
    fleet_batch: int = settings.FLEET_BATCH.field(int)
    region_concurrency: int = settings.REGION_CONCURRENCY.field(int)
    reconcile_tolerance: str = settings.RECONCILE_TOLERANCE.field(str)
    extra_model_ids: str = settings.EXTRA_MODEL_IDS.field(str)

    def options(self) -> SyncOptions:
        return SyncOptions(
            region_concurrency=settings.region_concurrency(self.region_concurrency),
            extra_model_ids=tuple(settings.extra_model_ids(self.extra_model_ids)),
        )

    def lookback(self) -> int:
        return settings.lookback_days(self.lookback_days)

    def batch(self) -> int:
        return settings.fleet_batch(self.fleet_batch)

    def tolerance(self) -> float:
        return settings.reconcile_tolerance(self.reconcile_tolerance)

    def check(self) -> None:
        """Every field at once, before a run reads or writes anything."""
        self.options()
        self.lookback()
        self.batch()
        self.tolerance()


class PriceListResource(dg.ConfigurableResource):
    """Where list prices are read: AWS's public Price List offer files, or a mirror."""

    url: str = settings.PRICE_LIST_URL.field(str)

    def base_url(self) -> str:
        return settings.price_list_url(self.url)


def _configured(resource: type[dg.ConfigurableResource]):
    """`resource` with each field that carries a setting (`Setting.field`) an `EnvVar`
    when the environment sets that variable (the UI shows it by name, read when a run
    starts), else the field's own default."""
    values = {}
    for field_name, field in resource.model_fields.items():
        variable = (field.json_schema_extra or {}).get("variable")
        if variable and os.environ.get(variable, "").strip():
            integer = field.annotation is int
            values[field_name] = dg.EnvVar.int(variable) if integer else dg.EnvVar(variable)
    return resource(**values)


def default_resources() -> dict[str, object]:
    return {
        "warehouse": _configured(WarehouseResource),
        "state_store": StateStoreResource(),
        "price_list": _configured(PriceListResource),
        "sync_settings": _configured(SyncSettingsResource),
    }
