"""Build the shipped snapshot (bedrock_prices.csv) from genai-prices' AWS Bedrock data.

genai-prices (pydantic/genai-prices on the package index) keeps Bedrock's list prices
by model id with their start dates: `regional.` ids are in-region (and geographic
profile) prices, `global.` ids the global profile's, plain ids in-region. Long-context
tiers are not applied: CloudWatch's daily sums cannot tell how long each prompt was, so
the base rate stands (docs/analysts.md says so). Run it after upgrading genai-prices:

    python -m bedrock_usage.pricing.genai_snapshot > bedrock_usage/pricing/bedrock_prices.csv
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version

from .prices import ALL_REGIONS, BEDROCK_GA, PriceRow, merge_prices, write_csv

FIELDS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
}


def genai_prices_rows(read_at: datetime | None = None) -> list[PriceRow]:
    """Every per-token price of genai-prices' `aws` provider, as price rows."""
    from genai_prices import data  # a dev-time dependency: only this builder needs it

    source = f"genai-prices {version('genai-prices')}"
    read_at = read_at or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    provider = next(p for p in data.providers if p.id == "aws")
    rows: list[PriceRow] = []
    for model in provider.models:
        scope, base = _scope(model.id)
        conditional = model.prices if isinstance(model.prices, list) else None
        for start, prices in (
            [(_start(c), c.prices) for c in conditional] if conditional else [(None, model.prices)]
        ):
            for token_type, field in FIELDS.items():
                value = _base_rate(getattr(prices, field, None))
                if value is None:
                    continue
                rows.append(
                    PriceRow(
                        base, scope, ALL_REGIONS, token_type, value, start or BEDROCK_GA,
                        source, read_at,
                    )
                )  # fmt: skip
    return merge_prices([], rows)


def _scope(model_id: str) -> tuple[str, str]:
    prefix, _, rest = model_id.partition(".")
    if prefix == "global":
        return "global", rest
    if prefix == "regional":
        return "in_region", rest
    return "in_region", model_id


def _start(conditional):
    return getattr(conditional.constraint, "start_date", None) if conditional.constraint else None


def _base_rate(value) -> Decimal | None:
    """A flat price, or the base of a tiered one."""
    if value is None:
        return None
    return Decimal(value) if isinstance(value, Decimal | int | str) else Decimal(value.base)


if __name__ == "__main__":
    sys.stdout.write(write_csv(genai_prices_rows()))
