"""The bill in the warehouse: `bedrock_billed_daily`, one billing source's billing period
replaced whole (AWS rewrites a period's files until the month closes)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ..frames import registered

BILLED_TABLE = "bedrock_billed_daily"
BILLED_COLUMNS = (
    "billing_source", "billing_period", "usage_date", "payer_account_id", "account_id",
    "region", "product_code", "usage_type", "model_id", "token_type", "service_tier",
    "price_scope", "line_item_type", "usage_amount", "pricing_unit", "tokens",
    "unblended_cost_usd", "net_unblended_cost_usd", "iam_principal", "tags", "read_at",
)  # fmt: skip


def replace_billing_period(
    db: duckdb.DuckDBPyConnection,
    billing_source: str,
    period: str,
    lines: pd.DataFrame,
    read_at: datetime,
) -> int:
    """Replace `billing_source`'s rows of `period` with `lines` (billing/cur.py's frame).
    Run inside `transaction`. Returns the rows written."""
    db.execute(
        f"DELETE FROM {BILLED_TABLE} WHERE billing_source = ? AND billing_period = ?",
        [billing_source, period],
    )
    if lines.empty:
        return 0
    frame = lines.assign(billing_source=billing_source, billing_period=period, read_at=read_at)
    name = registered(db, frame[list(BILLED_COLUMNS)])
    columns = ", ".join(BILLED_COLUMNS)
    db.execute(f"INSERT INTO {BILLED_TABLE} ({columns}) SELECT {columns} FROM {name}")
    return len(frame)
