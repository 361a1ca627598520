"""Benchmark: the year backfill alone, through the production path (connect, then
`local_runs.run_sync`, as the CLI does) of whichever `bedrock_usage` Python imports, against
this checkout's emulator in a process of its own. The same script therefore times an older
commit and this one in one run, on the same emulator and shape:

    git worktree add --detach /tmp/before 0c4dff7
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/year_backfill.py --connections 10
    .venv/bin/python benchmarks/year_backfill.py --connections 10

With --ui-backfill it then syncs every connection's year again as a backfill launched
from the UI is run: the run requests Dagster's own backfill builds for our assets (one
run per connection under the single-run policy), each run in a process of its own, one
after the other: the seconds, and the largest peak RSS of those runs (the client's
memory in production, the figure the target is about). A run the daemon launches runs
in a process the code server starts, which also loads the server's modules: not this.

With --code-server it syncs the year again as the same backfill's runs started the way
the daemon's run launcher starts them: a code server (`dagster api grpc` on our module)
gets each run and starts it in a process of its own; the largest peak RSS (VmHWM) of
those run processes.

With --one-run it syncs every connection's year again as one run over all of them in a
process of its own — a run that Dagster's backfill does not launch (it splits by
connection), only a run started by hand with a range across connections: its seconds
and peak RSS.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import duckdb
import psutil
from ingestion import (  # noqa: I001 - beside this script
    EmulatorProcess,
    connect_all,
    measured_source,
    peak_of,
    status_mb,
    use_home,
)
from shape import parse_shape

# One run over the connections named, from the first one's first day to the last one's
# last day (one name: one of a UI backfill's runs).
_ONE_RUN = """
import sys, warnings
from datetime import date
warnings.filterwarnings("ignore")
from bedrock_usage.defs.local_runs import instance, register_connection, run_tagged
from bedrock_usage.defs.partitions import partition_key
first, last, *names = sys.argv[1:]
dagster = instance()
for name in names:
    register_connection(dagster, name)
tags = {"dagster/asset_partition_range_start": partition_key(names[0], first),
        "dagster/asset_partition_range_end": partition_key(names[-1], last)}
result = run_tagged(tags, "benchmark", dagster=dagster)
assert result.success
days = 1 + (date.fromisoformat(last) - date.fromisoformat(first)).days
usage = [e for e in result.get_asset_materialization_events()
         if e.asset_key.path == ["bedrock_usage_daily"]]
assert len(usage) == days * len(names), "the run did not cover every connection's year"
"""


def ui_backfill_runs(names: list[str], year) -> list[tuple[str, tuple[str, str], dict]]:
    """The runs Dagster's backfill launches for every partition of `names` over `year`:
    (connection, (first day, last day), the request's tags) per run request."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey

    from bedrock_usage.defs.definitions import defs
    from bedrock_usage.defs.local_runs import instance, register_connection
    from bedrock_usage.defs.partitions import partition_key, usage_partitions

    dagster = instance()
    for name in names:
        register_connection(dagster, name)
    graph = defs.resolve_asset_graph()
    days = [str(year.first + timedelta(days=n)) for n in range(year.days)]
    requested = [AssetKeyPartitionKey(asset, partition_key(name, day))
                 for asset in graph.get_all_asset_keys() if graph.get(asset).partitions_def
                 for name in names for day in days]  # fmt: skip
    runs = []
    for request in build_run_requests_with_backfill_policies(requested, graph, dagster):
        first, last = (
            usage_partitions.get_partition_key_from_str(request.tags[tag]).keys_by_dimension
            for tag in ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
        )
        runs.append((first["connection"], (first["date"], last["date"]), request.tags))
    return sorted(runs, key=lambda run: run[:2])


def code_server_runs(names: list[str], year) -> list[float]:
    """Each run of the UI backfill created in the instance and started by a code server,
    as the daemon's run launcher starts one; the peak RSS of each run's process."""
    import dagster as dg
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import ExecuteExternalJobArgs

    from bedrock_usage.defs.local_runs import create_tagged_run, instance

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "api", "grpc",
                               "-m", "bedrock_usage.defs.definitions", "-h", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    for _ in range(600):
        try:
            client.ping("up")
            break
        except Exception:
            time.sleep(0.1)
    dagster = instance()
    peaks = []
    try:
        for *_, tags in ui_backfill_runs(names, year):
            run = create_tagged_run(dagster, tags, "benchmark")
            before = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
            client.start_run(ExecuteExternalJobArgs(job_origin=run.remote_job_origin,
                                                    run_id=run.run_id,
                                                    instance_ref=dagster.get_ref()))  # fmt: skip
            high: dict[int, float] = {}
            while not dagster.get_run_by_id(run.run_id).is_finished:
                for child in psutil.Process(server.pid).children(recursive=True):
                    if child.pid not in before:
                        high[child.pid] = max(high.get(child.pid, 0.0),
                                              status_mb("VmHWM", child.pid))  # fmt: skip
                time.sleep(0.05)
            assert dagster.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
            peaks.append(max(high.values()))
    finally:
        server.terminate()
        server.wait()
    return peaks


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0],
                       extra_flags=("--one-run", "--ui-backfill", "--code-server"))  # fmt: skip
    warnings.filterwarnings("ignore")
    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import run_sync

    commit = measured_source()
    today = utc_today()
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    aws = EmulatorProcess(args)
    os.environ["AWS_ENDPOINT_URL"] = aws.info["endpoint"]
    with tempfile.TemporaryDirectory() as home:
        use_home(Path(home))
        names = connect_all(aws.info["readers"], args.regions)
        started = time.perf_counter()
        for name in names:
            assert run_sync(name, year).success
        seconds = time.perf_counter() - started
        if args.ui_backfill:
            started = time.perf_counter()
            peaks = [
                peak_of([sys.executable, "-c", _ONE_RUN, *run_range, name])
                for name, run_range, _ in ui_backfill_runs(names, year)
            ]
            backfill_seconds = time.perf_counter() - started
        if args.code_server:
            started = time.perf_counter()
            server_peaks = code_server_runs(names, year)
            server_seconds = time.perf_counter() - started
        if args.one_run:
            started = time.perf_counter()
            one_run_mb = peak_of([sys.executable, "-c", _ONE_RUN, str(year.first),
                                  str(year.last), *names])  # fmt: skip
            one_run_seconds = time.perf_counter() - started
            with duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True) as con:
                rows = con.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]
    aws.stop()
    print(f"bedrock_usage at {commit}: year backfill of {len(names)} connection(s) "
          f"x {args.regions} regions x {args.models} models: {seconds:.1f} s "
          f"({seconds / len(names):.2f} s per connection); client peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip
    if args.ui_backfill:
        print(f"the same year of all {len(names)} connection(s) again as a UI backfill: "
              f"{len(peaks)} runs, each in a process of its own: {backfill_seconds:.1f} s, "
              f"largest peak RSS {max(peaks):.0f} MB (each run's: "
              f"{', '.join(f'{p:.0f}' for p in peaks)})")  # fmt: skip
    if args.code_server:
        print(f"the same year of all {len(names)} connection(s) again as that backfill's runs "
              f"started by a code server as the daemon does: {server_seconds:.1f} s, largest "
              f"peak RSS {max(server_peaks):.0f} MB (each run's: "
              f"{', '.join(f'{p:.0f}' for p in server_peaks)})")  # fmt: skip
    if args.one_run:
        print(f"the same year of all {len(names)} connection(s) again as one run, in a process "
              f"of its own: {one_run_seconds:.1f} s, peak RSS {one_run_mb:.0f} MB "
              f"({rows:,} usage rows after it)")  # fmt: skip


if __name__ == "__main__":
    main()
