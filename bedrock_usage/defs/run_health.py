"""Runs whose process died must not block the next sync.

A run killed with SIGKILL (OOM killer, eviction, a second Ctrl-C) stays STARTED in the
instance and keeps its slot in the "duckdb" pool, so every later run would wait for it
forever. Each run records its process (host, pid, start time) in its tags; a run whose
process is gone is marked failed and its slots freed — by the CLI before it waits for a
slot, and by `dead_run_sensor` in the daemon. (Dagster's own run monitoring cannot see a
worker of the default run launcher die; it does free slots of runs that ended.)
"""

from __future__ import annotations

import time

import dagster as dg

from ..connections.store import StateStore
from ..errors import ExitCode, UserError
from ..processes import ProcessId, is_alive
from ..sync import attempts
from .dagster_internals import fix_pool_slot_wait
from .partitions import connection_id_of
from .tags import HOST_TAG, PID_TAG, PROCESS_STARTED_TAG, process_tag

POOL = "duckdb"
UNFINISHED = [
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.CANCELING,
]


def _process_of(run: dg.DagsterRun) -> ProcessId | None:
    pid = process_tag(run.tags, PID_TAG)
    if pid is None:
        return None
    started = process_tag(run.tags, PROCESS_STARTED_TAG) or None
    return ProcessId(process_tag(run.tags, HOST_TAG), int(pid), started)


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run whose process is gone, free the slots of runs
    that ended, and record the abandoned sync attempts. Returns the runs reaped."""
    reaped = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        process = _process_of(run)
        if process is None or is_alive(process) is not False:
            continue
        instance.report_run_failed(
            run,
            f"The run's process ({process}) is gone (killed, out of memory, or its host "
            "stopped). Marked failed so its DuckDB slot is freed; nothing it had not "
            "committed was kept. Re-execute it to sync these days again.",
        )
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        info = storage.get_concurrency_info(POOL)
        holders = {slot.run_id for slot in info.claimed_slots}
        holders |= {step.run_id for step in info.pending_steps}
        for run_id in holders:
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    attempts.reap(StateStore(), run_ended=lambda run_id: _run_ended(instance, run_id))
    return reaped


def _run_ended(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    run = instance.get_run_by_id(run_id)
    return True if run is None else run.is_finished


def wait_for_slot(instance: dg.DagsterInstance, timeout: float) -> None:
    """Return once the "duckdb" pool has a free slot, sleeping meanwhile; a run whose
    process died is reaped first. Raises a `UserError` naming the holder."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        reap_dead_runs(instance)
        info = storage.get_concurrency_info(POOL)
        limit = info.limit if info.limit is not None else info.slot_count
        if not limit or len(info.claimed_slots) < limit:
            return
        if time.monotonic() + delay > deadline:
            raise UserError(
                _describe_holders(instance, info.active_run_ids, timeout),
                ExitCode.WAREHOUSE_BUSY,
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _describe_holders(instance: dg.DagsterInstance, run_ids: set[str], waited: float) -> str:
    holders = []
    for run_id in sorted(run_ids):
        run = instance.get_run_by_id(run_id)
        connection_id = connection_id_of(run.tags) if run else None
        holders.append(
            f"run {run_id}" + (f" (connection '{connection_id}')" if connection_id else "")
        )
    return (
        f"The DuckDB write slot stayed held by {', '.join(holders)} for {waited:g} s. Wait for "
        "it to finish and sync again; if that run is stuck, terminate it in the Dagster UI "
        "(Runs, then Terminate), which frees the slot."
    )


fix_pool_slot_wait()


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Marks failed the sync runs whose process died (kill -9, out of memory), frees their
    DuckDB slot and records the abandoned syncs in the event log, so queued and
    scheduled runs go on."""
    reaped = reap_dead_runs(context.instance)
    for run_id in reaped:
        context.log.warning(f"Run {run_id}: its process is gone; marked failed, slot freed.")
    return dg.SkipReason(f"Marked {len(reaped)} dead run(s) failed." if reaped else "No dead runs.")


defs = dg.Definitions(sensors=[dead_run_sensor])
