"""Application inference profiles: the opaque id CloudWatch reports, resolved to the model
behind it and priced as that model; without the optional permission, nothing fails and
the usage stays visible, unpriced, with the missing permission named."""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.emulator.server import READ_ONLY_POLICY
from bedrock_usage.storage.costs import PROFILE_CAUSE, unpriced_usage
from bedrock_usage.sync.profiles import PROFILE_POLICY_STATEMENT, routing_scope

from .conftest import ACCOUNT, days_ago, seed_daily

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20241022-v2:0"
WITH_PROFILES = {
    "Version": "2012-10-17",
    "Statement": [*READ_ONLY_POLICY["Statement"], PROFILE_POLICY_STATEMENT],
}


def _model_arn(region: str, model_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def _rows(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def _seed_usage(aws, model_id: str, day, input_tokens: int, output_tokens: int) -> None:
    seed_daily(aws, "InputTokenCount", model_id, {day: input_tokens})
    seed_daily(aws, "OutputTokenCount", model_id, {day: output_tokens})
    seed_daily(aws, "Invocations", model_id, {day: 10})


def _connect(cli_in_process, key):
    return cli_in_process(
        "connect", "prod", "--account-id", ACCOUNT, "--regions", "us-east-1",
        "--access-key-id", key.access_key_id, "--backfill-days", "3",
        secret=key.secret_access_key,
    )  # fmt: skip


def _profiles(aws):
    search = aws.create_application_profile(
        ACCOUNT, "us-east-1", "search-haiku", [_model_arn("us-east-1", HAIKU)],
        {"team": "search", "cost-center": "cc-100"},
    )  # fmt: skip
    research = aws.create_application_profile(
        ACCOUNT, "us-east-1", "research-sonnet",
        [_model_arn(r, SONNET) for r in ("us-east-1", "us-east-2", "us-west-2")],
        {"team": "research"},
    )  # fmt: skip
    return search, research


def test_usage_through_a_profile_is_the_model_behind_it_and_priced_as_that_model(
    aws, cli_in_process, home
):
    day = days_ago(2)
    search, research = _profiles(aws)
    # CloudWatch names one profile by its id, the other by its ARN.
    _seed_usage(aws, search.profile_id, day, 1_000_000, 200_000)
    _seed_usage(aws, research.arn, day, 2_000_000, 100_000)
    key = aws.create_reader(ACCOUNT, "with-profiles", policy=WITH_PROFILES)
    result = _connect(cli_in_process, key)
    assert result.returncode == 0, result.stderr
    profiles = _rows(
        home,
        """
        SELECT profile_id, profile_name, base_model_id, model_provider, inference_scope, tags,
            len(model_arns)
        FROM bedrock_inference_profiles ORDER BY profile_name""",
    )
    assert profiles == [
        (research.profile_id, "research-sonnet", SONNET, "anthropic", "us",
         json.dumps({"team": "research"}), 3),
        (search.profile_id, "search-haiku", HAIKU, "anthropic", "in_region",
         json.dumps({"cost-center": "cc-100", "team": "search"}), 1),
    ]  # fmt: skip
    # The usage table keeps what CloudWatch said; the cost view resolves and prices it:
    # Haiku in-region $0.25/$1.25, Sonnet v2 through a US profile at its in-region
    # $3/$15 (no geo price is listed for it).
    costs = _rows(
        home,
        f"""
        SELECT model_id, model_provider, base_model_id, inference_scope, inference_profile_name,
            input_tokens, output_tokens, estimated_cost_usd
        FROM bedrock_cost_daily WHERE usage_date = '{day}' ORDER BY inference_profile_name""",
    )
    assert costs == [
        (research.arn, "anthropic", SONNET, "us", "research-sonnet", 2_000_000, 100_000,
         Decimal("7.500000")),
        (search.profile_id, "anthropic", HAIKU, "in_region", "search-haiku", 1_000_000, 200_000,
         Decimal("0.500000")),
    ]  # fmt: skip
    assert _rows(home, "SELECT DISTINCT model_provider FROM bedrock_usage_daily") == [("unknown",)]
    # Read once per sync and region: one page of profiles, one tag call per profile seen.
    assert aws.bedrock_log.calls("ListInferenceProfiles") == 1
    assert aws.bedrock_log.calls("ListTagsForResource") == 2
    # The analysts' copy has the table and the resolved dollars too.
    with duckdb.connect(str(home / "warehouse.snapshot.duckdb"), read_only=True) as db:
        assert db.execute("SELECT sum(estimated_cost_usd) FROM bedrock_cost_daily").fetchone() == (
            Decimal("8.000000"),
        )
        assert db.execute("SELECT count(*) FROM bedrock_inference_profiles").fetchone() == (2,)


def test_without_the_optional_permission_nothing_fails_and_the_cause_is_named(
    aws, cli_in_process, home
):
    day = days_ago(2)
    search, _ = _profiles(aws)
    _seed_usage(aws, search.profile_id, day, 1_000_000, 200_000)
    _seed_usage(aws, HAIKU, day, 500_000, 0)
    key = aws.create_reader(ACCOUNT, "minimal")  # the guide's policy alone
    result = _connect(cli_in_process, key)
    assert result.returncode == 0, result.stderr
    assert _rows(home, f"""
        SELECT model_id, model_provider, inference_scope, estimated_cost_usd
        FROM bedrock_cost_daily WHERE usage_date = '{day}'
        ORDER BY inference_scope = 'application_profile'""") == [
        (HAIKU, "anthropic", "in_region", Decimal("0.125000")),
        (search.profile_id, "unknown", "application_profile", None),
    ]  # fmt: skip
    assert _rows(home, "SELECT count(*) FROM bedrock_inference_profiles") == [(0,)]
    # The usage_priced check lists it with this cause (the check's own query).
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        [unpriced] = unpriced_usage(db, {"prod": DayRange(day, day)}).to_dict("records")
    assert (unpriced["model_id"], unpriced["tokens"]) == (search.profile_id, 1_200_000)
    assert unpriced["cause"] == PROFILE_CAUSE
    status = cli_in_process("status", "prod")
    assert status.returncode == 0, status.stderr
    assert (
        "us-east-1: optional permission 'inference_profiles' missing (AccessDeniedException"
        in status.stdout
    )
    assert "bedrock:ListInferenceProfiles" in status.stdout
    doctor = cli_in_process("doctor", "prod")
    assert "bedrock:ListInferenceProfiles" in doctor.stdout, doctor.stdout + doctor.stderr
    # Granting it later resolves the same history at the next sync.
    aws.put_policy(ACCOUNT, "minimal", "bedrock-usage-read", WITH_PROFILES)
    again = cli_in_process("sync", "prod")
    assert again.returncode == 0, again.stderr
    assert _rows(
        home,
        f"""
        SELECT estimated_cost_usd FROM bedrock_cost_daily
        WHERE usage_date = '{day}' AND model_id = '{search.profile_id}'""",
    ) == [(Decimal("0.500000"),)]
    assert "optional permission" not in cli_in_process("status", "prod").stdout


def test_a_profile_routes_in_region_to_a_geography_or_globally():
    arns = {r: _model_arn(r, HAIKU) for r in ("us-east-1", "us-west-2", "eu-west-1", "")}
    assert routing_scope((arns["us-east-1"],), "us-east-1") == "in_region"
    assert routing_scope((arns["us-east-1"], arns["us-west-2"]), "us-east-1") == "us"
    assert routing_scope((arns["eu-west-1"],), "eu-west-1") == "in_region"
    assert routing_scope((arns["us-east-1"], arns["eu-west-1"]), "us-east-1") == "global"
