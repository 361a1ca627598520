"""The warehouse as a DuckLake: its catalog in a real PostgreSQL server (pgserver), its
data files on the emulator's S3 (moto), DuckDB's extensions loaded from their wheels,
offline."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from functools import partial

import boto3
import duckdb
import pandas as pd
import pytest

from bedrock_usage.days import DayRange
from bedrock_usage.errors import UserError
from bedrock_usage.memory import shed_cache
from bedrock_usage.storage.lake import (
    Lake,
    WarehouseBusyError,
    configured_lake,
    create_s3_secret,
    load_extensions,
)
from bedrock_usage.storage.schema import LAKE_BASELINE_VERSION, MIGRATIONS
from bedrock_usage.storage.warehouse import (
    atomically,
    open_warehouse,
    rebuild_usage,
    replace_datapoints,
    transaction,
)

from .cli_helpers import run_cli, run_cli_in_process
from .conftest import ACCOUNT, days_ago, postgres_sessions, seed_daily

LAKE_ACCOUNT = ACCOUNT
S3_WRITER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
TABLES = (
    "bedrock_prices",
    "bedrock_usage_daily",
    "bedrock_usage_daily_by_project",
    "cloudwatch_daily_datapoints",
)
D1, D2 = date(2026, 11, 1), date(2026, 11, 2)
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
USAGE_QUERY = (
    "SELECT usage_date, model_id, input_tokens FROM bedrock_usage_daily ORDER BY usage_date, "
    "input_tokens DESC"
)


@pytest.fixture
def lake(aws, postgres_server, monkeypatch):
    """A new lake: an empty catalog database and an empty bucket; the runtime's AWS
    credentials (the environment's) may use S3 and nothing else."""
    writer = aws.create_reader(LAKE_ACCOUNT, "lake-writer", policy=S3_WRITER)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", writer.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", writer.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.Session().client("s3").create_bucket(Bucket=bucket)
    catalog = f"lake_{uuid.uuid4().hex[:10]}"
    postgres_server.psql(f"CREATE DATABASE {catalog};")
    monkeypatch.setenv("BEDROCK_USAGE_LAKE_CATALOG", postgres_server.get_uri(catalog))
    monkeypatch.setenv("BEDROCK_USAGE_LAKE_DATA_PATH", f"s3://{bucket}/usage/")
    return configured_lake()


def _layout(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute(
        "SELECT table_name, column_name, data_type, is_nullable "
        "FROM information_schema.columns WHERE table_catalog = current_database() "
        f"AND table_name IN {TABLES} ORDER BY table_name, ordinal_position"
    ).fetchall()


def test_a_new_lake_has_the_layout_the_migrations_give_a_file(lake, tmp_path):
    with open_warehouse(tmp_path / "file.duckdb") as file:
        expected = _layout(file)
    with open_warehouse(lake) as connection:
        assert _layout(connection) == expected
        # The baseline, then each migration released after it.
        versions = connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        later = [(v,) for v, _ in MIGRATIONS if v > LAKE_BASELINE_VERSION]
        assert versions == [(LAKE_BASELINE_VERSION,), *later]
        assert connection.execute("SELECT count(*) FROM bedrock_prices").fetchone()[0] > 300
    with open_warehouse(lake) as connection:  # opening again applies nothing twice
        assert connection.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(
            versions
        )
    bucket = lake.data_path.split("/")[2]
    objects = boto3.Session().client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert objects and all(o["Key"].startswith("usage/") for o in objects)


def _points(tokens: int) -> pd.DataFrame:
    return pd.DataFrame(
        [(D1, "a.model-v1", "InputTokenCount", "Sum", float(tokens)),
         (D2, "a.model-v1", "InputTokenCount", "Sum", float(tokens + 1))],
        columns=["usage_date", "model_id", "metric_name", "statistic", "value"],
    )  # fmt: skip


def _all_at_once(work: list) -> None:
    """Start each callable in a thread of its own, together, and wait for all."""
    threads = [threading.Thread(target=w) for w in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_writers_replace_windows_of_the_same_tables_at_once(lake):
    """Two runs for different connections write at the same time: DuckLake refuses the
    second commit, which runs again whole, and both windows are kept exactly once."""
    both_inside = threading.Barrier(2, timeout=60)
    attempts = {"acme": 0, "globex": 0}
    errors = []

    def sync(connection_id: str, tokens: int, together: bool = True) -> None:
        with open_warehouse(lake) as connection:

            def write() -> None:
                attempts[connection_id] += 1
                replace_datapoints(
                    connection, connection_id, LAKE_ACCOUNT, "us-east-1",
                    DayRange(D1, D2), _points(tokens), datetime(2026, 11, 3),
                )  # fmt: skip
                rebuild_usage(connection, connection_id, DayRange(D1, D2))
                if together and attempts[connection_id] == 1:
                    both_inside.wait()  # both hold uncommitted writes

            try:
                atomically(connection, write)
            except Exception as error:  # noqa: BLE001 - asserted below
                errors.append(error)

    for connection_id in attempts:  # earlier syncs: the windows hold rows to replace
        sync(connection_id, 1, together=False)
        attempts[connection_id] = 0
    _all_at_once([partial(sync, "acme", 10), partial(sync, "globex", 20)])
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # one commit was refused and retried
    with open_warehouse(lake, read_only=True) as connection:
        rows = connection.execute(
            "SELECT connection_id, usage_date, input_tokens FROM bedrock_usage_daily ORDER BY ALL"
        ).fetchall()
    assert rows == [
        ("acme", D1, 10), ("acme", D2, 11), ("globex", D1, 20), ("globex", D2, 21),
    ]  # fmt: skip


def test_an_analyst_attaches_the_lake_while_a_writer_commits(lake):
    with open_warehouse(lake) as connection, transaction(connection):
        replace_datapoints(
            connection, "acme", LAKE_ACCOUNT, "us-east-1", DayRange(D1, D2), _points(10),
            datetime(2026, 11, 3),
        )  # fmt: skip
        rebuild_usage(connection, "acme", DayRange(D1, D2))
    analyst = duckdb.connect()
    load_extensions(analyst)
    create_s3_secret(analyst)
    analyst.execute(lake.attach_sql(read_only=True))
    query = "SELECT sum(input_tokens)::BIGINT FROM warehouse.bedrock_usage_daily"
    assert analyst.execute(query).fetchone() == (21,)
    with open_warehouse(lake) as connection, transaction(connection):  # not blocked
        replace_datapoints(
            connection, "acme", LAKE_ACCOUNT, "us-east-1", DayRange(D1, D2), _points(100),
            datetime(2026, 11, 4),
        )  # fmt: skip
        rebuild_usage(connection, "acme", DayRange(D1, D2))
    assert analyst.execute(query).fetchone() == (201,)  # the next query sees the commit
    analyst.close()


def _lake_env() -> dict[str, str]:
    names = (
        "BEDROCK_USAGE_LAKE_CATALOG", "BEDROCK_USAGE_LAKE_DATA_PATH", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
    )  # fmt: skip
    return {name: os.environ[name] for name in names}


@pytest.mark.e2e
def test_the_cli_syncs_into_the_lake_and_moves_a_local_warehouse_into_one(
    lake, aws, reader, home, postgres_server, monkeypatch
):
    day = days_ago(2)
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1200, day + timedelta(days=1): 800})
    seed_daily(aws, "InputTokenCount", None, {day: 1500, day + timedelta(days=1): 800})
    local = {"BEDROCK_USAGE_LAKE_CATALOG": "", "BEDROCK_USAGE_LAKE_DATA_PATH": ""}
    connected = run_cli_in_process(
        ["connect", "prod", "--account-id", reader.account_id, "--regions", "us-east-1",
         "--access-key-id", reader.access_key_id, "--backfill-days", "5"],
        home, aws.endpoint_url, reader.secret_access_key + "\n", local,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as file:
        expected = file.execute(USAGE_QUERY).fetchall()
    assert expected == [(day, HAIKU, 1200), (day, "(unattributed)", 300),
                        (day + timedelta(days=1), HAIKU, 800)]  # fmt: skip

    moved = run_cli(["lake", "import"], home, aws.endpoint_url, None, _lake_env())
    assert moved.returncode == 0, moved.stderr
    assert "bedrock_usage_daily: 3 rows" in moved.stdout and "match" in moved.stdout
    with open_warehouse(lake, read_only=True) as connection:
        assert connection.execute(USAGE_QUERY).fetchall() == expected
    again = run_cli(["lake", "import"], home, aws.endpoint_url, None, _lake_env())
    assert again.returncode == 1 and "already holds usage" in again.stderr

    # From now on the CLI reads and writes the lake: a sync replaces its window there,
    # and no warehouse file is written.
    (home / "warehouse.duckdb").rename(home / "moved-aside.duckdb")
    (home / "warehouse.snapshot.duckdb").unlink()
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 50})  # late data: 1,250 in all
    opened, _ = postgres_sessions(lake.catalog)
    synced = run_cli(
        ["sync", "prod", "--start", str(day), "--end", str(day)],
        home, aws.endpoint_url, None, _lake_env(),
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    # The run opened the lake once (its catalog sessions, the setup and write turns),
    # not once per step and region.
    lake_sessions = postgres_sessions(lake.catalog)[0] - opened
    assert lake_sessions <= 6, lake_sessions
    with open_warehouse(lake, read_only=True) as connection:
        assert connection.execute(USAGE_QUERY).fetchall() == [
            (day, HAIKU, 1250), (day, "(unattributed)", 250), (day + timedelta(days=1), HAIKU, 800),
        ]  # fmt: skip
    assert not (home / "warehouse.duckdb").exists()
    assert not (home / "warehouse.snapshot.duckdb").exists()
    # The ownership map lives in the lake too, and analysts group by owner there.
    owned = run_cli(["owners", "set", "--team", "search", "--connection", "prod"],
                    home, aws.endpoint_url, None, _lake_env())  # fmt: skip
    assert owned.returncode == 0, owned.stderr
    with open_warehouse(lake, read_only=True) as connection:
        assert connection.execute(
            "SELECT team, owner_source, sum(input_tokens)::BIGINT FROM "
            "bedrock_usage_daily_by_owner GROUP BY ALL"
        ).fetchall() == [("search", "map", 1250 + 250 + 800)]
        assert connection.execute("SELECT count(*) FROM bedrock_owner_tag_keys").fetchone() == (1,)


def test_an_unreachable_catalog_says_what_to_check_without_its_password(tmp_path):
    lake = Lake("postgresql://bedrock:hunter2@127.0.0.1:1/lake", f"{tmp_path}/data/")
    with pytest.raises(UserError) as raised:
        with open_warehouse(lake):
            pass
    message = str(raised.value)
    assert "hunter2" not in message and "bedrock:***@127.0.0.1:1" in message
    assert "BEDROCK_USAGE_LAKE_CATALOG" in message


def test_shedding_the_cache_leaves_a_lake_connection_alone(lake, tmp_path, monkeypatch):
    # A lake's DuckDB is in memory: lowering its memory_limit would write its own tables
    # to a temp directory in the working directory.
    monkeypatch.chdir(tmp_path)
    with open_warehouse(lake) as con:
        con.execute("CREATE TABLE memory.main.t AS SELECT range AS r FROM range(1000000)")
        shed_cache(con)
        assert not (tmp_path / ".tmp").exists()
        assert con.execute("SELECT count(*) FROM memory.main.t").fetchone()[0] == 1_000_000


@pytest.mark.parametrize("stored_before", [False, True], ids=["empty-days", "stored-days"])
def test_two_writers_of_one_connection_never_double_a_day(lake, stored_before):
    """Two syncs of the same connection at once (a backfill beside the schedule): over
    days with no rows both would only append, which DuckLake does not refuse. They take
    turns, so every day is exact, round after round."""
    rounds = int(os.environ.get("BEDROCK_USAGE_TEST_ROUNDS", "2"))
    errors = []

    def sync(tokens: int) -> None:
        with open_warehouse(lake) as connection:

            def write() -> None:
                replace_datapoints(
                    connection, "acme", LAKE_ACCOUNT, "us-east-1",
                    DayRange(D1, D2), _points(tokens), datetime(2026, 11, 3),
                )  # fmt: skip
                rebuild_usage(connection, "acme", DayRange(D1, D2))
                time.sleep(0.3)  # the other writer is surely inside by now

            try:
                atomically(connection, write, connection_id="acme")
            except Exception as error:  # noqa: BLE001 - asserted below
                errors.append(error)

    for round_ in range(rounds):
        with open_warehouse(lake) as connection:
            purge_days = "DELETE FROM {} WHERE connection_id = 'acme'"
            for table in ("cloudwatch_daily_datapoints", "bedrock_usage_daily"):
                connection.execute(purge_days.format(table))
        if stored_before:
            sync(1)
        _all_at_once([partial(sync, 10)] * 2)
        assert errors == []
        with open_warehouse(lake, read_only=True) as connection:
            usage = connection.execute(
                "SELECT usage_date, input_tokens FROM bedrock_usage_daily ORDER BY ALL"
            ).fetchall()
            points = connection.execute(
                "SELECT count(*) FROM cloudwatch_daily_datapoints"
            ).fetchone()[0]
        assert (usage, points) == ([(D1, 10), (D2, 11)], 2), f"round {round_}"


def test_writers_first_using_a_new_lake_at_once_set_it_up_once(lake):
    errors = []

    def first_use() -> None:
        try:
            with open_warehouse(lake) as connection:
                connection.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()
        except Exception as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    _all_at_once([first_use] * 3)
    assert errors == []
    with open_warehouse(lake, read_only=True) as connection:
        versions = connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert versions == [(LAKE_BASELINE_VERSION,)] + [
        (v,) for v, _ in MIGRATIONS if v > LAKE_BASELINE_VERSION
    ]


# A writer in a process of its own: it takes connection acme's turn, writes its window
# inside the transaction, says so, and waits there to be killed.
_WRITER_HELD_INSIDE = """
import sys, time
from datetime import datetime
from bedrock_usage.days import DayRange
from bedrock_usage.storage.lake import configured_lake
from bedrock_usage.storage.warehouse import atomically, open_warehouse, replace_datapoints
import pandas as pd

D1, D2 = datetime(2026, 11, 1).date(), datetime(2026, 11, 2).date()
POINTS = pd.DataFrame(
    [(D1, "a.model-v1", "InputTokenCount", "Sum", 1000.0)],
    columns=["usage_date", "model_id", "metric_name", "statistic", "value"],
)

def write():
    replace_datapoints(db, "acme", sys.argv[1], "us-east-1", DayRange(D1, D2), POINTS,
                       datetime(2026, 11, 3))
    print("inside", flush=True)
    time.sleep(600)

with open_warehouse(configured_lake()) as db:
    atomically(db, write, connection_id="acme")
"""


@pytest.mark.e2e
def test_a_writer_killed_while_it_holds_its_turn_leaves_no_rows_and_frees_the_turn(
    lake, monkeypatch
):
    """kill -9 of a lake writer inside its window: its PostgreSQL session ends with the
    process, so the connection's turn is free again and nothing it wrote was committed."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER_HELD_INSIDE, LAKE_ACCOUNT],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "inside"
        monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "1")
        with open_warehouse(lake) as db, pytest.raises(WarehouseBusyError, match="'acme'"):
            atomically(db, lambda: None, connection_id="acme")  # the turn is held
    finally:
        writer.kill()
        writer.wait()
    # Were the turn still held, this would wait the full minute and fail as busy.
    monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "60")
    with open_warehouse(lake) as db:
        atomically(db, lambda: _write_window(db, 10), connection_id="acme")
    with open_warehouse(lake, read_only=True) as db:
        usage = db.execute(
            "SELECT usage_date, input_tokens FROM bedrock_usage_daily ORDER BY ALL"
        ).fetchall()
        points = db.execute("SELECT sum(value) FROM cloudwatch_daily_datapoints").fetchone()[0]
    assert (usage, points) == ([(D1, 10), (D2, 11)], 21)


def _write_window(db: duckdb.DuckDBPyConnection, tokens: int) -> None:
    replace_datapoints(
        db, "acme", LAKE_ACCOUNT, "us-east-1", DayRange(D1, D2), _points(tokens),
        datetime(2026, 11, 3),
    )  # fmt: skip
    rebuild_usage(db, "acme", DayRange(D1, D2))
