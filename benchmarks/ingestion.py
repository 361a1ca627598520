"""Benchmark: the production sync path (each connection connected, then synced as a run
of the code location's job, as the CLI and the schedule do) against the emulator in a
process of its own, over HTTP. Prints measured figures; asserts nothing.

For a shape of connections x regions x models x days it measures: the year backfill of
every connection, the warehouse on disk, the daily (3-day) sync of one connection with
all that history stored and the same sync into an empty warehouse, GetMetricData calls
against their lower bound, the month's spend report, one connection's year synced again
by `bedrock-usage sync` in a process of its own (its seconds and peak memory: what a
production run holds), and this process's peak memory after it all (the emulator's is in
neither).

    .venv/bin/python benchmarks/ingestion.py --connections 10 --regions 4 --models 40 --days 365
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import duckdb
from shape import REGIONS, parse_shape  # noqa: I001 - beside this script

EMULATOR = Path(__file__).with_name("emulator_process.py")


class EmulatorProcess:
    def __init__(self, args: argparse.Namespace, *flags: str) -> None:
        shape = [f"--{k}={getattr(args, k)}" for k in ("connections", "regions", "models", "days")]
        self.process = subprocess.Popen(
            [sys.executable, str(EMULATOR), *shape, f"--points-per-day={args.points_per_day}",
             *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            # This checkout's emulator, even when the client is another commit's.
            env={**os.environ, "PYTHONPATH": str(EMULATOR.parents[1])},
        )  # fmt: skip
        self.info = json.loads(self.process.stdout.readline())

    def calls(self) -> dict:
        """GetMetricData calls and metrics requested since the last time asked."""
        self.process.stdin.write("log\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def use_home(path: Path) -> None:
    os.environ["BEDROCK_USAGE_HOME"] = str(path)
    os.environ["DAGSTER_HOME"] = str(path / "dagster")


def measured_source() -> str:
    """Which bedrock_usage the figures are of: its checkout's short commit (another
    commit's, when PYTHONPATH points at a worktree of it), else its folder."""
    import bedrock_usage

    source = Path(bedrock_usage.__file__).parents[1]
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    return commit or str(source)


def connect_all(readers: list[list[str]], regions: int) -> list[str]:
    """Connect each of the emulator's readers as bench-N in the first `regions` regions,
    without the initial sync (the benchmark times the syncs itself)."""
    from bedrock_usage.connections import service
    from bedrock_usage.connections.credentials import AuthSpec

    names = []
    for c, (account, key_id, secret) in enumerate(readers):
        name = f"bench-{c}"
        service.connect(name, account, ",".join(REGIONS[:regions]), AuthSpec(key_id, secret),
                        sync_later=True)  # fmt: skip
        names.append(name)
    return names


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore")  # Dagster's beta notices are not figures

    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import run_sync
    from bedrock_usage.extraction.fetch import lower_bound_calls
    from bedrock_usage.extraction.metrics import MANTLE_METRICS, USAGE_METRICS
    from bedrock_usage.settings import region_concurrency

    today = utc_today()
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    daily = readable_range(today - timedelta(days=3), today - timedelta(days=1))
    # Per region: ten series per model and the runtime total, plus the mantle total.
    series = (args.models + 1) * len(USAGE_METRICS) + len(MANTLE_METRICS)

    started = time.perf_counter()
    aws = EmulatorProcess(args)
    os.environ["AWS_ENDPOINT_URL"] = aws.info["endpoint"]
    seed_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as empty_dir, tempfile.TemporaryDirectory() as full_dir:
        # The daily sync with no history (a fresh home): the median of five, after one
        # untimed run.
        use_home(Path(empty_dir))
        first = connect_all(aws.info["readers"][:1], args.regions)[0]
        empty_daily_seconds = _timed(lambda: run_sync(first, daily))

        # The year backfill of every connection into another home.
        use_home(Path(full_dir))
        names = connect_all(aws.info["readers"], args.regions)
        aws.calls()
        started = time.perf_counter()
        for name in names:
            assert run_sync(name, year).success
        backfill_seconds = time.perf_counter() - started
        backfill_calls = aws.calls()
        bound = len(names) * args.regions * lower_bound_calls(series, year.days)

        # The same daily sync with all that history stored.
        full_daily_seconds = _timed(lambda: run_sync(names[0], daily))

        # The month's spend report from that warehouse (its analysts' copy).
        from bedrock_usage.report import write_report

        started = time.perf_counter()
        _, report = write_report()
        report_seconds = time.perf_counter() - started
        report_bytes = len(report.html.encode())

        warehouse = Path(full_dir) / "warehouse.duckdb"
        with duckdb.connect(str(warehouse), read_only=True) as con:
            points = con.execute("SELECT count(*) FROM cloudwatch_daily_datapoints").fetchone()[0]
            rows = con.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]
        warehouse_bytes = warehouse.stat().st_size
        snapshot_bytes = (Path(full_dir) / "warehouse.snapshot.duckdb").stat().st_size

        # One connection's year again, as `bedrock-usage sync` runs it: a process of its own,
        # as every production run is (the CLI, and each run a Dagster daemon launches).
        cli_seconds, cli_peak_mb = _cli_sync(names[0], year)
    aws.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"shape: {args.connections} connections x {args.regions} regions x {args.models} "
        f"models x {year.days} days ({args.points_per_day} point(s) per series-day); "
        f"region concurrency {region_concurrency()}"
    )
    print(f"seeded data points:        {aws.info['seeded']:,} in {seed_seconds:.1f} s "
          "(emulator process)")  # fmt: skip
    print(f"backfill (all connections): {backfill_seconds:.1f} s "
          f"({backfill_seconds / len(names):.2f} s per connection)")  # fmt: skip
    print(f"GetMetricData calls:       {backfill_calls['get_metric_data']} (lower bound {bound})")
    print(f"metrics requested:         {backfill_calls['metrics']:,} "
          f"(~${backfill_calls['metrics'] / 1000 * 0.01:.2f} at $0.01 per 1,000)")  # fmt: skip
    print(f"raw data points stored:    {points:,}; usage rows {rows:,}")
    print(f"warehouse on disk:         {warehouse_bytes / 1e6:.1f} MB "
          f"({warehouse_bytes / max(points, 1):.1f} bytes per data point); analysts' copy "
          f"{snapshot_bytes / 1e6:.1f} MB")  # fmt: skip
    ratio = full_daily_seconds / empty_daily_seconds
    print(f"3-day sync, no history: {empty_daily_seconds:.2f} s; with the history: "
          f"{full_daily_seconds:.2f} s ({ratio:.2f}x)")  # fmt: skip
    print(f"monthly spend report (HTML, charts drawn): {report_seconds:.2f} s, "
          f"{report_bytes / 1e3:.0f} KB")  # fmt: skip
    print(
        f"year of one connection by `bedrock-usage sync` in its own process, with the "
        f"history stored: {cli_seconds:.1f} s, peak RSS {cli_peak_mb:.0f} MB"
    )
    print(f"this process's peak memory (RSS), after all of the above: {peak_mb:.0f} MB")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


# Starts the command from a small process and prints its peak RSS (KB) and exit code. A
# child's ru_maxrss also counts the memory of the process it was forked from, up to its
# exec: forked from this benchmark, the CLI would report this process's peak.
_PEAK_OF = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def status_mb(field: str, pid: int | str = "self") -> float:
    """A process's `field` of /proc/PID/status in MB (VmRSS: resident now; VmHWM: its
    peak); 0 when the process has already exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_of(command: list[str]) -> float:
    """Run `command` in a process of its own; its peak resident MB (it must exit 0)."""
    shim = subprocess.run([sys.executable, "-c", _PEAK_OF, *command],
                          capture_output=True, text=True, check=True)  # fmt: skip
    peak_kb, exit_code = map(int, shim.stdout.split())
    assert exit_code == 0, f"{' '.join(command)} exited {exit_code}"
    return peak_kb / 1024


def _cli_sync(name: str, day_range) -> tuple[float, float]:
    """Seconds and peak resident MB of `bedrock-usage sync` syncing `day_range`."""
    command = [str(Path(sys.executable).with_name("bedrock-usage")), "sync", name,
               "--start", str(day_range.first), "--end", str(day_range.last)]  # fmt: skip
    started = time.perf_counter()
    peak_mb = peak_of(command)
    return time.perf_counter() - started, peak_mb


def _timed(sync, runs: int = 5) -> float:
    """The median of `runs` timed syncs after an untimed one (one-time costs, such as
    loading the code location, are out; one 1.5 s timing on 2 shared cores varies by
    tenths of a second, the median much less)."""
    assert sync().success
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        assert sync().success
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
