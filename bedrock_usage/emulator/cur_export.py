"""A CUR 2.0 export (AWS Data Exports) written to the emulator's S3 as AWS lays it out:
`<prefix>/<export-name>/data/BILLING_PERIOD=YYYY-MM/<export-name>-00001.snappy.parquet`
with CUR 2.0's column names (the nested `product` and `resource_tags` maps), and
`<prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/<export-name>-Manifest.json`
listing the delivery's columns and data files. A new delivery of a period replaces its
files, as an export set to overwrite does."""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

# CUR 2.0's columns this emulator fills (a real export has about 125; the rest are left
# out of the file but named in the manifest, as a reader must not depend on them).
CUR2_TYPES = {
    "bill_billing_period_start_date": "TIMESTAMP",
    "bill_payer_account_id": "VARCHAR",
    "line_item_usage_account_id": "VARCHAR",
    "line_item_usage_start_date": "TIMESTAMP",
    "line_item_usage_end_date": "TIMESTAMP",
    "line_item_product_code": "VARCHAR",
    "line_item_usage_type": "VARCHAR",
    "line_item_operation": "VARCHAR",
    "line_item_line_item_type": "VARCHAR",
    "line_item_usage_amount": "DOUBLE",
    "line_item_unblended_cost": "DOUBLE",
    "line_item_net_unblended_cost": "DOUBLE",
    "line_item_iam_principal": "VARCHAR",
    "pricing_unit": "VARCHAR",
    "product": "MAP(VARCHAR, VARCHAR)",
    "resource_tags": "MAP(VARCHAR, VARCHAR)",
}


@dataclass(frozen=True)
class CurLine:
    """One line item of the export."""

    usage_start: datetime
    account_id: str
    product_code: str
    usage_type: str
    usage_amount: float
    pricing_unit: str
    unblended_cost: float
    net_unblended_cost: float | None = None  # None: the unblended cost
    line_item_type: str = "Usage"
    product_name: str = "Amazon Bedrock"
    region: str = "us-east-1"
    iam_principal: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    payer_account_id: str = ""  # "": the usage account


def write_cur_export(
    s3, bucket: str, prefix: str, export_name: str, period: str, lines: list[CurLine]
) -> str:
    """Deliver `lines` as the export's billing period `period` (YYYY-MM); returns the
    data file's S3 URI."""
    base = f"{prefix.strip('/')}/{export_name}"
    key = f"{base}/data/BILLING_PERIOD={period}/{export_name}-00001.snappy.parquet"
    frame = pd.DataFrame(
        [
            {
                "bill_billing_period_start_date": datetime.fromisoformat(f"{period}-01"),
                "bill_payer_account_id": line.payer_account_id or line.account_id,
                "line_item_usage_account_id": line.account_id,
                "line_item_usage_start_date": line.usage_start,
                "line_item_usage_end_date": line.usage_start,
                "line_item_product_code": line.product_code,
                "line_item_usage_type": line.usage_type,
                "line_item_operation": "InvokeModelInference",
                "line_item_line_item_type": line.line_item_type,
                "line_item_usage_amount": line.usage_amount,
                "line_item_unblended_cost": line.unblended_cost,
                "line_item_net_unblended_cost": line.unblended_cost
                if line.net_unblended_cost is None
                else line.net_unblended_cost,
                "line_item_iam_principal": line.iam_principal,
                "pricing_unit": line.pricing_unit,
                "product_keys": ["product_name", "region", "servicecode"],
                "product_values": [line.product_name, line.region, line.product_code],
                "tag_keys": list(line.tags),
                "tag_values": list(line.tags.values()),
            }
            for line in lines
        ]
    )
    columns = ", ".join(
        f"CAST({name} AS {type_}) AS {name}"
        for name, type_ in CUR2_TYPES.items()
        if name not in ("product", "resource_tags")
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part.parquet"
        with duckdb.connect() as db:
            db.register("cur_lines", frame)
            db.execute(
                f"""COPY (SELECT {columns},
                    map_from_entries(list_zip(product_keys, product_values))::MAP(VARCHAR, VARCHAR)
                        AS product,
                    map_from_entries(list_zip(tag_keys, tag_values))::MAP(VARCHAR, VARCHAR)
                        AS resource_tags
                FROM cur_lines) TO '{path}' (FORMAT parquet, COMPRESSION snappy)"""
            )
        s3.upload_file(str(path), bucket, key)
    uri = f"s3://{bucket}/{key}"
    manifest = {
        "executionId": str(uuid.uuid4()),
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:000000000000:export/{export_name}",
        "columns": [{"name": name, "type": type_} for name, type_ in CUR2_TYPES.items()],
        "dataFiles": [uri],
    }
    s3.put_object(
        Bucket=bucket,
        Key=f"{base}/metadata/BILLING_PERIOD={period}/{export_name}-Manifest.json",
        Body=json.dumps(manifest).encode(),
    )
    return uri
