"""The state store: one initial-sync claim, region health, events, and disconnect — on
SQLite and on a real PostgreSQL server, with the same tests."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import psycopg2
import pytest

from bedrock_usage.connections.store import Connection, DuplicateConnectionError, StateStore

from .conftest import postgres_sessions


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> StateStore:
    if request.param == "sqlite":
        return StateStore(tmp_path / "state.sqlite3")
    return StateStore(url=request.getfixturevalue("postgres_url"))


def _connection(name="prod", account="111122223333"):
    return Connection(
        connection_id=name,
        account_id=account,
        regions=("us-east-1",),
        auth_method="keys",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_ciphertext="gAAAA-ciphertext",
        role_arn=None,
        external_id=None,
        profile=None,
        backfill_days=30,
        initial_sync="pending",
        created_at="t",
        updated_at="t",
    )


def test_the_initial_sync_is_claimed_exactly_once(store):
    store.add(_connection())
    assert store.claim_initial_sync("prod") is True
    assert store.claim_initial_sync("prod") is False
    assert store.get("prod").initial_sync == "running"


def test_region_health_flags_until_a_success(store):
    store.add(_connection())
    store.record_region_failure("prod", "us-east-1", "permission", "AccessDenied", "m", "fix it")
    assert store.region_health("prod")["us-east-1"].needs_attention
    store.record_region_success("prod", "us-east-1", "2026-11-26")
    health = store.region_health("prod")["us-east-1"]
    assert not health.needs_attention and health.last_synced_day == "2026-11-26"
    store.record_region_success("prod", "us-east-1", "2026-11-01")  # an older backfill
    assert store.region_health("prod")["us-east-1"].last_synced_day == "2026-11-26"


def test_events_are_newest_first_and_filterable(store):
    for i in range(3):
        store.log_event("prod", "sync", "ok", f"event {i}", region="us-east-1")
    store.log_event("other", "sync", "ok", "elsewhere")
    events = store.events("prod")
    assert [e.message for e in events] == ["event 2", "event 1", "event 0"]
    assert [e.message for e in store.events(after_event_id=events[0].event_id)] == ["elsewhere"]


def test_removing_a_connection_leaves_no_trace_of_its_ciphertext(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    store.add(_connection())
    store.add(_connection("other", "444455556666"))
    store.remove("prod")
    assert store.get("prod") is None and store.get("other") is not None
    for path in tmp_path.iterdir():
        assert path.read_bytes().count(b"gAAAA-ciphertext") == (
            1 if path.name == "state.sqlite3" else 0
        )  # the other connection's copy only


def test_concurrent_claims_of_the_initial_sync_have_one_winner(store):
    store.add(_connection())
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: store.claim_initial_sync("prod"), range(8)))
    assert claims.count(True) == 1


def test_attempts_and_each_sensors_cursor_are_replaced_not_duplicated(store):
    store.add(_connection())
    store.begin_attempt("prod", "run-1", "2026-11-01..2026-11-02", "fetching")
    store.set_phase("prod", "writing data points", ["eu-west-1"])
    store.begin_attempt("prod", "run-2", "2026-11-03..2026-11-03", "fetching")
    (attempt,) = store.attempts()
    assert (attempt.run_id, attempt.failed_regions) == ("run-2", None)
    store.save_sensor_cursor("permission_failure_sensor", {"event_id": 1})
    store.save_sensor_cursor("permission_failure_sensor", {"event_id": 2})
    store.save_sensor_cursor("spend_alert_sensor", {"event_id": 7})
    assert store.sensor_cursor("permission_failure_sensor") == {"event_id": 2}
    assert store.sensor_cursor("spend_alert_sensor") == {"event_id": 7}
    assert store.sensor_cursor("another_sensor") is None


def test_on_postgresql_a_removed_secret_is_in_no_table_and_its_table_is_rewritten(postgres_url):
    store = StateStore(url=postgres_url)
    store.add(_connection())
    store.add(_connection("other", "444455556666"))
    store.record_region_failure("prod", "us-east-1", "permission", "AccessDenied", "m", "fix")

    def files_and_copies():
        with psycopg2.connect(postgres_url) as db, db.cursor() as cursor:
            cursor.execute("SELECT pg_relation_filenode('connections')")
            filenode = cursor.fetchone()[0]
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
            copies = 0
            for (table,) in cursor.fetchall():
                cursor.execute(f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%gAAAA%'")
                copies += cursor.fetchone()[0]
        return filenode, copies

    before, copies = files_and_copies()
    assert copies == 2
    store.remove("prod")
    assert store.scrub() is True
    after, copies = files_and_copies()
    assert copies == 1  # the other connection's
    assert after != before  # VACUUM FULL wrote a new file without the dead row versions
    assert store.get("prod") is None and store.region_health("prod") == {}
    assert store.location.startswith("postgresql://") and "***" not in postgres_url


def test_processes_opening_a_new_state_store_at_once_all_get_it(tmp_path):
    # SQLite refuses the switch to WAL with "database is locked" at once when it meets
    # another connection's transaction: before the fix, 29 of 200 such races failed one.
    def first_use(path):  # a write's transaction, as connect's
        with StateStore(path).transaction() as db:
            return db.execute("SELECT * FROM connections").fetchall()

    for attempt in range(40):
        path = tmp_path / f"state-{attempt}.sqlite3"
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(first_use, [path] * 4)) == [[], [], [], []]


def test_concurrent_connects_of_one_account_store_one_and_name_the_other(store):
    """Two `connect`s of one account both pass the checks, then race to insert."""
    contenders = [_connection("prod"), _connection("prod-again"), _connection("prod")]

    def add(connection):
        try:
            store.add(connection)
            return "stored"
        except DuplicateConnectionError:
            return "duplicate"

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = sorted(pool.map(add, contenders))
    assert outcomes == ["duplicate", "duplicate", "stored"]
    assert [c.account_id for c in store.all()] == ["111122223333"]


def test_a_store_from_before_cursors_per_sensor_keeps_the_permission_sensors(tmp_path):
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as old:  # the table as stores made before 2026-12-04 have it
        old.execute(
            "CREATE TABLE alert_cursor "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT NOT NULL)"
        )
        old.execute(
            """INSERT INTO alert_cursor VALUES (1, '{"event_id": 41, "flagged": ["a/b"]}')"""
        )
    store = StateStore(path)
    cursor = {"event_id": 41, "flagged": ["a/b"]}
    assert store.sensor_cursor("permission_failure_sensor") == cursor
    store.save_sensor_cursor("permission_failure_sensor", {"event_id": 42, "flagged": []})
    assert StateStore(path).sensor_cursor("permission_failure_sensor")["event_id"] == 42


def test_on_postgresql_a_process_reuses_one_session_and_recovers_when_it_ends(postgres_url):
    store = StateStore(url=postgres_url)
    store.add(_connection())
    before, [live] = postgres_sessions(postgres_url)
    for _ in range(30):
        assert store.get("prod").account_id == "111122223333"
        store.update("prod", updated_at="u")
    after, open_now = postgres_sessions(postgres_url)
    assert open_now == [live] and after == before  # not 60 sessions: the same one

    # The server ends it (a restart, an idle timeout): the next use opens another.
    with closing(psycopg2.connect(postgres_url)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [live])
    assert store.get("prod") is not None
    _, open_now = postgres_sessions(postgres_url)
    assert len(open_now) == 1 and open_now != [live]


def test_on_postgresql_a_reused_session_keeps_transactions_whole(postgres_url):
    """A session comes back as a new one is: `scrub` turns autocommit on, and a failed
    transaction must still roll back whole on the session used next."""
    store = StateStore(url=postgres_url)
    store.add(_connection())
    assert store.scrub() is True
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("UPDATE connections SET updated_at = 'half' WHERE connection_id = 'prod'")
        raise RuntimeError("fails midway")
    assert store.get("prod").updated_at == "t"
    with pytest.raises(DuplicateConnectionError):
        store.add(_connection())  # a refused write; the session is closed, not kept
    assert [c.connection_id for c in store.all()] == ["prod"]
