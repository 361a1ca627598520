"""Where bedrock_usage keeps its files: everything under BEDROCK_USAGE_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """BEDROCK_USAGE_HOME, by default ./.bedrock_usage."""
    return Path(os.environ.get("BEDROCK_USAGE_HOME", ".bedrock_usage")).resolve()


def warehouse_path() -> Path:
    """The analysts' DuckDB file: BEDROCK_USAGE_WAREHOUSE, or warehouse.duckdb in home."""
    configured = os.environ.get("BEDROCK_USAGE_WAREHOUSE")
    return Path(configured).resolve() if configured else home() / "warehouse.duckdb"
