"""deploy/: the team deployment's Dagster instance on a real PostgreSQL server."""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import sqlalchemy
import yaml
from cryptography.fernet import Fernet
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster._serdes.config_class import class_from_code_pointer

from bedrock_usage.days import DayRange
from bedrock_usage.defs.postgres_storage import PooledPostgresStorage

from .cli_helpers import run_cli, run_cli_in_process
from .conftest import days_ago, postgres_sessions, seed_daily

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize("folder", [".", "ecs"])
def test_the_instance_configurations_load_against_dagsters_schema(folder, monkeypatch):
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://dagster@db.internal/dagster")
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", "team-dagster-logs")
    config, _ = dagster_instance_config(str(DEPLOY / folder))
    storage = config["storage"]["custom"]
    assert storage["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert class_from_code_pointer(storage["module"], storage["class"]) is PooledPostgresStorage
    assert validate_config(PooledPostgresStorage.config_type(), storage["config"]).success
    assert config["run_monitoring"]["enabled"] is True
    assert config["concurrency"]["pools"]["default_limit"] == 4  # the lake takes writers at once
    for part in ("run_launcher", "run_coordinator", "compute_logs"):
        configured = class_from_code_pointer(config[part]["module"], config[part]["class"])
        checked = validate_config(configured.config_type(), config[part].get("config", {}))
        assert checked.success, (part, checked.errors)


def test_the_workspace_loads_the_code_server_against_dagsters_schema(monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_CODE_SERVER_HOST", "code-server.internal")
    monkeypatch.setenv("BEDROCK_USAGE_CODE_SERVER_PORT", "4000")
    path = DEPLOY / "workspace.yaml"
    loaded = ensure_workspace_config(yaml.safe_load(path.read_text()), str(path))
    [server] = loaded["load_from"]
    assert server["grpc_server"]["location_name"] == "bedrock_usage"


@pytest.fixture
def deployed_instance(postgres_url, tmp_path, monkeypatch) -> dg.DagsterInstance:
    """A Dagster instance as the deployment configures it (deploy/dagster.yaml), on the
    test server; the test disposes of it."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
    return dg.DagsterInstance.get()


def test_the_deployments_dagster_storage_keeps_a_few_sessions_and_closes_them(
    postgres_url, deployed_instance
):
    """Dagster's PostgreSQL storage connects per call; the deployment's keeps a session
    per store, survives the server ending them, and closes them with the instance."""
    try:
        deployed_instance.get_runs(limit=1)
        before, _ = postgres_sessions(postgres_url)
        for n in range(20):
            deployed_instance.add_dynamic_partitions("connection", [f"c{n}"])
            assert deployed_instance.has_dynamic_partition("connection", f"c{n}")
            deployed_instance.get_runs(limit=1)
        after, live = postgres_sessions(postgres_url)
        assert after - before <= 3 and 1 <= len(live) <= 3  # not 60

        with closing(psycopg2.connect(postgres_url)) as admin, admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE pid = ANY(%s)", [live])  # fmt: skip
        assert deployed_instance.get_dynamic_partitions("connection")[:2] == ["c0", "c1"]
    finally:
        deployed_instance.dispose()
    assert postgres_sessions(postgres_url)[1] == []


def test_the_deployments_dagster_storage_asks_the_catalog_once_per_schema_check(
    deployed_instance,
):
    """Dagster checks its schema before every asset write and read; a check once found
    true is not asked of PostgreSQL again, one found false is asked each time (a migration
    may add what it asks for)."""
    statements: list[str] = []
    event_log = deployed_instance.event_log_storage
    sqlalchemy.event.listen(
        event_log._engine,  # noqa: SLF001
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    try:
        for n in range(3):
            deployed_instance.report_runless_asset_event(
                dg.AssetMaterialization("usage", partition=f"{n}", tags={"connection": "c"})
            )
            assert deployed_instance.get_asset_records([dg.AssetKey("usage")])
            catalog = [s for s in statements if "pg_catalog" in s]
            assert (catalog == []) == (n > 0)  # asked by the first write and read only
            assert any(s.startswith("INSERT INTO event_logs") for s in statements)
            statements.clear()
        assert (
            len(deployed_instance.fetch_materializations(dg.AssetKey("usage"), limit=10).records)
            == 3
        )

        assert not event_log.has_table("no_such_table")
        assert not event_log.has_table("no_such_table")
        assert len([s for s in statements if "pg_catalog" in s]) == 2
    finally:
        deployed_instance.dispose()


@pytest.mark.e2e
def test_a_cli_sync_runs_on_the_postgres_instance(
    aws, reader, home, tmp_path, postgres_url, postgres_server
):
    """The CLI's runs go to the deployment's instance: runs, events and pool slots in
    PostgreSQL, nothing of Dagster's on the local disk but the config file. The state
    store is a PostgreSQL database too, with the key from the environment: no state file
    and no key file is written, and disconnect deletes the secret there."""
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    postgres_server.psql("CREATE DATABASE bedrock_state_cli;")
    state_url = postgres_server.get_uri("bedrock_state_cli")
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_URL": postgres_url,
        "BEDROCK_USAGE_STATE_URL": state_url,
        "BEDROCK_USAGE_SECRET_KEY": Fernet.generate_key().decode(),
    }
    day = days_ago(1)
    seed_daily(aws, "Invocations", HAIKU, {day: 5})
    seed_daily(aws, "Invocations", None, {day: 5})
    connected = run_cli_in_process(
        ["connect", "prod", "--account-id", reader.account_id, "--regions", "us-east-1",
         "--access-key-id", reader.access_key_id, "--no-sync"],
        home, aws.endpoint_url, reader.secret_access_key + "\n", env,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    window = DayRange(day, day)
    synced = run_cli(
        ["sync", "prod", "--start", str(window.first), "--end", str(window.last)],
        home, aws.endpoint_url, None, env,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    with psycopg2.connect(postgres_url) as db, db.cursor() as cursor:
        cursor.execute("SELECT pipeline_name, status FROM runs")
        assert cursor.fetchall() == [("bedrock_usage_sync", "SUCCESS")]
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
        assert cursor.fetchone() == (3,)  # data points, usage, cost for the one day
    assert sorted(p.name for p in dagster_home.iterdir()) == ["dagster.yaml"]
    assert not (home / "state.sqlite3").exists() and not (home / "secret.key").exists()
    with psycopg2.connect(state_url) as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connections WHERE secret_ciphertext LIKE 'gAAAA%'")
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT outcome FROM events WHERE action = 'sync' ORDER BY event_id")
        assert "ok" in [outcome for (outcome,) in cursor.fetchall()]
    gone = run_cli(["disconnect", "prod"], home, aws.endpoint_url, None, env)
    assert gone.returncode == 0, gone.stderr
    assert "postgresql://" in gone.stdout
    with psycopg2.connect(state_url) as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connections")
        assert cursor.fetchone() == (0,)
