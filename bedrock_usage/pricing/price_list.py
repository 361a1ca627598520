"""AWS's public Price List offer files for Bedrock: per-region on-demand token prices.

The bulk files need no credentials and nothing from the read-only policy (the Query API
would need `pricing:GetProducts`). Bedrock's prices are spread over three offers, each
with its own region index and per-region files: `AmazonBedrock` (Amazon's and most
open-weight models, and the OpenAI-compatible "mantle" endpoint), and
`AmazonBedrockFoundationModels` and `AmazonBedrockService`, where models sold through AWS
Marketplace on Bedrock (Anthropic's Claude 4.x among them) are priced. An offer not
published at all (HTTP 404) is noted, not an error. Each file's `products` carry
attributes and its `terms.OnDemand` the price per unit with its `effectiveDate`.

Three shapes of row are read:
- `AmazonBedrock` rows: `model` (a display name), `feature: On-demand Inference`,
  `inferenceType` (input, output, cache read, cache write), `usagetype` (its
  `-cross-region-global` / `-cross-region-geo` suffix gives the scope), priced per
  "1K tokens" or "1M tokens".
- mantle rows: no `feature`, a `service_tier`, and a usage type that names the model id
  (`USE1-openai.gpt-oss-120b-mantle-input-tokens-standard`).
- Marketplace rows: `servicename` "Claude Haiku 4.5 (Amazon Bedrock Edition)" and a usage
  type such as `USE1-MP:USE1_InputTokenCount-Units`, `..._InputTokenCount_Global-Units`
  or the newer `..._input_tokens_global_standard-Units`, priced per "Units". A Unit is
  taken as a million tokens: AWS documents no unit, but several independent parsers read
  it so, and it is the only reading that gives the model maker's own list prices
  (Haiku 4.5 global input $1.00, Opus 4.1 input $15.00).

Rows of a tier CloudWatch's token counts cannot tell apart from standard usage — batch,
flex, priority, latency-optimized, long context, provisioned or reserved — are stored as
token types of their own (`output:batch`, `input:long_context`, ...) and counted by kind
in `tiers`: the estimate prices CloudWatch's tokens at the standard rate only, and never
mixes a tier's price into it; the bill (CUR 2.0) tells the tiers apart. A one-hour cache
write is `cache_write_1h`, apart from the five-minute `cache_write`.

Offer files name models by display name ("Claude 3 Haiku"), not by model id; the
names this package knows are in price_list_names.json beside this file. A row whose name
it does not know, or whose usage type it cannot read, is reported by `refresh`, never
guessed.
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
OFFER_CODES = (OFFER_CODE, "AmazonBedrockFoundationModels", "AmazonBedrockService")
REGION_INDEX = "/offers/v1.0/aws/{offer}/current/region_index.json"
SOURCE = "aws-price-list:{offer}"
UNITS_PER_MILLION = {"1K tokens": Decimal(1000), "1M tokens": Decimal(1)}
MARKETPLACE_UNIT = "Units"  # a million tokens (see above)
# Words of a usage type (lower case, without - and _) that name a tier, and its key.
TIER_WORDS = (
    ("longcontext", "long_context"),
    ("longctx", "long_context"),
    ("lctx", "long_context"),
    ("batch", "batch"),
    ("flex", "flex"),
    ("priority", "priority"),
    ("latencyoptimized", "latency_optimized"),
    ("provisioned", "provisioned"),
    ("reserved", "reserved"),
)
MANTLE_USAGE = re.compile(
    r"^[A-Z0-9]+-(?P<model>.+)-mantle-(?P<kind>input|output)-tokens(?:-(?P<tier>[a-z-]+))?$"
)
MARKETPLACE_USAGE = re.compile(r"-MP:[A-Z0-9]+_(?P<body>.+)-Units$")
MARKETPLACE_EDITION = " (Amazon Bedrock Edition)"


class PriceListError(RuntimeError):
    """The offer files could not be read or were not in the expected format."""


class _NotPublished(Exception):
    """An offer with no region index: AWS does not publish it (here)."""


@dataclass
class OfferPrices:
    rows: list[PriceRow] = field(default_factory=list)
    unknown_names: dict[str, set[str]] = field(default_factory=dict)  # name -> regions
    regions_read: list[str] = field(default_factory=list)
    regions_not_listed: list[str] = field(default_factory=list)
    publication_dates: dict[str, str] = field(default_factory=dict)  # "offer/region" -> date
    tiers: dict[str, int] = field(default_factory=dict)  # tier -> rows stored apart
    offers_not_published: list[str] = field(default_factory=list)


@cache
def known_names() -> dict[str, str]:
    """Offer-file display name -> base model id."""
    text = resources.files("bedrock_usage.pricing").joinpath("price_list_names.json").read_text()
    return json.loads(text)["names"]


def fetch_offer_prices(regions: list[str], base_url: str, timeout: float = 60) -> OfferPrices:
    """Read every Bedrock offer's file for each region in `regions` (all regions an
    index lists when empty)."""
    result = OfferPrices()
    read_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    listed_anywhere: set[str] = set()
    for offer_code in OFFER_CODES:
        try:
            index = _get_json(base_url + REGION_INDEX.format(offer=offer_code), timeout)
        except _NotPublished:
            result.offers_not_published.append(offer_code)
            continue
        listed = index.get("regions")
        if not isinstance(listed, dict):
            raise PriceListError(f"{base_url}: {offer_code}'s region index has no 'regions'.")
        listed_anywhere |= set(listed)
        for region in regions or sorted(listed):
            if region not in listed:
                continue  # not sold there through this offer
            offer = _get_json(base_url + listed[region]["currentVersionUrl"], timeout)
            result.publication_dates[f"{offer_code}/{region}"] = str(
                offer.get("publicationDate", "")
            )
            parse_offer(offer, read_at, result, offer_code)
    if len(result.offers_not_published) == len(OFFER_CODES):
        raise PriceListError(f"{base_url} publishes none of Bedrock's offers {OFFER_CODES}.")
    wanted = regions or sorted(listed_anywhere)
    result.regions_read = [r for r in wanted if r in listed_anywhere]
    result.regions_not_listed = [r for r in wanted if r not in listed_anywhere]
    return result


def parse_offer(
    offer: dict, read_at: datetime, into: OfferPrices | None = None, offer_code: str = OFFER_CODE
) -> OfferPrices:
    """The on-demand token prices of one offer file."""
    into = into or OfferPrices()
    products = offer.get("products")
    on_demand = offer.get("terms", {}).get("OnDemand")
    if not isinstance(products, dict) or not isinstance(on_demand, dict):
        raise PriceListError("The offer file has no 'products' or no 'terms.OnDemand'.")
    source = SOURCE.format(offer=offer_code)
    for sku, product in products.items():
        attributes = product.get("attributes", {})
        region = attributes.get("regionCode", "")
        read = _read_row(attributes)
        if read is None:
            continue  # images, seconds of video, search units, guardrails: not tokens
        if isinstance(read, _Unknown):
            into.unknown_names.setdefault(read.name, set()).add(region)
            continue
        model_id, scope, token_type, tier, per_unit = read
        if tier is not None:
            _count(into, tier)
            token_type = f"{token_type}:{tier}"
        for price, effective in _prices(on_demand.get(sku, {}), per_unit):
            into.rows.append(
                PriceRow(model_id, scope, region, token_type, price, effective, source, read_at)
            )
    return into


@dataclass(frozen=True)
class _Unknown:
    name: str


def _read_row(attributes: dict):
    """(model id, scope, token type, tier or None, units per million by unit name) of
    a token price row; None for a row that prices no tokens; _Unknown for a token row
    whose model (or usage type) this version cannot read."""
    usage_type = attributes.get("usagetype", "")
    mantle = MANTLE_USAGE.match(usage_type)
    if mantle:
        tier = mantle["tier"] or "standard"
        return (
            mantle["model"], "in_region", mantle["kind"],
            None if tier == "standard" else f"mantle_{tier.replace('-', '_')}",
            UNITS_PER_MILLION,
        )  # fmt: skip
    marketplace = MARKETPLACE_USAGE.search(usage_type)
    if marketplace:
        return _read_marketplace_row(attributes, marketplace["body"])
    token_type = _token_type(attributes)
    if token_type is None:
        return None
    name = attributes.get("model", "")
    model_id = known_names().get(name)
    if model_id is None:
        return _Unknown(name)
    tier = _tier(f"{usage_type} {attributes.get('feature', '')}")
    return model_id, _scope(usage_type), token_type, tier, UNITS_PER_MILLION


def _read_marketplace_row(attributes: dict, body: str):
    name = attributes.get("servicename", "").removesuffix(MARKETPLACE_EDITION)
    token_type = _marketplace_token(body)
    if token_type is None:
        if "token" in body.lower():
            return _Unknown(f"{name} ({attributes.get('usagetype', body)})")
        return None  # images, requests, search units: not tokens
    model_id = known_names().get(name)
    if model_id is None:
        return _Unknown(name)
    return model_id, _body_scope(body), token_type, _tier(body), {MARKETPLACE_UNIT: Decimal(1)}


def _count(into: OfferPrices, tier: str) -> None:
    into.tiers[tier] = into.tiers.get(tier, 0) + 1


def _token_type(attributes: dict) -> str | None:
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


def _tier(usage_type: str) -> str | None:
    words = re.sub(r"[-_]", "", usage_type.lower())
    return next((tier for word, tier in TIER_WORDS if word in words), None)


def _scope(usage_type: str) -> str:
    lowered = usage_type.lower()
    if "cross-region-global" in lowered:
        return "global"
    if "cross-region-geo" in lowered:
        return "geo"
    return "in_region"


def _prices(terms: dict, units_per_million: dict[str, Decimal]):
    """(USD per million tokens, effective date) of each single-tier on-demand term whose
    unit is one of `units_per_million`."""
    for term in terms.values():
        dimensions = list(term.get("priceDimensions", {}).values())
        if len(dimensions) != 1:
            continue  # tiered by volume: not a plain list price
        dimension = dimensions[0]
        per_million = units_per_million.get(dimension.get("unit", ""))
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
        if error.code == 404 and url.endswith("region_index.json"):
            raise _NotPublished(url) from None
        raise PriceListError(f"{url} answered HTTP {error.code}.") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PriceListError(f"{url} could not be reached: {reason}.") from None
    except json.JSONDecodeError:
        raise PriceListError(f"{url} did not return JSON.") from None


@dataclass(frozen=True)
class UsageTypeReading:
    """What a usage type (a Price List row's or a bill's line item's) says: the model id
    (None when its name is not known), token type (None for a line that counts no
    tokens), tier (None: standard) and price scope."""

    model_id: str | None
    token_type: str | None
    tier: str | None
    scope: str


FIRST_PARTY_USAGE = re.compile(
    r"^[A-Z0-9]+-(?P<key>.+?)-(?P<token>input-tokens|output-tokens|"
    r"cache-read-input-token-count|cache-write-input-token-count)(?P<rest>.*)$"
)
FIRST_PARTY_TOKENS = {
    "input-tokens": "input",
    "output-tokens": "output",
    "cache-read-input-token-count": "cache_read",
    "cache-write-input-token-count": "cache_write",
}


def usage_type_reading(usage_type: str, product_name: str = "") -> UsageTypeReading:
    """Read a usage type as the bill writes it: AmazonBedrock's
    (`USE1-Claude3Haiku-input-tokens-cross-region-global`, the model named in it as the
    Price List names it, without spaces), the Marketplace's
    (`USE1-MP:USE1_OutputTokenCount_Global-Units`, the model named by `product_name`) and
    the mantle endpoint's (`USE1-openai.gpt-oss-120b-mantle-input-tokens-priority`)."""
    mantle = MANTLE_USAGE.match(usage_type)
    if mantle:
        tier = mantle["tier"] or "standard"
        return UsageTypeReading(
            mantle["model"],
            mantle["kind"],
            None if tier == "standard" else f"mantle_{tier.replace('-', '_')}",
            "in_region",
        )
    marketplace = MARKETPLACE_USAGE.search(usage_type)
    if marketplace:
        body = marketplace["body"]
        name = product_name.removesuffix(MARKETPLACE_EDITION)
        return UsageTypeReading(
            known_names().get(name), _marketplace_token(body), _tier(body), _body_scope(body)
        )
    first_party = FIRST_PARTY_USAGE.match(usage_type)
    if not first_party:
        return UsageTypeReading(None, None, None, "in_region")
    token_type = FIRST_PARTY_TOKENS[first_party["token"]]
    rest = first_party["rest"].lower()
    if token_type == "cache_write" and re.search(r"1-?h(our)?", rest):
        token_type = "cache_write_1h"
    segments = [s for s in first_party["key"].split("-") if _tier(s) is None]
    model_id = _compact_names().get("".join(segments))
    return UsageTypeReading(model_id, token_type, _tier(usage_type), _scope(usage_type))


@cache
def _compact_names() -> dict[str, str]:
    return {name.replace(" ", ""): model_id for name, model_id in known_names().items()}


def _marketplace_token(body: str) -> str | None:
    words = re.sub(r"[-_]", "", body.lower())
    if "cacheread" in words:
        return "cache_read"
    if "cachewrite" in words:
        return "cache_write_1h" if re.search(r"1h(our)?", words) else "cache_write"
    if "input" in words:
        return "input"
    if "output" in words or "response" in words:
        return "output"
    return None


def _body_scope(body: str) -> str:
    return "global" if "global" in body.lower() else "in_region"
