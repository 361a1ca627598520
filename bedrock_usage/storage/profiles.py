"""Application inference profiles in the warehouse: `bedrock_inference_profiles`, what
each profile a connection's usage names routes to and how it is tagged, as last read.
The cost views take a profile's model, provider and scope from here, so usage through a
profile is priced as the model behind it (and history too, once the profile is read)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ..frames import registered

PROFILES_TABLE = "bedrock_inference_profiles"
PROFILE_COLUMNS = (
    "connection_id", "account_id", "region", "profile_id", "profile_arn", "profile_name",
    "model_arns", "base_model_id", "model_provider", "inference_scope", "tags", "read_at",
)  # fmt: skip
PROFILE_COLUMN_DOCS = {
    "connection_id": "The connection whose sync read it.",
    "account_id": "The AWS account that owns it.",
    "region": "The region it lives in (a profile is regional).",
    "profile_id": "The application inference profile's 12-character id.",
    "profile_arn": "Its ARN; CloudWatch's ModelId is either this or the id.",
    "profile_name": "The name its owner gave it.",
    "model_arns": "The foundation-model ARNs it routes to (several regions: cross-region).",
    "base_model_id": "The model behind it, as bedrock_usage_daily.base_model_id.",
    "model_provider": "That model's provider.",
    "inference_scope": "in_region, a geography (us, eu, apac, ...) or global, from the "
    "regions of its model ARNs; the price scope its usage is charged at.",
    "tags": "Its tags, a JSON object (ListTagsForResource).",
    "read_at": "When a sync last read it (UTC).",
}


def store_profiles(
    db: duckdb.DuckDBPyConnection,
    connection_id: str,
    account_id: str,
    region: str,
    profiles: list[dict],
    read_at: datetime,
) -> None:
    """Replace what is known of these profiles (dicts with the columns above but the
    first three and read_at). Profiles not read this time are kept as last read. Run
    inside the sync's transaction."""
    if not profiles:
        return
    frame = pd.DataFrame(profiles).assign(
        connection_id=connection_id, account_id=account_id, region=region, read_at=read_at
    )
    name = registered(db, frame[list(PROFILE_COLUMNS)])
    db.execute(
        f"DELETE FROM {PROFILES_TABLE} WHERE connection_id = ? AND region = ? "
        f"AND profile_id IN (SELECT profile_id FROM {name})",
        [connection_id, region],
    )
    columns = ", ".join(PROFILE_COLUMNS)
    db.execute(f"INSERT INTO {PROFILES_TABLE} ({columns}) SELECT {columns} FROM {name}")
