"""The daily schedule: after 00:00 UTC (00:30 by default, BEDROCK_USAGE_SCHEDULE_CRON),
yesterday plus a look-back for late data. A tick's runs are keyed by connection and day,
so a schedule that ticks more often still starts one run per connection a day."""

from datetime import timedelta

import dagster as dg

from ..days import DayRange
from ..settings import schedule_cron
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, range_tags
from .resources import SyncSettingsResource
from .tags import CONNECTION_TAG, TRIGGER_TAG


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
    return [
        dg.RunRequest(
            run_key=f"{connection_id}:{yesterday}",
            tags={
                **range_tags(connection_id, window),
                CONNECTION_TAG: connection_id,
                TRIGGER_TAG: "schedule",
            },
        )
        for connection_id in sorted(connections)
    ]


defs = dg.Definitions(schedules=[daily_usage_schedule])
