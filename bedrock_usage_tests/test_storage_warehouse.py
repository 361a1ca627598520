"""The warehouse: window replacement, atomicity, schema, and a busy file."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from bedrock_usage.days import DayRange
from bedrock_usage.extraction.metrics import KnownSeries
from bedrock_usage.memory import shed_cache
from bedrock_usage.storage.schema import MIGRATIONS
from bedrock_usage.storage.warehouse import (
    WarehouseBusyError,
    WriterLimits,
    known_series,
    open_warehouse,
    publish_snapshot,
    rebuild_usage,
    replace_datapoints,
    transaction,
)

from .conftest import hold_warehouse

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
FETCHED = datetime(2026, 11, 4)


def _points(tokens_by_day, model="a.model-v1"):
    return pd.DataFrame(
        [(day, model, "InputTokenCount", "Sum", float(v)) for day, v in tokens_by_day.items()],
        columns=["usage_date", "model_id", "metric_name", "statistic", "value"],
    )


def _sync(path, windows, connection="acme", fetched_at=FETCHED):
    """windows: [(region, tokens_by_day, DayRange, model?)] written as one sync would."""
    with open_warehouse(path) as con, transaction(con):
        for region, tokens, day_range, *model in windows:
            replace_datapoints(
                con,
                connection,
                "111122223333",
                region,
                day_range,
                _points(tokens, *model),
                fetched_at,
            )
        span = DayRange(min(w[2].first for w in windows), max(w[2].last for w in windows))
        return rebuild_usage(con, connection, span)


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
    window = ("us-east-1", {D1: 10, D2: 20}, DayRange(D1, D2))
    assert _sync(path, [window]).rows == 2
    assert _sync(path, [window]).rows == 2
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 10, ("2026-11-02", "us-east-1"): 20}


def test_late_data_updates_only_its_window(tmp_path):
    path = tmp_path / "w.duckdb"
    _sync(
        path,
        [
            ("us-east-1", {D1: 10, D2: 20, D3: 30}, DayRange(D1, D3)),
            ("eu-west-1", {D2: 5}, DayRange(D2, D2)),
        ],
    )
    _sync(path, [("us-east-1", {D2: 25}, DayRange(D2, D2))], fetched_at=datetime(2026, 11, 5))
    assert _tokens(path) == {
        ("2026-11-01", "us-east-1"): 10,
        ("2026-11-02", "us-east-1"): 25,
        ("2026-11-03", "us-east-1"): 30,
        ("2026-11-02", "eu-west-1"): 5,
    }
    with duckdb.connect(str(path), read_only=True) as con:
        synced = dict(
            con.execute(
                "SELECT region, max(synced_at) FROM bedrock_usage_daily GROUP BY ALL"
            ).fetchall()
        )
    assert synced == {"us-east-1": datetime(2026, 11, 5), "eu-west-1": FETCHED}


def test_usage_is_rebuilt_from_stored_datapoints_without_aws(tmp_path):
    path = tmp_path / "w.duckdb"
    _sync(path, [("us-east-1", {D1: 10}, DayRange(D1, D1))])
    with open_warehouse(path) as con:
        con.execute("DELETE FROM bedrock_usage_daily")
        with transaction(con):
            rebuild_usage(con, "acme", DayRange(D1, D1))
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 10}


def test_a_failure_mid_write_keeps_the_old_rows(tmp_path):
    path = tmp_path / "w.duckdb"
    _sync(
        path, [("us-east-1", {D1: 10}, DayRange(D1, D1)), ("eu-west-1", {D1: 7}, DayRange(D1, D1))]
    )
    broken = _points({D1: 1}).assign(metric_name=None)  # NOT NULL fails on the second write
    with pytest.raises(duckdb.ConstraintException):
        with open_warehouse(path) as con, transaction(con):
            replace_datapoints(
                con,
                "acme",
                "111122223333",
                "us-east-1",
                DayRange(D1, D1),
                _points({D1: 99}),
                FETCHED,
            )
            replace_datapoints(
                con, "acme", "111122223333", "eu-west-1", DayRange(D1, D1), broken, FETCHED
            )
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
    _sync(path, [("us-east-1", {D1: 1}, DayRange(D1, D1), "x.m")])
    _sync(path, [("us-east-1", {D1: 1}, DayRange(D1, D1), "y.m")], connection="other")
    with open_warehouse(path) as con:
        assert known_series(con, "acme") == {"us-east-1": KnownSeries(runtime={"x.m"})}
        assert known_series(con, "nobody") == {}


def test_a_busy_file_is_retried_then_reported_with_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    _sync(path, [("us-east-1", {D1: 10}, DayRange(D1, D1))])
    holder = hold_warehouse(path, 30)
    try:
        monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "1")
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as raised:
            _sync(path, [("us-east-1", {D1: 11}, DayRange(D1, D1))])
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
    _sync(path, [("us-east-1", {D1: 10}, DayRange(D1, D1))])
    holder = hold_warehouse(path, 1)
    monkeypatch.setenv("BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS", "30")
    _sync(path, [("us-east-1", {D1: 12}, DayRange(D1, D1))])
    holder.wait()
    assert _tokens(path) == {("2026-11-01", "us-east-1"): 12}


def test_analysts_read_a_snapshot_that_never_blocks_a_write(tmp_path):
    path = tmp_path / "w.duckdb"
    snapshot = tmp_path / "w.snapshot.duckdb"

    def sync_and_publish(tokens: int, day=D1) -> Path:
        _sync(path, [("us-east-1", {day: tokens}, DayRange(day, day))])
        with open_warehouse(path, timeout=1) as con:
            return publish_snapshot(con, path, {"acme": DayRange(day, day)})

    assert sync_and_publish(10) == snapshot
    assert _tokens(snapshot) == {("2026-11-01", "us-east-1"): 10}
    with duckdb.connect(str(snapshot), read_only=True) as analyst:  # a long-lived session
        for tokens, day in ((12, D1), (5, D2), (7, D3)):  # several syncs, none blocked
            sync_and_publish(tokens, day)
        # the session keeps the copy it opened
        assert analyst.execute("SELECT sum(input_tokens) FROM bedrock_usage_daily").fetchone() == (
            10,
        )
    # reconnected: every sync's data
    assert _tokens(snapshot) == {
        ("2026-11-01", "us-east-1"): 12,
        ("2026-11-02", "us-east-1"): 5,
        ("2026-11-03", "us-east-1"): 7,
    }
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_refreshed_snapshot_equals_one_built_whole(tmp_path):
    path = tmp_path / "w.duckdb"
    _sync(path, [("us-east-1", {D1: 10, D2: 20}, DayRange(D1, D2))])
    _sync(path, [("eu-west-1", {D1: 3}, DayRange(D1, D1))], connection="other")
    with open_warehouse(path) as con:
        publish_snapshot(con, path)
    _sync(path, [("us-east-1", {D2: 21, D3: 30}, DayRange(D2, D3))])
    _sync(path, [("eu-west-1", {D1: 4}, DayRange(D1, D1))], connection="other")
    with open_warehouse(path) as con:  # two windows, each committed on its own
        refreshed = publish_snapshot(con, path, {"acme": DayRange(D2, D3), "other": None})
        query = "SELECT * EXCLUDE (synced_at) FROM {} ORDER BY ALL"
        expected = con.execute(query.format("bedrock_usage_daily")).fetchall()
    with duckdb.connect(str(refreshed), read_only=True) as snapshot:
        assert snapshot.execute(query.format("bedrock_usage_daily")).fetchall() == expected
    assert _tokens(refreshed)[("2026-11-02", "us-east-1")] == 21
    assert _tokens(refreshed)[("2026-11-01", "eu-west-1")] == 4


def test_a_warehouse_of_schema_1_is_migrated_in_place_without_losing_a_row(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:  # exactly what the first release wrote
        version, ddl = MIGRATIONS[0]
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        con.execute(ddl)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
        con.execute(
            "INSERT INTO cloudwatch_daily_datapoints VALUES "
            "('2026-11-01', 'acme', '111122223333', 'us-east-1', 'a.model-v1', "
            "'InputTokenCount', 'Sum', 1e15, '2026-11-02 01:00:00'), "
            "('2026-11-01', 'acme', '111122223333', 'us-east-1', '(region total)', "
            "'InputTokenCount', 'Sum', 1e15, '2026-11-02 01:00:00')"
        )
        con.execute(
            "INSERT INTO bedrock_usage_daily VALUES ('2026-11-01', 'acme', '111122223333', "
            "'us-east-1', 'a.model-v1', 'a', 'a.model-v1', 'in_region', 1000000000000000, 5, "
            "7, 0, 0, 1, 0, 2, 3.5, 7, '2026-11-02 01:00:00')"
        )
        before_raw = con.execute(
            "SELECT * FROM cloudwatch_daily_datapoints ORDER BY ALL"
        ).fetchall()
    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(
            MIGRATIONS
        )
        # Version 3: the shipped prices and the cost view (an unknown model: no estimate).
        assert con.execute("SELECT count(*) > 300 FROM bedrock_prices").fetchone() == (True,)
        assert con.execute("SELECT estimated_cost_usd FROM bedrock_cost_daily").fetchall() == [
            (None,)
        ]
        after_raw = con.execute(
            "SELECT * EXCLUDE (project_id) FROM cloudwatch_daily_datapoints ORDER BY ALL"
        ).fetchall()
        usage = con.execute("SELECT * FROM bedrock_usage_daily").df()
        no_keys = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchone()[0]
    assert after_raw == before_raw
    [row] = usage.to_dict("records")
    assert row["api_endpoint"] == "bedrock-runtime"
    assert (row["input_tokens"], row["output_tokens"], row["invocations"]) == (10**15, 5, 7)
    assert (row["client_errors"], row["throttles"], row["latency_ms_sum"]) == (1, 2, 3.5)
    assert no_keys == 0


def test_a_writer_is_bounded_and_a_reader_is_not(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    monkeypatch.setenv("BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT", "96MB")
    with open_warehouse(path) as con:
        limit, threads = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    assert (limit, threads) == ("91.5 MiB", 1)  # DuckDB shows 96 MB in MiB
    with open_warehouse(path, limits=WriterLimits(memory_limit="1GB", threads=2)) as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 2
    with open_warehouse(path, read_only=True) as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] >= 1


def _cached_bytes(con) -> int:
    return con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0]


def test_shedding_the_cache_keeps_the_rows_and_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    days = {date.fromordinal(D1.toordinal() - d): 5 for d in range(365)}
    span = DayRange(min(days), max(days))
    points = pd.concat([_points(days, f"m.model-{m}-v1") for m in range(40)])
    with open_warehouse(path) as con:
        with transaction(con):
            replace_datapoints(con, "acme", "111122223333", "us-east-1", span, points, FETCHED)
            rebuild_usage(con, "acme", span)  # what a run's next window finds cached
        before = _cached_bytes(con)
        shed_cache(con)
        assert _cached_bytes(con) < before / 4
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "122.0 MiB"
        assert con.execute("SELECT sum(input_tokens) FROM bedrock_usage_daily").fetchone()[0] == (
            5 * 365 * 40
        )
    # An in-memory DuckDB (a lake's) is left alone: shedding would write its tables to a
    # temp directory in the working directory.
    monkeypatch.chdir(tmp_path)
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT range AS r FROM range(1000000)")
        shed_cache(con)
        assert not (tmp_path / ".tmp").exists()
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1_000_000


def test_every_view_of_the_analysts_copy_answers_when_an_analyst_opens_it(tmp_path):
    """Views made in the copy while the writer had it attached under another name must
    name their tables relative to the copy itself (an analyst opens it as its own)."""
    from bedrock_usage.storage.warehouse import open_warehouse, publish_snapshot

    target = tmp_path / "warehouse.duckdb"
    with open_warehouse(target) as db:
        publish_snapshot(db, target, {})
    with duckdb.connect(str(tmp_path / "warehouse.snapshot.duckdb"), read_only=True) as copy:
        views = [v for (v,) in copy.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall()]  # fmt: skip
        assert {"bedrock_cost_monthly_by_account", "bedrock_cost_vs_bill_monthly",
                "bedrock_cost_monthly_by_owner"} <= set(views)  # fmt: skip
        # The estimates are stored there, so cost queries read a table.
        assert copy.execute(
            "SELECT table_type FROM information_schema.tables "
            "WHERE table_name = 'bedrock_cost_daily'"
        ).fetchall() == [("BASE TABLE",)]
        for view in views:
            copy.execute(f"SELECT count(*) FROM {view}").fetchone()


def test_a_publish_starts_from_the_copy_before_last_and_matches_the_warehouse(tmp_path):
    """A daily publish writes its windows into the spare (the copy before last, caught up
    with the last publish's windows) instead of copying every byte of history; when an
    analyst still reads the spare, or a connection was rewritten whole, it copies or
    keeps none. After every publish the copy holds exactly the warehouse's rows."""
    from bedrock_usage.storage.warehouse import spare_path

    path = tmp_path / "w.duckdb"
    copy = tmp_path / "w.snapshot.duckdb"
    spare = spare_path(copy)
    query = "SELECT * FROM {} ORDER BY ALL"

    def publish(changed):
        with open_warehouse(path) as con:
            publish_snapshot(con, path, changed)
            expected = {t: con.execute(query.format(t)).fetchall()
                        for t in ("bedrock_usage_daily", "bedrock_cost_daily")}  # fmt: skip
        with duckdb.connect(str(copy), read_only=True) as analyst:
            for table, rows in expected.items():
                assert analyst.execute(query.format(table)).fetchall() == rows, table

    _sync(path, [("us-east-1", {D1: 10, D2: 20}, DayRange(D1, D2))])
    _sync(path, [("eu-west-1", {D1: 3}, DayRange(D1, D1))], connection="other")
    publish(None)  # built whole: every connection rewritten, so no spare
    assert not spare.exists()
    _sync(path, [("us-east-1", {D2: 21}, DayRange(D2, D2))])
    publish({"acme": DayRange(D2, D2)})  # a byte copy; the copy it replaced is the spare
    assert spare.exists()
    for day, tokens in ((D3, 30), (D1, 11), (D2, 22)):  # each starts from the spare
        inode = spare.stat().st_ino
        _sync(path, [("us-east-1", {day: tokens}, DayRange(day, day))])
        publish({"acme": DayRange(day, day)})
        assert copy.stat().st_ino == inode  # the spare, caught up, is the copy now
    assert _tokens(copy)[("2026-11-02", "us-east-1")] == 22

    # An analyst still reads the spare (opened before the last swap): it is left alone.
    holder = hold_warehouse(spare)
    try:
        held = spare.stat().st_ino
        _sync(path, [("eu-west-1", {D2: 5}, DayRange(D2, D2))], connection="other")
        publish({"other": DayRange(D2, D2)})
        assert copy.stat().st_ino != held and spare.stat().st_ino != held
    finally:
        holder.kill()
        holder.wait()
    _sync(path, [("eu-west-1", {D3: 6}, DayRange(D3, D3))], connection="other")
    publish({"other": DayRange(D3, D3)})

    # A connection rewritten whole (a purge is one) keeps no spare with its old rows.
    publish({"other": None})
    assert not spare.exists()
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_analysts_copy_is_made_of_small_blocks_and_an_older_copy_is_rebuilt(tmp_path):
    """The copy uses 64 KiB blocks, so a window appended to it holds little memory until
    its checkpoint. A copy of DuckDB's default 256 KiB blocks (made before) is built whole
    at the next publish, once, with exactly the warehouse's rows."""
    from bedrock_usage.storage.warehouse import SNAPSHOT_BLOCK_SIZE

    path = tmp_path / "w.duckdb"
    copy = tmp_path / "w.snapshot.duckdb"
    query = "SELECT * FROM bedrock_usage_daily ORDER BY ALL"

    def block_size() -> int:
        with duckdb.connect(str(copy), read_only=True) as analyst:
            return analyst.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]

    _sync(path, [("us-east-1", {D1: 10, D2: 20}, DayRange(D1, D2))])
    with open_warehouse(path) as con:
        publish_snapshot(con, path, None)
    assert block_size() == SNAPSHOT_BLOCK_SIZE == 65_536

    older = tmp_path / "older.duckdb"
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{copy}' AS current (READ_ONLY)")
        con.execute(f"ATTACH '{older}' AS older (BLOCK_SIZE 262144)")
        con.execute("COPY FROM DATABASE current TO older")
    older.replace(copy)
    assert block_size() == 262_144

    _sync(path, [("us-east-1", {D2: 21}, DayRange(D2, D2))])
    with open_warehouse(path) as con:
        publish_snapshot(con, path, {"acme": DayRange(D2, D2)})
        expected = con.execute(query).fetchall()
    assert block_size() == SNAPSHOT_BLOCK_SIZE
    with duckdb.connect(str(copy), read_only=True) as analyst:
        assert analyst.execute(query).fetchall() == expected
    assert _tokens(copy)[("2026-11-02", "us-east-1")] == 21
