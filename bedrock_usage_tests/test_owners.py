"""Who spent it: owners from a profile's tags and from the ownership map, the most
specific source winning, effective dates that keep the past, and `(unassigned)` kept."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from bedrock_usage.days import DayRange
from bedrock_usage.defs.cost_assets import _owner_result
from bedrock_usage.storage.owners import owner_coverage
from bedrock_usage.storage.quality import window_filter

from .conftest import ACCOUNT, days_ago, seed_daily
from .test_mantle import seed_mantle
from .test_profiles import HAIKU, WITH_PROFILES, _connect, _model_arn, _seed_usage

GPT_OSS = "openai.gpt-oss-120b"  # on the mantle endpoint; priced as its runtime twin


def _by_team(home, day, snapshot: bool = False) -> dict[str, tuple]:
    name = "warehouse.snapshot.duckdb" if snapshot else "warehouse.duckdb"
    with duckdb.connect(str(home / name), read_only=True) as db:
        rows = db.execute(f"""
            SELECT team, any_value(cost_center), any_value(owner_source),
                sum(input_tokens + output_tokens)::BIGINT, sum(estimated_cost_usd)
            FROM bedrock_usage_daily_by_owner WHERE usage_date = '{day}'
            GROUP BY team ORDER BY team""").fetchall()
    return {team: rest for team, *rest in rows}


def _scenario(aws, cli_in_process, key=None):
    """One day in us-east-1: Haiku through a profile tagged team=search; two mantle
    projects on gpt-oss; Haiku called directly."""
    day = days_ago(2)
    profile = aws.create_application_profile(
        ACCOUNT, "us-east-1", "search-haiku", [_model_arn("us-east-1", HAIKU)],
        {"team": "search", "cost-center": "cc-100"},
    )  # fmt: skip
    _seed_usage(aws, profile.profile_id, day, 1_000_000, 200_000)  # $0.25 + $0.25
    seed_mantle(aws, {"proj_r": {GPT_OSS: 2_000_000}, "proj_x": {GPT_OSS: 1_000_000}}, day)
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 400_000})  # $0.10
    seed_daily(aws, "Invocations", HAIKU, {day: 4})
    key = key or aws.create_reader(ACCOUNT, "with-profiles", policy=WITH_PROFILES)
    assert _connect(cli_in_process, key).returncode == 0
    return day


def test_owners_come_from_tags_and_the_map_and_the_rest_is_unassigned(aws, cli_in_process, home):
    day = _scenario(aws, cli_in_process)
    owner = cli_in_process("owners", "set", "--team", "research", "--application", "chat",
                           "--project", "proj_r")  # fmt: skip
    assert owner.returncode == 0, owner.stderr
    assert "from 1970-01-01" in owner.stdout  # nothing had an owner: all of history
    assert _by_team(home, day) == {
        # proj_x (1.5M tokens, $0.45) and the direct Haiku call ($0.10): nobody's.
        "(unassigned)": ["(unassigned)", "none", 1_900_000, Decimal("0.550000")],
        # proj_r: 2M input at $0.15, 1M output at $0.60.
        "research": ["(unassigned)", "map", 3_000_000, Decimal("0.900000")],
        "search": ["cc-100", "tags", 1_200_000, Decimal("0.500000")],
    }
    # The analysts' copy groups by owner too, and the month adds up to the table.
    assert _by_team(home, day, snapshot=True) == _by_team(home, day)
    with duckdb.connect(str(home / "warehouse.snapshot.duckdb"), read_only=True) as db:
        assert db.execute(
            "SELECT sum(estimated_cost_usd), sum(tokens), count(*) FILTER (cost_basis = 'billed')"
            " FROM bedrock_cost_monthly_by_owner"
        ).fetchone() == (Decimal("1.950000"), 6_100_000, 0)
        assert db.execute("SELECT sum(estimated_cost_usd) FROM bedrock_cost_daily").fetchone() == (
            Decimal("1.950000"),
        )
    # The check on bedrock_cost_daily: the share without an owner, the largest sources
    # first, each with the command that would assign it.
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        coverage = owner_coverage(db, *window_filter({"prod": DayRange(day, day)}))
    result = _owner_result(coverage)
    assert (coverage.total_usd, coverage.unassigned_usd) == (1.95, 0.55)
    assert not result.passed and result.severity.value == "WARN"
    assert result.description.startswith("28.2% of the estimated spend ($0.55 of $1.95)")
    assert [(s["project_id"] or s["model_id"], s["assign_with"])
            for s in coverage.largest_unassigned] == [
        ("proj_x", "bedrock-usage owners set --team TEAM --project proj_x"),
        (HAIKU, f"bedrock-usage owners set --team TEAM --connection prod --region us-east-1 "
                f"--model {HAIKU}"),
    ]  # fmt: skip


def test_the_most_specific_owner_wins_and_a_change_keeps_the_past(aws, cli_in_process, home):
    day = _scenario(aws, cli_in_process)

    def owners(*args):
        result = cli_in_process("owners", *args)
        assert result.returncode == 0, result.stderr
        return result

    # A connection-wide owner (rank 2) takes what nothing more specific covers: the
    # profile's tags (rank 6) still win for its usage.
    owners("set", "--team", "platform", "--connection", "prod")
    assert {t: v[3] for t, v in _by_team(home, day).items()} == {
        "platform": Decimal("1.450000"), "search": Decimal("0.500000")
    }  # fmt: skip
    # A rule naming the profile ranks with its tags, and the map wins at equal rank.
    owners("set", "--team", "search-ops", "--profile", "search-haiku")
    # Two model rules: the one naming more (model and region) wins.
    owners("set", "--team", "m1", "--model", HAIKU)
    owners("set", "--team", "m2", "--model", HAIKU, "--region", "us-east-1")
    teams = _by_team(home, day)
    assert {t: (v[1], v[3]) for t, v in teams.items()} == {
        "m2": ("map", Decimal("0.100000")),  # the direct call; the profile's rule outranks
        "platform": ("map", Decimal("1.350000")),  # both projects
        "search-ops": ("map", Decimal("0.500000")),
    }
    # A change of owner starts today by default: the day already synced keeps its owner.
    owners("set", "--team", "platform-2", "--connection", "prod")
    assert "platform" in _by_team(home, day) and "platform-2" not in _by_team(home, day)
    # Unless asked: from that day on.
    changed = owners("set", "--team", "platform-2", "--connection", "prod", "--from", str(day))
    assert f"from {day}" in changed.stdout
    assert {t: v[3] for t, v in _by_team(home, day).items()}["platform-2"] == Decimal("1.350000")
    listed = owners("list").stdout
    assert f"connection_id=prod: platform / - / - from 1970-01-01 until {day}" in listed
    # Unset ends a rule: its usage falls to the next most specific owner, or none.
    owners("unset", "--profile", "search-haiku", "--from", str(day))
    assert _by_team(home, day)["search"][1] == "tags"
    missing = cli_in_process("owners", "unset", "--profile", "nothing-like-it")
    assert missing.returncode == 2 and "owners list" in missing.stderr
    # The tag keys are the platform owner's to choose: here the team is the cost center.
    keys = cli_in_process("owners", "tag-keys", "--team", "cost-center")
    assert keys.stdout.strip() == (
        "team: tag 'cost-center', application: tag 'application', cost_center: tag 'cost-center'"
    )
    assert _by_team(home, day)["cc-100"][1] == "tags"


def test_a_profile_that_cannot_be_read_has_no_owner_from_its_tags(aws, cli_in_process, home):
    day = _scenario(aws, cli_in_process, key=aws.create_reader(ACCOUNT, "minimal"))
    teams = _by_team(home, day)
    assert list(teams) == ["(unassigned)"]
    # Its tokens stay, unpriced: the dollars are the rest's.
    assert teams["(unassigned)"][2:] == [6_100_000, Decimal("1.450000")]
    # No rule and no tag read: nobody asked for owners, so the check does not warn.
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        coverage = owner_coverage(db, *window_filter({"prod": DayRange(day, day)}))
    assert not coverage.configured and _owner_result(coverage).passed


def test_owners_import_sets_every_rule_or_none(aws, cli_in_process, home, tmp_path):
    day = _scenario(aws, cli_in_process)
    bad = tmp_path / "bad.csv"
    bad.write_text("team,project_id\nresearch,proj_r\n,proj_x\n")
    refused = cli_in_process("owners", "import", str(bad))
    assert refused.returncode == 2 and "bad.csv:3" in refused.stderr
    assert "No ownership rule yet" in cli_in_process("owners", "list").stdout
    good = tmp_path / "owners.csv"
    good.write_text(
        "team,cost_center,project_id,model_id,effective_from\n"
        "research,cc-200,proj_r,,\n"
        f"direct,,,{HAIKU},{day}\n"
    )
    assert cli_in_process("owners", "import", str(good)).returncode == 0
    teams = _by_team(home, day)
    assert teams["research"][:2] == ["cc-200", "map"]
    assert teams["direct"][3] == Decimal("0.100000")
