"""Fleet runs: several connections synced in one Dagster run, each in its own
transactions, partitions, events and outcome; one connection's failure never costs the
others theirs."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import dagster as dg
import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.defs.local_runs import instance, register_connection, run_tagged
from bedrock_usage.defs.partitions import range_tags
from bedrock_usage.defs.tags import CONNECTION_TAG

from .conftest import days_ago, seed_daily
from .dagster_helpers import by_partition, connect

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
REGIONS = ("us-east-1", "eu-west-1")
NAMES = ("alpha", "bravo", "charlie", "delta")


def _accounts():
    return {name: f"30000000000{n}" for n, name in enumerate(NAMES)}


def _seed(aws, account: str, scale: int, window: DayRange) -> None:
    """Per region and day: `scale` × (day number) input tokens, model and region total."""
    days = {window.first + timedelta(days=d): scale * (d + 1) for d in range(window.days)}
    for region in REGIONS:
        for model in (HAIKU, None):
            seed_daily(aws, "InputTokenCount", model, days, region=region, account=account)


def _tokens(home) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT connection_id, region, sum(input_tokens)::BIGINT FROM bedrock_usage_daily "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    return {(c, r): n for c, r, n in rows}


def _sync_events(home) -> dict[str, list[str]]:
    with sqlite3.connect(home / "state.sqlite3") as db:
        rows = db.execute(
            "SELECT connection_id, outcome FROM events WHERE action = 'sync' ORDER BY event_id"
        ).fetchall()
    found: dict[str, list[str]] = {}
    for connection_id, outcome in rows:
        found.setdefault(connection_id, []).append(outcome)
    return found


def _fleet(window: DayRange):
    dagster = instance()
    for name in NAMES:
        register_connection(dagster, name)
    tags = {**range_tags(NAMES[0], window, through=NAMES[-1]), CONNECTION_TAG: ",".join(NAMES)}
    return run_tagged(tags, "schedule", dagster=dagster)


def test_a_fleet_run_keeps_each_connections_failure_its_own(aws, bedrock_home):
    window = DayRange(days_ago(3), days_ago(1))
    keys = {}
    for n, (name, account) in enumerate(_accounts().items()):
        _seed(aws, account, 10 ** (n + 1), window)
        keys[name] = aws.create_reader(account)
        connect(keys[name], name, regions=",".join(REGIONS), backfill_days=3)
    first = _fleet(window)
    assert first.success
    # Every connection exact: 10^k × (1 + 2 + 3) per region.
    assert _tokens(bedrock_home) == {
        (name, region): 6 * 10 ** (n + 1) for n, name in enumerate(NAMES) for region in REGIONS
    }
    # Late data arrives for everyone; then bravo loses eu-west-1 and charlie's key is
    # deleted.
    for account in _accounts().values():
        seed_daily(aws, "InputTokenCount", HAIKU, {days_ago(1): 7}, region="us-east-1",
                   account=account, hours=1)  # fmt: skip
        seed_daily(aws, "InputTokenCount", None, {days_ago(1): 7}, region="us-east-1",
                   account=account, hours=1)  # fmt: skip
    aws.deny_region(keys["bravo"], "eu-west-1")
    aws.delete_access_key(keys["charlie"])
    aws.log.reset()
    second = _fleet(window)
    # The failures fail the run (the blocking every_region_read check, after everything
    # readable was written), and never the others' partitions.
    assert not second.success
    assert instance().get_run_by_id(second.run_id).status == dg.DagsterRunStatus.FAILURE
    assert _tokens(bedrock_home) == {
        ("alpha", "eu-west-1"): 60, ("alpha", "us-east-1"): 67,
        ("bravo", "eu-west-1"): 600, ("bravo", "us-east-1"): 607,  # eu-west-1: as before
        ("charlie", "eu-west-1"): 6000, ("charlie", "us-east-1"): 6000,  # all as before
        ("delta", "eu-west-1"): 60000, ("delta", "us-east-1"): 60007,
    }  # fmt: skip
    usage = by_partition(second, "bedrock_usage_daily")
    points = by_partition(second, "cloudwatch_datapoints")
    assert len(usage) == len(points) == 4 * 3
    for name in ("alpha", "delta"):
        assert points[name, str(days_ago(1))]["regions_not_read"] == "none"
        assert "sync_failed" not in usage[name, str(days_ago(1))]
    assert points["bravo", str(days_ago(1))]["regions_not_read"] == "eu-west-1"
    charlie = points["charlie", str(days_ago(1))]
    assert "InvalidClientTokenId" in charlie["sync_failed"]
    assert charlie["regions_read"] == "none"
    assert "not read in this run" in usage["charlie", str(days_ago(1))]["sync_failed"]
    # Per connection in the run's tags (the runs list), the check, and the event log.
    tags = instance().get_run_by_id(second.run_id).tags
    assert tags["bedrock_usage/failed_connections"] == "charlie"
    assert tags["bedrock_usage/failed_regions"] == (
        "bravo/eu-west-1,charlie/us-east-1,charlie/eu-west-1"
    )
    assert tags["bedrock_usage/finished"] == ",".join(NAMES)
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert checks["every_region_read"].metadata["regions_not_read"].value == {
        "bravo": ["eu-west-1"],
        "charlie": ["us-east-1", "eu-west-1"],
    }
    assert _sync_events(bedrock_home) == {
        "alpha": ["ok", "ok"],
        "bravo": ["ok", "partial"],
        "charlie": ["ok", "failed"],
        "delta": ["ok", "ok"],
    }
    # One GetMetricData per region read, none for the rejected key.
    assert aws.log.count("GetMetricData") == 5


def test_a_fleet_run_where_every_connection_fails_fails_with_each_cause(aws, bedrock_home):
    window = DayRange(days_ago(1), days_ago(1))
    for name, account in _accounts().items():
        key = aws.create_reader(account)
        connect(key, name, regions="us-east-1", backfill_days=1)
        aws.delete_access_key(key)
    result = _fleet(window)
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    for name in NAMES:
        assert f"{name}: No region could be read" in message
    assert _sync_events(bedrock_home) == {name: ["failed"] for name in NAMES}


def test_sync_all_runs_every_connection_in_batches_and_says_each_outcome(aws, cli, cli_in_process):
    window = DayRange(days_ago(3), days_ago(1))
    keys = {}
    for n, (name, account) in enumerate(_accounts().items()):
        _seed(aws, account, 10 ** (n + 1), window)
        keys[name] = aws.create_reader(account)
        connected = cli_in_process(
            "connect", name, "--account-id", account, "--regions", ",".join(REGIONS),
            "--no-sync", "--access-key-id", keys[name].access_key_id,
            secret=keys[name].secret_access_key,
        )  # fmt: skip
        assert connected.returncode == 0, connected.stderr
    aws.delete_access_key(keys["charlie"])
    dates = ["--start", str(window.first), "--end", str(window.last)]
    result = cli("sync", "--all", *dates, env={"BEDROCK_USAGE_FLEET_BATCH": "3"})
    assert result.returncode == 6, result.stderr
    lines = result.stdout.splitlines()
    assert "in runs of up to 3 connections" in lines[0]
    assert [line for line in lines if line.startswith("  ")] == [
        "  alpha: synced",
        "  bravo: synced",
        "  charlie: FAILED, nothing read (its earlier rows are kept)",
        "  delta: synced",
    ]
    assert sum(line.startswith("Dagster run ") for line in lines) == 2
    assert "Traceback" not in result.stderr
    refused = cli("sync", "alpha", "--all")
    assert refused.returncode == 2 and "--all" in refused.stderr
