"""The tags our runs carry.

A user filters the runs list by the visible ones: which connection a run syncs, what
started it (cli, demo, schedule, sensor, or ui for the launchpad, the asset page and
backfills), and which regions it could not read. The process that executes a run is
bookkeeping for `run_health`: it lives under Dagster's hidden-tag prefix `.dagster/`,
which the UI and GraphQL leave out.
"""

from __future__ import annotations

import dagster as dg

from ..processes import this_process
from .partitions import windows_by_connection

CONNECTION_TAG = "bedrock_usage/connection"
TRIGGER_TAG = "bedrock_usage/trigger"
FAILED_REGIONS_TAG = "bedrock_usage/failed_regions"
# A run over several connections (a fleet run): those whose sync failed outright (no
# region read, or an error of their own), and those whose sync ended in this run, with
# whatever outcome. A run that died names no connection as finished.
FAILED_CONNECTIONS_TAG = "bedrock_usage/failed_connections"
FINISHED_TAG = "bedrock_usage/finished"
SCHEDULED_DAY_TAG = "bedrock_usage/scheduled_day"  # the day a schedule's run is for

HOST_TAG = ".dagster/bedrock_usage/host"
PID_TAG = ".dagster/bedrock_usage/pid"
PROCESS_STARTED_TAG = ".dagster/bedrock_usage/process_started"
# Where earlier versions recorded a run's process: read for runs still unfinished.
VISIBLE_BEFORE = {
    HOST_TAG: "bedrock_usage/host",
    PID_TAG: "bedrock_usage/pid",
    PROCESS_STARTED_TAG: "bedrock_usage/process_started",
}


def connections_of(tags: dict[str, str], name: str = CONNECTION_TAG) -> list[str]:
    """The connections a comma-separated tag names."""
    return [c for c in tags.get(name, "").split(",") if c]


def process_tags() -> dict[str, str]:
    me = this_process()
    return {HOST_TAG: me.host, PID_TAG: str(me.pid), PROCESS_STARTED_TAG: me.started or ""}


def process_tag(tags: dict[str, str], name: str) -> str | None:
    return tags.get(name, tags.get(VISIBLE_BEFORE[name]))


def tag_run(context: dg.AssetExecutionContext, by_connection: bool = True) -> None:
    """Tag the run as its first step starts: the process executing it (a launched run's
    worker learns its pid here) and, for a run Dagster made from the asset page or a
    backfill (its implicit `__ASSET_JOB`, which carries only partition tags), its
    connections (`by_connection`: partitioned by connection and day) and trigger, as the
    CLI, schedule and sensor tag theirs."""
    run = context.run
    missing = {}
    if run.tags.get(PID_TAG) != str(this_process().pid):
        missing.update(process_tags())
    if by_connection and CONNECTION_TAG not in run.tags:
        missing[CONNECTION_TAG] = ",".join(sorted(windows_by_connection(context.partition_keys)))
    if TRIGGER_TAG not in run.tags:
        missing[TRIGGER_TAG] = "ui"
    if missing:
        context.instance.add_run_tags(run.run_id, missing)
