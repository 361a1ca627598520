"""A price row, and the dated snapshot of prices that ships with the package.

Prices are USD per million tokens, as `Decimal` from the file to DuckDB's DECIMAL: a
float would turn 0.035 into 0.034999999999999996. A row applies to one base model id
(the foundation model behind an inference profile), one price scope, one region ('*'
where the source does not differ by region) and one token type, from `effective_from`
until the day before `effective_to` (open when None).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources

# A price's token_type: input, output, cache_read or cache_write. Its price_scope:
# in_region, the model called in the region itself; geo, a geographic cross-region
# profile (us., eu., apac., ...), priced as in-region unless a source says otherwise;
# global, a global. profile, which AWS prices on its own.
ALL_REGIONS = "*"
# No Bedrock usage can predate general availability (2023-09-28): a price whose start
# the source does not give applies from then.
BEDROCK_GA = date(2023, 9, 28)
SNAPSHOT_FILE = "bedrock_prices.csv"
SNAPSHOT_COLUMNS = (
    "model_id",
    "price_scope",
    "region",
    "token_type",
    "usd_per_million_tokens",
    "effective_from",
    "effective_to",
    "source",
    "read_at",
)


@dataclass(frozen=True)
class PriceRow:
    model_id: str
    price_scope: str
    region: str
    token_type: str
    usd_per_million_tokens: Decimal
    effective_from: date
    source: str
    read_at: datetime
    effective_to: date | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model_id, self.price_scope, self.region, self.token_type)

    def as_record(self) -> tuple:
        return (
            self.model_id,
            self.price_scope,
            self.region,
            self.token_type,
            self.usd_per_million_tokens,
            self.effective_from,
            self.effective_to,
            self.source,
            self.read_at,
        )


@cache
def shipped_prices() -> tuple[PriceRow, ...]:
    """The snapshot in the package (bedrock_prices.csv): what works offline. Read once
    per process: every write to the warehouse checks that it is loaded."""
    text = resources.files("bedrock_usage.pricing").joinpath(SNAPSHOT_FILE).read_text()
    return tuple(read_csv(text))


def read_csv(text: str) -> list[PriceRow]:
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        rows.append(
            PriceRow(
                model_id=record["model_id"],
                price_scope=record["price_scope"],
                region=record["region"],
                token_type=record["token_type"],
                usd_per_million_tokens=Decimal(record["usd_per_million_tokens"]),
                effective_from=date.fromisoformat(record["effective_from"]),
                effective_to=date.fromisoformat(record["effective_to"])
                if record["effective_to"]
                else None,
                source=record["source"],
                read_at=datetime.fromisoformat(record["read_at"]),
            )
        )
    return rows


def write_csv(rows: list[PriceRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SNAPSHOT_COLUMNS)
    for row in sorted(rows, key=lambda r: (*r.key, r.effective_from)):
        record = list(row.as_record())
        record[4] = format(row.usd_per_million_tokens, "f")
        record[5] = row.effective_from.isoformat()
        record[6] = row.effective_to.isoformat() if row.effective_to else ""
        record[8] = row.read_at.isoformat()
        writer.writerow(record)
    return out.getvalue()


def merge_prices(existing: list[PriceRow], incoming: list[PriceRow]) -> list[PriceRow]:
    """Rows of one source after a new reading, keeping history: a price that changed
    closes the row in force the day the new one starts; an unchanged price only
    refreshes `read_at`; a reading for a start date already stored replaces it. Each
    key's rows are then chained, so each ends where the next begins."""
    by_key: dict[tuple, dict[date, PriceRow]] = {}
    for row in existing:
        by_key.setdefault(row.key, {})[row.effective_from] = row
    for row in sorted(incoming, key=lambda r: r.effective_from):
        history = by_key.setdefault(row.key, {})
        earlier = [d for d in history if d < row.effective_from]
        current = history[max(earlier)] if earlier else None
        if row.effective_from in history or current is None:
            history[row.effective_from] = row
        elif current.usd_per_million_tokens == row.usd_per_million_tokens and not [
            d for d in history if d > row.effective_from
        ]:
            history[current.effective_from] = replace(current, read_at=row.read_at)
        else:
            history[row.effective_from] = row
    merged = []
    for history in by_key.values():
        starts = sorted(history)
        for start, following in zip(starts, [*starts[1:], None], strict=True):
            merged.append(replace(history[start], effective_to=following))
    return merged
