"""`make demo`: the whole pipeline on synthetic history, with no AWS account.

Starts the AWS-faithful emulator on 127.0.0.1, seeds two accounts' Bedrock history,
syncs them through the same core the CLI and Dagster use, then withdraws one region
from one key (as an edited IAM policy would) and syncs again, so the permission
failure, its fix, and the kept rows are visible.
"""

from __future__ import annotations

import os
from datetime import timedelta

import click
import duckdb

from .days import readable_range, utc_today
from .emulator.demo_data import DEMO_ACCOUNTS, demo_regions, seed_demo_history
from .emulator.server import Emulator
from .extraction.aws import AwsKeys, make_session
from .extraction.fetch import RegionFetch, lower_bound_calls
from .settings import warehouse_path
from .sync import SyncTarget, sync_usage

DEMO_CONNECTIONS = {"demo-prod": "111122223333", "demo-research": "444455556666"}


def run_demo(days: int = 30) -> None:
    warehouse = warehouse_path()
    with Emulator() as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
        click.echo(f"AWS-faithful CloudWatch emulator listening on {aws.endpoint_url}")
        points = seed_demo_history(aws, days=90)
        models = sum(len(m) for regions in DEMO_ACCOUNTS.values() for m in regions.values())
        click.echo(
            f"Seeded 90 days of hourly Bedrock metrics: {len(DEMO_ACCOUNTS)} accounts, "
            f"{models} model deployments, {points:,} data points.\n"
        )
        keys = {
            name: aws.create_reader(account, "bedrock-usage-readonly")
            for name, account in DEMO_CONNECTIONS.items()
        }
        targets = {
            name: SyncTarget(
                name,
                key.account_id,
                demo_regions(key.account_id),
                make_session(AwsKeys(key.access_key_id, key.secret_access_key)),
            )
            for name, key in keys.items()
        }
        today = utc_today()
        initial = readable_range(today - timedelta(days=days), today - timedelta(days=1))
        for name, target in targets.items():
            click.echo(f"Initial sync of {name} ({target.account_id}), {initial}:")
            result = sync_usage(target, initial, warehouse, on_region_done=_report_region)
            click.echo(f"  wrote {result.rows_written} rows\n")

        key = keys["demo-prod"]
        denied_region = "eu-west-1"
        aws.deny_region(key, denied_region)
        click.echo(
            f"Someone edits the IAM policy of demo-prod's key: CloudWatch is now denied in "
            f"{denied_region}. The next daily sync:"
        )
        daily = readable_range(today - timedelta(days=2), today - timedelta(days=1))
        result = sync_usage(targets["demo-prod"], daily, warehouse, on_region_done=_report_region)
        for failure in result.failures:
            click.echo(
                f"\n  FLAGGED {failure.region}: {failure.code} ({failure.kind}). "
                f"{failure.message}\n  What to do: {failure.next_action}\n"
                f"  {failure.region}'s rows from earlier syncs are kept."
            )
    _print_summary(warehouse, initial)


def _report_region(fetch: RegionFetch) -> None:
    if not fetch.ok:
        click.echo(f"  {fetch.region}: FAILED {fetch.failure.code}")
        return
    models = fetch.datapoints.model_id.dropna().nunique()
    series = fetch.metrics_requested // max(1, fetch.get_metric_data_calls)
    click.echo(
        f"  {fetch.region}: {models} model(s), {fetch.get_metric_data_calls} GetMetricData "
        f"call(s) (lower bound {lower_bound_calls(series, fetch.day_range.days)}), "
        f"{fetch.metrics_requested} metrics requested"
    )


def _print_summary(warehouse, day_range) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        summary = con.execute(
            """
            SELECT account_id, region, model_id,
                   sum(input_tokens)::BIGINT AS input_tokens,
                   sum(output_tokens)::BIGINT AS output_tokens,
                   sum(invocations)::BIGINT AS invocations
            FROM bedrock_usage_daily
            WHERE usage_date BETWEEN ? AND ?
            GROUP BY ALL ORDER BY account_id, region, input_tokens DESC
            """,
            [day_range.first, day_range.last],
        ).df()
    click.echo(f"\nTokens by account, region and model, {day_range}:")
    click.echo(summary.to_string(index=False))
    click.echo(
        f"\nNext steps:\n"
        f'  Query the table:  .venv/bin/python -c "import duckdb; print(duckdb.connect('
        f"'{warehouse}', read_only=True).sql('SELECT usage_date, model_id, input_tokens "
        f"FROM bedrock_usage_daily ORDER BY usage_date DESC LIMIT 10'))\"\n"
        f"  Schema and example queries: README.md, section 'The usage table'."
    )
