"""The daily schedule: every connection, yesterday plus the look-back, one run each."""

from datetime import UTC, datetime

import dagster as dg

from bedrock_usage.defs.local_runs import instance
from bedrock_usage.defs.resources import SyncSettingsResource
from bedrock_usage.defs.schedules import daily_usage_schedule


def _evaluate(dagster, when, sync_settings=None):
    context = dg.build_schedule_context(
        instance=dagster,
        scheduled_execution_time=when,
        resources={"sync_settings": sync_settings or SyncSettingsResource()},
    )
    return daily_usage_schedule(context)


def test_one_run_per_connection_for_yesterday_and_the_lookback(bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "research"])
    requests = _evaluate(dagster, datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert [
        (
            r.run_key,
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        )
        for r in requests
    ] == [
        ("prod:2026-11-26", "prod|2026-11-24", "prod|2026-11-26"),
        ("research:2026-11-26", "research|2026-11-24", "research|2026-11-26"),
    ]
    no_lookback = SyncSettingsResource(lookback_days=0)
    [first, _] = _evaluate(dagster, datetime(2026, 11, 27, 0, 30, tzinfo=UTC), no_lookback)
    assert first.tags["dagster/asset_partition_range_start"] == "prod|2026-11-26"


def test_no_connections_skips_with_a_hint(bedrock_home):
    result = _evaluate(instance(), datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert isinstance(result, dg.SkipReason) and "bedrock-usage connect" in result.skip_message


def test_the_schedule_runs_after_midnight_utc():
    assert daily_usage_schedule.cron_schedule == "30 0 * * *"
    assert daily_usage_schedule.execution_timezone == "UTC"
