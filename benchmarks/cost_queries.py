"""Benchmark: analysts' queries on the analysts' copy, usage beside cost. Syncs a year of
each connection (models from the shipped price list, so the cost view prices them)
through the production path against the emulator in a process of its own, or reuses
the home of an earlier invocation (--home). In a copy of that home this checkout then
publishes the analysts' copy, timed: whole (every estimate priced, as after a price
change), then three times as a daily sync does (one connection's 3 days: the first with
a byte copy of the last copy, the next from the spare); then it times each query (the
median of five, after one untimed). Prints each query's milliseconds and the cost totals (to compare two
versions of the views: they must print the same totals). Asserts nothing.

    .venv/bin/python benchmarks/cost_queries.py --connections 10 --regions 4 --models 40 --days 365 [--home DIR]
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import duckdb
from ingestion import EmulatorProcess, connect_all, measured_source, use_home  # noqa: I001
from shape import parse_shape

USAGE_QUERIES = {
    "monthly tokens by account": (
        "SELECT date_trunc('month', usage_date) AS month, account_id, "
        "sum(input_tokens + output_tokens) FROM bedrock_usage_daily GROUP BY ALL ORDER BY ALL"
    ),
    "top 10 models by tokens": (
        "SELECT base_model_id, sum(input_tokens + output_tokens) AS tokens "
        "FROM bedrock_usage_daily GROUP BY 1 ORDER BY tokens DESC LIMIT 10"
    ),
    "tokens by provider": (
        "SELECT model_provider, sum(input_tokens + output_tokens) FROM bedrock_usage_daily "
        "GROUP BY 1 ORDER BY 1"
    ),
}
COST_QUERIES = {
    "monthly cost by account": (
        "SELECT month, account_id, sum(estimated_cost_usd) "
        "FROM bedrock_cost_monthly_by_account GROUP BY ALL ORDER BY ALL"
    ),
    "top 10 models by cost": (
        "SELECT base_model_id, sum(estimated_cost_usd) AS usd FROM bedrock_cost_daily "
        "GROUP BY 1 ORDER BY usd DESC NULLS LAST LIMIT 10"
    ),
    "cost by provider": (
        "SELECT model_provider, sum(estimated_cost_usd) FROM bedrock_cost_monthly_by_provider "
        "GROUP BY 1 ORDER BY 1"
    ),
    "daily cost, last 30 days": (
        "SELECT usage_date, sum(estimated_cost_usd) FROM bedrock_cost_daily "
        "WHERE usage_date >= current_date - 30 GROUP BY 1 ORDER BY 1"
    ),
    "one account's last month by model": (
        "SELECT base_model_id, sum(estimated_cost_usd) FROM bedrock_cost_daily "
        "WHERE account_id = (SELECT min(account_id) FROM bedrock_usage_daily) "
        "AND usage_date >= date_trunc('month', current_date - 31) "
        "AND usage_date < date_trunc('month', current_date) GROUP BY 1 ORDER BY 1"
    ),
}
TOTALS = (
    "SELECT count(*), sum(estimated_cost_usd), sum(input_cost_usd), sum(output_cost_usd), "
    "count(*) FILTER (estimated_cost_usd IS NULL) FROM bedrock_cost_daily"
)


def build(home: Path, args: argparse.Namespace) -> None:
    """A year of every connection, synced into `home` as the CLI syncs it."""
    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import run_sync

    today = utc_today()
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    aws = EmulatorProcess(args, "--priced-models")
    os.environ["AWS_ENDPOINT_URL"] = aws.info["endpoint"]
    try:
        for name in connect_all(aws.info["readers"], args.regions):
            assert run_sync(name, year).success
    finally:
        aws.stop()


def timed_ms(db: duckdb.DuckDBPyConnection, sql: str) -> float:
    db.execute(sql).fetchall()
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        db.execute(sql).fetchall()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0], value_flags=("--home",))
    warnings.filterwarnings("ignore")
    from bedrock_usage.days import DayRange
    from bedrock_usage.settings import snapshot_path
    from bedrock_usage.storage.warehouse import open_warehouse, publish_snapshot

    commit = measured_source()
    home = Path(args.home or tempfile.mkdtemp(prefix="cost-queries-"))
    use_home(home)
    if not (home / "warehouse.duckdb").exists():
        started = time.perf_counter()
        build(home, args)
        print(f"synced {args.connections} connection-years into {home} in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        # This checkout publishes the analysts' copy, from a copy of the warehouse.
        warehouse = Path(scratch) / "warehouse.duckdb"
        shutil.copy(home / "warehouse.duckdb", warehouse)
        shutil.copy(snapshot_path(home / "warehouse.duckdb"), snapshot_path(warehouse))
        copy = snapshot_path(warehouse)
        with open_warehouse(warehouse) as db:
            ids = [
                c
                for (c,) in db.execute(
                    "SELECT DISTINCT connection_id FROM bedrock_usage_daily ORDER BY 1"
                ).fetchall()
            ]
            last = db.execute("SELECT max(usage_date) FROM bedrock_usage_daily").fetchone()[0]
            started = time.perf_counter()
            publish_snapshot(db, warehouse, {})  # a copy of another version: re-priced whole
            whole = time.perf_counter() - started
            daily = []  # the first copies the last copy's bytes, the next start from the spare
            for connection_id in ids[:3]:
                started = time.perf_counter()
                publish_snapshot(
                    db, warehouse, {connection_id: DayRange(last - timedelta(days=2), last)}
                )
                daily.append(time.perf_counter() - started)
            started = time.perf_counter()
            shutil.copyfile(copy, Path(scratch) / "bytes")
            copy_seconds = time.perf_counter() - started
        with duckdb.connect(str(copy), read_only=True) as db:
            rows = db.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone()[0]
            print(f"bedrock_usage at {commit}: the analysts' copy of {home} "
                  f"({rows:,} usage rows, {copy.stat().st_size / 1e6:.1f} MB)")  # fmt: skip
            print(f"  publish, every row priced (a price change): {whole:.2f} s")
            print(f"  a daily sync's publish (one connection, 3 days): {daily[0]:.2f} s with "
                  f"the byte copy, then {daily[1]:.2f} and {daily[2]:.2f} s from the spare; "
                  f"copying the copy's bytes alone: {copy_seconds:.2f} s")  # fmt: skip
            print("  each query's median of 5, ms")
            for name, sql in {**USAGE_QUERIES, **COST_QUERIES}.items():
                print(f"  {name:<36} {timed_ms(db, sql):8.1f}", flush=True)
            print("totals (rows, USD, input USD, output USD, unpriced rows):",
                  db.execute(TOTALS).fetchone())  # fmt: skip


if __name__ == "__main__":
    main()
