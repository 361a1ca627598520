"""A sync attempt of one connection, around the Dagster assets that run it: the window it
covers (`default_sync_range`, `initial_sync_range`), reading and storing its regions
with each region's outcome in the event log and its health (`fetch_and_store`), and the
state `connections` and `status` show while and after it runs (`connection_state`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from .. import settings
from ..connections.credentials import session_for, stored_auth
from ..connections.service import get_connection, session_failure
from ..connections.store import Connection, RegionHealth, StateStore
from ..days import DayRange, readable_range, utc_today
from ..errors import UserError
from ..extraction.fetch import RegionFetch, empty_datapoints
from ..memory import freeze_heap, release_freed_memory, release_garbage
from ..storage.profiles import store_profiles
from ..storage.warehouse import atomically
from . import attempts
from .profiles import PROFILE_PERMISSION, ProfileRead, application_profile_ids, read_profiles
from .progress import SILENT, SyncProgress
from .regions import (
    DEFAULT_OPTIONS,
    SyncOptions,
    SyncTarget,
    WarehouseOpener,
    fetch_regions,
    now_utc,
    store_fetches,
)


def default_sync_range(lookback_days: int | None = None) -> DayRange:
    """Yesterday and the `lookback_days` before it, so late CloudWatch data is picked up."""
    yesterday = utc_today() - timedelta(days=1)
    lookback = settings.lookback_days() if lookback_days is None else lookback_days
    return readable_range(yesterday - timedelta(days=lookback), yesterday)


def initial_sync_range(connection: Connection) -> DayRange:
    yesterday = utc_today() - timedelta(days=1)
    return readable_range(yesterday - timedelta(days=connection.backfill_days - 1), yesterday)


def claim_initial_sync(connection_id: str, store: StateStore | None = None) -> bool:
    """Take the initial sync of a new connection, atomically: the CLI and the sensor may
    both try, and exactly one wins."""
    return (store or StateStore()).claim_initial_sync(connection_id)


def fetch_and_store(
    connection_id: str,
    day_range: DayRange,
    open_db: WarehouseOpener,
    store: StateStore | None = None,
    run_id: str | None = None,
    progress: SyncProgress = SILENT,
    options: SyncOptions = DEFAULT_OPTIONS,
) -> tuple[Connection, list[RegionFetch]]:
    """Begin a sync attempt: read a connection's regions for `day_range` and replace
    their stored data points, recording each region's outcome in the event log and its
    health (a failed region needs attention until a later success). The usage rows are
    rebuilt separately, by the `bedrock_usage_daily` asset's step, which ends the
    attempt."""
    store = store or StateStore()
    connection = get_connection(connection_id, store)
    freeze_heap()
    attempts.begin(store, connection_id, run_id, day_range)
    fetches, profile_reads = _fetch(connection, day_range, open_db, progress, options)
    release_garbage()  # the regions' clients, before the store needs the memory
    store.set_phase(connection_id, attempts.WRITING, [f.region for f in fetches if not f.ok])
    if any(f.ok for f in fetches):
        fetched_at = now_utc()
        with open_db() as db:

            def write() -> None:
                # The warehouse lock orders this write and a purge: after a purge
                # committed, nothing of the connection may be written again.
                ensure_still_connected(store, connection)
                store_fetches(db, connection_id, connection.account_id, fetches, fetched_at)
                for region, read in profile_reads.items():
                    store_profiles(db, connection_id, connection.account_id, region,
                                   read.rows(), fetched_at)  # fmt: skip

            atomically(db, write, connection_id=connection_id)
        for fetch in fetches:
            fetch.release_datapoints()  # stored: a run over many connections keeps only counts
        release_freed_memory()
    _record_fetches(store, connection, fetches)
    _record_profile_reads(store, connection_id, profile_reads)
    return connection, fetches


def ensure_still_connected(store: StateStore, connection: Connection) -> None:
    current = store.get(connection.connection_id)
    if current is None or current.created_at != connection.created_at:
        raise UserError(
            f"'{connection.connection_id}' was disconnected while it synced: nothing of it was "
            "written."
        )


def _fetch(
    connection: Connection,
    day_range: DayRange,
    open_db: WarehouseOpener,
    progress: SyncProgress,
    options: SyncOptions,
) -> tuple[list[RegionFetch], dict[str, ProfileRead]]:
    """Every region's answer, and the application inference profiles its usage names."""
    auth = stored_auth(connection)  # a SecretKeyError is a `configuration` outcome
    try:
        session = session_for(auth)
    except Exception as error:  # noqa: BLE001 - a role that cannot be assumed fails every region
        failure = session_failure(auth, error)
        fetches = [
            RegionFetch(region, day_range, empty_datapoints(), replace(failure, region=region))
            for region in connection.regions
        ]
        for fetch in fetches:
            if progress.on_region_done:
                progress.on_region_done(fetch)
        return fetches, {}
    target = SyncTarget(
        connection.connection_id, connection.account_id, connection.regions, session
    )
    fetches = fetch_regions(
        target, day_range, open_db, progress.on_region_done, progress.on_progress, options
    )
    reads = {}
    for fetch in fetches:
        seen = application_profile_ids(fetch.models_seen) if fetch.ok else []
        if seen:
            reads[fetch.region] = read_profiles(session, fetch.region, seen)
    return fetches, reads


def _record_profile_reads(
    store: StateStore, connection_id: str, reads: dict[str, ProfileRead]
) -> None:
    """A missing permission fails nothing: it is noted for status and doctor, and in the
    event log once per sync."""
    for region, read in reads.items():
        store.record_optional_permission(
            connection_id, region, PROFILE_PERMISSION, read.failure_code, read.advice
        )
        if read.failure_code:
            message = f"application inference profiles not readable ({read.failure_code})"
            store.log_event(connection_id, "profiles", "failed", message, region=region,
                            error_code=read.failure_code, failure_kind="permission",
                            next_action=read.advice)  # fmt: skip
        else:
            resolved = ", ".join(f"{p.profile_id} -> {p.base_model_id}" for p in read.profiles)
            unknown = f"; not found: {', '.join(read.not_found)}" if read.not_found else ""
            store.log_event(connection_id, "profiles", "ok", f"{resolved}{unknown}", region=region)


def _record_fetches(store: StateStore, connection: Connection, fetches: list[RegionFetch]) -> None:
    connection_id = connection.connection_id
    for fetch in fetches:
        if fetch.failure is None:
            store.record_region_success(connection_id, fetch.region, str(fetch.day_range.last))
            store.log_event(
                connection_id,
                "fetch",
                "ok",
                f"{fetch.day_range}: {fetch.summary()}",
                region=fetch.region,
            )
        else:
            failure = fetch.failure
            store.record_region_failure(
                connection_id,
                fetch.region,
                str(failure.kind),
                failure.code,
                failure.message,
                failure.next_action,
            )
            store.log_event(
                connection_id,
                "fetch",
                "failed",
                f"{fetch.day_range}: {failure.message}",
                region=fetch.region,
                error_code=failure.code,
                failure_kind=str(failure.kind),
                next_action=failure.next_action,
            )


def connection_state(
    connection: Connection, health: dict[str, RegionHealth], store: StateStore
) -> tuple[str, str | None]:
    """What `connections` and `status` show: a state and why. Call `attempts.reap`
    first, so no connection stays "syncing" after its process died."""
    failing = {r: h for r, h in health.items() if h.needs_attention and r in connection.regions}
    if failing:
        reason = "; ".join(f"{r}: {h.failure_code} ({h.failure_kind})" for r, h in failing.items())
        return "needs attention", reason
    attempt = store.attempt(connection.connection_id)
    if attempt is not None:
        return "syncing", f"{attempt.day_range}, {attempt.phase}, since {attempt.started_at}"
    if connection.initial_sync == "failed":
        return "needs attention", (
            "the initial sync failed; run it again with 'bedrock-usage sync "
            f"{connection.connection_id} --start {initial_sync_range(connection).first}'"
        )
    if connection.initial_sync == "pending":
        return "connected", (
            "initial sync pending: the Dagster daemon's sensor starts it, or run "
            f"'bedrock-usage sync {connection.connection_id} --start "
            f"{initial_sync_range(connection).first}'"
        )
    return "connected", None
