"""The daily schedule: every connection, yesterday plus the look-back, one run each."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from bedrock_usage.defs.definitions import defs
from bedrock_usage.defs.jobs import sync_job
from bedrock_usage.defs.local_runs import instance
from bedrock_usage.defs.partitions import usage_partitions
from bedrock_usage.defs.resources import SyncSettingsResource
from bedrock_usage.defs.schedules import RUN_KEY_TAG, daily_usage_schedule


def _evaluate(dagster, when, sync_settings=None):
    context = dg.build_schedule_context(
        instance=dagster,
        scheduled_execution_time=when,
        resources={"sync_settings": sync_settings or SyncSettingsResource()},
    )
    return daily_usage_schedule(context)


def _ranges(requests):
    return [
        (
            r.run_key,
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
            r.tags["bedrock_usage/connection"],
        )
        for r in requests
    ]


def test_connections_are_synced_in_fleet_runs_for_yesterday_and_the_lookback(bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "research", "ads"])
    tick = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    # The default batch (10) covers all three in one run, a rectangle in the
    # connection dimension's own order (the order they were added), not the alphabet's.
    assert _ranges(_evaluate(dagster, tick)) == [
        ("prod..ads:2026-11-26", "prod|2026-11-24", "ads|2026-11-26", "prod,research,ads"),
    ]
    assert _ranges(_evaluate(dagster, tick, SyncSettingsResource(fleet_batch=2))) == [
        ("prod..research:2026-11-26", "prod|2026-11-24", "research|2026-11-26", "prod,research"),
        ("ads:2026-11-26", "ads|2026-11-24", "ads|2026-11-26", "ads"),
    ]
    # 1: one run per connection, as before fleet runs.
    assert _ranges(_evaluate(dagster, tick, SyncSettingsResource(fleet_batch=1))) == [
        ("prod:2026-11-26", "prod|2026-11-24", "prod|2026-11-26", "prod"),
        ("research:2026-11-26", "research|2026-11-24", "research|2026-11-26", "research"),
        ("ads:2026-11-26", "ads|2026-11-24", "ads|2026-11-26", "ads"),
    ]
    no_lookback = SyncSettingsResource(lookback_days=0)
    [only] = _evaluate(dagster, tick, no_lookback)
    assert only.tags["dagster/asset_partition_range_start"] == "prod|2026-11-26"
    # Dagster expands the tags to exactly these partitions.
    [keys] = [
        usage_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            ),
            dynamic_partitions_store=dagster,
        )
        for r in _evaluate(dagster, tick)
    ]
    assert sorted(map(str, keys)) == sorted(
        f"{c}|2026-11-{d}" for c in ("prod", "research", "ads") for d in (24, 25, 26)
    )


def test_the_batches_skip_the_connections_done_and_stay_ranges(bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["a", "b", "c", "d", "e"])
    tick = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    _start(dagster, _one_run(dagster, tick, "c"))
    later = _evaluate(dagster, tick + timedelta(minutes=1))
    # c is done: a..b and d..e, each one range without c in it.
    assert [r.tags["bedrock_usage/connection"] for r in later] == ["a,b", "d,e"]


def _one_run(dagster, tick, connection_id):
    [request] = [
        r for r in _evaluate(dagster, tick, SyncSettingsResource(fleet_batch=1))
        if r.tags["bedrock_usage/connection"] == connection_id
    ]  # fmt: skip
    return request


def _start(dagster, request, failed=False, tags=None):
    run = dagster.create_run_for_job(
        defs.resolve_job_def(sync_job.name),
        tags={**request.tags, RUN_KEY_TAG: request.run_key, **(tags or {})},
    )
    if failed:
        dagster.report_run_failed(run, "as the dead-run sensor marks a killed run")
    return run


def test_a_later_tick_of_the_same_day_starts_only_what_is_not_synced(bedrock_home):
    # Dagster compares a schedule's run keys only within one tick: a cron of every minute
    # (or hour) would start a run per connection at every tick without the schedule's own check.
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "research"])
    first_tick = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    [both] = _evaluate(dagster, first_tick)
    _start(dagster, both)  # queued or running: nothing more to start
    skipped = _evaluate(dagster, first_tick + timedelta(hours=5))
    assert isinstance(skipped, dg.SkipReason) and "2026-11-26" in skipped.skip_message
    next_day = _evaluate(dagster, first_tick + timedelta(days=1))
    assert [r.run_key for r in next_day] == ["prod..research:2026-11-27"]


def test_a_run_that_died_is_run_again_and_one_that_ended_is_not(bedrock_home):
    dagster = instance()
    dagster.add_dynamic_partitions("connection", ["prod", "research"])
    tick = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    [both] = _evaluate(dagster, tick)
    # Killed mid-run (reaped as failed): it finished no connection.
    _start(dagster, both, failed=True)
    [again] = _evaluate(dagster, tick + timedelta(minutes=1))
    assert again.tags["bedrock_usage/connection"] == "prod,research"
    # Failed after both syncs ended (a denied region fails the run): done for the day.
    _start(dagster, again, failed=True, tags={"bedrock_usage/finished": "prod"})
    [third] = _evaluate(dagster, tick + timedelta(minutes=2))
    assert third.tags["bedrock_usage/connection"] == "research"
    # research has been in three runs of the day: it waits for tomorrow.
    _start(dagster, third, failed=True)
    assert isinstance(_evaluate(dagster, tick + timedelta(minutes=3)), dg.SkipReason)


def test_no_connections_skips_with_a_hint(bedrock_home):
    result = _evaluate(instance(), datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert isinstance(result, dg.SkipReason) and "bedrock-usage connect" in result.skip_message


def test_the_schedule_runs_after_midnight_utc():
    assert daily_usage_schedule.cron_schedule == "30 0 * * *"
    assert daily_usage_schedule.execution_timezone == "UTC"
