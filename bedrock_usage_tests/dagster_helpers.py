"""Connecting an account in-process, as the CLI does, for Dagster tests."""

from __future__ import annotations

import json

from bedrock_usage.connections import service
from bedrock_usage.connections.credentials import AuthSpec
from bedrock_usage.defs.assets import RUN_TOTALS
from bedrock_usage.defs.local_runs import instance
from bedrock_usage.defs.partitions import partition_days
from bedrock_usage.emulator.server import AccessKeyPair


def connect(
    key: AccessKeyPair,
    name: str = "prod",
    regions: str = "us-east-1,eu-west-1",
    backfill_days: int = 30,
):
    return service.connect(
        name,
        key.account_id,
        regions,
        AuthSpec(key.access_key_id, key.secret_access_key),
        backfill_days,
    )


def run_totals(run_id: str, step: str) -> dict:
    """The one event a step logs with its run's totals."""
    [totals] = [
        json.loads(entry.user_message.removeprefix(RUN_TOTALS))
        for entry in instance().all_logs(run_id)
        if entry.step_key == step and entry.user_message.startswith(RUN_TOTALS)
    ]
    return totals


def by_partition(result, asset: str) -> dict[tuple[str, str], dict]:
    """Each (connection, day) partition's materialization metadata, as plain values."""
    found = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key.path != [asset]:
            continue
        materialization = event.materialization
        [(_, (connection_id, day))] = partition_days([materialization.partition])
        found[connection_id, str(day)] = {k: v.value for k, v in materialization.metadata.items()}
    return found
