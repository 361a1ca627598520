"""Refresh `bedrock_prices` from AWS's Price List, checked against the shipped snapshot.

The offer files are the authority (per region, what AWS bills); the shipped snapshot
(genai-prices) is the cross-check: a price that differs between them is reported, so a
wrong name mapping or a price change is seen, not absorbed in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .connections.store import StateStore
from .pricing.price_list import PriceListError, fetch_offer_prices
from .pricing.prices import shipped_prices
from .storage.costs import store_prices
from .storage.warehouse import WarehouseOpener, publish_snapshot, transaction


@dataclass
class PriceRefresh:
    rows_read: int
    rows_changed: int
    regions_read: list[str]
    regions_not_listed: list[str]
    unknown_names: dict[str, list[str]]
    tiers: dict[str, int]  # rows stored as a tier of their own, by tier (batch, ...)
    offers_not_published: list[str]
    # (model_id, region, token_type, AWS price, shipped price) per million tokens
    differences: list[tuple[str, str, str, Decimal, Decimal]] = field(default_factory=list)


def refresh_prices(
    open_db: WarehouseOpener, location: Path, regions: list[str], base_url: str
) -> PriceRefresh:
    """Read the offer files of `regions`, merge their prices into the warehouse in one
    transaction (keeping history), and refresh the analysts' copy. Nothing is written
    when the files cannot be read, and the error says so."""
    try:
        offer = fetch_offer_prices(regions, base_url)
    except PriceListError as error:
        raise PriceListError(
            f"{error} Nothing was changed; the shipped snapshot still applies, with any "
            "prices refreshed before. Check the network, or set BEDROCK_USAGE_PRICE_LIST_URL "
            "to a mirror."
        ) from None
    with open_db() as db:
        with transaction(db):
            changed = store_prices(db, offer.rows)
        publish_snapshot(db, location, {})
    return PriceRefresh(
        rows_read=len(offer.rows),
        rows_changed=changed,
        regions_read=offer.regions_read,
        regions_not_listed=offer.regions_not_listed,
        unknown_names={name: sorted(r) for name, r in sorted(offer.unknown_names.items())},
        tiers=dict(sorted(offer.tiers.items())),
        offers_not_published=offer.offers_not_published,
        differences=cross_check(offer.rows),
    )


def connected_regions(store: StateStore) -> list[str]:
    """Every region of every connection: what a refresh prices by default."""
    return sorted({region for connection in store.all() for region in connection.regions})


def cross_check(rows) -> list[tuple[str, str, str, Decimal, Decimal]]:
    """AWS in-region prices in force now that differ from the shipped snapshot's."""
    shipped = {
        (r.model_id, r.token_type): r.usd_per_million_tokens
        for r in shipped_prices()
        if r.price_scope == "in_region" and r.effective_to is None
    }
    differences = []
    for row in rows:
        expected = shipped.get((row.model_id, row.token_type))
        if row.price_scope == "in_region" and expected is not None:
            if expected != row.usd_per_million_tokens:
                differences.append(
                    (row.model_id, row.region, row.token_type, row.usd_per_million_tokens, expected)
                )
    return sorted(set(differences))
