"""Faults an operator meets, through the real console script: each is one clear line
with what to do, exits non-zero, and loses nothing."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .conftest import ACCOUNT, days_ago, seed_daily, warehouse_held

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def synced(aws, reader, cli_in_process):
    seed_daily(aws, "InputTokenCount", HAIKU, {days_ago(1): 40})
    seed_daily(aws, "InputTokenCount", None, {days_ago(1): 40})
    result = cli_in_process(
        "connect", "prod", "--account-id", ACCOUNT, "--regions", "us-east-1",
        "--backfill-days", "3", "--access-key-id", reader.access_key_id,
        secret=reader.secret_access_key,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return reader


def _raw_points(home: Path) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM cloudwatch_daily_datapoints").fetchone()[0]


@pytest.mark.parametrize("target", ["warehouse.duckdb", "state.sqlite3"])
def test_a_snapshot_path_on_our_own_files_is_refused_and_nothing_is_replaced(
    synced, cli, home, target
):
    points = _raw_points(home)
    result = cli("sync", "prod", env={"BEDROCK_USAGE_SNAPSHOT": str(home / target)})
    assert result.returncode == 2
    assert "BEDROCK_USAGE_SNAPSHOT" in result.stderr and "Traceback" not in result.stderr
    assert _raw_points(home) == points
    assert cli("connections").returncode == 0


def test_a_purge_that_cannot_get_the_warehouse_deletes_nothing(synced, cli, home):
    with warehouse_held(home / "warehouse.duckdb"):
        result = cli(
            "disconnect", "prod", "--purge-usage", env={"BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS": "1"}
        )
    assert result.returncode == 7
    assert cli("status", "prod").returncode == 0  # still connected, credentials kept
    result = cli("disconnect", "prod", "--purge-usage")
    assert result.returncode == 0 and "Purged 1 usage rows" in result.stdout
    assert _raw_points(home) == 0


def test_a_purge_stopped_after_the_credentials_went_is_finished_by_running_it_again(
    synced, cli, home
):
    with sqlite3.connect(home / "state.sqlite3") as db:  # as if stopped right after
        db.execute("DELETE FROM connections WHERE connection_id = 'prod'")
    result = cli("disconnect", "prod", "--purge-usage")
    assert result.returncode == 0, result.stderr
    assert "Purged 1 usage rows" in result.stdout
    assert _raw_points(home) == 0
    assert cli("disconnect", "prod", "--purge-usage").returncode == 4  # nothing left


@pytest.mark.parametrize("command", ["disconnect", "rotate"])
def test_a_secret_removed_with_a_reader_open_is_gone_from_every_file_or_said_to_be_left(
    aws, synced, cli, home, command
):
    with sqlite3.connect(home / "state.sqlite3") as db:
        [(ciphertext,)] = db.execute("SELECT secret_ciphertext FROM connections").fetchall()
    reader_code = (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None);"
        "db.execute('BEGIN'); db.execute('SELECT * FROM connections').fetchall();"
        "print('reading', flush=True); time.sleep(60)"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_code, str(home / "state.sqlite3")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout.readline().strip() == "reading"
        patient = {"BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS": "2"}
        if command == "disconnect":
            result = cli("disconnect", "prod", env=patient)
        else:
            fresh = aws.create_reader(ACCOUNT, "bedrock-readonly-2")
            result = cli(
                "rotate", "prod", "--access-key-id", fresh.access_key_id,
                secret=fresh.secret_access_key, env=patient,
            )  # fmt: skip
        holding = [
            path for path in home.rglob("*")
            if path.is_file() and ciphertext.encode() in path.read_bytes()
        ]  # fmt: skip
    finally:
        reader.kill()
        reader.wait()
    # Either it is gone from every file while the reader is still open, or the command
    # says it is not and what to do.
    if result.returncode == 0:
        assert holding == []
    else:
        assert result.returncode == 1 and "bedrock-usage scrub" in result.stderr
    assert ciphertext not in result.stdout + result.stderr
    assert cli("scrub").returncode == 0
    for path in home.rglob("*"):
        if path.is_file():
            assert ciphertext.encode() not in path.read_bytes(), path


def test_a_missing_key_file_with_stored_secrets_is_an_error_not_a_new_key(synced, cli, home):
    (home / "secret.key").unlink()
    result = cli("sync", "prod")
    assert result.returncode == 1
    assert "secret.key is missing" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "secret.key").exists()
    [sync] = [e for e in json.loads(cli("events", "prod", "--json").stdout)
              if e["action"] == "sync"][:1]  # fmt: skip
    assert sync["outcome"] == "configuration", sync


def test_a_damaged_state_store_is_named_without_a_traceback(synced, cli, home):
    (home / "state.sqlite3").write_bytes(b"not a database" * 100)
    for path in home.glob("state.sqlite3-*"):
        path.unlink()
    result = cli("connections")
    assert result.returncode == 1
    assert "state store" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [("status", "prod", "--days", "100000000"), ("events", "--limit", str(10**30))]
)
def test_out_of_range_numbers_are_refused(cli, args):
    result = cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not in the range" in result.stderr


def test_an_empty_or_file_home_is_refused(cli, home, tmp_path):
    assert cli("connections", env={"BEDROCK_USAGE_HOME": ""}).returncode == 2
    (tmp_path / "a-file").write_text("")
    result = cli("connections", env={"BEDROCK_USAGE_HOME": str(tmp_path / "a-file")})
    assert result.returncode == 2 and "BEDROCK_USAGE_HOME" in result.stderr


def test_a_bad_schedule_cron_is_named_by_the_commands_that_load_the_schedule(cli):
    bad = {"BEDROCK_USAGE_SCHEDULE_CRON": "every day"}
    result = cli("sync", "prod", env=bad)  # named before anything runs, even the lookup
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "BEDROCK_USAGE_SCHEDULE_CRON='every day' is not usable" in result.stderr
    # A command that never loads Dagster's code location does not read it (nor import
    # Dagster to check it): here it answers that there is no such connection (exit 4).
    assert cli("status", "prod", env=bad).returncode == 4


def test_doctor_fails_on_a_failed_check_and_names_network_errors(aws, synced, cli):
    aws.deny_region(synced, "us-east-1")
    result = cli("doctor", "prod")
    assert result.returncode == 1 and "cannot read CloudWatch" in result.stdout
    report = cli("doctor", "prod", "--json")
    assert report.returncode == 1
    [region] = json.loads(report.stdout)["regions"]
    assert region["failure"]["code"] == "AccessDenied" and region["failure"]["kind"] == "permission"
    logged = json.loads(cli("events", "prod", "--json").stdout)
    assert [(e["action"], e["outcome"]) for e in logged[:2]] == [("sync", "ok"), ("fetch", "ok")]
    unreachable = cli("doctor", "prod", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert unreachable.returncode == 1
    assert "AWS could not be reached" in unreachable.stdout
    assert "credentials were refused" not in unreachable.stdout


def test_a_sync_shows_its_progress_call_by_call_as_plain_lines_in_a_log(synced, cli):
    result = cli("sync", "prod")
    assert result.returncode == 0, result.stderr
    assert "us-east-1: GetMetricData call 1, " in result.stderr
    assert "\r" not in result.stderr  # not a terminal: no rewritten lines


def _input_tokens(home: Path) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT usage_date, model_id, input_tokens FROM bedrock_usage_daily ORDER BY ALL"
        ).fetchall()


def test_an_answer_that_is_not_cloudwatchs_keeps_the_rows_and_says_what_answered(
    aws, synced, cli, home
):
    kept = _input_tokens(home)
    assert kept == [(days_ago(1), HAIKU, 40)]
    seed_daily(aws, "InputTokenCount", HAIKU, {days_ago(2): 7})  # would change the window
    portal = b"<html><body>Sign in to the hotel Wi-Fi</body></html>"
    aws.answer_raw("us-east-1", portal, responses=10, operation="GetMetricData")
    result = cli("sync", "prod")
    assert result.returncode == 6, result.stderr
    assert "proxy or captive portal" in result.stderr and "Traceback" not in result.stderr
    assert _input_tokens(home) == kept
    [fetch] = [e for e in json.loads(cli("events", "prod", "--json").stdout)
               if e["action"] == "fetch"][:1]  # fmt: skip
    assert fetch["outcome"] != "ok" and "MalformedAnswer" in json.dumps(fetch)
    doctor = cli("doctor", "prod")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "proxy or captive portal" in doctor.stdout and "Traceback" not in doctor.stderr
    aws.reset_raw_answers()
    assert cli("sync", "prod").returncode == 0
    assert _input_tokens(home) == [(days_ago(2), HAIKU, 7), *kept]


def _sync_refuses(cli, setting: str, foreign: Path, exit_code: int, reason: str) -> None:
    """A sync with `setting` naming `foreign` exits `exit_code`, names the setting and
    `reason` without a traceback, and leaves the file byte for byte as it was (a message
    test: `cli_in_process` runs it; the same test's later syncs are real processes)."""
    before = foreign.read_bytes()
    result = cli("sync", "prod", env={setting: str(foreign)})
    assert result.returncode == exit_code, result.stderr
    assert f"{setting}='{foreign}'" in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert foreign.read_bytes() == before


def test_a_snapshot_path_on_a_file_we_did_not_write_is_refused_and_left_as_it_was(
    synced, cli, cli_in_process, home, tmp_path
):
    text = tmp_path / "notes.txt"
    text.write_text("an analyst's notes\n")
    other_warehouse = tmp_path / "other-warehouse.duckdb"
    with duckdb.connect(str(other_warehouse)) as con:
        con.execute("CREATE TABLE cloudwatch_daily_datapoints (x INT)")
        con.execute("CREATE TABLE bedrock_usage_daily (x INT)")
    for foreign in (text, other_warehouse):
        _sync_refuses(cli_in_process, "BEDROCK_USAGE_SNAPSHOT", foreign, 2,
                      "not an analysts' copy this pipeline wrote")  # fmt: skip
    # A copy of ours at a path of the user's choosing is refreshed as usual.
    own = {"BEDROCK_USAGE_SNAPSHOT": str(tmp_path / "copy.duckdb")}
    assert cli("sync", "prod", env=own).returncode == 0
    assert cli("sync", "prod", env=own).returncode == 0
    with duckdb.connect(str(tmp_path / "copy.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sum(input_tokens) FROM bedrock_usage_daily").fetchone() == (40,)


def test_a_warehouse_path_on_a_database_we_did_not_make_is_left_as_it_was(
    synced, cli, cli_in_process, home, tmp_path
):
    """BEDROCK_USAGE_WAREHOUSE naming another DuckDB database, or an analysts' copy: no
    table of ours is added to it, and the error names the setting and what to do."""
    other = tmp_path / "finance.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE invoices AS SELECT 1 AS id")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(home / "warehouse.snapshot.duckdb", copy)
    for foreign in (other, copy):
        _sync_refuses(cli_in_process, "BEDROCK_USAGE_WAREHOUSE", foreign, 1,
                      "not one of its warehouses, so nothing is written to it")  # fmt: skip
    # An empty DuckDB file is taken as a new warehouse.
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert cli("sync", "prod", env={"BEDROCK_USAGE_WAREHOUSE": str(empty)}).returncode == 0


def test_a_failure_inside_a_run_prints_its_cause_as_the_event_log_words_it(synced, cli, home):
    (home / "warehouse.duckdb").write_bytes(b"not a database" * 100)
    result = cli("sync", "prod")
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Error occurred while executing op" not in error
    [sync] = [e for e in json.loads(cli("events", "prod", "--json").stdout)
              if e["action"] == "sync"][:1]  # fmt: skip
    assert sync["outcome"] == "failed" and sync["message"] in error
    assert "warehouse.duckdb" in error


def test_the_home_is_readable_by_its_owner_alone(synced, home):
    opened = [
        (str(path.relative_to(home)), oct(path.stat().st_mode & 0o777))
        for path in [home, *home.rglob("*")]
        if path.stat().st_mode & 0o077
    ]
    assert opened == []


def test_a_damaged_dagster_storage_is_named_without_a_traceback(synced, cli, home):
    runs = home / "dagster" / "history" / "runs.db"
    assert runs.exists()
    runs.write_bytes(b"not a database" * 100)
    result = cli("sync", "prod")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Dagster's instance in {home / 'dagster'} cannot be used" in result.stderr
    assert "runs.db" in result.stderr and "move that folder aside" in result.stderr
