"""The daily schedule: after 00:00 UTC (00:30 by default, BEDROCK_USAGE_SCHEDULE_CRON),
yesterday plus a look-back for late data. A tick's runs are keyed by connection and day,
and a tick skips the connections whose run of that day has started, so a schedule that
ticks more often still starts one run per connection a day (Dagster itself compares a
schedule's run keys only within one tick)."""

from datetime import timedelta

import dagster as dg

from ..days import DayRange
from ..settings import schedule_cron
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, range_tags
from .resources import SyncSettingsResource
from .tags import CONNECTION_TAG, TRIGGER_TAG

RUN_KEY_TAG = "dagster/run_key"  # where Dagster keeps a run request's run_key


@dg.schedule(
    job=sync_job,
    cron_schedule=schedule_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_usage_schedule(
    context: dg.ScheduleEvaluationContext, sync_settings: SyncSettingsResource
):
    """Every connection, one run each: yesterday (UTC) and the BEDROCK_USAGE_LOOKBACK_DAYS
    (default 2) days before it, so CloudWatch data that arrived late is picked up."""
    yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
    window = DayRange(yesterday - timedelta(days=sync_settings.lookback()), yesterday)
    connections = context.instance.get_dynamic_partitions(CONNECTION_DIMENSION)
    if not connections:
        return dg.SkipReason("No connections yet: add one with 'bedrock-usage connect'.")
    keys = {connection_id: f"{connection_id}:{yesterday}" for connection_id in sorted(connections)}
    started = {
        run.tags[RUN_KEY_TAG]
        for run in context.instance.get_runs(
            filters=dg.RunsFilter(job_name=sync_job.name, tags={RUN_KEY_TAG: list(keys.values())})
        )
    }
    due = [connection_id for connection_id, key in keys.items() if key not in started]
    if not due:
        return dg.SkipReason(
            f"Every connection's run for {yesterday} has started already; the next is due "
            "after midnight UTC."
        )
    return [
        dg.RunRequest(
            run_key=keys[connection_id],
            tags={
                **range_tags(connection_id, window),
                CONNECTION_TAG: connection_id,
                TRIGGER_TAG: "schedule",
            },
        )
        for connection_id in due
    ]


defs = dg.Definitions(schedules=[daily_usage_schedule])
