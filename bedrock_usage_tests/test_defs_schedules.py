"""The daily schedule: every connection, yesterday plus the look-back, one run each."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from bedrock_usage.defs.definitions import defs
from bedrock_usage.defs.jobs import sync_job
from bedrock_usage.defs.local_runs import instance
from bedrock_usage.defs.resources import SyncSettingsResource
from bedrock_usage.defs.schedules import RUN_KEY_TAG, daily_usage_schedule


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


def test_a_later_tick_of_the_same_day_starts_only_the_runs_not_started(bedrock_home):
    # Dagster compares a schedule's run keys only within one tick: a cron of every minute
    # (or hour) would start a run per connection at every tick without the schedule's own check.
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "research"])
    first_tick = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    [prod, _] = _evaluate(dagster, first_tick)
    dagster.create_run_for_job(
        defs.resolve_job_def(sync_job.name), tags={**prod.tags, RUN_KEY_TAG: prod.run_key}
    )
    later = _evaluate(dagster, first_tick + timedelta(minutes=1))
    assert [r.run_key for r in later] == ["research:2026-11-26"]
    dagster.create_run_for_job(
        defs.resolve_job_def(sync_job.name), tags={**later[0].tags, RUN_KEY_TAG: later[0].run_key}
    )
    skipped = _evaluate(dagster, first_tick + timedelta(hours=5))
    assert isinstance(skipped, dg.SkipReason) and "2026-11-26" in skipped.skip_message
    next_day = _evaluate(dagster, first_tick + timedelta(days=1))
    assert [r.run_key for r in next_day] == ["prod:2026-11-27", "research:2026-11-27"]


def test_no_connections_skips_with_a_hint(bedrock_home):
    result = _evaluate(instance(), datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert isinstance(result, dg.SkipReason) and "bedrock-usage connect" in result.skip_message


def test_the_schedule_runs_after_midnight_utc():
    assert daily_usage_schedule.cron_schedule == "30 0 * * *"
    assert daily_usage_schedule.execution_timezone == "UTC"
