"""Settings are checked before anything runs: a bad value is one line naming it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bedrock_usage import settings
from bedrock_usage.defs.resources import PriceListResource, SyncSettingsResource, WarehouseResource
from bedrock_usage.settings import SettingsError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(tmp_path / "home"))
    for name in ("DAGSTER_HOME", "BEDROCK_USAGE_WAREHOUSE", "BEDROCK_USAGE_SNAPSHOT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize(
    "target",
    ["warehouse.duckdb", "warehouse.duckdb.wal", "state.sqlite3", "state.sqlite3-wal",
     "secret.key", "dagster/dagster.yaml"],
)  # fmt: skip
def test_a_snapshot_path_on_a_file_of_our_own_is_refused(home, monkeypatch, target):
    monkeypatch.setenv("BEDROCK_USAGE_SNAPSHOT", str(home / target))
    with pytest.raises(SettingsError, match="BEDROCK_USAGE_SNAPSHOT"):
        settings.check_all()


def test_the_default_and_a_separate_snapshot_path_are_accepted(home, monkeypatch, tmp_path):
    assert settings.snapshot_path() == home / "warehouse.snapshot.duckdb"
    monkeypatch.setenv("BEDROCK_USAGE_SNAPSHOT", str(tmp_path / "analysts.duckdb"))
    assert settings.snapshot_path() == tmp_path / "analysts.duckdb"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "soon"),
        ("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "-1"),
        ("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "nan"),
        ("BEDROCK_USAGE_LOOKBACK_DAYS", "2.5"),
        ("BEDROCK_USAGE_RECONCILE_TOLERANCE", "5%"),
        ("BEDROCK_USAGE_RECONCILE_TOLERANCE", "2"),
        ("AWS_MAX_ATTEMPTS", "0"),
        ("AWS_RETRY_MODE", "aggressive"),
        ("AWS_ENDPOINT_URL", "localhost:4566"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:port"),
        ("BEDROCK_USAGE_HOME", ""),
        ("BEDROCK_USAGE_START_DATE", "2025-13-01"),
        ("BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT", "lots"),
        ("BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT", "128"),
        ("BEDROCK_USAGE_WAREHOUSE_THREADS", "0"),
        ("BEDROCK_USAGE_STATE_URL", "sqlite:///state.db"),
        ("BEDROCK_USAGE_SCHEDULE_CRON", "every day"),
        ("BEDROCK_USAGE_LAKE_CATALOG", "s3://bucket/catalog"),
    ],
)
def test_a_bad_value_names_the_setting(home, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        settings.check_all()
    assert raised.value.name == name and "\n" not in str(raised.value)


def test_a_home_that_is_a_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(tmp_path / "file"))
    with pytest.raises(SettingsError, match="is a file"):
        settings.check_all()


def test_a_state_url_is_shown_without_its_password(home, monkeypatch):
    monkeypatch.setenv("BEDROCK_USAGE_STATE_URL", "mysql://bedrock:hunter2@db/state")
    with pytest.raises(SettingsError) as raised:
        settings.check_all()
    assert "hunter2" not in str(raised.value) and "bedrock:***@db" in str(raised.value)


def test_a_misspelt_setting_is_named_with_the_closest_known_one(monkeypatch):
    for name in [n for n in os.environ if n.startswith("BEDROCK_USAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BEDROCK_USAGE_LOOKBAK_DAYS", "3")
    monkeypatch.setenv("BEDROCK_USAGE_LOOKBACK_DAYS", "3")  # known: no line
    monkeypatch.setenv("BEDROCK_USAGE_TEST_ANYTHING", "1")  # the test suite's own
    assert settings.unknown_variables() == [
        "Warning: BEDROCK_USAGE_LOOKBAK_DAYS is not a bedrock_usage setting and is ignored. "
        "Did you mean BEDROCK_USAGE_LOOKBACK_DAYS?"
    ]


REPO = Path(__file__).resolve().parents[1]


def test_the_settings_table_in_the_docs_is_made_from_the_declarations():
    docs = (REPO / "docs" / "operating.md").read_text()
    assert settings.markdown_table() in docs, (
        "docs/operating.md's settings table differs from settings.SETTINGS: paste the "
        "output of `python -m bedrock_usage.settings` over it"
    )


def test_every_variable_we_read_is_declared_once():
    """Every BEDROCK_USAGE_* name in the package and the deployment files is a declared
    setting (the test suite's own BEDROCK_USAGE_TEST_* aside), and no name twice."""
    declared = [s.name for s in settings.SETTINGS]
    assert len(declared) == len(set(declared))
    files = [*(REPO / "bedrock_usage").rglob("*.py"), *(REPO / "deploy").rglob("*.yaml")]
    used = {
        name
        for path in files
        for name in re.findall(r"BEDROCK_USAGE_[A-Z0-9_]*[A-Z0-9]", path.read_text())
        if not name.startswith("BEDROCK_USAGE_TEST")
    }
    assert "BEDROCK_USAGE_CODE_SERVER_PORT" in used  # deploy/workspace.yaml's
    assert used - set(declared) == set()


def test_each_resource_field_is_its_settings_declaration():
    """A field that carries a setting has the declared default, and its description names
    the variable and the range the reader checks."""
    carried = {}
    for resource in (WarehouseResource, SyncSettingsResource, PriceListResource):
        for field in resource.model_fields.values():
            variable = (field.json_schema_extra or {}).get("variable")
            if variable:
                carried[variable] = field
    by_name = {s.name: s for s in settings.SETTINGS}
    assert set(carried) == {
        "BEDROCK_USAGE_WAREHOUSE", "BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS",
        "BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT", "BEDROCK_USAGE_WAREHOUSE_THREADS",
        "BEDROCK_USAGE_LOOKBACK_DAYS", "BEDROCK_USAGE_REGION_CONCURRENCY",
        "BEDROCK_USAGE_FLEET_BATCH", "BEDROCK_USAGE_RECONCILE_TOLERANCE",
        "BEDROCK_USAGE_EXTRA_MODEL_IDS", "BEDROCK_USAGE_PRICE_LIST_URL",
    }  # fmt: skip
    for variable, field in carried.items():
        setting = by_name[variable]
        assert field.annotation(field.default) == field.annotation(setting.default or "")
        assert variable in field.description
        if setting.low is not None:
            assert f"{setting.low:g}-{setting.high:g}" in field.description
            with pytest.raises(SettingsError, match=variable):
                setting.number(str(setting.high + 1))
