"""The demo's bill: a CUR 2.0 export in the emulator's S3, made from the same usage the
demo's CloudWatch serves (as the sync stored it, priced at the list prices), with what
a real bill adds — a discount, a credit, a priority-tier line, a model the price table
lacks, and the calling IAM principals (a team's role tagged `team`) — then connected as a billing
source and shown beside the estimate."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import click

from .bill_sync import connect_billing_source, disconnect_billing_source
from .connections.credentials import AuthSpec
from .connections.secrets import derive
from .connections.store import StateStore
from .defs.local_runs import run_bill_read
from .emulator.cur_export import CurLine, write_cur_export
from .emulator.price_list import MARKETPLACE_TOKENS, usage_prefix
from .emulator.server import AccessKeyPair, Emulator
from .extraction.aws import AwsKeys, make_session
from .pricing.price_list import FIRST_PARTY_TOKENS, MARKETPLACE_EDITION, known_names
from .storage.warehouse import open_warehouse, warehouse_target

DEMO_BILL = "demo-bill"
BUCKET, PREFIX, EXPORT = "demo-payer-cur", "cur2", "bedrock"
# Per token type (the order of the usage columns below): its usage type's tail, as AWS's
# own offer and the Marketplace name it.
TOKEN_USAGE = {
    token_type: (first_party, MARKETPLACE_TOKENS[token_type])
    for first_party, token_type in FIRST_PARTY_TOKENS.items()
}
S3_ALL = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
BILL_READER = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}  # fmt: skip


def forget_demo_bill() -> None:
    """A re-run starts clean: the demo's billing source and the rows it read."""
    if StateStore().billing_source(DEMO_BILL):
        disconnect_billing_source(DEMO_BILL)
    with open_warehouse(warehouse_target()) as db:
        db.execute("DELETE FROM bedrock_billed_daily WHERE billing_source = ?", [DEMO_BILL])


def derived_key_pair(label: str) -> tuple[str, str]:
    """An access key id and secret derived from this home's encryption key: the demo's
    emulator, started again by a later command, accepts the keys the home stored."""
    key_id = "AKIA" + base64.b32encode(derive(f"demo-key:{label}")).decode()[:16]
    return key_id, base64.b64encode(derive(f"demo-secret:{label}")).decode()[:40]


def serve_demo_bill(aws: Emulator, payer: str) -> AccessKeyPair:
    """The demo's export in the emulator's S3, made from the usage synced so far, and the
    reader whose keys the billing source holds."""
    admin = aws.create_reader(payer, "demo-billing-admin", policy=S3_ALL)
    s3 = make_session(AwsKeys(admin.access_key_id, admin.secret_access_key)).client(
        "s3", region_name="us-east-1"
    )
    s3.create_bucket(Bucket=BUCKET)
    for period, lines in _bill_lines(payer).items():
        write_cur_export(s3, BUCKET, PREFIX, EXPORT, period, lines)
    return aws.create_reader(
        payer, "demo-billing-reader", policy=BILL_READER, key_pair=derived_key_pair("bill")
    )


def serve_connected_demo_bill(aws: Emulator, payer: str) -> None:
    """A later command in the demo's home (`billing read`, the UI's bill asset) finds the
    export the demo connected, as a real bucket keeps it."""
    if StateStore().billing_source(DEMO_BILL):
        serve_demo_bill(aws, payer)


def connect_demo_bill(aws: Emulator, payer: str) -> None:
    reader = serve_demo_bill(aws, payer)
    periods = connect_billing_source(
        DEMO_BILL,
        f"s3://{BUCKET}/{PREFIX}/{EXPORT}/",
        AuthSpec(reader.access_key_id, reader.secret_access_key),
    )
    [read] = run_bill_read(periods, trigger="demo")
    click.echo(
        f"\nBilling source {DEMO_BILL}: a CUR 2.0 export in the emulator's S3 "
        f"(s3://{BUCKET}/{PREFIX}/{EXPORT}/), read {', '.join(read.periods)}: {read.rows} rows "
        "in bedrock_billed_daily."
    )


def _bill_lines(payer: str) -> dict[str, list[CurLine]]:
    names = {model_id: name for name, model_id in known_names().items()}
    with open_warehouse(warehouse_target(), read_only=True) as db:
        # Calls through an application inference profile come from its team's role,
        # whose `team` tag the bill carries; the rest from a shared, untagged role.
        usage = db.execute(
            """SELECT c.usage_date, c.account_id, c.region, c.base_model_id,
                coalesce(c.inference_profile_name, 'shared-app') AS caller,
                coalesce(p.tags, '{}') AS caller_tags,
                sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
                sum(cache_write_input_tokens), sum(input_cost_usd), sum(output_cost_usd),
                sum(cache_read_cost_usd), sum(cache_write_cost_usd)
            FROM bedrock_cost_daily c
            LEFT JOIN bedrock_inference_profiles p ON p.connection_id = c.connection_id
                AND p.region = c.region AND p.profile_name = c.inference_profile_name
            WHERE c.connection_id LIKE 'demo-%'
            GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    periods: dict[str, list[CurLine]] = defaultdict(list)
    for day, account, region, model_id, caller, caller_tags, *figures in usage:
        name = names.get(model_id)
        if name is None and not model_id.startswith("openai."):
            continue  # unattributed or unknown to the Price List: not billed per token
        at = datetime(day.year, day.month, day.day, 12)
        for (first_party, marketplace), tokens, cost in zip(
            TOKEN_USAGE.values(), figures[:4], figures[4:], strict=True
        ):
            if not tokens or cost is None:
                continue
            usage_type, unit, amount, product, code = _usage(
                model_id, name, region, first_party, marketplace, tokens
            )
            periods[f"{day:%Y-%m}"].append(
                CurLine(
                    at,
                    account,
                    code,
                    usage_type,
                    amount,
                    unit,
                    float(cost),
                    product_name=product,
                    region=region,
                    payer_account_id=payer,
                    iam_principal=f"arn:aws:iam::{account}:role/{caller}",
                    # A role's tags as CUR 2.0 names cost-allocation tags: user_<key>.
                    tags={f"user_{k}": v for k, v in json.loads(caller_tags).items()},
                )  # fmt: skip
            )
    for lines in periods.values():
        _add_what_a_bill_adds(lines, payer)
    return dict(periods)


def _usage(model_id, name, region, first_party, marketplace, tokens):
    prefix = usage_prefix(region)
    if name is None:  # the OpenAI-compatible endpoint: its usage type names the model id
        kind = first_party.split("-")[0]
        usage_type = f"{prefix}-{model_id}-mantle-{kind}-tokens-standard"
        return usage_type, "1K tokens", tokens / 1e3, "Amazon Bedrock", "AmazonBedrock"
    if model_id.startswith("anthropic."):  # sold through AWS Marketplace on Bedrock
        usage_type = f"{prefix}-MP:{prefix}_{marketplace}-Units"
        return (usage_type, "Units", tokens / 1e6, name + MARKETPLACE_EDITION,
                "AmazonBedrockFoundationModels")  # fmt: skip
    usage_type = f"{prefix}-{name.replace(' ', '')}-{first_party}"
    return usage_type, "1K tokens", tokens / 1e3, "Amazon Bedrock", "AmazonBedrock"


def _add_what_a_bill_adds(lines: list[CurLine], payer: str) -> None:
    """A 10 % discount on the period's largest line, a $5 credit, a tenth of one
    Marketplace output line billed at the priority tier (1.75x), and a model the price
    table does not name."""
    largest = max(lines, key=lambda line: line.unblended_cost)
    first = min(line.usage_start for line in lines)
    lines.append(_adjustment(largest, "Discount", -round(largest.unblended_cost * 0.1, 6)))
    lines.append(_adjustment(largest, "Credit", -5.0, at=first))
    output = next((x for x in lines if x.usage_type.endswith("_OutputTokenCount-Units")), None)
    if output is not None:
        lines.remove(output)
        standard = round(output.usage_amount * 0.9, 6)
        rate = Decimal(str(output.unblended_cost)) / Decimal(str(output.usage_amount))
        lines.append(_share(output, standard, float(rate * Decimal(str(standard)))))
        priority = round(output.usage_amount - standard, 6)
        lines.append(
            _share(
                output,
                priority,
                float(rate * Decimal("1.75") * Decimal(str(priority))),
                output.usage_type.replace(
                    "_OutputTokenCount-Units", "_output_tokens_priority-Units"
                ),
            )  # fmt: skip
        )
    newest = max(line.usage_start for line in lines)
    lines.append(
        CurLine(
            newest + timedelta(hours=1),
            payer,
            "AmazonBedrockFoundationModels",
            "USE1-MP:USE1_InputTokenCount-Units",
            2.0,
            "Units",
            6.0,
            product_name="Claude Next (Amazon Bedrock Edition)",
            payer_account_id=payer,
            iam_principal=f"arn:aws:iam::{payer}:role/search-assistant",
            tags={
                "user_team": "search",
                "user_application": "assistant",
                "user_cost-center": "cc-1001",
            },
        )  # fmt: skip
    )


def _adjustment(line: CurLine, kind: str, amount: float, at: datetime | None = None) -> CurLine:
    return CurLine(at or line.usage_start, line.account_id, line.product_code, line.usage_type,
                   0.0, line.pricing_unit, amount, line_item_type=kind,
                   product_name=line.product_name, region=line.region,
                   payer_account_id=line.payer_account_id, iam_principal=line.iam_principal,
                   tags=line.tags)  # fmt: skip


def _share(line: CurLine, amount: float, cost: float, usage_type: str | None = None) -> CurLine:
    return CurLine(line.usage_start, line.account_id, line.product_code,
                   usage_type or line.usage_type, amount, line.pricing_unit, cost,
                   product_name=line.product_name, region=line.region,
                   payer_account_id=line.payer_account_id, iam_principal=line.iam_principal,
                   tags=line.tags)  # fmt: skip


def print_reconciliation() -> None:
    with open_warehouse(warehouse_target(), read_only=True) as db:
        table = db.execute(
            """SELECT month, model_id, sum(cloudwatch_tokens)::BIGINT AS cloudwatch_tokens,
                sum(billed_tokens)::BIGINT AS billed_tokens,
                sum(estimated_usd)::DECIMAL(18,2) AS estimated_usd,
                sum(billed_net_usd)::DECIMAL(18,2) AS billed_net_usd,
                sum(cost_usd)::DECIMAL(18,2) AS cost_usd
            FROM bedrock_cost_vs_bill_monthly GROUP BY ALL ORDER BY month, cost_usd DESC"""
        ).df()
    click.echo(
        "\nThe estimate beside the bill, per month and model (view bedrock_cost_vs_bill_monthly;"
        " cost_usd: billed where billed, else estimated):"
    )
    click.echo(table.astype(object).where(table.notna(), "-").to_string(index=False))
