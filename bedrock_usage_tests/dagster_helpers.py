"""A connected account in a temporary BEDROCK_USAGE_HOME, and a Dagster instance."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_usage.connections import service
from bedrock_usage.connections.credentials import AuthSpec
from bedrock_usage.emulator.server import AccessKeyPair


@pytest.fixture
def bedrock_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("BEDROCK_USAGE_WAREHOUSE", raising=False)
    return home


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
