"""The emulator for the benchmark, in a process of its own, so the benchmark measures
the client alone. Seeds the shape, creates one reader per account, prints one JSON line
({"endpoint", "readers": [[account, key id, secret], ...]}), then answers commands on
standard input: "log" prints the calls counted so far and resets them; end of input
stops it.

    python benchmarks/emulator_process.py --connections 10 --regions 4 --models 40 --days 365

With --priced-models the models are the first of the shipped price list's (so the cost
view prices them), not made-up ids. With --lake-bucket NAME it also creates that S3
bucket and a runtime key that may write it (printed as "runtime": [key id, secret]), for
a DuckLake's data files.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import numpy as np
from shape import REGIONS, parse_shape  # noqa: I001 - beside this script

from bedrock_usage.days import utc_today
from bedrock_usage.emulator.server import Emulator
from bedrock_usage.extraction.metrics import USAGE_METRICS
from bedrock_usage.pricing import prices


def seed(aws: Emulator, args: argparse.Namespace) -> tuple[list[list[str]], int]:
    today = utc_today()
    first = datetime.combine(today - timedelta(days=args.days), clock_time(0), tzinfo=UTC)
    step = 86_400 // args.points_per_day
    end = datetime.combine(today, clock_time(0), tzinfo=UTC)
    timestamps = np.arange(int(first.timestamp()), int(end.timestamp()), step) + step // 2
    models = [f"amazon.bench-model-{i}-v1:0" for i in range(args.models)]
    if args.priced_models:
        models = priced_models()[: args.models]
    metrics = sorted({m.metric_name for m in USAGE_METRICS})
    rng = np.random.default_rng(1)
    readers, seeded = [], 0
    for c in range(args.connections):
        account = f"{100000000000 + c}"
        for region in REGIONS[: args.regions]:
            for metric in metrics:
                total = np.zeros(len(timestamps))
                for model in models:
                    values = rng.integers(0, 5000, len(timestamps)).astype(float)
                    aws.seed(account, region, "AWS/Bedrock", metric, {"ModelId": model},
                             timestamps, values)  # fmt: skip
                    total += values
                aws.seed(account, region, "AWS/Bedrock", metric, None, timestamps, total)
                seeded += len(timestamps) * (len(models) + 1)
        key = aws.create_reader(account)
        readers.append([account, key.access_key_id, key.secret_access_key])
    return readers, seeded


def priced_models() -> list[str]:
    """The models the shipped price list prices in region, by name."""
    with open(Path(prices.__file__).with_name(prices.SNAPSHOT_FILE), newline="") as listed:
        rows = list(csv.DictReader(listed))
    priced = ("input", "in_region")
    return sorted({r["model_id"] for r in rows if (r["token_type"], r["price_scope"]) == priced})


def lake_runtime(aws: Emulator, bucket: str) -> list[str]:
    """The bucket `bucket` and a key of another account that may read and write it."""
    import boto3

    writer = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
    key = aws.create_reader("999999999999", "lake-runtime", policy=writer)
    boto3.Session(
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        region_name="us-east-1",
    ).client("s3", endpoint_url=aws.endpoint_url).create_bucket(Bucket=bucket)
    return [key.access_key_id, key.secret_access_key]


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0], extra_flags=("--priced-models",),
                       value_flags=("--lake-bucket",))  # fmt: skip
    with Emulator() as aws:
        readers, seeded = seed(aws, args)
        info = {"endpoint": aws.endpoint_url, "readers": readers, "seeded": seeded}
        if args.lake_bucket:
            info["runtime"] = lake_runtime(aws, args.lake_bucket)
        print(json.dumps(info), flush=True)
        for line in sys.stdin:
            if line.strip() == "log":
                print(json.dumps({"get_metric_data": aws.log.count("GetMetricData"),
                                  "metrics": sum(aws.log.metrics_requested.values())}),
                      flush=True)  # fmt: skip
                aws.log.reset()


if __name__ == "__main__":
    main()
