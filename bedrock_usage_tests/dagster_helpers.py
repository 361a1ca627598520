"""Connecting an account in-process, as the CLI does, for Dagster tests."""

from __future__ import annotations

from bedrock_usage.connections import service
from bedrock_usage.connections.credentials import AuthSpec
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
