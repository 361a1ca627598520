"""Sensors: connection partitions follow the state store; permission failures flag once."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from bedrock_usage.connections.store import StateStore
from bedrock_usage.days import DayRange
from bedrock_usage.defs.alerts import AlertResource
from bedrock_usage.defs.local_runs import instance, run_sync
from bedrock_usage.defs.resources import StateStoreResource, SyncSettingsResource
from bedrock_usage.defs.sensors import connection_partitions_sensor, permission_failure_sensor
from bedrock_usage.sync import steps

from .conftest import OTHER_ACCOUNT, days_ago, seed_daily
from .dagster_helpers import connect

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _partitions_sensor(dagster, batch: int = 10):
    context = dg.build_sensor_context(
        instance=dagster,
        resources={
            "state_store": StateStoreResource(),
            "sync_settings": SyncSettingsResource(fleet_batch=batch),
        },
    )
    return connection_partitions_sensor(context)


def test_new_connections_are_added_and_initially_synced_once(aws, reader, bedrock_home):
    dagster = instance()
    connect(reader, "prod", backfill_days=5)
    result = _partitions_sensor(dagster)
    [add] = result.dynamic_partitions_requests
    assert add.partition_keys == ["prod"]
    [request] = result.run_requests
    start = request.tags["dagster/asset_partition_range_start"]
    end = request.tags["dagster/asset_partition_range_end"]
    assert (start, end) == (f"prod|{days_ago(5)}", f"prod|{days_ago(1)}")
    assert StateStore().get("prod").initial_sync == "running"
    dagster.add_dynamic_partitions("connection", ["prod"])
    again = _partitions_sensor(dagster)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []


def test_connections_added_together_sync_together_in_fleet_runs(aws, bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["old"])  # connected, then its key removed
    for n, name in enumerate(("c3", "c1", "c2")):
        connect(aws.create_reader(f"20000000000{n}"), name, backfill_days=5)
    connect(aws.create_reader(OTHER_ACCOUNT), "longer", backfill_days=9)
    result = _partitions_sensor(dagster, batch=2)
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [
        ["c1", "c2", "c3", "longer"], ["old"],
    ]  # fmt: skip
    assert sorted(
        (
            r.tags["bedrock_usage/connection"],
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        )
        for r in result.run_requests
    ) == [
        ("c1,c2", f"c1|{days_ago(5)}", f"c2|{days_ago(1)}"),
        ("c3", f"c3|{days_ago(5)}", f"c3|{days_ago(1)}"),
        ("longer", f"longer|{days_ago(9)}", f"longer|{days_ago(1)}"),
    ]


def test_the_cli_and_the_sensor_never_both_run_the_initial_sync(aws, reader, bedrock_home):
    dagster = instance()
    connect(reader, "prod")
    assert steps.claim_initial_sync("prod")
    assert _partitions_sensor(dagster).run_requests == []
    assert not steps.claim_initial_sync("prod")


def test_disconnected_connections_are_removed_and_history_kept(aws, reader, bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "gone"])
    connect(reader, "prod", backfill_days=5)
    steps.claim_initial_sync("prod")
    result = _partitions_sensor(dagster)
    [delete] = result.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
    assert delete.partition_keys == ["gone"]


class RecordingAlerts(AlertResource):
    def send(self, text, log):
        SENT.append(text)
        return "test"


SENT: list[str] = []


@pytest.fixture
def sent():
    SENT.clear()
    return SENT


def _failure_sensor(dagster, cursor):
    context = dg.build_sensor_context(
        instance=dagster,
        cursor=cursor,
        resources={"state_store": StateStoreResource(), "alerts": RecordingAlerts()},
    )
    return permission_failure_sensor(context)


def test_a_permission_failure_is_flagged_once_and_cleared_on_success(
    aws, reader, bedrock_home, sent
):
    dagster = instance()
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5}, region="eu-west-1")
    connect(reader, "prod")
    window = DayRange(days_ago(1), days_ago(1))
    aws.deny_region(reader, "eu-west-1")
    run_sync("prod", window)
    first = _failure_sensor(dagster, None)
    assert len(sent) == 1
    assert (
        "prod (account 111122223333) cannot read CloudWatch in eu-west-1: AccessDenied" in sent[0]
    )
    assert "policy" in sent[0]
    assert json.loads(first.cursor)["flagged"] == ["prod/eu-west-1"]
    run_sync("prod", window)  # still denied: no second alert
    second = _failure_sensor(dagster, first.cursor)
    assert len(sent) == 1 and second.skip_reason is not None
    aws.allow_region(reader, "eu-west-1")
    run_sync("prod", window)
    third = _failure_sensor(dagster, second.cursor)
    assert len(sent) == 2 and "again" in sent[1]
    assert json.loads(third.cursor)["flagged"] == []


def test_rejected_credentials_are_flagged_too(aws, reader, bedrock_home, sent):
    dagster = instance()
    connect(reader, "prod", regions="us-east-1")
    aws.delete_access_key(reader)
    assert steps.claim_initial_sync("prod")
    result = run_sync("prod", DayRange(days_ago(1), days_ago(1)))
    assert not result.success
    _failure_sensor(dagster, None)
    assert len(sent) == 1 and "InvalidClientTokenId" in sent[0]
    # A failed initial sync is left to the schedule, not retried by the sensor in a loop.
    assert StateStore().get("prod").initial_sync == "failed"
    assert _partitions_sensor(dagster).run_requests == []


def test_other_accounts_are_not_disturbed(aws, reader, bedrock_home, sent):
    dagster = instance()
    other = aws.create_reader(OTHER_ACCOUNT)
    connect(reader, "prod", regions="us-east-1")
    connect(other, "research", regions="us-east-1")
    aws.delete_access_key(reader)
    run_sync("prod", DayRange(days_ago(1), days_ago(1)))
    assert run_sync("research", DayRange(days_ago(1), days_ago(1))).success
    _failure_sensor(dagster, None)
    assert len(sent) == 1 and "research" not in sent[0]


def test_a_first_evaluation_flags_the_present_not_the_history(aws, reader, bedrock_home, sent):
    dagster = instance()
    connect(reader, "prod")
    window = DayRange(days_ago(1), days_ago(1))
    aws.deny_region(reader, "eu-west-1")
    run_sync("prod", window)
    aws.allow_region(reader, "eu-west-1")
    run_sync("prod", window)  # recovered before any daemon looked
    result = _failure_sensor(dagster, None)
    assert sent == [] and json.loads(result.cursor)["flagged"] == []
