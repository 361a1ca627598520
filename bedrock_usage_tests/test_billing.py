"""The bill: Bedrock's line items of a CUR 2.0 export, as AWS lays it out in S3 (the
emulator's, over HTTP), read with a credential of the export bucket's own and stored per
billing period, exact to the token and the cent."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from functools import partial

import boto3
import dagster as dg
import duckdb
import pytest

from bedrock_usage.billing.cur import (
    BillingExportError,
    ExportLocation,
    billing_periods,
    read_period,
)
from bedrock_usage.emulator.cur_export import CurLine, write_cur_export
from bedrock_usage.storage.billed import replace_billing_period
from bedrock_usage.storage.warehouse import open_warehouse, transaction

from .conftest import ACCOUNT, OTHER_ACCOUNT, session_for

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA_LITE = "amazon.nova-lite-v1:0"
BILLING_READER = {  # the billing source's policy: the export's prefix, read-only
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                   "Resource": "*"}],
}  # fmt: skip
MP = "AmazonBedrockFoundationModels"
HAIKU_45_NAME = "Claude Haiku 4.5 (Amazon Bedrock Edition)"
SEARCH = "arn:aws:iam::111122223333:role/SearchRankerRole"


@pytest.fixture
def export(aws):
    """An export bucket in the payer account and a key that may only read it."""
    admin = aws.create_reader(ACCOUNT, "billing-admin", policy={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    })  # fmt: skip
    writer = session_for(admin).client("s3", region_name="us-east-1")
    writer.create_bucket(Bucket="payer-cur")
    reader = session_for(aws.create_reader(ACCOUNT, "billing-reader", policy=BILLING_READER))
    return writer, reader.client("s3", region_name="us-east-1")


def _lines(day: date) -> list[CurLine]:
    at = datetime(day.year, day.month, day.day, 3)
    later = datetime(day.year, day.month, day.day, 17)
    return [
        # Marketplace: two hours of one usage type sum into the day (1.234567M tokens).
        CurLine(at, ACCOUNT, MP, "USE1-MP:USE1_InputTokenCount-Units", 1.0, "Units", 1.1,
                product_name=HAIKU_45_NAME, iam_principal=SEARCH, tags={"user_team": "search"}),
        CurLine(later, ACCOUNT, MP, "USE1-MP:USE1_InputTokenCount-Units", 0.234567, "Units",
                0.2580237, product_name=HAIKU_45_NAME, iam_principal=SEARCH,
                tags={"user_team": "search"}),
        CurLine(at, ACCOUNT, MP, "USE1-MP:USE1_OutputTokenCount_Global-Units", 0.098765,
                "Units", 0.493825, product_name=HAIKU_45_NAME, iam_principal=SEARCH,
                tags={"user_team": "search"}),
        # A discount on the same usage, kept apart from the usage line.
        CurLine(at, ACCOUNT, MP, "USE1-MP:USE1_InputTokenCount-Units", 0.0, "Units", -0.13,
                line_item_type="Discount", product_name=HAIKU_45_NAME,
                iam_principal=SEARCH, tags={"user_team": "search"}),
        # AmazonBedrock's own: the model is named in the usage type; another account.
        CurLine(at, OTHER_ACCOUNT, "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 1500.0,
                "1K tokens", 0.375, payer_account_id=ACCOUNT),
        # The mantle endpoint's priority tier.
        CurLine(at, ACCOUNT, "AmazonBedrock",
                "USE1-openai.gpt-oss-120b-mantle-output-tokens-priority", 200.0, "1K tokens",
                0.24),
        # A model this version has no name for, and a credit.
        CurLine(at, ACCOUNT, MP, "USE1-MP:USE1_InputTokenCount-Units", 0.5, "Units", 4.5,
                product_name="Claude Fable 9 (Amazon Bedrock Edition)"),
        CurLine(at, ACCOUNT, "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 0.0,
                "1K tokens", -1.0, line_item_type="Credit"),
        # Not Bedrock: left out.
        CurLine(at, ACCOUNT, "AmazonEC2", "USE1-BoxUsage:t3.micro", 24.0, "Hrs", 0.2496),
    ]  # fmt: skip


def _rows(home_db, sql):
    with duckdb.connect(str(home_db), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_a_billing_period_is_read_exactly_and_replaced_whole(export, tmp_path):
    writer, reader = export
    day = date(2026, 11, 3)
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11", _lines(day))
    location = ExportLocation.parse("s3://payer-cur/cur2/bedrock-cur/")
    periods = billing_periods(reader, location)
    assert list(periods) == ["2026-11"]
    lines = read_period(reader, location, "2026-11", periods["2026-11"])
    warehouse = tmp_path / "warehouse.duckdb"
    read_at = datetime(2026, 12, 1)
    with open_warehouse(warehouse) as db, transaction(db):
        assert replace_billing_period(db, "payer", "2026-11", lines, read_at) == 7
    query = (
        "SELECT account_id, product_code, model_id, token_type, service_tier, price_scope, "
        "line_item_type, tokens, unblended_cost_usd, iam_principal, tags "
        "FROM bedrock_billed_daily ORDER BY ALL"  # NULLs last
    )
    team = '{"user_team":"search"}'
    assert _rows(warehouse, query) == [
        (ACCOUNT, "AmazonBedrock", HAIKU, "input", "standard", "in_region", "Credit", 0,
         Decimal("-1"), "", "{}"),
        (ACCOUNT, "AmazonBedrock", "openai.gpt-oss-120b", "output", "mantle_priority",
         "in_region", "Usage", 200_000, Decimal("0.24"), "", "{}"),
        (ACCOUNT, MP, HAIKU_45, "input", "standard", "in_region", "Discount", 0,
         Decimal("-0.13"), SEARCH, team),
        (ACCOUNT, MP, HAIKU_45, "input", "standard", "in_region", "Usage", 1_234_567,
         Decimal("1.3580237"), SEARCH, team),
        (ACCOUNT, MP, HAIKU_45, "output", "standard", "global", "Usage", 98_765,
         Decimal("0.493825"), SEARCH, team),
        (ACCOUNT, MP, None, "input", "standard", "in_region", "Usage", 500_000,
         Decimal("4.5"), "", "{}"),
        (OTHER_ACCOUNT, "AmazonBedrock", HAIKU, "input", "standard", "in_region", "Usage",
         1_500_000, Decimal("0.375"), "", "{}"),
    ]  # fmt: skip
    assert _rows(warehouse, "SELECT DISTINCT usage_date, payer_account_id, billing_period "
                 "FROM bedrock_billed_daily") == [(day, ACCOUNT, "2026-11")]  # fmt: skip

    # AWS rewrites the open month: the new delivery replaces the period, nothing doubles.
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11", _lines(day)[:1])
    lines = read_period(reader, location, "2026-11", billing_periods(reader, location)["2026-11"])
    with open_warehouse(warehouse) as db, transaction(db):
        assert replace_billing_period(db, "payer", "2026-11", lines, read_at) == 1
    assert _rows(warehouse, "SELECT sum(tokens), sum(unblended_cost_usd) "
                 "FROM bedrock_billed_daily") == [(1_000_000, Decimal("1.1"))]  # fmt: skip


def test_an_export_that_is_not_cur_2_is_named_with_what_to_do(export):
    writer, reader = export
    with pytest.raises(BillingExportError, match="s3://bucket/prefix/export-name/"):
        ExportLocation.parse("https://payer-cur/cur2")
    writer.put_object(
        Bucket="payer-cur",
        Key="legacy/cur/metadata/BILLING_PERIOD=2026-11/cur-Manifest.json",
        Body=b'{"columns": [{"name": "lineItem/UsageAmount"}], "dataFiles": []}',
    )
    location = ExportLocation.parse("s3://payer-cur/legacy/cur")
    key = billing_periods(reader, location)["2026-11"]
    with pytest.raises(BillingExportError, match="lack bill_payer_account_id"):
        read_period(reader, location, "2026-11", key)


def test_the_billing_credential_reads_the_export_and_nothing_else(aws, export):
    """A key without s3:GetObject is refused by the emulator as AWS refuses it."""
    writer, _ = export
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11",
                     _lines(date(2026, 11, 3)))  # fmt: skip
    cloudwatch_only = session_for(aws.create_reader(ACCOUNT)).client("s3", region_name="us-east-1")
    location = ExportLocation.parse("s3://payer-cur/cur2/bedrock-cur/")
    with pytest.raises(boto3.exceptions.botocore.exceptions.ClientError, match="AccessDenied"):
        billing_periods(cloudwatch_only, location)


def _billing_key(aws, name="billing-cli"):
    return aws.create_reader(ACCOUNT, name, policy=BILLING_READER)


def _files_containing(root, needle: str) -> list:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_billing_connect_verifies_stores_encrypted_reads_and_disconnects(
    aws, export, cli_in_process, home
):
    writer, _ = export
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11",
                     _lines(date(2026, 11, 3)))  # fmt: skip
    key = _billing_key(aws)
    result = cli_in_process(
        "billing", "connect", "payer", "--s3-uri", "s3://payer-cur/cur2/bedrock-cur/",
        "--access-key-id", key.access_key_id, secret=key.secret_access_key,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "reading 2026-11:\npayer: 2026-11, 7 rows" in result.stdout
    for name in ("warehouse.duckdb", "warehouse.snapshot.duckdb"):  # the analysts' copy too
        assert _rows(home / name, "SELECT count(*), sum(tokens) FROM bedrock_billed_daily") == [
            (7, 1_234_567 + 98_765 + 500_000 + 1_500_000 + 200_000)
        ]
    status = json.loads(cli_in_process("billing", "status", "--json").stdout)
    assert [(s["name"], s["auth_method"], s["periods_read"]) for s in status] == [
        ("payer", "keys", ["2026-11"])
    ]
    assert _files_containing(home, key.secret_access_key) == []
    with sqlite3.connect(home / "state.sqlite3") as db:
        [(ciphertext,)] = db.execute("SELECT secret_ciphertext FROM billing_sources").fetchall()
    assert ciphertext.startswith("gAAAA")
    # AWS rewrote the month: reading again replaces it.
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11",
                     _lines(date(2026, 11, 3))[:1])  # fmt: skip
    again = cli_in_process("billing", "read", "--period", "2026-11")
    assert again.returncode == 0 and "payer: 2026-11, 1 rows" in again.stdout
    gone = cli_in_process("billing", "disconnect", "payer")
    assert gone.returncode == 0, gone.stderr
    assert _files_containing(home, ciphertext) == []
    assert json.loads(cli_in_process("billing", "status", "--json").stdout) == []
    assert cli_in_process("billing", "disconnect", "payer").returncode == 4


def test_billing_connect_refuses_what_it_cannot_read_and_stores_nothing(
    aws, export, cli_in_process, home
):
    writer, _ = export
    key = _billing_key(aws)

    def connect(uri, pair=key, name="payer"):
        return cli_in_process(
            "billing", "connect", name, "--s3-uri", uri,
            "--access-key-id", pair.access_key_id, secret=pair.secret_access_key,
        )  # fmt: skip

    bad_uri = connect("payer-cur/cur2/bedrock-cur")
    assert bad_uri.returncode == 2 and "s3://bucket/prefix/export-name/" in bad_uri.stderr
    nothing_delivered = connect("s3://payer-cur/cur2/bedrock-cur/")
    assert nothing_delivered.returncode == 3
    assert "No billing period is delivered" in nothing_delivered.stderr
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11",
                     _lines(date(2026, 11, 3)))  # fmt: skip
    cloudwatch_key = aws.create_reader(ACCOUNT)  # the minimal CloudWatch policy: no S3
    denied = connect("s3://payer-cur/cur2/bedrock-cur/", cloudwatch_key)
    assert denied.returncode == 3 and "AccessDenied" in denied.stderr
    assert "s3:ListBucket" in denied.stderr and "Traceback" not in denied.stderr
    assert cloudwatch_key.secret_access_key not in denied.stdout + denied.stderr
    # Each refusal names its cause and its own next step, never another's.
    unknown_key = connect(
        "s3://payer-cur/cur2/bedrock-cur/", replace(key, access_key_id="AKIAUNKNOWNKEY000000")
    )
    assert unknown_key.returncode == 3 and "InvalidAccessKeyId" in unknown_key.stderr
    assert "rejected" in unknown_key.stderr and "s3:ListBucket" not in unknown_key.stderr
    no_bucket = connect("s3://no-such-bucket/cur2/bedrock-cur/")
    assert no_bucket.returncode == 3 and "no bucket named 'no-such-bucket'" in no_bucket.stderr
    unreachable = cli_in_process(
        "billing", "connect", "payer", "--s3-uri", "s3://payer-cur/cur2/bedrock-cur/",
        "--access-key-id", key.access_key_id, secret=key.secret_access_key,
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert unreachable.returncode == 3 and "S3 could not be reached" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    assert json.loads(cli_in_process("billing", "status", "--json").stdout) == []
    assert connect("s3://payer-cur/cur2/bedrock-cur/").returncode == 0
    duplicate = connect("s3://payer-cur/cur2/bedrock-cur/")
    assert duplicate.returncode == 5 and "already exists" in duplicate.stderr


def test_the_billing_asset_reads_its_period_from_every_source(aws, export, bedrock_home):
    """A partition is a billing period: its materialization replaces that period, and a
    run over a range of periods gives each its own figures."""
    from bedrock_usage.bill_sync import connect_billing_source
    from bedrock_usage.connections.credentials import AuthSpec
    from bedrock_usage.defs.definitions import defs
    from bedrock_usage.defs.local_runs import instance, run_bill_read
    from bedrock_usage.storage.warehouse import warehouse_target

    writer, _ = export
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-09",
                     _lines(date(2026, 9, 30))[:1])  # fmt: skip
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11",
                     _lines(date(2026, 11, 3)))  # fmt: skip
    key = _billing_key(aws)
    target = warehouse_target()
    auth = AuthSpec(key.access_key_id, key.secret_access_key)
    periods = connect_billing_source("payer", "s3://payer-cur/cur2/bedrock-cur/", auth)
    assert periods == ["2026-09", "2026-11"]
    assert not target.exists()  # verified and stored; nothing read yet
    [read] = run_bill_read(periods)
    assert (read.billing_source, read.periods, read.rows) == ("payer", periods, 8)
    # One run over 2026-09..2026-11: each period's partition has its own figures, and
    # October, delivered by no source, is materialized with none (not left unknown).
    dagster = instance()
    records = dagster.fetch_materializations(dg.AssetKey("bedrock_billed_daily"), limit=10).records
    assert len({record.run_id for record in records}) == 1
    counts = {
        record.partition_key: (
            record.asset_materialization.metadata["dagster/row_count"].value,
            record.asset_materialization.metadata["delivered_by"].value,
        )
        for record in records
    }
    assert counts == {
        "2026-09-01": (1, ["payer"]), "2026-10-01": (0, []), "2026-11-01": (7, ["payer"])
    }  # fmt: skip
    # November is revised: its discount and credit lines are gone.
    usage = [line for line in _lines(date(2026, 11, 3)) if line.line_item_type == "Usage"]
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11", usage)
    job = defs.resolve_job_def("bedrock_billing_read")
    result = job.execute_in_process(instance=dagster, partition_key="2026-11-01")
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_by_source"].value == {"payer": 5}
    assert metadata["billed_tokens"].value == 1_234_567 + 98_765 + 500_000 + 1_500_000 + 200_000
    assert round(metadata["net_cost_usd"].value, 7) == 1.3580237 + 0.493825 + 4.5 + 0.375 + 0.24
    assert _rows(target, "SELECT billing_period, count(*) FROM bedrock_billed_daily "
                 "GROUP BY ALL ORDER BY ALL") == [("2026-09", 1), ("2026-11", 5)]  # fmt: skip
    # No CloudWatch usage was synced: every billed line is a gap, the largest first.
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "bill_matches_estimate" and not check.passed
    assert check.severity.value == "WARN"
    gaps = check.metadata["worst_gaps"].value
    assert [(g["model_id"], g["billed_unblended_usd"]) for g in gaps] == [
        ("(unmapped) USE1-MP:USE1_InputTokenCount-Units", "4.500000"),
        (HAIKU_45, "1.358024"),
        (HAIKU_45, "0.493825"),
        (HAIKU, "0.375000"),
        ("openai.gpt-oss-120b", "0.240000"),
    ]
    assert all(g["probable_cause"] for g in gaps)
    assert "bedrock_cost_vs_bill" in check.description
    assert "CloudWatch counted nothing, billed 500,000 tokens / $4.500000" in check.description
    assert "None" not in check.description


def test_the_schedule_reads_the_open_month_and_the_last_while_aws_may_revise_it():
    from bedrock_usage.defs.bill_assets import daily_billing_schedule, periods_to_read

    assert periods_to_read(date(2026, 12, 3)) == ["2026-11-01", "2026-12-01"]
    assert periods_to_read(date(2026, 12, 16)) == ["2026-12-01"]
    assert periods_to_read(date(2027, 1, 15)) == ["2026-12-01", "2027-01-01"]
    import dagster as dg

    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 3, 7))
    requests = list(daily_billing_schedule(context))
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-11-01", "2026-12-03:2026-11-01"), ("2026-12-01", "2026-12-03:2026-12-01"),
    ]  # fmt: skip


def test_the_estimate_beside_the_bill_names_each_gap_and_sums_one_cost(export, tmp_path):
    """bedrock_cost_vs_bill: token type by token type, exact; cost_usd is the bill where
    there is one, the estimate otherwise."""
    from bedrock_usage.pricing.prices import PriceRow
    from bedrock_usage.storage.costs import store_prices

    from .test_storage_costs import add_usage

    writer, reader = export
    day = date(2026, 11, 3)
    at = datetime(2026, 11, 3, 5)
    write_cur_export(writer, "payer-cur", "cur2", "bedrock-cur", "2026-11", [
        CurLine(at, ACCOUNT, "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 1500.0,
                "1K tokens", 0.375),
        CurLine(at, ACCOUNT, "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 0.0,
                "1K tokens", -1.0, line_item_type="Credit"),
        CurLine(at, ACCOUNT, "AmazonBedrock", "USE1-Claude3Haiku-output-tokens", 120.0,
                "1K tokens", 0.15),
        CurLine(at, ACCOUNT, MP, "USE1-MP:USE1_InputTokenCount-Units", 1.234567, "Units",
                1.3580237, product_name=HAIKU_45_NAME),
        CurLine(at, ACCOUNT, "AmazonBedrock",
                "USE1-openai.gpt-oss-120b-mantle-output-tokens-priority", 200.0, "1K tokens",
                0.24),
    ])  # fmt: skip
    location = ExportLocation.parse("s3://payer-cur/cur2/bedrock-cur/")
    lines = read_period(reader, location, "2026-11", billing_periods(reader, location)["2026-11"])
    price = partial(
        PriceRow, price_scope="in_region", region="us-east-1", effective_from=date(2026, 1, 1),
        source="test", read_at=datetime(2026, 1, 1),
    )  # fmt: skip
    with open_warehouse(tmp_path / "w.duckdb") as db, transaction(db):
        store_prices(db, [
            price(model_id=HAIKU, token_type="input", usd_per_million_tokens=Decimal("0.25")),
            price(model_id=HAIKU, token_type="output", usd_per_million_tokens=Decimal("1.25")),
            price(model_id=NOVA_LITE, token_type="input", usd_per_million_tokens=Decimal("0.06")),
            price(model_id="openai.gpt-oss-120b", token_type="output",
                  usd_per_million_tokens=Decimal("0.6")),
        ])  # fmt: skip
        add_usage(db, day, HAIKU, input_tokens=1_500_000, output_tokens=100_000)
        add_usage(db, day, NOVA_LITE, input_tokens=1_000_000)
        add_usage(db, day, "openai.gpt-oss-120b", endpoint="bedrock-mantle",
                  output_tokens=200_000)  # fmt: skip
        replace_billing_period(db, "payer", "2026-11", lines, datetime(2026, 12, 1))
    with open_warehouse(tmp_path / "w.duckdb", read_only=True) as db:
        rows = db.execute(
            "SELECT model_id, token_type, cloudwatch_tokens, estimated_usd, billed_tokens, "
            "billed_unblended_usd, billed_net_usd, token_difference, usd_difference, "
            "billed_to_estimated, cost_usd, cost_basis, probable_cause "
            "FROM bedrock_cost_vs_bill ORDER BY model_id, token_type"
        ).fetchall()
        monthly = db.execute(
            "SELECT month, sum(cost_usd), sum(billed_net_usd), sum(estimated_usd) "
            "FROM bedrock_cost_vs_bill_monthly GROUP BY month"
        ).fetchall()
    d = Decimal
    assert [r[:12] for r in rows] == [
        (NOVA_LITE, "input", 1_000_000, d("0.06"), None, None, None, None, None, None,
         d("0.06"), "estimated"),
        (HAIKU, "input", 1_500_000, d("0.375"), 1_500_000, d("0.375"), d("-0.625"), 0,
         d("0"), d("1"), d("-0.625"), "billed"),
        (HAIKU, "output", 100_000, d("0.125"), 120_000, d("0.15"), d("0.15"), 20_000,
         d("0.025"), d("1.2"), d("0.15"), "billed"),
        (HAIKU_45, "input", None, None, 1_234_567, d("1.358024"), d("1.358024"), None, None,
         None, d("1.358024"), "billed"),
        ("openai.gpt-oss-120b", "output", 200_000, d("0.12"), 200_000, d("0.24"), d("0.24"),
         0, d("0.12"), d("2"), d("0.24"), "billed"),
    ]  # fmt: skip
    causes = [r[12] for r in rows]
    assert causes[0].startswith("not billed (yet)")
    assert causes[1] == "discount or credit"
    assert causes[2].startswith("token counts differ")
    assert causes[3].startswith("billed usage CloudWatch did not count")
    assert causes[4] == "service tier: mantle_priority"
    assert monthly == [(date(2026, 11, 1), d("1.183024"), d("1.123024"), d("0.68"))]
