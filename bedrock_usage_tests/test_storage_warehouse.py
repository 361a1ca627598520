"""The warehouse: window replacement, atomicity, schema, and a busy file."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from bedrock_usage.days import DayRange
from bedrock_usage.shaping.daily import shape_daily_usage
from bedrock_usage.storage.schema import MIGRATIONS
from bedrock_usage.storage.warehouse import (
    UsageWindow,
    WarehouseBusyError,
    known_model_ids,
    open_warehouse,
    replace_usage_windows,
)

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def _window(region, tokens_by_day, day_range, connection="acme", model="a.model-v1"):
    points = pd.DataFrame(
        [(day, model, "InputTokenCount", "Sum", float(v)) for day, v in tokens_by_day.items()],
        columns=["usage_date", "model_id", "metric_name", "statistic", "value"],
    )
    usage = shape_daily_usage(points, connection, "111122223333", region, datetime(2026, 11, 4))
    raw = points.assign(
        connection_id=connection,
        account_id="111122223333",
        region=region,
        fetched_at=datetime(2026, 11, 4),
    )
    return UsageWindow(connection, region, day_range, usage, raw)


def _tokens(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            (str(d), r): t
            for d, r, t in con.execute(
                "SELECT usage_date, region, sum(input_tokens) FROM bedrock_usage_daily GROUP BY ALL"
            ).fetchall()
        }


def test_rewriting_a_window_replaces_it_without_duplicates(tmp_path):
    path = tmp_path / "w.duckdb"
    window = _window("us-east-1", {D1: 10, D2: 20}, DayRange(D1, D2))
    assert replace_usage_windows(path, [window]) == 2
    assert replace_usage_windows(path, [window]) == 2
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 10, ("2026-11-02", "us-east-1"): 20}


def test_late_data_updates_only_its_window(tmp_path):
    path = tmp_path / "w.duckdb"
    replace_usage_windows(
        path,
        [
            _window("us-east-1", {D1: 10, D2: 20, D3: 30}, DayRange(D1, D3)),
            _window("eu-west-1", {D2: 5}, DayRange(D2, D2)),
        ],
    )
    replace_usage_windows(path, [_window("us-east-1", {D2: 25}, DayRange(D2, D2))])
    assert _tokens(path) == {
        ("2026-11-01", "us-east-1"): 10,
        ("2026-11-02", "us-east-1"): 25,
        ("2026-11-03", "us-east-1"): 30,
        ("2026-11-02", "eu-west-1"): 5,
    }


def test_a_failure_mid_write_keeps_the_old_rows(tmp_path):
    path = tmp_path / "w.duckdb"
    replace_usage_windows(
        path,
        [
            _window("us-east-1", {D1: 10}, DayRange(D1, D1)),
            _window("eu-west-1", {D1: 7}, DayRange(D1, D1)),
        ],
    )
    good = _window("us-east-1", {D1: 99}, DayRange(D1, D1))
    broken = _window("eu-west-1", {D1: 1}, DayRange(D1, D1))
    duplicated = UsageWindow(
        broken.connection_id,
        broken.region,
        broken.day_range,
        pd.concat([broken.usage, broken.usage]),
        broken.datapoints,
    )
    with pytest.raises(duckdb.ConstraintException):
        replace_usage_windows(path, [good, duplicated])
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 10, ("2026-11-01", "eu-west-1"): 7}


def test_the_schema_is_created_and_versioned(tmp_path):
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(
            MIGRATIONS
        )
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'bedrock_usage_daily'"
            ).fetchall()
        )
    assert types["usage_date"] == "DATE" and types["throttles"] == "BIGINT"
    assert types["synced_at"] == "TIMESTAMP"
    with open_warehouse(path) as con:  # opening again applies nothing twice
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_known_models_come_from_stored_datapoints(tmp_path):
    path = tmp_path / "w.duckdb"
    assert known_model_ids(path, "acme") == {}
    replace_usage_windows(
        path,
        [
            _window("us-east-1", {D1: 1}, DayRange(D1, D1), model="x.m"),
            _window("us-east-1", {D1: 1}, DayRange(D1, D1), "other", "y.m"),
        ],
    )
    assert known_model_ids(path, "acme") == {"us-east-1": {"x.m"}}


def _hold_lock(path, seconds):
    code = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
        "time.sleep(float(sys.argv[2]))"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_busy_file_is_retried_then_reported_with_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    replace_usage_windows(path, [_window("us-east-1", {D1: 10}, DayRange(D1, D1))])
    holder = _hold_lock(path, 30)
    try:
        monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "1")
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as raised:
            replace_usage_windows(path, [_window("us-east-1", {D1: 11}, DayRange(D1, D1))])
        assert time.monotonic() - started >= 0.5
        message = str(raised.value)
        assert str(path) in message and f"pid {holder.pid}" in message
        assert "close" in message
    finally:
        holder.kill()
        holder.wait()
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 10}


def test_a_briefly_busy_file_is_written_once_free(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    replace_usage_windows(path, [_window("us-east-1", {D1: 10}, DayRange(D1, D1))])
    holder = _hold_lock(path, 1)
    monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "30")
    replace_usage_windows(path, [_window("us-east-1", {D1: 12}, DayRange(D1, D1))])
    holder.wait()
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 12}
