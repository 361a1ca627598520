"""The real console script against the emulator with IAM enforced: every refusal says
why and what to do, and stores nothing; secrets appear nowhere in plaintext."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from bedrock_usage.days import utc_today
from bedrock_usage.emulator.server import READ_ONLY_POLICY

from .conftest import ACCOUNT, OTHER_ACCOUNT, days_ago, midnight, seed_daily, warehouse_held

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _connect(cli, key, name="prod", account=ACCOUNT, regions="us-east-1,eu-west-1", *extra):
    return cli(
        "connect",
        name,
        "--account-id",
        account,
        "--regions",
        regions,
        "--access-key-id",
        key.access_key_id,
        *extra,
        secret=key.secret_access_key,
    )


def _stored_connections(home: Path) -> list[tuple]:
    path = home / "state.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT connection_id, account_id, regions, secret_ciphertext FROM connections"
        ).fetchall()


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_connect_verifies_stores_encrypted_and_syncs(aws, reader, cli, home):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(2): 5, days_ago(1): 7})
    seed_daily(aws, "Invocations", None, {days_ago(2): 5, days_ago(1): 7})
    result = _connect(cli, reader, "prod", ACCOUNT, "us-east-1,eu-west-1", "--backfill-days", "10")
    assert result.returncode == 0, result.stderr
    assert "us-east-1: CloudWatch AWS/Bedrock readable" in result.stdout
    assert "Initial sync of 10 days" in result.stdout
    [(name, account, regions, ciphertext)] = _stored_connections(home)
    assert (name, account, json.loads(regions)) == ("prod", ACCOUNT, ["us-east-1", "eu-west-1"])
    assert ciphertext and reader.secret_access_key not in ciphertext
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sum(invocations) FROM bedrock_usage_daily").fetchone() == (12,)
    listing = json.loads(cli("connections", "--json").stdout)
    assert listing[0]["state"] == "connected" and listing[0]["usage_rows"] == 2
    assert listing[0]["last_successful_sync"] is not None
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad|name", "--account-id", ACCOUNT, "--regions", "us-east-1"], "cannot name"),
        (["prod", "--account-id", "12345", "--regions", "us-east-1"], "12 digits"),
        (
            ["prod", "--account-id", ACCOUNT, "--regions", "us-east-1,eu-wset-1"],
            "did you mean eu-west-1",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_is_stored(reader, cli, home, args, message):
    result = cli(
        "connect", *args, "--access-key-id", reader.access_key_id, secret=reader.secret_access_key
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert _stored_connections(home) == []


def test_a_malformed_key_id_is_refused(reader, cli, home):
    result = cli(
        "connect",
        "prod",
        "--account-id",
        ACCOUNT,
        "--regions",
        "us-east-1",
        "--access-key-id",
        "not-a-key",
        secret="x",
    )
    assert result.returncode == 2 and "AKIA" in result.stderr


def test_a_key_lacking_get_metric_data_is_refused_per_region(aws, cli, home):
    policy = {
        **READ_ONLY_POLICY,
        "Statement": [{**READ_ONLY_POLICY["Statement"][0], "Action": ["cloudwatch:ListMetrics"]}],
    }
    key = aws.create_reader(ACCOUNT, "list-only", policy=policy)
    result = _connect(cli, key)
    assert result.returncode == 3
    assert "nothing was stored" in result.stderr
    for region in ("us-east-1", "eu-west-1"):
        assert f"{region}: AccessDenied" in result.stderr
    assert "cloudwatch:GetMetricData" in result.stderr
    assert _stored_connections(home) == []
    assert _files_containing(home, key.secret_access_key) == []


def test_a_key_of_another_account_is_refused(aws, cli, home):
    key = aws.create_reader(OTHER_ACCOUNT)
    result = _connect(cli, key, account=ACCOUNT)
    assert result.returncode == 3
    assert f"belongs to account {OTHER_ACCOUNT}, not {ACCOUNT}" in result.stderr
    assert _stored_connections(home) == []


def test_a_wrong_secret_and_a_deleted_key_are_refused(aws, reader, cli, home):
    wrong = type(reader)(ACCOUNT, reader.user_name, reader.access_key_id, "w" * 40)
    result = _connect(cli, wrong)
    assert result.returncode == 3 and "SignatureDoesNotMatch" in result.stderr
    assert "new access key" in result.stderr
    aws.delete_access_key(reader)
    result = _connect(cli, reader)
    assert result.returncode == 3 and "InvalidClientTokenId" in result.stderr
    assert _stored_connections(home) == []
    assert "w" * 40 not in result.stderr + result.stdout


def test_a_region_denied_to_the_key_is_named(aws, reader, cli, home):
    aws.deny_region(reader, "eu-west-1")
    result = _connect(cli, reader)
    assert result.returncode == 3
    assert "eu-west-1: AccessDenied" in result.stderr
    assert "us-east-1: AccessDenied" not in result.stderr
    assert "policy" in result.stderr
    assert _stored_connections(home) == []


def test_a_duplicate_name_or_account_is_refused_without_disturbing_the_first(
    aws, reader, cli, home
):
    assert _connect(cli, reader, "prod", ACCOUNT, "us-east-1", "--no-sync").returncode == 0
    before = _stored_connections(home)
    other = aws.create_reader(OTHER_ACCOUNT)
    result = _connect(cli, other, "prod", OTHER_ACCOUNT, "us-east-1", "--no-sync")
    assert result.returncode == 5 and "already exists" in result.stderr
    second_key = aws.create_reader(ACCOUNT, "second")
    result = _connect(cli, second_key, "prod-2", ACCOUNT, "us-east-1", "--no-sync")
    assert result.returncode == 5 and "count its usage twice" in result.stderr
    assert _stored_connections(home) == before


def test_sync_ranges_in_the_future_or_past_retention_are_refused(reader, cli_in_process, home):
    assert (
        _connect(cli_in_process, reader, "prod", ACCOUNT, "us-east-1", "--no-sync").returncode == 0
    )
    tomorrow = str(utc_today() + timedelta(days=1))
    result = cli_in_process("sync", "prod", "--start", str(utc_today()), "--end", tomorrow)
    assert result.returncode == 2 and "ends after today" in result.stderr
    result = cli_in_process("sync", "prod", "--start", str(utc_today() - timedelta(days=455)))
    assert result.returncode == 2 and "455 days" in result.stderr
    result = cli_in_process("sync", "nope")
    assert result.returncode == 4 and "prod" in result.stderr


def test_a_sync_with_a_denied_region_flags_it_and_keeps_its_rows(
    aws, reader, cli, cli_in_process, home
):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5}, region="eu-west-1")
    assert (
        _connect(
            cli_in_process, reader, "prod", ACCOUNT, "us-east-1,eu-west-1", "--backfill-days", "3"
        ).returncode
        == 0
    )
    aws.deny_region(reader, "eu-west-1")
    result = cli("sync", "prod")
    assert result.returncode == 6
    assert "eu-west-1: FAILED AccessDenied" in result.stderr
    # The summary says partial, as the exit code does, never "succeeded".
    assert ": PARTIAL, could not read eu-west-1 (their earlier rows are kept" in result.stdout
    assert "succeeded" not in result.stdout
    listing = json.loads(cli("connections", "--json").stdout)
    assert listing[0]["state"] == "needs attention"
    assert "eu-west-1: AccessDenied" in listing[0]["reason"]
    status = json.loads(cli("status", "prod", "--json").stdout)
    failing = {r["region"]: r["failure"] for r in status["regions"]}
    assert failing["eu-west-1"]["code"] == "AccessDenied" and failing["us-east-1"] is None
    newest = [(e["action"], e["outcome"], e["error_code"]) for e in status["events"][:2]]
    assert newest == [("sync", "partial", None), ("fetch", "failed", "AccessDenied")]
    assert [u["invocations"] for u in status["usage"]] == [5]
    aws.allow_region(reader, "eu-west-1")
    assert cli("sync", "prod").returncode == 0
    assert json.loads(cli("connections", "--json").stdout)[0]["state"] == "connected"


def test_edit_verifies_new_regions_and_rotate_verifies_new_keys(
    aws, reader, cli, cli_in_process, home
):
    assert (
        _connect(cli_in_process, reader, "prod", ACCOUNT, "us-east-1", "--no-sync").returncode == 0
    )
    aws.deny_region(reader, "ap-south-1")
    result = cli("edit", "prod", "--regions", "us-east-1,ap-south-1")
    assert result.returncode == 3 and "ap-south-1: AccessDenied" in result.stderr
    assert json.loads(_stored_connections(home)[0][2]) == ["us-east-1"]
    assert cli("edit", "prod", "--regions", "us-east-1,eu-west-1").returncode == 0
    assert json.loads(_stored_connections(home)[0][2]) == ["us-east-1", "eu-west-1"]
    old_ciphertext = _stored_connections(home)[0][3]
    stranger = aws.create_reader(OTHER_ACCOUNT)
    result = cli(
        "rotate",
        "prod",
        "--access-key-id",
        stranger.access_key_id,
        secret=stranger.secret_access_key,
    )
    assert result.returncode == 3
    assert _stored_connections(home)[0][3] == old_ciphertext
    fresh = aws.create_reader(ACCOUNT, "fresh")
    result = cli(
        "rotate", "prod", "--access-key-id", fresh.access_key_id, secret=fresh.secret_access_key
    )
    assert result.returncode == 0, result.stderr
    assert _files_containing(home, old_ciphertext) == []


def test_secrets_never_appear_in_plaintext_and_vanish_on_disconnect(aws, reader, cli, home):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    outputs = [_connect(cli, reader, "prod", ACCOUNT, "us-east-1", "--backfill-days", "2")]
    for args in (
        ["connections", "--json"],
        ["status", "prod", "--json"],
        ["status", "prod"],
        ["sync", "prod"],
        ["doctor", "prod"],
        ["events"],
    ):
        outputs.append(cli(*args))
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    secret = reader.secret_access_key
    for output in outputs:
        assert secret not in output.stdout + output.stderr
    assert _files_containing(home, secret) == []
    ciphertext = _stored_connections(home)[0][3]
    assert _files_containing(home, ciphertext) == [home / "state.sqlite3"]
    result = cli("disconnect", "prod")
    assert result.returncode == 0
    assert "delete the IAM user or its access key" in result.stdout
    assert _stored_connections(home) == []
    assert _files_containing(home, ciphertext) == []
    assert _files_containing(home, ciphertext[:40]) == []
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone() == (1,)


def test_disconnect_with_purge_deletes_usage(aws, reader, cli, cli_in_process, home):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    assert (
        _connect(
            cli_in_process, reader, "prod", ACCOUNT, "us-east-1", "--backfill-days", "2"
        ).returncode
        == 0
    )
    result = cli("disconnect", "prod", "--purge-usage")
    assert result.returncode == 0 and "Purged 1 usage rows" in result.stdout
    for name in ("warehouse.duckdb", "warehouse.snapshot.duckdb"):
        with duckdb.connect(str(home / name), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM bedrock_usage_daily").fetchone() == (0,)


def test_every_command_has_help(cli_in_process):
    for command in (
        "connect",
        "connections",
        "status",
        "sync",
        "edit",
        "rotate",
        "doctor",
        "events",
        "disconnect",
        "demo",
    ):
        result = cli_in_process(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


def _assumer(aws):
    """A user in ACCOUNT that may call sts:AssumeRole and nothing else."""
    return aws.create_reader(
        ACCOUNT,
        "assumer",
        policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        },
    )


def _connect_role(cli, assumer, role_arn, *extra):
    """Connect OTHER_ACCOUNT through `role_arn`, assumed with the assumer's stored key."""
    return cli(
        "connect",
        "research",
        "--account-id",
        OTHER_ACCOUNT,
        "--regions",
        "us-east-1",
        "--access-key-id",
        assumer.access_key_id,
        "--role-arn",
        role_arn,
        *extra,
        secret=assumer.secret_access_key,
    )


def test_a_role_in_another_account_can_be_assumed_with_the_stored_key(aws, cli, home):
    assumer = _assumer(aws)
    role_arn = aws.create_role(OTHER_ACCOUNT, "bedrock-read", ACCOUNT, external_id="ext-1")
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 4}, account=OTHER_ACCOUNT)
    result = _connect_role(cli, assumer, role_arn, "--external-id", "ext-1", "--backfill-days", "2")
    assert result.returncode == 0, result.stderr
    listing = json.loads(cli("connections", "--json").stdout)
    assert listing[0]["auth_method"] == "role" and listing[0]["usage_rows"] == 1


def test_a_named_profile_stores_no_secret(aws, reader, cli, home):
    home.mkdir(parents=True, exist_ok=True)
    credentials = home.parent / "aws-credentials"
    credentials.write_text(
        f"[bedrock]\naws_access_key_id = {reader.access_key_id}\n"
        f"aws_secret_access_key = {reader.secret_access_key}\n"
    )
    result = cli(
        "connect",
        "prod",
        "--account-id",
        ACCOUNT,
        "--regions",
        "us-east-1",
        "--profile",
        "bedrock",
        "--no-sync",
        env={"AWS_SHARED_CREDENTIALS_FILE": str(credentials)},
    )
    assert result.returncode == 0, result.stderr
    [(_, _, _, ciphertext)] = _stored_connections(home)
    assert ciphertext is None
    assert _files_containing(home, reader.secret_access_key) == []
    result = cli(
        "connect",
        "other",
        "--account-id",
        OTHER_ACCOUNT,
        "--regions",
        "us-east-1",
        "--profile",
        "missing",
        "--no-sync",
        env={"AWS_SHARED_CREDENTIALS_FILE": str(credentials)},
    )
    assert result.returncode == 3
    assert "ProfileNotFound" in result.stderr and "fix the profile" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_account_permissions_recent_models_and_errors(
    aws, reader, cli, cli_in_process, home
):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    aws.seed(ACCOUNT, "us-east-1", "AWS/Bedrock", "Invocations", {}, [midnight(utc_today())], [1.0])
    mantle_newest = midnight(utc_today()) + timedelta(minutes=5)
    aws.seed(ACCOUNT, "us-east-1", "AWS/BedrockMantle", "Inferences", {}, [mantle_newest], [2.0])
    assert (
        _connect(
            cli_in_process, reader, "prod", ACCOUNT, "us-east-1,eu-west-1", "--backfill-days", "2"
        ).returncode
        == 0
    )
    aws.deny_region(reader, "eu-west-1")
    assert cli("sync", "prod").returncode == 6
    result = cli("doctor", "prod")
    assert result.returncode == 1, result.stderr  # a check failed: eu-west-1
    out = result.stdout
    assert f"belongs to account {ACCOUNT}" in out and "as expected" in out
    assert (
        f"us-east-1: CloudWatch readable; models with usage in the last two weeks: {HAIKU}" in out
    )
    assert f"bedrock-runtime: newest data point {utc_today():%Y-%m-%d} 00:00Z" in out
    assert f"bedrock-mantle: newest data point {utc_today():%Y-%m-%d} 00:05Z" in out
    assert "eu-west-1: cannot read CloudWatch: AccessDenied" in out
    assert "Recent errors in the event log:" in out and "fetch failed AccessDenied" in out


def test_a_busy_warehouse_fails_the_sync_with_what_to_do(aws, reader, cli, cli_in_process, home):
    assert (
        _connect(
            cli_in_process, reader, "prod", ACCOUNT, "us-east-1", "--backfill-days", "1"
        ).returncode
        == 0
    )
    with warehouse_held(home / "warehouse.duckdb"):
        result = cli("sync", "prod", env={"BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS": "1"})
    assert result.returncode == 7
    assert str(home / "warehouse.duckdb") in result.stderr
    assert "close that session" in result.stderr and "Traceback" not in result.stderr


def test_connections_and_status_answer_while_the_warehouse_is_busy(
    aws, reader, cli, cli_in_process, home
):
    assert (
        _connect(
            cli_in_process, reader, "prod", ACCOUNT, "us-east-1", "--backfill-days", "1"
        ).returncode
        == 0
    )
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    assert cli_in_process("sync", "prod").returncode == 0
    with warehouse_held(home / "warehouse.duckdb"):
        listing = cli("connections", "--json")
        status = cli("status", "prod")
    # Read from the analysts' snapshot, so they neither wait nor block the writer.
    assert listing.returncode == 0 and json.loads(listing.stdout)[0]["usage_rows"] == 1
    assert status.returncode == 0 and HAIKU in status.stdout
    (home / "warehouse.snapshot.duckdb").unlink()
    patient = {"BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS": "1"}
    with warehouse_held(home / "warehouse.duckdb"):
        listing = cli("connections", "--json", env=patient)
        status = cli("status", "prod", env=patient)
    assert listing.returncode == 0 and json.loads(listing.stdout)[0]["usage_rows"] is None
    assert "is busy" in listing.stderr
    assert status.returncode == 0 and "unavailable while the warehouse is busy" in status.stdout


def test_a_wrong_external_id_is_refused_by_the_roles_trust_policy(aws, cli, home):
    assumer = _assumer(aws)
    role_arn = aws.create_role(OTHER_ACCOUNT, "bedrock-read", ACCOUNT, external_id="ext-1")
    result = _connect_role(cli, assumer, role_arn, "--external-id", "wrong", "--no-sync")
    assert result.returncode == 3
    assert "AccessDenied" in result.stderr and "sts:AssumeRole" in result.stderr
    assert "--external-id matches its sts:ExternalId condition" in result.stderr
    assert _stored_connections(home) == []


def test_a_role_can_be_assumed_with_the_ambient_credentials(aws, cli, home):
    assumer = _assumer(aws)
    role_arn = aws.create_role(OTHER_ACCOUNT, "bedrock-read", ACCOUNT)
    ambient = {
        "AWS_ACCESS_KEY_ID": assumer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": assumer.secret_access_key,
    }
    result = cli(
        "connect",
        "research",
        "--account-id",
        OTHER_ACCOUNT,
        "--regions",
        "us-east-1",
        "--role-arn",
        role_arn,
        "--no-sync",
        env=ambient,
    )
    assert result.returncode == 0, result.stderr
    [(_, account, _, ciphertext)] = _stored_connections(home)
    assert account == OTHER_ACCOUNT and ciphertext is None
    assert cli("sync", "research", env=ambient).returncode == 0
    assert cli("sync", "research").returncode == 6  # without ambient credentials
