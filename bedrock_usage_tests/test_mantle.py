"""The bedrock-mantle endpoint (AWS/BedrockMantle), through the production sync path:
its usage counted once per model from the Model level, its Account level joining the
region total, projects in their own table, exact numbers."""

from __future__ import annotations

import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.defs.local_runs import run_sync

from .conftest import days_ago, seed_daily
from .dagster_helpers import connect

MANTLE = "AWS/BedrockMantle"
GPT = "openai.gpt-oss-120b"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def seed_mantle(aws, per_project: dict[str, dict[str, int]], day, region="us-east-1"):
    """One day of mantle traffic, published at all four levels as AWS does: tokens and
    inferences per (project, model), repeated per model, per project and per account."""

    def put(metric, dimensions, value):
        seed_daily(aws, metric, None, {day: value}, region=region, namespace=MANTLE,
                   extra_dimensions=dimensions)  # fmt: skip

    by_model: dict[str, list[int]] = {}
    by_project: dict[str, list[int]] = {}
    for project, models in per_project.items():
        for model, tokens in models.items():
            inferences = tokens // 100
            put("InputTokens", {"Project": project, "Model": model}, tokens)
            put("OutputTokens", {"Project": project, "Model": model}, tokens // 2)
            put("Inferences", {"Project": project, "Model": model}, inferences)
            for key, totals in ((model, by_model), (project, by_project)):
                current = totals.setdefault(key, [0, 0])
                current[0] += tokens
                current[1] += inferences
    levels = [({"Model": m}, v) for m, v in by_model.items()]
    levels += [({"Project": p}, v) for p, v in by_project.items()]
    account = [sum(v[0] for v in by_model.values()), sum(v[1] for v in by_model.values())]
    levels.append(({}, account))
    for dimensions, (tokens, inferences) in levels:
        put("TotalInputTokens", dimensions, tokens)
        put("TotalOutputTokens", dimensions, tokens // 2)
        put("Inferences", dimensions, inferences)


def _rows(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


USAGE = (
    "SELECT api_endpoint, model_id, sum(input_tokens)::BIGINT, sum(output_tokens)::BIGINT, "
    "sum(invocations)::BIGINT FROM bedrock_usage_daily GROUP BY ALL ORDER BY ALL"
)


def test_mantle_only_usage_is_counted_once_per_model_with_its_projects(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_mantle(aws, {"proj_a": {GPT: 3000}, "proj_b": {GPT: 1000, "openai.gpt-oss-20b": 500}}, day)
    connect(reader, "acme", regions="us-east-1")
    result = run_sync("acme", DayRange(day, day))
    assert result.success
    # Four levels were published; each model counts once (never double or triple).
    assert _rows(bedrock_home, USAGE) == [
        ("bedrock-mantle", GPT, 4000, 2000, 40),
        ("bedrock-mantle", "openai.gpt-oss-20b", 500, 250, 5),
    ]
    assert _rows(
        bedrock_home,
        "SELECT project_id, model_id, input_tokens, output_tokens, inferences "
        "FROM bedrock_usage_daily_by_project ORDER BY ALL",
    ) == [
        ("proj_a", GPT, 3000, 1500, 30),
        ("proj_b", GPT, 1000, 500, 10),
        ("proj_b", "openai.gpt-oss-20b", 500, 250, 5),
    ]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["projects_reconcile"].passed and checks["totals_reconcile"].passed
    assert _rows(
        bedrock_home,
        f"SELECT model_provider, base_model_id FROM bedrock_usage_daily WHERE model_id = '{GPT}'",
    ) == [("openai", GPT)]


def test_one_model_through_both_endpoints_is_two_rows_summing_to_both_totals(
    aws, reader, bedrock_home
):
    day = days_ago(1)
    seed_mantle(aws, {"proj_a": {HAIKU: 700}}, day)
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1200})
    seed_daily(aws, "InputTokenCount", None, {day: 1250})  # 50 unattributed on the runtime
    connect(reader, "acme", regions="us-east-1")
    assert run_sync("acme", DayRange(day, day)).success
    assert _rows(bedrock_home, USAGE) == [
        ("bedrock-mantle", HAIKU, 700, 350, 7),
        ("bedrock-runtime", "(unattributed)", 50, 0, 0),
        ("bedrock-runtime", HAIKU, 1200, 0, 0),
    ]
    # The region's rows sum to the runtime total plus the mantle total, exactly.
    assert _rows(bedrock_home, "SELECT sum(input_tokens)::BIGINT FROM bedrock_usage_daily") == [
        (1250 + 700,)
    ]


def test_a_region_with_only_the_runtime_namespace_has_no_mantle_rows(aws, reader, bedrock_home):
    day = days_ago(1)
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 10})
    seed_daily(aws, "InputTokenCount", None, {day: 10})
    connect(reader, "acme", regions="us-east-1")
    result = run_sync("acme", DayRange(day, day))
    assert result.success
    assert _rows(bedrock_home, USAGE) == [("bedrock-runtime", HAIKU, 10, 0, 0)]
    assert _rows(bedrock_home, "SELECT count(*) FROM bedrock_usage_daily_by_project") == [(0,)]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["projects_reconcile"].passed


def test_a_60_day_backfill_finds_a_mantle_model_idle_for_5_weeks(aws, reader, bedrock_home):
    old = days_ago(36)
    seed_mantle(aws, {"proj_a": {GPT: 900}}, old)
    connect(reader, "acme", regions="us-east-1")
    assert run_sync("acme", DayRange(days_ago(59), days_ago(1))).success
    assert _rows(bedrock_home, USAGE) == [("bedrock-mantle", GPT, 900, 450, 9)]
