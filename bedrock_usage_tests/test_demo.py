"""`make demo` runs the real command: the whole story, twice in a row, exact in DuckDB."""

from __future__ import annotations

import os
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from bedrock_usage.days import utc_today

from .cli_helpers import run_cli

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e


# Enough history for the spike two days ago to have its 7 days of baseline.
DAYS = 10


def test_the_demo_tells_the_story_and_runs_twice(tmp_path):
    home = tmp_path / "home"
    first = run_cli(["demo", "--days", str(DAYS)], home, endpoint="")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "verified eu-west-1: CloudWatch AWS/Bedrock readable" in out
    assert (
        "Check cloudwatch_permissions FAILED (ERROR): 1 region(s) cannot be read. demo-prod "
        "(111122223333) eu-west-1: AccessDenied." in out
    )
    assert (
        "ALERT bedrock_usage: demo-prod (account 111122223333) cannot read CloudWatch in "
        "eu-west-1: AccessDenied" in out
    )
    assert "Needs attention: demo-prod eu-west-1: AccessDenied" in out
    assert "make ui" in out
    second = run_cli(["demo", "--days", str(DAYS)], home, endpoint="")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("ALERT") == 1
    # The spend alerts, each run (the demo starts its story again): the spike, and the
    # budget the month crosses once it has a complete day.
    for run in (first, second):
        assert run.stdout.count("firing: Spend anomaly: demo-research (account 444455556666) "
                                "anthropic.claude-3-5-sonnet-20241022-v2:0") == 1  # fmt: skip
        if utc_today().day > 1:
            assert "firing: Budget demo-all-spend ($100/month, all spend): 100% reached" in (
                run.stdout
            )
    # Dagster's history agrees with the warehouse: only the second demo's runs remain,
    # each a run of the code location's job, tagged with its connections and trigger: the
    # initial syncs one per connection, the schedule's day one fleet run over both.
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as dagster:
        runs = dagster.get_runs()
    syncs = [r for r in runs if r.job_name == "bedrock_usage_sync"]
    assert sorted(r.tags["bedrock_usage/connection"] for r in syncs) == [
        "demo-prod", "demo-prod,demo-research", "demo-research"
    ]  # fmt: skip
    assert {r.tags["bedrock_usage/trigger"] for r in runs} == {"demo"}
    # The weekly price refresh, run once, from the emulator's Price List (offline).
    [prices] = [r for r in runs if r.job_name == "bedrock_prices_refresh"]
    # The bill, read as one run over its periods: the UI shows each period materialized.
    [bill] = [r for r in runs if r.job_name == "bedrock_billing_read"]
    assert len(runs) == 5 and prices.status == bill.status == dg.DagsterRunStatus.SUCCESS
    assert "List prices refreshed from the Price List for eu-west-1, us-east-1, us-west-2" in out
    with dg.DagsterInstance.get() as dagster:
        assert dagster.get_latest_materialization_event(dg.AssetKey("bedrock_prices"))
    # README's commands work on the demo's state with no extra step.
    assert run_cli(["doctor", "demo-research"], home, endpoint="").returncode == 0
    assert run_cli(["sync", "demo-prod"], home, endpoint="").returncode == 6  # withdrawn region
    # A later command finds the demo's bill where the demo put it, as a bucket keeps it.
    bill = run_cli(["billing", "read"], home, endpoint="")
    assert bill.returncode == 0 and "demo-bill: " in bill.stdout, bill.stderr

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = dict(
            con.execute(
                "SELECT connection_id, count(*) FROM bedrock_usage_daily GROUP BY ALL"
            ).fetchall()
        )
        # 7 deployments in demo-prod's two regions (one an application inference profile),
        # 3 in demo-research's plus one model on the bedrock-mantle endpoint (two
        # projects), DAYS days each.
        assert rows == {"demo-prod": 7 * DAYS, "demo-research": 4 * DAYS}
        assert con.execute(
            "SELECT count(DISTINCT project_id), count(*) FROM bedrock_usage_daily_by_project"
        ).fetchone() == (2, 2 * DAYS)
        assert con.execute("SELECT max(usage_date) FROM bedrock_usage_daily").fetchone()[0] == (
            utc_today().fromordinal(utc_today().toordinal() - 1)
        )
        # The table sums to the region totals CloudWatch reported, metric by metric.
        mismatches = con.execute("""
            WITH totals AS (
                SELECT connection_id, region, usage_date, metric_name, value
                FROM cloudwatch_daily_datapoints
                WHERE model_id = '(region total)' AND statistic = 'Sum'
                  AND metric_name IN ('InputTokenCount', 'OutputTokenCount', 'Invocations')),
            usage AS (
                SELECT connection_id, region, usage_date, sum(input_tokens) AS InputTokenCount,
                       sum(output_tokens) AS OutputTokenCount, sum(invocations) AS Invocations
                FROM bedrock_usage_daily WHERE api_endpoint = 'bedrock-runtime' GROUP BY ALL)
            SELECT count(*) FROM totals JOIN usage USING (connection_id, region, usage_date)
            WHERE value <> CASE metric_name WHEN 'InputTokenCount' THEN InputTokenCount
                                            WHEN 'OutputTokenCount' THEN OutputTokenCount
                                            ELSE Invocations END
        """).fetchone()[0]
        assert mismatches == 0
        # The mantle endpoint's rows sum to its own region total (its Account level).
        assert (
            con.execute("""
            SELECT (SELECT sum(value) FROM cloudwatch_daily_datapoints
                    WHERE model_id = '(region total)' AND metric_name = 'TotalInputTokens'),
                   (SELECT sum(input_tokens) FROM bedrock_usage_daily
                    WHERE api_endpoint = 'bedrock-mantle')
        """).fetchone()
            == (
                con.execute(
                    "SELECT sum(input_tokens) FROM bedrock_usage_daily_by_project"
                ).fetchone()[0],
            )
            * 2
        )
        compared = con.execute(
            "SELECT count(*) FROM cloudwatch_daily_datapoints WHERE model_id = '(region total)'"
        ).fetchone()[0]
        assert compared > 0
        # The demo's bill, read back beside the estimate: the second run replaced the
        # first's (one billing source's rows, once). Every priced token CloudWatch counted
        # is billed, token for token and, but for the adjusted lines, cent for cent.
        assert "Billing source demo-bill" in second.stdout
        assert "The estimate beside the bill" in second.stdout
        assert con.execute(
            "SELECT count(DISTINCT billing_source) FROM bedrock_billed_daily"
        ).fetchone() == (1,)
        gaps = con.execute("""
            SELECT model_id, token_type, cloudwatch_tokens, billed_tokens, estimated_usd,
                billed_unblended_usd, probable_cause
            FROM bedrock_cost_vs_bill
            WHERE estimated_usd IS NOT NULL AND (billed_tokens IS DISTINCT FROM cloudwatch_tokens
                OR round(billed_unblended_usd, 2) <> round(estimated_usd, 2))
        """).fetchall()
        assert [g for g in gaps if not (g[6] or "").startswith("service tier")] == [], gaps
        periods = con.execute(
            "SELECT count(DISTINCT billing_period) FROM bedrock_billed_daily"
        ).fetchone()[0]
        assert con.execute("""
            SELECT sum(billed_tokens), sum(billed_net_usd) FROM bedrock_cost_vs_bill
            WHERE model_id LIKE '(unmapped)%'
        """).fetchone() == (2_000_000 * periods, Decimal("6.00") * periods)
        assert con.execute(
            "SELECT sum(net_unblended_cost_usd) FROM bedrock_billed_daily "
            "WHERE line_item_type = 'Credit'"
        ).fetchone() == (Decimal("-5") * periods,)
        teams = con.execute(
            "SELECT DISTINCT tags::JSON ->> 'user_team' AS team FROM bedrock_billed_daily "
            "WHERE team IS NOT NULL"
        ).fetchall()
        assert teams == [("search",)]
        # Two teams and the rest: search through its tagged profile, research through the
        # map's project; every estimated dollar is someone's or (unassigned), none twice.
        owners = dict(
            con.execute("""
            SELECT team || '/' || owner_source, sum(estimated_cost_usd)
            FROM bedrock_usage_daily_by_owner GROUP BY ALL""").fetchall()
        )
        assert set(owners) == {"search/tags", "research/map", "(unassigned)/none"}
        assert all(usd > 0 for usd in owners.values())
        assert (
            sum(owners.values())
            == con.execute("SELECT sum(estimated_cost_usd) FROM bedrock_cost_daily").fetchone()[0]
        )
        assert con.execute(
            "SELECT profile_name, base_model_id FROM bedrock_inference_profiles"
        ).fetchall() == [("search-assistant", "anthropic.claude-3-haiku-20240307-v1:0")]
        assert "Spend by team" in second.stdout and "support-bot" in second.stdout
    # It ends with the month's report, written beside the analysts' copy.
    report = home / "reports" / f"bedrock-spend-{utc_today():%Y-%m}.html"
    assert "The month's spend report" in second.stdout and str(report) in second.stdout
    assert report.read_text().count('<figure class="chart"') >= 3
