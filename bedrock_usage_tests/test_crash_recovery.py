"""Killed, interrupted and overlapping syncs, with real processes and real signals: the
next sync is never blocked, every number stays exact, and the event log says what
happened."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from .cli_helpers import CLI, cli_env, run_cli, run_cli_in_process
from .conftest import ACCOUNT, days_ago, seed_daily
from .waiting import deadline_in, patient

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
REGIONS = "us-east-1,eu-west-1"
# Truth in the emulator: per day, a model and the region total, in both regions.
TRUTH = {days_ago(3): 300, days_ago(2): 200, days_ago(1): 100}


@pytest.fixture
def connected(aws, reader, home):
    for region in REGIONS.split(","):
        for model in (HAIKU, None):
            seed_daily(aws, "InputTokenCount", model, TRUTH, region=region)
    result = run_cli_in_process(
        ["connect", "prod", "--account-id", ACCOUNT, "--regions", REGIONS, "--no-sync",
         "--access-key-id", reader.access_key_id],
        home, aws.endpoint_url, reader.secret_access_key + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return aws


def start_paused(point: str, args: list[str], home: Path, endpoint: str, tmp_path: Path):
    """Start the real CLI, frozen at `point`; returns it once it got there."""
    marker = tmp_path / f"paused-{point}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bedrock_usage_tests.paused_cli", point, str(marker), "--", *args],
        env=cli_env(home, endpoint),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = deadline_in(90)
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.1)
    return process


def kill_9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def usage_by_region(home: Path) -> dict[str, int]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT region, sum(input_tokens)::BIGINT FROM bedrock_usage_daily "
            "WHERE connection_id = 'prod' GROUP BY ALL"
        ).fetchall()
    return dict(rows)


def snapshot_total(home: Path) -> int:
    with duckdb.connect(str(home / "warehouse.snapshot.duckdb"), read_only=True) as con:
        query = "SELECT sum(input_tokens)::BIGINT FROM bedrock_usage_daily"
        return con.execute(query).fetchone()[0]


def events(home: Path, action: str = "sync") -> list[tuple[str, str]]:
    with sqlite3.connect(home / "state.sqlite3") as db:
        return db.execute(
            "SELECT outcome, message FROM events WHERE action = ? ORDER BY event_id", [action]
        ).fetchall()


def run_statuses(home: Path) -> list[str]:
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        return [r.dagster_run.status.value for r in instance.get_run_records()]


def sync_window() -> list[str]:
    return ["sync", "prod", "--start", str(days_ago(3)), "--end", str(days_ago(1))]


EXPECTED = {"us-east-1": 600, "eu-west-1": 600}
PHASES = {
    "fetch": "fetching from CloudWatch",
    "raw-write": "writing data points",
    "between-assets": "rebuilding usage",
    "usage-write": "rebuilding usage",
    "publish": "publishing the analysts' copy",
}


@pytest.mark.parametrize("point", list(PHASES))
def test_a_sync_killed_at_any_point_blocks_nothing_and_the_next_one_is_exact(
    connected, home, tmp_path, point
):
    paused = start_paused(point, sync_window(), home, connected.endpoint_url, tmp_path)
    kill_9(paused)
    started = time.monotonic()
    result = run_cli(sync_window(), home, connected.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert usage_by_region(home) == EXPECTED
    assert snapshot_total(home) == 1200
    outcomes = events(home)
    assert outcomes[0][0] == "killed" and PHASES[point] in outcomes[0][1]
    assert outcomes[-1][0] == "ok"
    # The killed run is failed in Dagster (its slot freed), the new one succeeded.
    assert sorted(run_statuses(home)) == ["FAILURE", "SUCCESS"]


def test_a_killed_initial_sync_goes_back_to_pending_and_status_says_so(aws, reader, home, tmp_path):
    seed_daily(aws, "InputTokenCount", HAIKU, TRUTH)
    seed_daily(aws, "InputTokenCount", None, TRUTH)
    connect = ["connect", "prod", "--account-id", ACCOUNT, "--regions", "us-east-1",
               "--backfill-days", "5", "--access-key-id", reader.access_key_id]  # fmt: skip
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [sys.executable, "-m", "bedrock_usage_tests.paused_cli", "fetch", str(marker), "--",
         *connect],
        env=cli_env(home, aws.endpoint_url), cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdin.write(reader.secret_access_key + "\n")
    process.stdin.close()
    deadline = deadline_in(90)
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    kill_9(process)
    status = run_cli(["status", "prod"], home, aws.endpoint_url)
    assert "initial sync pending" in status.stdout
    assert f"--start {days_ago(5)}" in status.stdout
    assert events(home)[0][0] == "killed"
    result = run_cli(["sync", "prod", "--start", str(days_ago(5))], home, aws.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert usage_by_region(home) == {"us-east-1": 600}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sync_stops_within_10s_rolls_back_and_exits_130(connected, home, signum):
    connected.slow_down(2)
    process = subprocess.Popen(
        [CLI, *sync_window()], env=cli_env(home, connected.endpoint_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_phase(home, "fetching from CloudWatch", process)
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=patient(30))
    assert time.monotonic() - sent < patient(10)
    assert process.returncode == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr
    assert events(home)[-1][0] == "interrupted"
    assert not (home / "warehouse.duckdb").exists() or usage_by_region(home) == {}
    connected.slow_down(0)
    assert run_cli(sync_window(), home, connected.endpoint_url).returncode == 0
    assert usage_by_region(home) == EXPECTED
    assert "STARTED" not in run_statuses(home)


def _wait_for_phase(home: Path, phase: str, process: subprocess.Popen) -> None:
    deadline = deadline_in(60)
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with sqlite3.connect(home / "state.sqlite3") as db:
                if db.execute("SELECT 1 FROM sync_attempts WHERE phase = ?", [phase]).fetchone():
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"never reached {phase}")


def test_a_second_sync_waits_asleep_for_a_live_one_then_names_it(connected, home, tmp_path):
    holder = start_paused("raw-write", sync_window(), home, connected.endpoint_url, tmp_path)
    try:
        before = os.times()
        waiter = run_cli(
            sync_window(), home, connected.endpoint_url,
            extra_env={"BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS": "8"},
        )  # fmt: skip
        after = os.times()
    finally:
        kill_9(holder)
    assert waiter.returncode == 7, waiter.stderr
    assert "connection 'prod'" in waiter.stderr and "Terminate" in waiter.stderr
    # It slept: far less CPU than the 8 s it waited (a spinning wait burns all of it).
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    assert cpu < 7
    assert events(home)[-1][0] == "busy"
    assert run_cli(sync_window(), home, connected.endpoint_url).returncode == 0
    assert usage_by_region(home) == EXPECTED


def test_a_purge_during_a_sync_keeps_every_row_of_the_connection_out(connected, home):
    assert run_cli_in_process(sync_window(), home, connected.endpoint_url).returncode == 0
    connected.slow_down(1.5)
    process = subprocess.Popen(
        [CLI, *sync_window()], env=cli_env(home, connected.endpoint_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_phase(home, "fetching from CloudWatch", process)
    purge = run_cli(["disconnect", "prod", "--purge-usage"], home, connected.endpoint_url)
    assert purge.returncode == 0, purge.stderr
    assert "Purged 6 usage rows" in purge.stdout
    _, stderr = process.communicate(timeout=patient(120))
    assert process.returncode == 1
    assert "disconnected while it synced" in stderr
    assert events(home)[-1] == (
        "failed",
        "'prod' was disconnected while it synced: nothing of it was written.",
    )  # never "ok: 0 rows"
    assert usage_by_region(home) == {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cloudwatch_daily_datapoints").fetchone() == (0,)
    with sqlite3.connect(home / "state.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM region_health").fetchone() == (0,)


def test_two_syncs_of_one_connection_at_once_never_double_a_day(connected, home):
    """The DuckDB file's own lock lets one process write at a time: two real syncs
    started together on a new home, over days with no rows (then stored ones), both
    succeed, exactly."""
    rounds = int(os.environ.get("BEDROCK_USAGE_TEST_ROUNDS", "1"))
    for round_ in range(rounds):
        for stored_before in (False, True):
            if not stored_before:  # and Dagster's storage is new too: first use, at once
                (home / "warehouse.duckdb").unlink(missing_ok=True)
                (home / "warehouse.snapshot.duckdb").unlink(missing_ok=True)
                shutil.rmtree(home / "dagster", ignore_errors=True)
            both = [
                subprocess.Popen(
                    [CLI, *sync_window()],
                    env=cli_env(home, connected.endpoint_url),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                for _ in range(2)
            ]
            for process in both:
                _, stderr = process.communicate(timeout=patient(120))
                assert process.returncode == 0, stderr
            assert usage_by_region(home) == EXPECTED, (round_, stored_before)


@pytest.mark.parametrize("repair", ["status", "next-daily-sync"])
def test_a_copy_left_behind_by_a_killed_publish_is_caught_up(connected, home, tmp_path, repair):
    """Killed after the usage rows committed, before the analysts' copy was refreshed:
    the next status, or the next sync of any window, brings the copy up to date."""
    assert run_cli_in_process(sync_window(), home, connected.endpoint_url).returncode == 0
    assert snapshot_total(home) == 1200
    for model in (HAIKU, None):  # late data for the oldest day of the window
        seed_daily(connected, "InputTokenCount", model, {days_ago(3): 1000})
    paused = start_paused("before-publish", sync_window(), home, connected.endpoint_url, tmp_path)
    kill_9(paused)
    assert usage_by_region(home) == {"us-east-1": 1600, "eu-west-1": 600}
    assert snapshot_total(home) == 1200  # behind the warehouse
    if repair == "status":
        result = run_cli(["status", "prod"], home, connected.endpoint_url)
        assert "analysts' copy was behind the warehouse" in result.stderr
    else:  # the daily sync reads only yesterday
        day = str(days_ago(1))
        result = run_cli(
            ["sync", "prod", "--start", day, "--end", day], home, connected.endpoint_url
        )
    assert result.returncode == 0, result.stderr
    assert snapshot_total(home) == 2200
    again = run_cli(["status", "prod"], home, connected.endpoint_url)
    assert "behind" not in again.stderr  # caught up once


def test_a_purge_killed_before_its_publish_is_finished_by_running_it_again(
    connected, home, tmp_path
):
    assert run_cli_in_process(sync_window(), home, connected.endpoint_url).returncode == 0
    purge = ["disconnect", "prod", "--purge-usage"]
    kill_9(start_paused("purge-before-publish", purge, home, connected.endpoint_url, tmp_path))
    assert usage_by_region(home) == {}
    assert snapshot_total(home) == 1200  # the copy still holds the purged rows
    again = run_cli(purge, home, connected.endpoint_url)
    assert again.returncode == 0, again.stderr
    assert snapshot_total(home) is None  # no row of the purged connection is left


FLEET = {"alpha": "400000000001", "bravo": "400000000002", "charlie": "400000000003"}


def _connect_fleet(aws, home) -> None:
    """Three accounts; each region of each holds TRUTH times its own factor."""
    for n, (name, account) in enumerate(FLEET.items(), start=1):
        for region in REGIONS.split(","):
            for model in (HAIKU, None):
                truth = {day: n * tokens for day, tokens in TRUTH.items()}
                seed_daily(aws, "InputTokenCount", model, truth, region=region, account=account)
        key = aws.create_reader(account)
        result = run_cli_in_process(
            ["connect", name, "--account-id", account, "--regions", REGIONS, "--no-sync",
             "--access-key-id", key.access_key_id],
            home, aws.endpoint_url, key.secret_access_key + "\n",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def _tick(aws, home) -> list[str]:
    """The daemon's next tick (the dead-run sensor, then the schedule) in its own process."""
    tick = subprocess.run(
        [sys.executable, "-m", "bedrock_usage_tests.schedule_tick"],
        env=cli_env(home, aws.endpoint_url), cwd=REPO, capture_output=True, text=True,
        timeout=patient(300),
    )  # fmt: skip
    assert tick.returncode == 0, tick.stderr
    return tick.stdout.split()


def test_a_fleet_run_killed_mid_batch_is_finished_exactly_by_the_next_tick(aws, home, tmp_path):
    _connect_fleet(aws, home)
    # The schedule's run over the three (yesterday and two look-back days), killed once
    # alpha's data points are committed and before bravo is read.
    paused = start_paused("second-connection", ["schedule-tick"], home, aws.endpoint_url,
                          tmp_path)  # fmt: skip
    kill_9(paused)
    # The run finished none of its connections: the next tick runs all three again.
    assert _tick(aws, home) == [f"alpha..charlie:{days_ago(1)}", "succeeded"]
    assert _tick(aws, home)[0] == "skipped:"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT connection_id, region, sum(input_tokens)::BIGINT, count(*) "
            "FROM bedrock_usage_daily GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert rows == [
        (name, region, 600 * n, 3)
        for n, name in enumerate(FLEET, start=1)
        for region in sorted(REGIONS.split(","))
    ]
    assert snapshot_total(home) == 2 * 600 * (1 + 2 + 3)
    with sqlite3.connect(home / "state.sqlite3") as db:
        outcomes = db.execute(
            "SELECT connection_id, outcome FROM events WHERE action = 'sync' ORDER BY event_id"
        ).fetchall()
    # alpha's attempt was killed and is said so; bravo's and charlie's had not begun.
    assert outcomes == [("alpha", "killed"), ("alpha", "ok"), ("bravo", "ok"), ("charlie", "ok")]
    assert sorted(run_statuses(home)) == ["FAILURE", "SUCCESS"]
