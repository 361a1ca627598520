"""The warehouse as a DuckLake: its catalog in PostgreSQL, its data files on S3 (any
S3-compatible endpoint) or in a folder, for a deployment whose runs share no disk.

Selected by BEDROCK_USAGE_LAKE_CATALOG (a postgresql:// URL) and
BEDROCK_USAGE_LAKE_DATA_PATH. A connection is an in-memory DuckDB with the lake
attached as `warehouse` and made the default catalog, so every query of the file
warehouse runs unchanged. There is no file lock: runs for different connections write
at the same time and analysts attach the lake read-only while they do; DuckLake's
snapshots give each reader a consistent view. Two writers that replace windows of the
same table conflict at commit, so writes go through `retrying`; two writers of the same
connection take turns (`connection_turn`), since over days with no rows both would only
append, which DuckLake does not refuse.

The S3 credentials are the runtime's own (boto3's standard chain: the environment, the
ECS task role, the pod's role ...), never a connection's. The extensions load from the
`duckdb-extension-*` wheels when installed (offline), else DuckDB installs them.
"""

from __future__ import annotations

import importlib
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import duckdb

from ..errors import UserError
from ..frames import literal
from ..settings import lake_catalog, lake_data_path, redacted_url

ALIAS = "warehouse"
EXTENSIONS = ("ducklake", "postgres_scanner", "httpfs")
T = TypeVar("T")


@dataclass(frozen=True)
class Lake:
    catalog: str  # a postgresql:// URL
    data_path: str  # s3://bucket/prefix/ or a folder

    def __str__(self) -> str:
        return f"the DuckLake {redacted_url(self.catalog)} (data in {self.data_path})"

    def attach_sql(self, read_only: bool = False) -> str:
        """The ATTACH statement an analyst runs too (after LOAD ducklake and an S3
        secret); it holds no password of its own beyond what the URL has."""
        options = [f"DATA_PATH {literal(self.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        return (
            f"ATTACH {literal('ducklake:postgres:' + self.catalog)} AS {ALIAS} "
            f"({', '.join(options)})"
        )


def is_lake(db: duckdb.DuckDBPyConnection) -> bool:
    """The connection's default catalog is a DuckLake (not a DuckDB file)."""
    return (
        db.execute(
            "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()[0]
        == "ducklake"
    )


def configured_lake() -> Lake | None:
    catalog = lake_catalog()
    return Lake(catalog, lake_data_path()) if catalog else None


def open_lake(lake: Lake, read_only: bool, config: dict[str, object]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with `lake` attached as the default catalog."""
    if all(_wheel_extension(name) for name in EXTENSIONS):
        # DuckDB checks an extension's signature by hashing the whole file: 98 MB and
        # 0.36 CPU-s for these three, on every run. They are the pinned wheels installed
        # beside DuckDB itself (pip checked them as it checked DuckDB), and nothing else
        # is loaded on this connection. Without the wheels, INSTALL downloads them and
        # the check stays.
        config = {**config, "allow_unsigned_extensions": True}
    db = duckdb.connect(config=config)
    try:
        load_extensions(db)
        if lake.data_path.startswith("s3://"):
            create_s3_secret(db)
        try:
            db.execute(lake.attach_sql(read_only))
        except duckdb.Error as error:
            reason = str(error).replace(lake.catalog, redacted_url(lake.catalog))
            raise UserError(
                f"Could not attach {lake}: {reason}. Check that the catalog database is up "
                "and the URL's user may connect (BEDROCK_USAGE_LAKE_CATALOG), and that this "
                "runtime may read and write the data path (BEDROCK_USAGE_LAKE_DATA_PATH)."
            ) from None
        db.execute(f"USE {ALIAS}")
    except BaseException:
        db.close()
        raise
    return db


def load_extensions(db: duckdb.DuckDBPyConnection) -> None:
    for name in EXTENSIONS:
        path = _wheel_extension(name)
        if path is None:
            db.execute(f"INSTALL {name}")
            db.execute(f"LOAD {name}")
        else:
            db.execute(f"LOAD {literal(str(path))}")


@cache
def _wheel_extension(name: str) -> Path | None:
    try:
        package = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        return None
    path = (
        Path(package.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / f"{name}.duckdb_extension"
    )
    return path if path.exists() else None


def create_s3_secret(db: duckdb.DuckDBPyConnection) -> None:
    """A DuckDB secret from the runtime's AWS credentials (boto3's chain), and its
    endpoint when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL names one."""
    import boto3

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise UserError(
            "The lake's data path is on S3 but this runtime has no AWS credentials: give "
            "it a role (ECS task role, IRSA) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        )
    frozen = credentials.get_frozen_credentials()
    options = {
        "TYPE": "s3",
        "KEY_ID": frozen.access_key,
        "SECRET": frozen.secret_key,
        "REGION": session.region_name or "us-east-1",
    }
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(
            ENDPOINT=parsed.netloc,
            URL_STYLE="path",
            USE_SSL="true" if parsed.scheme == "https" else "false",
        )
    body = ", ".join(
        f"{key} {value if key in ('TYPE', 'USE_SSL') else literal(value)}"
        for key, value in options.items()
    )
    db.execute(f"CREATE OR REPLACE TEMPORARY SECRET bedrock_usage_lake ({body})")


def retrying(work: Callable[[], T], attempts: int = 8) -> T:
    """Run `work` (one transaction) again when DuckLake refuses its commit because
    another writer changed the same table first; any other error, or the last
    conflict, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except duckdb.TransactionException as error:
            if "conflict" not in str(error).lower() or attempt == attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file, or a lake connection's write turn, for
    longer than we wait."""


@contextmanager
def advisory_lock(lake: Lake, key: str, timeout: float, busy: str = "") -> Iterator[None]:
    """A PostgreSQL advisory lock in the lake's catalog, held by a session of its own: a
    killed holder's session ends with its process, and the lock with it."""
    import psycopg2

    try:
        session = psycopg2.connect(lake.catalog, connect_timeout=10)
    except psycopg2.Error as error:
        reason = str(error).strip().replace(lake.catalog, redacted_url(lake.catalog))
        raise UserError(
            f"Could not attach {lake}: {reason}. Check that the catalog database is up "
            "and the URL's user may connect (BEDROCK_USAGE_LAKE_CATALOG)."
        ) from None
    try:
        session.autocommit = True
        deadline = time.monotonic() + timeout
        with session.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
                if cursor.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    raise WarehouseBusyError(
                        busy or f"{lake} stayed busy ({key}) for over {timeout:.0f} s."
                    )
                time.sleep(0.2)
        yield
    finally:
        session.close()  # ends the session, and its advisory lock with it


def connection_turn(lake: Lake, connection_id: str, timeout: float):
    """Hold the lake's write turn for one connection. Writers of other connections
    never wait."""
    return advisory_lock(
        lake,
        f"bedrock_usage.connection:{connection_id}",
        timeout,
        busy=f"Another run kept writing connection '{connection_id}' in {lake} for over "
        f"{timeout:.0f} s, so this one wrote nothing. Let it finish (or fail it in the "
        "Dagster UI), then sync again; BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS sets how long to wait.",
    )
