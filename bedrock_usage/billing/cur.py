"""Bedrock's line items of a CUR 2.0 export (AWS Data Exports, Parquet) in S3.

AWS delivers an export to `s3://<bucket>/<prefix>/<export-name>/`: per billing period,
data files under `data/BILLING_PERIOD=YYYY-MM/` and a `Manifest.json` under
`metadata/BILLING_PERIOD=YYYY-MM/` whose `dataFiles` lists the full S3 URIs of that
delivery's files — AWS recommends reading the files from it, and so do we (a delivery
that keeps older executions' files beside the new ones is read right). A period's files
are rewritten until the month closes (and up to two weeks after), so a period is always
read, and replaced, whole.

Only `s3:ListBucket` on the export's prefix and `s3:GetObject` on its objects are used,
with a credential of the billing source's own (never a CloudWatch connection's key).

Each line item of the four Bedrock product codes is read into one row: its UTC day, payer
and usage account, region, usage type, the model (from the product name or the usage
type, as the Price List names it: `pricing/price_list.py`), token type, tier and scope,
the usage amount and its unit, tokens where the unit is a token count, unblended and net
unblended cost, line item type (Usage, Credit, Discount, Refund, ... kept apart), the IAM
principal and the line's tags. Rows are summed per those columns and day.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pandas as pd

from ..pricing.price_list import usage_type_reading

PRODUCT_CODES = (
    "AmazonBedrock",
    "AmazonBedrockFoundationModels",
    "AmazonBedrockService",
    "AmazonBedrockAgentCore",
)
# Tokens per unit of `pricing_unit` for token lines. "Units" (the Marketplace's) is read
# as a million tokens, as its price is (see pricing/price_list.py); an unknown unit gives
# no token count, and the line keeps its amount and unit.
TOKENS_PER_UNIT = {"tokens": 1, "1K tokens": 1_000, "1M tokens": 1_000_000, "Units": 1_000_000}
PERIOD = re.compile(r"BILLING_PERIOD=(\d{4}-\d{2})")
# The CUR 2.0 columns read (a fixed schema: an export missing one is not CUR 2.0).
COLUMNS = (
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_usage_start_date",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_line_item_type",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_iam_principal",
    "pricing_unit",
    "product",
    "resource_tags",
)


class BillingExportError(RuntimeError):
    """The export cannot be read as a CUR 2.0 export: says what and what to do."""


@dataclass(frozen=True)
class ExportLocation:
    bucket: str
    prefix: str  # "<prefix>/<export-name>", no slash at either end

    @classmethod
    def parse(cls, uri: str) -> ExportLocation:
        parts = urlparse(uri)
        prefix = parts.path.strip("/")
        if parts.scheme != "s3" or not parts.netloc or not prefix:
            raise BillingExportError(
                f"{uri!r} is not an export's location: give s3://bucket/prefix/export-name/ "
                "(the folder that holds the export's data/ and metadata/)."
            )
        return cls(parts.netloc, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/"


def billing_periods(s3, location: ExportLocation) -> dict[str, str]:
    """{billing period: the key of its newest Manifest.json}."""
    newest: dict[str, tuple[object, str]] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=f"{location.prefix}/metadata/"):
        for item in page.get("Contents", []):
            key = item["Key"]
            period = PERIOD.search(key)
            if period and key.endswith("Manifest.json"):
                seen = newest.get(period[1])
                if seen is None or item["LastModified"] > seen[0]:
                    newest[period[1]] = (item["LastModified"], key)
    return {period: key for period, (_, key) in sorted(newest.items())}


def read_period(s3, location: ExportLocation, period: str, manifest_key: str) -> pd.DataFrame:
    """The Bedrock line items of one billing period, summed per day and line (see the
    module's docstring): every data file its manifest lists."""
    manifest = json.loads(s3.get_object(Bucket=location.bucket, Key=manifest_key)["Body"].read())
    files = manifest.get("dataFiles")
    if not isinstance(files, list):
        raise BillingExportError(f"{manifest_key} has no 'dataFiles': is this a CUR 2.0 export?")
    named = {c.get("name") for c in manifest.get("columns", []) if isinstance(c, dict)}
    missing = [c for c in COLUMNS if named and c not in named]
    if missing:
        raise BillingExportError(
            f"The export's columns lack {', '.join(missing)}: create the export from the CUR 2.0 "
            "table with every column (AWS Data Exports, 'Standard data export')."
        )
    with tempfile.TemporaryDirectory(prefix="bedrock-usage-cur-") as folder:
        local = []
        for number, uri in enumerate(files):
            parts = urlparse(uri)
            if not uri.endswith(".parquet"):
                raise BillingExportError(f"{uri} is not Parquet: export CUR 2.0 as Parquet.")
            path = Path(folder) / f"{number}.parquet"
            s3.download_file(parts.netloc, parts.path.lstrip("/"), str(path))
            local.append(str(path))
        if not local:
            return _empty()
        with duckdb.connect() as db:
            lines = _bedrock_lines(db, local)
    return _read_usage_types(lines, period)


def _bedrock_lines(db: duckdb.DuckDBPyConnection, files: list[str]) -> pd.DataFrame:
    codes = ", ".join(f"'{code}'" for code in PRODUCT_CODES)
    try:
        return db.execute(
            f"""
            SELECT
                CAST(line_item_usage_start_date AS DATE) AS usage_date,
                bill_payer_account_id AS payer_account_id,
                line_item_usage_account_id AS account_id,
                coalesce(product['region'], '') AS region,
                line_item_product_code AS product_code,
                coalesce(product['product_name'], '') AS product_name,
                line_item_usage_type AS usage_type,
                line_item_line_item_type AS line_item_type,
                coalesce(pricing_unit, '') AS pricing_unit,
                coalesce(line_item_iam_principal, '') AS iam_principal,
                coalesce(CAST(to_json(resource_tags) AS VARCHAR), '{{}}') AS tags,
                sum(line_item_usage_amount) AS usage_amount,
                sum(CAST(line_item_unblended_cost AS DECIMAL(24, 10))) AS unblended_cost_usd,
                sum(CAST(line_item_net_unblended_cost AS DECIMAL(24, 10)))
                    AS net_unblended_cost_usd
            FROM read_parquet($files, union_by_name = true)
            WHERE line_item_product_code IN ({codes})
            GROUP BY ALL
            """,
            {"files": files},
        ).df()
    except duckdb.Error as error:
        raise BillingExportError(
            f"The export's files could not be read as CUR 2.0: {str(error).splitlines()[0]}"
        ) from None


def _read_usage_types(lines: pd.DataFrame, period: str) -> pd.DataFrame:
    readings = [
        usage_type_reading(usage_type, product_name)
        for usage_type, product_name in zip(lines["usage_type"], lines["product_name"], strict=True)
    ]
    lines["model_id"] = [r.model_id for r in readings]
    lines["token_type"] = [r.token_type for r in readings]
    lines["service_tier"] = [r.tier or "standard" for r in readings]
    lines["price_scope"] = [r.scope for r in readings]
    per_unit = lines["pricing_unit"].map(TOKENS_PER_UNIT)
    tokens = (lines["usage_amount"] * per_unit).round()
    lines["tokens"] = tokens.where(lines["token_type"].notna() & per_unit.notna()).astype("Int64")
    lines["billing_period"] = period
    return lines.drop(columns=["product_name"])


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "usage_date", "payer_account_id", "account_id", "region", "product_code",
            "usage_type", "line_item_type", "pricing_unit", "iam_principal", "tags",
            "usage_amount", "unblended_cost_usd", "net_unblended_cost_usd", "model_id",
            "token_type", "service_tier", "price_scope", "tokens", "billing_period",
        ]
    )  # fmt: skip
