"""Benchmark: the daily schedule's work for fleets of connections, run the way a run
launcher runs it: the schedule evaluated at today's tick, each of its run requests
created in the instance and executed by `dagster api execute_run` in a process of its
own, against the emulator in another. For each fleet size and each batch size
(BEDROCK_USAGE_FLEET_BATCH) in the same invocation it prints the runs, CPU-seconds per
connection-day (user + system of every run process and its children), wall time, the
largest peak RSS of a run process and GetMetricData calls against their lower bound.
Asserts only that every run succeeded.

    .venv/bin/python benchmarks/fleet.py --fleets 1,10,100 --batches 1,10 --regions 4 --models 40

With --phases each run process is run_phases.py's, and its peaks per phase are printed.
With --repeat N each run is executed N times in the same home (the later ones find the
history and the analysts' copy the earlier ones left); CPU and calls are then N times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ingestion import EmulatorProcess, connect_all, measured_source, use_home  # noqa: I001

DAYS = 3  # yesterday and the default look-back of two days: one scheduled sync


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", default="1,10,100", help="connections per fleet")
    parser.add_argument("--batches", default="1,10", help="BEDROCK_USAGE_FLEET_BATCH values")
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--points-per-day", type=int, default=1)
    parser.add_argument("--each", action="store_true", help="print each run's peak too")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, in one home")
    parser.add_argument("--phases", action="store_true",
                        help="print each run's peak RSS per phase (run_phases.py)")  # fmt: skip
    args = parser.parse_args()
    args.fleets = [int(n) for n in args.fleets.split(",")]
    args.batches = [int(n) for n in args.batches.split(",")]
    args.connections, args.days = max(args.fleets), DAYS  # the emulator's shape
    return args


def scheduled_runs(readers: list[list[str]], regions: int, batch: int) -> list[dict]:
    """Connect `readers` in the current home and evaluate the daily schedule at now with
    BEDROCK_USAGE_FLEET_BATCH = `batch`: its run requests' tags."""
    import dagster as dg

    from bedrock_usage.defs.local_runs import instance, register_connection
    from bedrock_usage.defs.resources import SyncSettingsResource
    from bedrock_usage.defs.schedules import daily_usage_schedule

    dagster = instance()
    for name in connect_all(readers, regions):
        register_connection(dagster, name)
    context = dg.build_schedule_context(
        instance=dagster,
        scheduled_execution_time=datetime.now(UTC),
        resources={"sync_settings": SyncSettingsResource(fleet_batch=batch)},
    )
    return [request.tags for request in daily_usage_schedule.evaluate_tick(context).run_requests]


def execute(tags: dict, phases: bool = False) -> tuple[float, float, float]:
    """Create a run of `tags` and execute it as a run launcher does, in a process of its
    own: its CPU-seconds, wall seconds and peak resident MB. With `phases` the process is
    run_phases.py's and each phase's peak is printed."""
    import dagster as dg
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import serialize_value

    from bedrock_usage.defs.local_runs import create_tagged_run, instance

    dagster = instance()
    run = create_tagged_run(dagster, tags, "schedule")
    args = ExecuteRunArgs(
        job_origin=run.job_code_origin,
        run_id=run.run_id,
        instance_ref=dagster.get_ref(),
        set_exit_code_on_failure=True,
    )
    command = [str(Path(sys.executable).with_name("dagster")), "api", "execute_run"]
    peaks = Path(tempfile.mkdtemp()) / "peaks.json"
    if phases:
        command = [sys.executable, str(Path(__file__).with_name("run_phases.py")), str(peaks)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env={**os.environ, "DAGSTER_EXECUTE_RUN_ARGS": serialize_value(args)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    ended = dagster.get_run_by_id(run.run_id).status
    dagster.dispose()  # its PostgreSQL sessions, when it has any, are not the run's
    assert process.returncode == 0 and ended == dg.DagsterRunStatus.SUCCESS, (tags, ended)
    if phases:
        found = json.loads(peaks.read_text())
        print("  phases (peak MB):", ", ".join(
            f"{name} {peak:.0f}" for name, peak in found["peaks"].items()), flush=True)  # fmt: skip
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def main() -> None:
    args = parse()
    warnings.filterwarnings("ignore")  # Dagster's beta notices are not figures
    from bedrock_usage.extraction.fetch import lower_bound_calls
    from bedrock_usage.extraction.metrics import MANTLE_METRICS, USAGE_METRICS

    commit = measured_source()
    series = (args.models + 1) * len(USAGE_METRICS) + len(MANTLE_METRICS)
    aws = EmulatorProcess(args)
    os.environ["AWS_ENDPOINT_URL"] = aws.info["endpoint"]
    print(f"bedrock_usage at {commit}: the daily schedule's sync ({DAYS} days) of "
          f"fleets x {args.regions} regions x {args.models} models, each run executed by "
          "`dagster api execute_run`", flush=True)  # fmt: skip
    print("connections  batch  runs  CPU-s  CPU-s/connection-day  wall s  "
          "peak RSS/run MB  GetMetricData (lower bound)", flush=True)  # fmt: skip
    try:
        for fleet in args.fleets:
            bound = fleet * args.regions * lower_bound_calls(series, DAYS) * args.repeat
            for batch in args.batches:
                with tempfile.TemporaryDirectory() as home:
                    use_home(Path(home))
                    runs = scheduled_runs(aws.info["readers"][:fleet], args.regions, batch)
                    aws.calls()
                    measured = [
                        execute(tags, args.phases) for tags in runs for _ in range(args.repeat)
                    ]
                    calls = aws.calls()["get_metric_data"]
                cpu = sum(m[0] for m in measured)
                wall = sum(m[1] for m in measured)
                peak = max(m[2] for m in measured)
                print(f"{fleet:>11}  {batch:>5}  {len(measured):>4}  {cpu:>5.1f}  "
                      f"{cpu / (fleet * DAYS * args.repeat):>20.2f}  {wall:>6.1f}  {peak:>15.0f}  "
                      f"{calls} ({bound})", flush=True)  # fmt: skip
                if args.each:
                    print("  each run's peak RSS, in order (MB):",
                          " ".join(f"{m[2]:.0f}" for m in measured), flush=True)  # fmt: skip
    finally:
        aws.stop()


if __name__ == "__main__":
    main()
