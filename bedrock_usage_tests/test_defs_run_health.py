"""A run whose process died is failed and its DuckDB slot freed, by the daemon's sensor."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
from dagster._core.storage.tags import TagType, get_tag_type

from bedrock_usage.defs.run_health import POOL, dead_run_sensor, reap_dead_runs
from bedrock_usage.defs.tags import HOST_TAG, PID_TAG, VISIBLE_BEFORE, process_tags
from bedrock_usage.processes import this_process


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    return int(finished.stdout)


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    run = instance.create_run_for_job(
        dg.GraphDefinition("sync_stand_in").to_job(), tags=tags, status=dg.DagsterRunStatus.STARTED
    )
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    claim = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "step")
    assert claim.is_claimed
    return run.run_id


def test_the_sensor_fails_a_dead_run_and_frees_its_slot(bedrock_home):
    with dg.instance_for_test() as instance:
        dead = _started_run(instance, {HOST_TAG: this_process().host, PID_TAG: str(_dead_pid())})
        result = dead_run_sensor(dg.build_sensor_context(instance=instance))
        assert "Marked 1 dead run" in result.skip_message
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []


def test_a_run_tagged_by_an_earlier_version_is_still_reaped(bedrock_home):
    with dg.instance_for_test() as instance:
        host, pid = this_process().host, str(_dead_pid())
        tags = {VISIBLE_BEFORE[HOST_TAG]: host, VISIBLE_BEFORE[PID_TAG]: pid}
        dead = _started_run(instance, tags)
        assert reap_dead_runs(instance) == [dead]


def test_the_process_bookkeeping_is_hidden_from_the_runs_list():
    assert {get_tag_type(tag) for tag in process_tags()} == {TagType.HIDDEN}


def test_a_live_run_keeps_its_slot(bedrock_home):
    with dg.instance_for_test() as instance:
        live = _started_run(instance, process_tags())
        assert reap_dead_runs(instance) == []
        assert instance.get_run_by_id(live).status == dg.DagsterRunStatus.STARTED
        assert len(instance.event_log_storage.get_concurrency_info(POOL).claimed_slots) == 1
