"""A team deployment as separate processes that share nothing but PostgreSQL (Dagster's
instance, the state store, the DuckLake's catalog) and S3 (the lake's data files, on
the emulator): a gRPC code server, the daemon, the webserver, runs launched by the
daemon in processes of their own, and an analyst's process attached to the lake while
they write. Each process has a home folder of its own, and none of them is written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import boto3
import psycopg2
import pytest
from cryptography.fernet import Fernet
from dagster_graphql import DagsterGraphQLClient

from bedrock_usage.days import DayRange
from bedrock_usage.defs.partitions import range_tags
from bedrock_usage.storage.lake import configured_lake
from bedrock_usage.storage.warehouse import open_warehouse

from .cli_helpers import CLI
from .conftest import OTHER_ACCOUNT, days_ago, seed_daily
from .dagster_helpers import connect
from .test_e2e_dagster_dev import _free_port, stop_process_groups
from .waiting import patient, port_open
from .waiting import wait_for as _wait

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(CLI).parent
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ANALYST = """
import os, sys, time, duckdb
from bedrock_usage.storage.lake import configured_lake, create_s3_secret, load_extensions

stop = sys.argv[1]  # the test creates this file when the runs are done
queries = errors = 0
con = duckdb.connect()
load_extensions(con)
create_s3_secret(con)
attached = False
deadline = time.monotonic() + 600
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        if not attached:
            con.execute(configured_lake().attach_sql(read_only=True))
            attached = True
        con.execute("SELECT count(*), sum(invocations) FROM warehouse.bedrock_usage_daily")
        queries += 1
    except (duckdb.CatalogException, duckdb.BinderException):
        pass  # no sync has created the lake's tables yet
    except Exception as error:
        if attached:
            errors += 1
            print(repr(error), file=sys.stderr)
        # else: the first run has not initialised the lake yet
    time.sleep(0.2)
print(queries, errors)
"""
S3_WRITER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def _home_env(home: Path) -> dict[str, str]:
    return {"BEDROCK_USAGE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}


def _runs(url: str) -> list[tuple]:
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT r.run_id, r.status, r.start_time, r.end_time, "
            "max(CASE WHEN t.key = 'bedrock_usage/connection' THEN t.value END), "
            "max(CASE WHEN t.key = '.dagster/bedrock_usage/pid' THEN t.value END), "
            "max(CASE WHEN t.key = 'bedrock_usage/trigger' THEN t.value END) "
            "FROM runs r LEFT JOIN run_tags t ON t.run_id = r.run_id "
            "GROUP BY r.run_id, r.status, r.start_time, r.end_time ORDER BY r.start_time"
        )
        return cursor.fetchall()


def _what_the_deployment_did(url: str, folder: Path) -> str:
    """The runs so far, the errors of the failed ones and the end of each service's log:
    what a timed-out wait reports."""
    lines = ["runs (id, status, start, end, connection, pid, trigger):"]
    lines += [f"  {run}" for run in _runs(url)]
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, dagster_event_type, event FROM event_logs "
            "WHERE dagster_event_type IN ('PIPELINE_FAILURE', 'STEP_FAILURE', 'RUN_FAILURE')"
        )
        for run_id, kind, event in cursor.fetchall():
            message = json.loads(event).get("dagster_event", {}).get("message")
            lines.append(f"{run_id} {kind}: {message}")
    for log in sorted(folder.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-40:]
        lines += [f"--- {log.name} (last {len(tail)} lines)", *tail]
    return "\n".join(lines)


@pytest.fixture
def deployment(aws, tmp_path, postgres_url, postgres_server, monkeypatch):
    catalogs = {name: f"{name}_{uuid.uuid4().hex[:10]}" for name in ("state", "lake")}
    for database in catalogs.values():
        postgres_server.psql(f"CREATE DATABASE {database};")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    runtime = aws.create_reader(OTHER_ACCOUNT, "runtime-role", policy=S3_WRITER)
    boto3.Session(
        aws_access_key_id=runtime.access_key_id,
        aws_secret_access_key=runtime.secret_access_key,
        region_name="us-east-1",
    ).client("s3", endpoint_url=aws.endpoint_url).create_bucket(Bucket=bucket)
    code_port, web_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BEDROCK_USAGE"))}
    env.update(
        DAGSTER_POSTGRES_URL=postgres_url,
        BEDROCK_USAGE_STATE_URL=postgres_server.get_uri(catalogs["state"]),
        BEDROCK_USAGE_SECRET_KEY=Fernet.generate_key().decode(),
        BEDROCK_USAGE_LAKE_CATALOG=postgres_server.get_uri(catalogs["lake"]),
        BEDROCK_USAGE_LAKE_DATA_PATH=f"s3://{bucket}/bedrock-usage/",
        # The runtime's own identity (a task role in ECS) writes the lake's files.
        AWS_ACCESS_KEY_ID=runtime.access_key_id,
        AWS_SECRET_ACCESS_KEY=runtime.secret_access_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=aws.endpoint_url,
        BEDROCK_USAGE_CODE_SERVER_HOST="127.0.0.1",
        BEDROCK_USAGE_CODE_SERVER_PORT=str(code_port),
        BEDROCK_USAGE_SCHEDULE_CRON="* * * * *",
        # A run per connection, so that two runs write the lake at once (test_fleet covers
        # the batches; each batch is one run of the same job).
        BEDROCK_USAGE_FLEET_BATCH="1",
    )
    homes = {}
    for name in ("code-server", "daemon", "webserver", "test"):
        homes[name] = tmp_path / f"{name}-home"
        (homes[name] / "dagster").mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", homes[name] / "dagster" / "dagster.yaml")
    for name, value in {**env, **_home_env(homes["test"])}.items():
        if name.startswith(("BEDROCK_USAGE", "DAGSTER", "AWS_")):
            monkeypatch.setenv(name, value)
    workspace = str(ROOT / "deploy" / "workspace.yaml")
    commands = {
        "code-server": [str(BIN / "dagster"), "code-server", "start", "-m",
                        "bedrock_usage.defs.definitions", "-h", "127.0.0.1", "-p", str(code_port)],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        "webserver": [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                      "-p", str(web_port)],
    }  # fmt: skip
    processes = {}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in commands}

    def start(name: str) -> None:
        processes[name] = subprocess.Popen(
            commands[name], cwd=homes[name], env={**env, **_home_env(homes[name])},
            stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    try:
        start("code-server")  # the others connect to it
        _wait(lambda: port_open(code_port), 120, "the code server's port")
        start("webserver")
        client = DagsterGraphQLClient("127.0.0.1", port_number=web_port, timeout=30)

        def webserver_up():
            try:
                return client._execute("{ version }")
            except Exception:
                return None

        _wait(webserver_up, 120, "the webserver")
        # The daemon is started by the test once its accounts are connected, so the
        # sensor's first tick sees them (the next comes 30 s later).
        yield client, homes, partial(start, "daemon")
    finally:
        stop_process_groups(list(processes.values()))
        for log in logs.values():
            log.close()


def test_a_deployment_of_separate_processes_syncs_exactly_and_reaps_a_killed_run(
    aws, reader, postgres_url, deployment
):
    client, homes, start_daemon = deployment
    other = aws.create_reader(OTHER_ACCOUNT)
    days = {days_ago(d): 10 * d for d in range(1, 4)}
    for key, scale in ((reader, 1), (other, 3)):
        per_day = {day: value * scale for day, value in days.items()}
        seed_daily(aws, "Invocations", HAIKU, per_day, account=key.account_id)
        seed_daily(aws, "Invocations", None, per_day, account=key.account_id)
    # Connected without a sync: the daemon's sensor starts both initial syncs. CloudWatch
    # answers slowly, so they surely overlap.
    aws.slow_down(2)
    connect(reader, "prod", regions="us-east-1", backfill_days=5)
    connect(other, "research", regions="us-east-1", backfill_days=5)
    stop_analyst = homes["test"].parent / "analyst.stop"
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(stop_analyst)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    start_daemon()

    def synced_by(trigger: str):
        runs = [r for r in _runs(postgres_url) if r[6] == trigger]
        done = len(runs) == 2 and all(r[1] == "SUCCESS" for r in runs)
        return runs if done else None

    describe = partial(_what_the_deployment_did, postgres_url, homes["test"].parent)
    first, second = _wait(lambda: synced_by("sensor"), 240, "both initial syncs", describe=describe)
    aws.slow_down(0)
    assert {first[4], second[4]} == {"prod", "research"}
    assert second[2] < first[3]  # launched before the first ended: they overlapped
    # The schedule ticks every minute here (BEDROCK_USAGE_SCHEDULE_CRON): one run per
    # connection for yesterday and the look-back, however many ticks.
    scheduled = _wait(lambda: synced_by("schedule"), 240, "the schedule's runs", describe=describe)
    assert {r[4] for r in scheduled} == {"prod", "research"}
    stop_analyst.touch()
    out, err = analyst.communicate(timeout=patient(90))
    queries, errors = out.split() or ("-", err)
    assert errors == "0" and int(queries) > 0, err

    with open_warehouse(configured_lake(), read_only=True) as con:
        totals = con.execute(
            "SELECT account_id, usage_date, sum(invocations)::BIGINT FROM bedrock_usage_daily "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    expected = sorted(
        (key.account_id, day, value * scale)
        for key, scale in ((reader, 1), (other, 3))
        for day, value in days.items()
    )
    assert totals == expected

    # kill -9 a run's process: the run is marked failed and its pool slot freed.
    aws.slow_down(3)
    try:
        run_id = client.submit_job_execution(
            "bedrock_usage_sync", tags=range_tags("prod", DayRange(days_ago(2), days_ago(1)))
        )

        def run_pid():
            return next((int(r[5]) for r in _runs(postgres_url) if r[0] == run_id and r[5]), None)

        run_pid_killed = _wait(run_pid, 120, "the run's process")
        os.kill(run_pid_killed, signal.SIGKILL)
    finally:
        aws.slow_down(0)

    def killed_run_failed():
        return next((r for r in _runs(postgres_url) if r[0] == run_id and r[1] == "FAILURE"), None)

    _wait(killed_run_failed, 120, "the daemon to fail the killed run")

    def slot_freed():
        with psycopg2.connect(postgres_url) as db, db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM concurrency_slots WHERE run_id = %s", [run_id])
            return cursor.fetchone() == (0,)

    _wait(slot_freed, 90, "the killed run's pool slot to be freed")
    with psycopg2.connect(postgres_url) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            [run_id, "PIPELINE_FAILURE"],
        )
        [(failure,)] = cursor.fetchall()
    # Failed once, by whichever noticed the dead worker first: the code server that
    # launched it, or the daemon's dead_run_sensor (every 30 s), each saying so; the daemon
    # freed the slot (run monitoring's free_slots_after_run_end_seconds, or the
    # dead_run_sensor, whichever comes first).
    message = json.loads(failure)["dagster_event"]["message"]
    assert message == "This run has been marked as failed from outside the execution context." or (
        message.startswith(f"The run's process (pid {run_pid_killed} on ")
        and " is gone " in message
    ), message

    # However many ticks came since (one a minute), one tick started runs and the later
    # ones skipped: still one run per connection (test_defs_schedules checks the skip).
    with psycopg2.connect(postgres_url) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM job_ticks WHERE type = 'SCHEDULE' "
            "AND tick_body LIKE '%daily_usage_schedule%' GROUP BY status"
        )  # the daily usage schedule's (the prices' and the bill's tick at 06:00, 07:00)
        ticks = dict(cursor.fetchall())
    assert ticks.get("SUCCESS") == 1, ticks
    assert len([r for r in _runs(postgres_url) if r[6] == "schedule"]) == 2
    # Connections, secrets, events and usage were in PostgreSQL and S3: no process wrote
    # a file of bedrock_usage's (a home holds only DAGSTER_HOME, where the daemon keeps
    # its own log files).
    for home in homes.values():
        assert [p.name for p in home.iterdir()] == ["dagster"], home
