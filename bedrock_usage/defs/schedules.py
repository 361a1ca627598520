"""The daily schedule: after 00:00 UTC (00:30 by default, BEDROCK_USAGE_SCHEDULE_CRON),
yesterday plus a look-back for late data, for every connection in fleet runs of up to
BEDROCK_USAGE_FLEET_BATCH connections each (1: one run per connection).

A tick skips the connections already synced for that day, so a schedule that ticks more
often still syncs each connection once a day (Dagster itself compares a schedule's run
keys only within one tick). A connection counts as synced for the day once a run of
the day covering it is queued, running or succeeded, or failed after its sync ended
(its own failure is reported, and the next attempt would only repeat it). A run that
died (kill -9, out of memory) finished none of its connections: they are due again at
the next tick, up to MAX_RUNS_A_DAY runs each.
"""

from collections import Counter
from datetime import date, timedelta

import dagster as dg

from ..days import DayRange
from ..settings import schedule_cron
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, fleet_batches, range_tags
from .resources import SyncSettingsResource
from .tags import (
    CONNECTION_TAG,
    FINISHED_TAG,
    SCHEDULED_DAY_TAG,
    TRIGGER_TAG,
    connections_of,
)

RUN_KEY_TAG = "dagster/run_key"  # where Dagster keeps a run request's run_key
MAX_RUNS_A_DAY = 3  # runs of one day that may cover a connection before it waits a day
ENDED_WITHOUT_SUCCESS = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dg.schedule(
    job=sync_job,
    cron_schedule=schedule_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_usage_schedule(
    context: dg.ScheduleEvaluationContext, sync_settings: SyncSettingsResource
):
    """Every connection, in runs of up to BEDROCK_USAGE_FLEET_BATCH (default 10):
    yesterday (UTC) and the BEDROCK_USAGE_LOOKBACK_DAYS (default 2) days before it, so
    CloudWatch data that arrived late is picked up."""
    yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
    window = DayRange(yesterday - timedelta(days=sync_settings.lookback()), yesterday)
    connections = context.instance.get_dynamic_partitions(CONNECTION_DIMENSION)
    if not connections:
        return dg.SkipReason("No connections yet: add one with 'bedrock-usage connect'.")
    done = synced_on(context.instance, yesterday)
    due = {connection_id for connection_id in connections if connection_id not in done}
    if not due:
        return dg.SkipReason(
            f"Every connection's run for {yesterday} has started already; the next is due "
            "after midnight UTC."
        )
    return [
        dg.RunRequest(
            run_key=f"{batch[0]}..{batch[-1]}:{yesterday}"
            if len(batch) > 1
            else f"{batch[0]}:{yesterday}",
            tags={
                **range_tags(batch[0], window, through=batch[-1]),
                CONNECTION_TAG: ",".join(batch),
                TRIGGER_TAG: "schedule",
                SCHEDULED_DAY_TAG: str(yesterday),
            },
        )
        for batch in fleet_batches(connections, due, sync_settings.batch())
    ]


def synced_on(instance: dg.DagsterInstance, day: date) -> set[str]:
    """The connections whose scheduled sync of `day` needs no further run."""
    done: set[str] = set()
    runs_each: Counter[str] = Counter()
    for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=sync_job.name, tags={SCHEDULED_DAY_TAG: str(day)})
    ):
        covered = connections_of(run.tags)
        runs_each.update(covered)
        if run.status in ENDED_WITHOUT_SUCCESS:
            done.update(connections_of(run.tags, FINISHED_TAG))
        else:
            done.update(covered)
    return done | {c for c, runs in runs_each.items() if runs >= MAX_RUNS_A_DAY}


defs = dg.Definitions(schedules=[daily_usage_schedule])
