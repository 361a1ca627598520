"""The local instance's batching storage records exactly what Dagster's own SQLite storage
records — the partitions the UI shows materialized, planned and failed, the asset table's
last materialization and run — for a run that succeeds and one that fails."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bedrock_usage.connections import service
from bedrock_usage.connections.credentials import AuthSpec
from bedrock_usage.days import DayRange
from bedrock_usage.defs.instance_storage import EVENT_BATCH_SIZE
from bedrock_usage.defs.local_runs import instance, run_sync

from .conftest import ACCOUNT, days_ago, seed_daily

ASSETS = ("cloudwatch_datapoints", "bedrock_usage_daily", "bedrock_cost_daily")
PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def _shipped_config() -> dict:
    source = resources.files("bedrock_usage.defs").joinpath("dagster.yaml")
    return yaml.safe_load(source.read_text())


def _sync_twice(aws, home: Path, monkeypatch: pytest.MonkeyPatch, config: dict) -> dict:
    """In a home of its own with `config` as dagster.yaml: a 3-day sync that succeeds, then
    a 2-day sync that fails because the key was deleted. Returns what the UI reads."""
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    key = aws.create_reader(ACCOUNT)
    auth = AuthSpec(key.access_key_id, key.secret_access_key)
    service.connect("prod", key.account_id, "us-east-1", auth, sync_later=True)
    assert run_sync("prod", DayRange(days_ago(5), days_ago(3))).success
    aws.delete_access_key(key)
    assert not run_sync("prod", DayRange(days_ago(2), days_ago(1))).success
    return _what_the_ui_reads(instance())


def _what_the_ui_reads(dagster) -> dict:
    runs = [run.run_id for run in reversed(dagster.get_runs())]  # oldest first
    storage = dagster.event_log_storage
    read = {"storage": type(storage).__name__}
    for name in ASSETS:
        key = dg.AssetKey(name)
        entry = dagster.get_asset_records([key])[0].asset_entry
        # What the UI's failed partitions are made of: planned, not materialized, by run.
        attempts = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations
        )
        read[name] = {
            "materialized": sorted(str(p) for p in dagster.get_materialized_partitions(key)),
            "materializations": len(dagster.fetch_materializations(key, limit=100).records),
            "planned": len(storage.get_event_records(dg.EventRecordsFilter(PLANNED, key))),
            "attempted, not materialized": {
                str(partition): runs.index(run_id)
                for partition, (run_id, _) in attempts(key).items()
            },
            "last materialized": entry.last_materialization.dagster_event.partition,
            "last run": runs.index(entry.last_run_id),
        }
    return read


def test_a_run_is_recorded_as_dagsters_own_storage_records_it(aws, tmp_path, monkeypatch):
    seed_daily(aws, "Invocations", MODEL, {days_ago(d): 10 * d for d in range(1, 6)})
    shipped = _shipped_config()
    stock = {name: value for name, value in shipped.items() if name != "storage"}

    batching = _sync_twice(aws, tmp_path / "batching", monkeypatch, shipped)
    own = _sync_twice(aws, tmp_path / "own", monkeypatch, stock)

    assert (batching.pop("storage"), own.pop("storage")) == (
        "BatchingSqliteEventLogStorage", "SqliteEventLogStorage")  # fmt: skip
    assert batching == own
    synced = [f"prod|{days_ago(d)}" for d in (5, 4, 3)]
    failed = {f"prod|{days_ago(d)}": 1 for d in (2, 1)}
    for name in ASSETS:
        assert batching[name].pop("last materialized") in synced
        assert batching[name] == {
            "materialized": synced,
            "materializations": 3,
            "planned": 5,
            "attempted, not materialized": failed,
            "last run": 1,  # the failed run planned it last
        }


def test_the_shipped_instance_has_dagster_hand_over_asset_events_in_batches(
    bedrock_home, monkeypatch
):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    assert type(instance().event_log_storage).__name__ == "BatchingSqliteEventLogStorage"
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == EVENT_BATCH_SIZE
