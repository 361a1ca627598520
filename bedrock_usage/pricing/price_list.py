"""AWS's public Price List offer files for Bedrock: per-region on-demand token prices.

The bulk files need no credentials and nothing from the read-only policy (the Query API
would need `pricing:GetProducts`). For each region the region index names a file whose
`products` carry attributes (`regionCode`, `model` as a display name, `feature`,
`inferenceType`, `usagetype`) and whose `terms.OnDemand` carry the price per unit
("1K tokens" or "1M tokens") with its `effectiveDate`. Only on-demand token prices are
read: batch, provisioned, service tiers (flex, priority), latency-optimized and
long-context rows are not, as CloudWatch cannot tell those tokens apart; they are counted
by kind in `not_read`, so a refresh says what it left out. A one-hour cache write is the
token type `cache_write_1h`, apart from the five-minute `cache_write` the estimate uses.
Rows of the OpenAI-compatible (mantle) endpoint carry a `service_tier` and no `feature`;
their usage type names the model id (`USE1-openai.gpt-oss-120b-mantle-input-tokens-standard`),
and the standard tier is read as that model id's in-region price.

Offer files name models by display name ("Claude 3 Haiku"), not by model id; the
names this package knows are in price_list_names.json beside this file. A name it does
not know is reported by `refresh`, never guessed.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources

from .prices import PriceRow

OFFER_CODE = "AmazonBedrock"
REGION_INDEX = "/offers/v1.0/aws/{offer}/current/region_index.json"
SOURCE = "aws-price-list:AmazonBedrock"
UNITS_PER_MILLION = {"1K tokens": Decimal(1000), "1M tokens": Decimal(1)}
# Usage-type words of prices CloudWatch's token counts cannot be matched to, by kind.
NOT_READ_USAGE = {
    "batch": "batch",
    "provisioned": "provisioned throughput",
    "flex": "flex tier",
    "priority": "priority tier",
    "latency-optimized": "latency-optimized",
    "long-context": "long context",
    "long-ctx": "long context",
    "lctx": "long context",
}
MANTLE_USAGE = re.compile(
    r"^[A-Z0-9]+-(?P<model>.+)-mantle-(?P<kind>input|output)-tokens(?:-(?P<tier>[a-z-]+))?$"
)


class PriceListError(RuntimeError):
    """The offer files could not be read or were not in the expected format."""


@dataclass
class OfferPrices:
    rows: list[PriceRow] = field(default_factory=list)
    unknown_names: dict[str, set[str]] = field(default_factory=dict)  # name -> regions
    regions_read: list[str] = field(default_factory=list)
    regions_not_listed: list[str] = field(default_factory=list)
    publication_dates: dict[str, str] = field(default_factory=dict)
    not_read: dict[str, int] = field(default_factory=dict)  # kind -> rows left out


@cache
def known_names() -> dict[str, str]:
    """Offer-file display name -> base model id."""
    text = resources.files("bedrock_usage.pricing").joinpath("price_list_names.json").read_text()
    return json.loads(text)["names"]


def fetch_offer_prices(regions: list[str], base_url: str, timeout: float = 60) -> OfferPrices:
    """Read the AmazonBedrock offer file of each region in `regions` (all regions the
    index lists when empty)."""
    index = _get_json(base_url + REGION_INDEX.format(offer=OFFER_CODE), timeout)
    listed = index.get("regions")
    if not isinstance(listed, dict):
        raise PriceListError(f"{base_url}: the region index has no 'regions'.")
    wanted = regions or sorted(listed)
    result = OfferPrices()
    read_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    for region in wanted:
        if region not in listed:
            result.regions_not_listed.append(region)  # not sold there, or misspelt
            continue
        offer = _get_json(base_url + listed[region]["currentVersionUrl"], timeout)
        result.publication_dates[region] = str(offer.get("publicationDate", ""))
        parse_offer(offer, read_at, result)
        result.regions_read.append(region)
    return result


def parse_offer(offer: dict, read_at: datetime, into: OfferPrices | None = None) -> OfferPrices:
    """The on-demand token prices of one offer file."""
    into = into or OfferPrices()
    products = offer.get("products")
    on_demand = offer.get("terms", {}).get("OnDemand")
    if not isinstance(products, dict) or not isinstance(on_demand, dict):
        raise PriceListError("The offer file has no 'products' or no 'terms.OnDemand'.")
    names = known_names()
    for sku, product in products.items():
        attributes = product.get("attributes", {})
        usage_type = attributes.get("usagetype", "")
        region = attributes.get("regionCode", "")
        mantle = MANTLE_USAGE.match(usage_type)
        if mantle:
            tier = mantle["tier"] or "standard"
            if tier != "standard":
                _count(into, f"mantle {tier} tier")
                continue
            model_id, token_type, scope = mantle["model"], mantle["kind"], "in_region"
        else:
            token_type = _token_type(attributes)
            if token_type is None:
                continue  # images, seconds of video, search units: not tokens
            kind = _not_read_kind(usage_type)
            if kind is not None:
                _count(into, kind)
                continue
            name = attributes.get("model", "")
            if name not in names:
                into.unknown_names.setdefault(name, set()).add(region)
                continue
            model_id, scope = names[name], _scope(usage_type)
        for price, effective in _prices(on_demand.get(sku, {})):
            into.rows.append(
                PriceRow(model_id, scope, region, token_type, price, effective, SOURCE, read_at)
            )
    return into


def _count(into: OfferPrices, kind: str) -> None:
    into.not_read[kind] = into.not_read.get(kind, 0) + 1


def _token_type(attributes: dict) -> str | None:
    if attributes.get("feature") != "On-demand Inference":
        return None
    kind = attributes.get("inferenceType", "").lower()
    if "cache read" in kind:
        return "cache_read"
    if "cache write" in kind:
        one_hour = "1-hour" in attributes.get("usagetype", "").lower() or "1h" in kind
        return "cache_write_1h" if one_hour else "cache_write"
    if kind.startswith("input token"):
        return "input"
    if kind.startswith("output token"):
        return "output"
    return None  # images, seconds of video, search units: not tokens


def _not_read_kind(usage_type: str) -> str | None:
    lowered = usage_type.lower()
    return next((kind for word, kind in NOT_READ_USAGE.items() if word in lowered), None)


def _scope(usage_type: str) -> str:
    lowered = usage_type.lower()
    if "cross-region-global" in lowered:
        return "global"
    if "cross-region-geo" in lowered:
        return "geo"
    return "in_region"


def _prices(terms: dict):
    """(USD per million tokens, effective date) of each single-tier on-demand term."""
    for term in terms.values():
        dimensions = list(term.get("priceDimensions", {}).values())
        if len(dimensions) != 1:
            continue  # tiered by volume: not a plain list price
        dimension = dimensions[0]
        per_million = UNITS_PER_MILLION.get(dimension.get("unit", ""))
        if per_million is None:
            continue
        try:
            price = Decimal(dimension["pricePerUnit"]["USD"]) * per_million
            effective = date.fromisoformat(term["effectiveDate"][:10])
        except (KeyError, InvalidOperation, ValueError):
            continue
        yield price.normalize() if price else Decimal(0), effective


def _get_json(url: str, timeout: float) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": "bedrock-usage"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked by settings
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise PriceListError(f"{url} answered HTTP {error.code}.") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PriceListError(f"{url} could not be reached: {reason}.") from None
    except json.JSONDecodeError:
        raise PriceListError(f"{url} did not return JSON.") from None
