"""Freshness is judged without a run of ours: never written, or not written since the
schedule's deadline, fails; a table written today passes."""

from __future__ import annotations

import dagster as dg

from bedrock_usage.days import DayRange
from bedrock_usage.defs.definitions import defs
from bedrock_usage.defs.freshness import freshness_checks, freshness_sensor
from bedrock_usage.defs.local_runs import instance, run_sync

from .conftest import days_ago, seed_daily
from .dagster_helpers import connect

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _freshness(dagster: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    job = dg.define_asset_job(
        "freshness_only", selection=dg.AssetSelection.checks(*freshness_checks)
    )
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    result = merged.resolve_job_def("freshness_only").execute_in_process(instance=dagster)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_a_table_never_written_is_not_fresh_and_one_written_today_is(aws, reader, bedrock_home):
    dagster = instance()
    stale = _freshness(dagster)
    assert not stale.passed and "never" in stale.description
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 3})
    connect(reader, "prod", regions="us-east-1")
    assert run_sync("prod", DayRange(days_ago(1), days_ago(1))).success
    assert _freshness(dagster).passed


def test_the_daemon_evaluates_freshness_with_its_own_sensor():
    assert freshness_sensor in defs.sensors
    assert freshness_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_sync_run_leaves_freshness_to_the_daemon(aws, reader, bedrock_home):
    # Evaluated in a run, Dagster would list every (day, connection) partition for it.
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 3})
    connect(reader, "prod", regions="us-east-1", backfill_days=1)
    result = run_sync("prod", DayRange(days_ago(1), days_ago(1)))
    evaluated = {(e.asset_key.path[0], e.check_name) for e in result.get_asset_check_evaluations()}
    freshness = {(k.asset_key.path[0], k.name) for c in freshness_checks for k in c.check_keys}
    assert freshness == {("bedrock_usage_daily", "freshness_check")}
    assert evaluated and not evaluated & freshness
