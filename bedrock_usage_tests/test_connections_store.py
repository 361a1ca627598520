"""The state store: one initial-sync claim, region health, events, and disconnect."""

from bedrock_usage.connections.store import Connection, StateStore


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


def test_the_initial_sync_is_claimed_exactly_once(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    store.add(_connection())
    assert store.claim_initial_sync("prod") is True
    assert store.claim_initial_sync("prod") is False
    assert store.get("prod").initial_sync == "running"


def test_region_health_flags_until_a_success(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    store.add(_connection())
    store.record_region_failure("prod", "us-east-1", "permission", "AccessDenied", "m", "fix it")
    assert store.region_health("prod")["us-east-1"].needs_attention
    store.record_region_success("prod", "us-east-1", "2026-11-26")
    health = store.region_health("prod")["us-east-1"]
    assert not health.needs_attention and health.last_synced_day == "2026-11-26"
    store.record_region_success("prod", "us-east-1", "2026-11-01")  # an older backfill
    assert store.region_health("prod")["us-east-1"].last_synced_day == "2026-11-26"


def test_events_are_newest_first_and_filterable(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
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
