"""`make demo`: the whole product on synthetic history, with no AWS account.

Starts the AWS-faithful emulator on 127.0.0.1 with two accounts' Bedrock history,
connects both through the real connect flow (verification, encrypted credentials),
runs their initial syncs as Dagster runs, then withdraws one region from one key (as
an edited IAM policy would) and runs the next scheduled day, so the permission check
fails and the sensor flags it. `bedrock-usage ui` serves the same state and emulator.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime

import click
import dagster as dg

from . import settings
from .connections import service
from .connections.credentials import AuthSpec
from .connections.store import StateStore
from .defs.alerts import AlertResource
from .defs.bill_assets import billing_job
from .defs.cost_assets import prices_job
from .defs.jobs import sync_job
from .defs.local_runs import instance, run_sync, run_tagged
from .defs.partitions import CONNECTION_DIMENSION
from .defs.resources import StateStoreResource, default_resources
from .defs.schedules import daily_usage_schedule
from .defs.sensors import PERMISSION_SENSOR, permission_failure_sensor
from .defs.tags import TRIGGER_TAG, connections_of
from .demo_bill import (
    connect_demo_bill,
    derived_key_pair,
    forget_demo_bill,
    print_reconciliation,
    serve_connected_demo_bill,
)
from .emulator import price_list
from .emulator.demo_data import DEMO_ACCOUNTS, seed_demo_history
from .emulator.server import READ_ONLY_POLICY, AccessKeyPair, Emulator
from .extraction.fetch import RegionFetch
from .owner_map import set_owner
from .price_refresh import connected_regions
from .report import write_report
from .settings import demo_state_path, snapshot_path, warehouse_path
from .spend_alerts import check_alerts, set_budget
from .storage.owners import Match, Owner
from .storage.warehouse import open_warehouse
from .sync import steps
from .sync.profiles import PROFILE_POLICY_STATEMENT
from .sync.progress import SyncProgress, watching

DEMO_CONNECTIONS = {"demo-prod": "111122223333", "demo-research": "444455556666"}
DEMO_USER = "bedrock-usage-readonly"
DENIED = ("demo-prod", "eu-west-1")
HISTORY_DAYS = 90
DEMO_BUDGET = "demo-all-spend"
# The guide's read-only policy and the optional statement for application inference
# profiles (demo-prod's search team calls Claude through a tagged one).
DEMO_POLICY = {
    "Version": "2012-10-17",
    "Statement": [*READ_ONLY_POLICY["Statement"], PROFILE_POLICY_STATEMENT],
}
# The research team owns the support bot's mantle project, through the ownership map.
DEMO_OWNER = (Match(project_id="proj_support_bot"),
              Owner(team="research", application="support-bot", cost_center="cc-2002"))  # fmt: skip


def start_demo_emulator(denied: list[list[str]] | None = None) -> tuple[Emulator, dict]:
    """The emulator with the demo's history and readers (their keys derived from this
    home's encryption key, so the stored connections work against it again)."""
    aws = Emulator().start()
    seed_demo_history(aws, days=HISTORY_DAYS)
    keys = {}
    for name, account in DEMO_CONNECTIONS.items():
        keys[name] = aws.create_reader(
            account, DEMO_USER, policy=DEMO_POLICY, key_pair=derived_key_pair(account)
        )
    for name, region in denied or []:
        aws.deny_region(keys[name], region)
    return aws, keys


def run_demo(days: int = 30) -> None:
    warehouse_file = warehouse_path()
    aws, keys = start_demo_emulator()
    try:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
        models = sum(len(m) for regions in DEMO_ACCOUNTS.values() for m in regions.values())
        click.echo(
            f"AWS-faithful emulator on {aws.endpoint_url}: {HISTORY_DAYS} days of hourly "
            f"Bedrock metrics for {len(DEMO_ACCOUNTS)} accounts and {models} model deployments."
        )
        _forget_previous_demo()
        with watching(SyncProgress(on_region_done=_echo_region)):
            for name, key in keys.items():
                _connect_and_sync(name, key, days)
            _refresh_prices()
            _assign_owners()
            connect_demo_bill(aws, DEMO_CONNECTIONS["demo-prod"])
            _withdraw_region(aws, keys)
            newest = StateStore().events(limit=1)
            _run_next_scheduled_day()
            _evaluate_permission_sensor(after_event_id=newest[0].event_id if newest else 0)
            _check_spend_alerts()
    finally:
        aws.stop()
    _print_summary(warehouse_file)
    print_reconciliation()
    _print_spend_by_team(warehouse_file)
    where, report = write_report()
    click.echo(
        f"\nThe month's spend report (one HTML file with charts; 'bedrock-usage report "
        f"--month YYYY-MM' for another month):\n  {where}"
    )


def _forget_previous_demo() -> None:
    """A re-run starts clean: the warehouse, the state store and Dagster's history of
    the demo's connections (runs, materializations, partitions) go together."""
    store = StateStore()
    dagster = instance()
    for name in DEMO_CONNECTIONS:
        if store.get(name):
            service.disconnect(name, purge_usage=True, store=store)
        if dagster.has_dynamic_partition(CONNECTION_DIMENSION, name):
            dagster.delete_dynamic_partition(CONNECTION_DIMENSION, name)
    for run in dagster.get_runs(dg.RunsFilter(job_name=sync_job.name)):
        # A fleet run names its connections together.
        if set(connections_of(run.tags)) & set(DEMO_CONNECTIONS):
            dagster.delete_run(run.run_id)
    for job in (prices_job, billing_job):
        for run in dagster.get_runs(dg.RunsFilter(job_name=job.name, tags={TRIGGER_TAG: "demo"})):
            dagster.delete_run(run.run_id)
    forget_demo_bill()
    store.remove_budget(DEMO_BUDGET)
    store.forget_alerts()
    demo_state_path().unlink(missing_ok=True)


def demo_emulator_for_commands() -> Emulator | None:
    """In a home `make demo` made, the CLI's commands talk to the demo's emulator (with
    its history, keys and withdrawn region) unless AWS_ENDPOINT_URL says otherwise."""
    if not demo_state_path().exists() or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    denied = json.loads(demo_state_path().read_text())["denied"]
    aws, _ = start_demo_emulator(denied)
    os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
    serve_connected_demo_bill(aws, DEMO_CONNECTIONS["demo-prod"])
    return aws


def _connect_and_sync(name: str, key: AccessKeyPair, days: int) -> None:
    regions = ",".join(DEMO_ACCOUNTS[key.account_id])
    click.echo(f"\nConnecting {name} (account {key.account_id}, regions {regions}):")
    connection = service.connect(
        name,
        key.account_id,
        regions,
        AuthSpec(key.access_key_id, key.secret_access_key),
        backfill_days=days,
        on_region=lambda region, failure: click.echo(
            f"  verified {region}: CloudWatch AWS/Bedrock readable"
            if failure is None
            else f"  {region}: {failure.code}"
        ),
    )
    steps.claim_initial_sync(name)
    day_range = steps.initial_sync_range(connection)
    click.echo(f"  initial sync {day_range} as one Dagster run:")
    result = run_sync(name, day_range, {"bedrock_usage/initial_sync": "demo"}, trigger="demo")
    click.echo(f"  run {result.run_id[:8]} {'succeeded' if result.success else 'FAILED'}")


def _refresh_prices() -> None:
    """What the weekly `bedrock_prices_refresh_schedule` runs, run now: AWS's Price List
    here is the emulator's, in AWS's format, at the prices shipped with the package."""
    regions = connected_regions(StateStore())
    with price_list.serving(regions) as url:
        result = run_tagged({}, "demo", {"price_list": {"url": url}}, job_name=prices_job.name)
    [event] = result.get_asset_materialization_events()
    read = event.materialization.metadata["rows_read"].value
    click.echo(
        f"\nList prices refreshed from the Price List for {', '.join(regions)} (the "
        f"emulator serves it offline): run {result.run_id[:8]} "
        f"{'succeeded' if result.success else 'FAILED'}, {read} prices read."
    )


def _check_spend_alerts() -> None:
    """A budget the demo month crosses, then what the spend alert sensor sends: the
    thresholds, the forecast, the spike of DEMO_SPIKE and any model new to an account."""
    set_budget(DEMO_BUDGET, "100", {}, "50,80,100")
    click.echo(
        f"\nA budget: 'bedrock-usage budgets set {DEMO_BUDGET} --monthly-usd 100'. What the "
        "spend alert sensor sends (each once; to the webhook and Slack when configured, "
        "always the event log):"
    )

    def echo(payload: dict) -> None:
        click.echo(f"  {payload['state']}: {payload['text']}")

    _, sent = check_alerts([echo])
    if not sent:
        click.echo("  nothing yet (the month has no complete day, or nothing crossed).")


def _assign_owners() -> None:
    match, owner = DEMO_OWNER
    set_owner(match, owner, effective_from=date(1970, 1, 1))  # the demo's whole history
    click.echo(
        f"\nOwners: the search team's Claude calls go through the application inference "
        f"profile search-assistant, tagged team=search; the ownership map gives project "
        f"{match.project_id} to team {owner.team} "
        f"('bedrock-usage owners set --team {owner.team} --project {match.project_id}')."
    )


def _print_spend_by_team(warehouse_file) -> None:
    with open_warehouse(warehouse_file, read_only=True) as db:
        table = db.execute(
            """SELECT strftime(month, '%Y-%m') AS month, team, application, cost_center, tokens,
                estimated_cost_usd::DECIMAL(18,2) AS estimated_usd,
                billed_net_usd::DECIMAL(18,2) AS billed_net_usd,
                cost_usd::DECIMAL(18,2) AS cost_usd, cost_basis
            FROM bedrock_cost_monthly_by_owner ORDER BY month, team = '(unassigned)', team"""
        ).df()
    click.echo(
        "\nSpend by team (view bedrock_cost_monthly_by_owner; the estimate attributes by "
        "profile tags and the ownership map, the bill by IAM principal tags, which know no "
        "mantle project; cost_usd is the bill's in a billed month):"
    )
    click.echo(table.astype(object).where(table.notna(), "-").to_string(index=False))


def _echo_region(fetch: RegionFetch) -> None:
    if fetch.ok:
        click.echo(f"    {fetch.region}: {fetch.summary()}")
    else:
        click.echo(f"    {fetch.region}: FAILED {fetch.failure.code}")


def _withdraw_region(aws: Emulator, keys: dict[str, AccessKeyPair]) -> None:
    name, region = DENIED
    aws.deny_region(keys[name], region)
    demo_state_path().write_text(json.dumps({"denied": [list(DENIED)]}))
    click.echo(
        f"\nSomeone edits the IAM policy of {name}'s key: CloudWatch is now denied in {region}."
    )


def _run_next_scheduled_day() -> None:
    dagster = instance()
    context = dg.build_schedule_context(
        instance=dagster,
        scheduled_execution_time=datetime.now(UTC),
        resources={"sync_settings": default_resources()["sync_settings"]},
    )
    requests = daily_usage_schedule(context)
    click.echo(
        f"What the daily schedule runs at 00:30 UTC, run now: {len(requests)} run(s) of up to "
        f"{settings.fleet_batch()} connections each (BEDROCK_USAGE_FLEET_BATCH; yesterday + 2 "
        "look-back days, tagged trigger=demo)."
    )
    permissions = None
    for request in requests:
        click.echo(f"  {', '.join(connections_of(request.tags))}:")
        result = run_tagged(request.tags, trigger="demo")
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        permissions = checks.get("cloudwatch_permissions", permissions)
        read = checks.get("every_region_read")
        outcome = "succeeded" if result.success else "FAILED"
        if read is not None and not read.passed:
            outcome = f"failed as PARTIAL by check every_region_read: {read.description}"
        click.echo(f"  run {result.run_id[:8]} {outcome}")
    if permissions is not None and not permissions.passed:
        click.echo(
            f"Check cloudwatch_permissions FAILED ({permissions.severity.value}): "
            f"{permissions.description}"
        )


class _EchoAlerts(AlertResource):
    def send(self, text: str, log) -> str:
        click.echo(f"  ALERT {text}")
        return "terminal"


def _evaluate_permission_sensor(after_event_id: int) -> None:
    click.echo("The permission sensor looks at the event log:")
    # Its cursor is in the state store: the daemon started by `make ui` goes on from
    # here and does not alert again for the same failure.
    StateStore().save_sensor_cursor(PERMISSION_SENSOR, {"event_id": after_event_id, "flagged": []})
    context = dg.build_sensor_context(
        instance=instance(),
        resources={"state_store": StateStoreResource(), "alerts": _EchoAlerts()},
    )
    permission_failure_sensor(context)


def _print_summary(warehouse_file) -> None:
    with open_warehouse(warehouse_file, read_only=True) as db:
        summary = db.execute(
            """
            SELECT account_id, region, api_endpoint, model_id,
                   sum(input_tokens)::BIGINT AS input_tokens,
                   sum(output_tokens)::BIGINT AS output_tokens,
                   sum(invocations)::BIGINT AS invocations,
                   coalesce(sum(estimated_cost_usd)::DECIMAL(18,2)::VARCHAR, 'unpriced')
                       AS estimated_usd
            FROM bedrock_cost_daily
            WHERE connection_id IN ('demo-prod', 'demo-research')
            GROUP BY ALL ORDER BY account_id, region, api_endpoint, input_tokens DESC
            """
        ).df()
    click.echo(
        "\nTokens by account, region and model, with the cost estimated from list prices "
        "(view bedrock_cost_daily; unpriced: no per-token list price, e.g. provisioned):"
    )
    click.echo(summary.to_string(index=False))
    health = StateStore().region_health(DENIED[0]).get(DENIED[1])
    if health and health.needs_attention:
        click.echo(
            f"\nNeeds attention: {DENIED[0]} {DENIED[1]}: {health.failure_code}. "
            f"{health.failure_next_action}\n"
            f"({DENIED[1]}'s earlier rows are kept; 'bedrock-usage status {DENIED[0]}' shows it.)"
        )
    snapshot = snapshot_path(warehouse_file)
    click.echo(
        "\nNext steps:\n"
        f"  1. Query the table in the analysts' copy, refreshed after every sync ({snapshot}):\n"
        f"     .venv/bin/python -c \"import duckdb; print(duckdb.connect('{snapshot}', "
        "read_only=True).sql('SELECT month, model_id, estimated_cost_usd, unpriced_tokens FROM "
        "bedrock_cost_monthly_by_model ORDER BY 3 DESC NULLS LAST'))\"\n"
        "  2. Open the Dagster UI on the same state and emulator (partitions, the failed check, "
        "the sensor):\n"
        "     make ui      # then http://127.0.0.1:3000"
    )
