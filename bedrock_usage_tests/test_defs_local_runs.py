"""The code location a CLI or demo run is created from: the same origins and snapshots
Dagster's own in-process loader gives (so the UI shows and re-executes the run as one of
workspace.yaml's location), without the gRPC server module Dagster's loader imports."""

from __future__ import annotations

import subprocess
import sys

from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._serdes import serialize_value

from bedrock_usage.defs.jobs import sync_job
from bedrock_usage.defs.local_runs import _code_location, instance, prepare_dagster_home


def test_the_run_location_equals_dagsters_own_in_process_location(bedrock_home):
    ours = _code_location(str(prepare_dagster_home()))
    theirs = InProcessCodeLocation(ours.origin, instance=instance())
    assert type(ours) is not InProcessCodeLocation  # the lighter loader is the one used

    assert ours.repository_code_pointer_dict == theirs.repository_code_pointer_dict
    ours_repository = ours.get_repository(SINGLETON_REPOSITORY_NAME)
    theirs_repository = theirs.get_repository(SINGLETON_REPOSITORY_NAME)
    assert serialize_value(ours_repository.repository_snap) == serialize_value(
        theirs_repository.repository_snap
    )
    ours_job = ours_repository.get_full_job(sync_job.name)
    theirs_job = theirs_repository.get_full_job(sync_job.name)
    assert ours_job.get_remote_origin() == theirs_job.get_remote_origin()
    assert ours_job.get_python_origin() == theirs_job.get_python_origin()
    assert ours_job.identifying_job_snapshot_id == theirs_job.identifying_job_snapshot_id
    plan = {"run_config": {}, "step_keys_to_execute": None, "known_state": None}
    assert serialize_value(
        ours.get_execution_plan(ours_job, **plan).execution_plan_snapshot
    ) == serialize_value(theirs.get_execution_plan(theirs_job, **plan).execution_plan_snapshot)


def test_loading_the_run_location_does_not_import_grpc(bedrock_home):
    code = (
        "import sys\n"
        "from bedrock_usage.defs.local_runs import _code_location, prepare_dagster_home\n"
        "_code_location(str(prepare_dagster_home()))\n"
        "print(sorted(m for m in ('grpc', 'dagster._grpc.server') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
