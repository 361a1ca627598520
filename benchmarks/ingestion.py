"""Benchmark: connections x regions x models x days through the production sync path
(each connection connected, then synced as a run of the code location's assets, as the
CLI and the schedule do), against the emulator over HTTP. Prints measured figures;
asserts nothing.

    .venv/bin/python benchmarks/ingestion.py --connections 10 --regions 4 --models 40 --days 365
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import duckdb
import numpy as np

from bedrock_usage.connections import service
from bedrock_usage.connections.credentials import AuthSpec
from bedrock_usage.days import readable_range, utc_today
from bedrock_usage.emulator.server import Emulator
from bedrock_usage.extraction.fetch import lower_bound_calls
from bedrock_usage.extraction.metrics import USAGE_METRICS

REGIONS = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--points-per-day", type=int, default=1, help="data points seeded per series and day"
    )
    args = parser.parse_args()

    today = utc_today()
    day_range = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    first = datetime.combine(day_range.first, clock_time(0), tzinfo=UTC)
    step = 86_400 // args.points_per_day
    timestamps = np.arange(int(first.timestamp()), int(day_range.end.timestamp()), step) + step // 2
    models = [f"amazon.bench-model-{i}-v1:0" for i in range(args.models)]
    regions = REGIONS[: args.regions]
    metrics = sorted({m.metric_name for m in USAGE_METRICS})
    rng = np.random.default_rng(1)

    with Emulator() as aws, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
        os.environ["BEDROCK_USAGE_HOME"] = tmp
        os.environ["DAGSTER_HOME"] = str(Path(tmp) / "dagster")
        from bedrock_usage.defs.local_runs import run_sync

        started = time.perf_counter()
        seeded = 0
        targets = []
        for c in range(args.connections):
            account = f"{100000000000 + c}"
            for region in regions:
                for metric in metrics:
                    total = np.zeros(len(timestamps))
                    for model in models:
                        values = rng.integers(0, 5000, len(timestamps)).astype(float)
                        aws.seed(
                            account,
                            region,
                            "AWS/Bedrock",
                            metric,
                            {"ModelId": model},
                            timestamps,
                            values,
                        )
                        total += values
                    aws.seed(account, region, "AWS/Bedrock", metric, None, timestamps, total)
                    seeded += len(timestamps) * (len(models) + 1)
            key = aws.create_reader(account)
            auth = AuthSpec(key.access_key_id, key.secret_access_key)
            service.connect(f"bench-{c}", account, ",".join(regions), auth, sync_later=True)
            targets.append(f"bench-{c}")
        seed_seconds = time.perf_counter() - started

        aws.log.reset()
        started = time.perf_counter()
        bound = 0
        for name in targets:
            assert run_sync(name, day_range).success
            series = (len(models) + 1) * len(USAGE_METRICS)
            bound += len(regions) * lower_bound_calls(series, day_range.days)
        sync_seconds = time.perf_counter() - started
        calls = aws.log.count("GetMetricData")
        metrics_requested = sum(aws.log.metrics_requested.values())
        with duckdb.connect(str(Path(tmp) / "warehouse.duckdb"), read_only=True) as con:
            rows = con.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"shape: {args.connections} connections x {args.regions} regions x {args.models} "
        f"models x {day_range.days} days ({args.points_per_day} point(s) per series-day)"
    )
    print(f"seeded data points:        {seeded:,} in {seed_seconds:.1f} s")
    print(f"GetMetricData calls:       {calls} (lower bound {bound})")
    print(
        f"metrics requested:         {metrics_requested:,} "
        f"(~${metrics_requested / 1000 * 0.01:.2f} at $0.01 per 1,000)"
    )
    print(f"usage rows written:        {rows:,}")
    print(
        f"sync wall seconds:         {sync_seconds:.1f} "
        f"({sync_seconds / args.connections:.2f} s per connection)"
    )
    print(f"peak memory (RSS):         {peak_mb:.0f} MB")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
