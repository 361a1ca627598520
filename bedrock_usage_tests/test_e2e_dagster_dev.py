"""End to end: the README's UI command (`make ui` = `bedrock-usage ui`, which runs
`dagster dev -w workspace.yaml`) on 127.0.0.1 with a temporary DAGSTER_HOME; a run and
a backfill launched through GraphQL; DuckDB checked; the spend pages read in chromium;
every process ended by pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from dagster_graphql import DagsterGraphQLClient

from bedrock_usage.days import DayRange, utc_today
from bedrock_usage.defs.local_runs import instance, register_connection, run_sync
from bedrock_usage.defs.partitions import partition_key, range_tags
from bedrock_usage.spend_alerts import set_budget

from .cli_helpers import CLI
from .conftest import chromium_page, days_ago, seed_daily
from .dagster_helpers import connect
from .waiting import deadline_in, patient, wait_for

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20241022-v2:0"  # $3 per million input tokens

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status runs(limit: 10) { runId status jobName tags { key value } }
    }
  }
}"""
REEXECUTE = """
mutation($parent: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
RESOURCE = """
query($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { configuredValues { key value type } }
  }
}"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_dev(aws, bedrock_home, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=aws.endpoint_url,
        BEDROCK_USAGE_HOME=str(bedrock_home),
        DAGSTER_HOME=os.environ["DAGSTER_HOME"],
        BEDROCK_USAGE_LOOKBACK_DAYS="3",
    )
    log = open(tmp_path / "dagster-dev.log", "w")
    process = subprocess.Popen(
        [CLI, "ui", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
    try:
        deadline = deadline_in(120)
        while True:
            try:
                client._execute(LOCATIONS)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    log_text = (tmp_path / "dagster-dev.log").read_text()[-3000:]
                    raise AssertionError(log_text) from None
                time.sleep(1)
        yield client
    finally:
        stop_process_groups([process])
        log.close()


def stop_process_groups(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group, SIGKILL what is left after 30 s, then end strays."""
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=patient(30))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        _kill_group_leftovers(process.pid)


def _kill_group_leftovers(group: int) -> None:
    """dagster dev's code server may outlive it: end every process of its group by pid."""
    deadline = deadline_in(20)
    while True:
        found = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL if time.monotonic() > deadline - 10 else signal.SIGTERM)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes left: {pids}"
        time.sleep(1)


def _wait_for_run(client, run_id, timeout=180):
    def ended():
        status = client.get_run_status(run_id).value
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_for(ended, timeout, f"run {run_id} to end")


def test_a_run_a_backfill_and_the_spend_pages_through_the_ui(
    aws, reader, bedrock_home, dagster_dev
):
    client = dagster_dev
    entries = client._execute(LOCATIONS)["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in entries] == [
        ("bedrock_usage", "RepositoryLocation")
    ]

    # The deployment's settings show in the UI: from the environment by name, the rest
    # with their defaults.
    selector = {
        "repositoryLocationName": "bedrock_usage",
        "repositoryName": "__repository__",
        "resourceName": "sync_settings",
    }
    details = client._execute(RESOURCE, {"selector": selector})["topLevelResourceDetailsOrError"]
    values = {v["key"]: (v["type"], v["value"]) for v in details["configuredValues"]}
    assert values["lookback_days"] == ("ENV_VAR", "BEDROCK_USAGE_LOOKBACK_DAYS")
    assert values["region_concurrency"] == ("VALUE", "4")

    seed_daily(aws, "Invocations", HAIKU, {days_ago(d): d for d in range(1, 8)})
    seed_daily(aws, "Invocations", None, {days_ago(d): d for d in range(1, 8)})
    connect(reader, "prod", regions="us-east-1")
    register_connection(instance(), "prod")

    run_id = client.submit_job_execution(
        "bedrock_usage_sync", tags=range_tags("prod", DayRange(days_ago(3), days_ago(1)))
    )
    assert _wait_for_run(client, run_id) == "SUCCESS"

    keys = [partition_key("prod", str(days_ago(d))) for d in range(4, 8)]
    launched = client._execute(
        LAUNCH_BACKFILL,
        {
            "params": {
                "assetSelection": [
                    {"path": ["cloudwatch_datapoints"]},
                    {"path": ["bedrock_usage_daily"]},
                ],
                "partitionNames": keys,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = deadline_in(240)
    while True:
        backfill = client._execute(BACKFILL_STATUS, {"id": launched["backfillId"]})[
            "partitionBackfillOrError"
        ]
        if backfill["status"].startswith("COMPLETED") or backfill["status"] == "FAILED":
            break
        assert time.monotonic() < deadline, backfill
        time.sleep(2)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    assert [r["status"] for r in backfill["runs"]] == ["SUCCESS"]  # one run for the range
    # Dagster runs a UI backfill as its implicit asset job; the run is tagged as ours are,
    # and the runs list shows no bookkeeping tag.
    [run] = backfill["runs"]
    assert run["jobName"] == "__ASSET_JOB"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags["bedrock_usage/connection"], tags["bedrock_usage/trigger"]) == ("prod", "ui")
    assert not [key for key in tags if key.startswith((".dagster/", "bedrock_usage/pid"))]

    # A sync run the CLI's way (in its own process) is a run of the location's job,
    # which the UI can re-execute.
    cli_run = run_sync("prod", DayRange(days_ago(2), days_ago(1)))
    assert cli_run.success and cli_run.dagster_run.job_name == "bedrock_usage_sync"
    assert cli_run.dagster_run.tags["bedrock_usage/trigger"] == "cli"
    again = client._execute(REEXECUTE, {"parent": cli_run.run_id})["launchPipelineReexecution"]
    assert again["__typename"] == "LaunchRunSuccess", again
    assert _wait_for_run(client, again["run"]["runId"]) == "SUCCESS"

    with duckdb.connect(str(bedrock_home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT usage_date, invocations FROM bedrock_usage_daily ORDER BY usage_date"
        ).fetchall()
    assert rows == [(days_ago(d), d) for d in range(7, 0, -1)]

    _spend_pages_tell_the_truth(client, aws)


def _spend_pages_tell_the_truth(client, aws) -> None:
    """The Dagster UI, rendered in Debian's chromium: the cost asset's checks with what is
    wrong (a budget overspent, spend without an owner), the report's headline, and the
    spend sensor and report schedule running."""
    today = utc_today()
    yesterday = today - timedelta(days=1)
    seed_daily(aws, "InputTokenCount", HAIKU, {yesterday: 24_000_000})  # $6
    seed_daily(aws, "InputTokenCount", SONNET, {today: 10_000_000}, hours=1)  # $30 so far
    set_budget("over", "20", {"model": SONNET}, "50,100")
    run_id = client.submit_job_execution(
        "bedrock_usage_sync", tags=range_tags("prod", DayRange(yesterday, today))
    )
    assert _wait_for_run(client, run_id) == "SUCCESS"
    report_run = client.submit_job_execution(  # complete days only: yesterday's month
        "bedrock_spend_report_build", tags={"dagster/partition": f"{yesterday:%Y-%m}-01"}
    )
    assert _wait_for_run(client, report_run) == "SUCCESS"

    base = client._url.removesuffix("/graphql")  # noqa: SLF001
    with chromium_page() as page:

        def shown(path: str, *texts: str) -> str:
            page.goto(base + path)
            for text in texts:
                page.get_by_text(text).first.wait_for(timeout=patient(60) * 1000)
            return page.inner_text("body")

        # The budget is overspent: the check failed, and its text says by how much.
        forecast = "not yet" if today.day == 1 else "$30.00"
        budget = shown(
            "/assets/bedrock_cost_daily?view=checks&checkDetail=budgets_within_limits",
            f"over ($20/month, model {SONNET}): $30.00 estimated in {today:%Y-%m} (150%), "
            f"forecast {forecast} — OVER",
        )
        assert _after(budget, "Evaluation result").startswith("Failed"), budget[-800:]
        # No owner is configured: the check says so and how to assign, with the run's $36.
        owner = shown(
            "/assets/bedrock_cost_daily?view=checks&checkDetail=spend_has_owner",
            "No ownership map or owner tags yet",
        )
        assert _after(owner, "unassigned_usd").startswith("36\n"), owner[-800:]

        # The report's headline: the month's complete days, which hold yesterday's $6.
        report = shown("/assets/bedrock_spend_report", "headline")
        assert f"bedrock-spend-{yesterday:%Y-%m}.html" in report, report[-1500:]
        assert re.search(r"\nestimated usd\s+\$6\.00\n", report), report[-1500:]

        # The spend sensor and the report schedule are on from the start (the daemon ticks).
        shown("/automation", "spend_alert_sensor", "daily_report_schedule")
        sensor = shown("/locations/bedrock_usage/sensors/spend_alert_sensor", "Latest tick")
        assert "\nRunning\n" in sensor and "Frequency\t~5 min" in sensor, sensor[-1000:]
        schedule = shown("/locations/bedrock_usage/schedules/daily_report_schedule", "Next tick")
        assert "\nRunning\n" in schedule and "07:30" in schedule, schedule[-1000:]


def _after(text: str, label: str) -> str:
    """What a page shows after `label` (its value on the next line)."""
    return text.split(f"\n{label}\n", 1)[1]
