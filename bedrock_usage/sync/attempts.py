"""A sync attempt, from its start to its outcome in the event log.

Every attempt ends in exactly one connection-level `sync` event: ok, partial (some
regions failed), failed, busy (the warehouse stayed locked), interrupted (Ctrl-C,
SIGTERM), configuration (a bad setting or key), or killed — a process that died
(kill -9, the OOM killer, an evicted container) cannot say so itself, so the next
start, `status` or the daemon's sensor finds its attempt and records it. A killed
initial sync goes back to "pending", so the sensor runs it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum

from ..connections.secrets import SecretKeyError
from ..connections.store import StateStore, SyncAttempt
from ..processes import is_alive
from ..settings import SettingsError
from ..storage.warehouse import WarehouseBusyError

FETCHING = "fetching from CloudWatch"
WRITING = "writing data points"
REBUILDING = "rebuilding usage"
PUBLISHING = "publishing the analysts' copy"


class Outcome(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    CONFIGURATION = "configuration"
    KILLED = "killed"


RunEnded = Callable[[str], bool | None]


def begin(store: StateStore, connection_id: str, run_id: str | None, day_range: object) -> None:
    """Record that this process syncs `connection_id`; report an earlier attempt that
    died without ending."""
    reap(store, only=connection_id)
    store.begin_attempt(connection_id, run_id, str(day_range), FETCHING)


def reap(store: StateStore, run_ended: RunEnded | None = None, only: str | None = None) -> int:
    """Record every attempt whose process is gone as killed; returns how many. On
    another host the process cannot be seen, so `run_ended(run_id)` (the Dagster run's
    status) decides."""
    reaped = 0
    for attempt in store.attempts():
        if only is not None and attempt.connection_id != only:
            continue
        alive = is_alive(attempt.process)
        if alive is None and run_ended is not None and attempt.run_id:
            ended = run_ended(attempt.run_id)
            alive = None if ended is None else not ended
        if alive is False and store.abandon_attempt(attempt):
            _record_killed(store, attempt)
            reaped += 1
    return reaped


def _record_killed(store: StateStore, attempt: SyncAttempt) -> None:
    run = f", run {attempt.run_id}" if attempt.run_id else ""
    store.log_event(
        attempt.connection_id,
        "sync",
        Outcome.KILLED,
        f"{attempt.day_range}: the sync started {attempt.started_at} ({attempt.process}{run}) "
        f"stopped while {attempt.phase} and never finished; nothing it had not committed "
        "was kept.",
        next_action="Nothing is blocked. Sync these days again (bedrock-usage sync NAME "
        "--start ... --end ...); the schedule re-reads the last days anyway.",
    )
    connection = store.get(attempt.connection_id)
    if connection is not None and connection.initial_sync == "running":
        store.update(attempt.connection_id, initial_sync="pending")


def finish(
    store: StateStore,
    connection_id: str,
    outcome: Outcome,
    message: str,
    next_action: str | None = None,
) -> None:
    """Log the attempt's outcome and end it."""
    store.log_event(connection_id, "sync", outcome, message, next_action=next_action)
    store.end_attempt(connection_id)
    connection = store.get(connection_id)
    if connection is None or connection.initial_sync != "running":
        return
    if outcome in (Outcome.OK, Outcome.PARTIAL):
        store.update(connection_id, initial_sync="done")
    elif outcome in (Outcome.INTERRUPTED, Outcome.BUSY):
        store.update(connection_id, initial_sync="pending")
    else:
        # Not retried by the sensor (it would loop while a permission is missing):
        # `status` says how to run it.
        store.update(connection_id, initial_sync="failed")


def classify_error(
    error: BaseException, interrupt_types: tuple[type[BaseException], ...]
) -> tuple[Outcome, str, str | None]:
    if isinstance(error, interrupt_types):
        return (
            Outcome.INTERRUPTED,
            "interrupted (Ctrl-C or SIGTERM); the open write was rolled back, windows "
            "already committed are kept",
            "Sync again when ready: nothing half-written was kept, and the analysts' copy "
            "catches up with what was committed at the next sync or status.",
        )
    if isinstance(error, WarehouseBusyError):
        return Outcome.BUSY, str(error), None
    if isinstance(error, SettingsError | SecretKeyError):
        return Outcome.CONFIGURATION, str(error), None
    return Outcome.FAILED, str(error) or type(error).__name__, None


@contextmanager
def recorded(
    store: StateStore,
    connection_ids: Iterable[str],
    interrupt_types: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> Iterator[None]:
    """Ends the attempts of `connection_ids` with the outcome of any error raised inside."""
    try:
        yield
    except BaseException as error:
        outcome, message, next_action = classify_error(error, interrupt_types)
        for connection_id in connection_ids:
            finish(store, connection_id, outcome, message, next_action)
        raise
