"""AWS's Price List for the demo: Bedrock's offer files in AWS's layout, served over
HTTP from the prices shipped with the package, so `make demo` refreshes `bedrock_prices`
the way a deployment does, with no network.

Only models whose offer-file display name we know (pricing/price_list_names.json) are
listed, at the shipped prices in force, one product per region, scope and token type.
As on AWS, Anthropic's models are sold through AWS Marketplace on Bedrock: they are in the
AmazonBedrockFoundationModels offer, named by `servicename` with Marketplace usage types
priced per "Units" (in-region and global rows; a geo profile pays the in-region price);
the others are in AmazonBedrock. AmazonBedrockService is published with no products.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..pricing.price_list import (
    MARKETPLACE_EDITION,
    MARKETPLACE_UNIT,
    OFFER_CODE,
    OFFER_CODES,
    REGION_INDEX,
    known_names,
)
from ..pricing.prices import shipped_prices

VERSION = "20251120000000"
INFERENCE_TYPES = {
    "input": "Input tokens",
    "output": "Output tokens",
    "cache_read": "Cache read input tokens",
    "cache_write": "Cache write input tokens",
}
USAGE_SUFFIX = {"in_region": "", "geo": "-cross-region-geo", "global": "-cross-region-global"}
MARKETPLACE_OFFER = "AmazonBedrockFoundationModels"
MARKETPLACE_TOKENS = {
    "input": "InputTokenCount",
    "output": "OutputTokenCount",
    "cache_read": "CacheReadInputTokenCount",
    "cache_write": "CacheWriteInputTokenCount",
}


def region_index(offer_code: str, regions: list[str]) -> dict:
    return {
        "formatVersion": "v1.0",
        "regions": {
            region: {
                "regionCode": region,
                "currentVersionUrl": f"/offers/v1.0/aws/{offer_code}/{VERSION}/{region}/index.json",
            }
            for region in regions
        },
    }


def offer_file(offer_code: str, region: str) -> dict:
    """The offer's file for `region`: the shipped prices in force, for models with a known
    name that this offer sells."""
    display = {}
    for name, model_id in known_names().items():
        display.setdefault(model_id, name)
    products, on_demand = {}, {}
    for row in shipped_prices():
        name = display.get(row.model_id)
        if name is None or row.effective_to is not None or row.region not in ("*", region):
            continue
        marketplace = row.model_id.startswith("anthropic.")
        if marketplace != (offer_code == MARKETPLACE_OFFER) or offer_code not in (
            OFFER_CODE,
            MARKETPLACE_OFFER,
        ):
            continue
        if marketplace:
            if row.price_scope == "geo" or row.token_type not in MARKETPLACE_TOKENS:
                continue  # the Marketplace prices geo profiles at the in-region rate
            usage, unit, price = (
                _marketplace_usage(region, row),
                MARKETPLACE_UNIT,
                row.usd_per_million_tokens,
            )
            attributes = {"usagetype": usage, "servicename": name + MARKETPLACE_EDITION}
        else:
            usage = f"{region}-{name.replace(' ', '')}-{row.token_type}-tokens"
            usage += USAGE_SUFFIX.get(row.price_scope, "")
            unit, price = "1M tokens", row.usd_per_million_tokens
            attributes = {
                "usagetype": usage,
                "model": name,
                "feature": "On-demand Inference",
                "inferenceType": INFERENCE_TYPES[row.token_type],
            }
        sku = hashlib.sha1(f"{name} {usage}".encode()).hexdigest()[:16].upper()
        products[sku] = {
            "sku": sku,
            "productFamily": "Amazon Bedrock",
            "attributes": {"servicecode": offer_code, "regionCode": region, **attributes},
        }
        term = f"{sku}.JRTCKXETXF"
        on_demand[sku] = {
            term: {
                "sku": sku,
                "effectiveDate": f"{row.effective_from}T00:00:00Z",
                "priceDimensions": {
                    f"{term}.6YS6EN2CT7": {"unit": unit, "pricePerUnit": {"USD": str(price)}}
                },
            }
        }
    return {
        "formatVersion": "v1.0",
        "offerCode": offer_code,
        "version": VERSION,
        "publicationDate": "2025-11-20T00:00:00Z",
        "products": products,
        "terms": {"OnDemand": on_demand},
    }


def usage_prefix(region: str) -> str:
    """The region's prefix in usage types, made from its name (us-east-1 -> USE1; AWS's
    own has exceptions, e.g. ap-south-1 is APS3, which no reader here depends on)."""
    area, direction, number = region.split("-")
    return f"{area[:2]}{direction[0]}{number}".upper()


def _marketplace_usage(region: str, row) -> str:
    """AWS's Marketplace usage type, e.g. USE1-MP:USE1_InputTokenCount_Global-Units."""
    prefix = usage_prefix(region)
    scope = "_Global" if row.price_scope == "global" else ""
    return f"{prefix}-MP:{prefix}_{MARKETPLACE_TOKENS[row.token_type]}{scope}-Units"


class _OfferFiles(BaseHTTPRequestHandler):
    def __init__(self, *args, regions: list[str], **kwargs):
        self.regions = regions
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        offer_code = parts[3] if len(parts) > 3 else ""
        if offer_code in OFFER_CODES and path == REGION_INDEX.format(offer=offer_code):
            body = region_index(offer_code, self.regions)
        elif offer_code in OFFER_CODES and parts[-1] == "index.json" and parts[-2] in self.regions:
            body = offer_file(offer_code, parts[-2])
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(regions: list[str]) -> Iterator[str]:
    """A Price List for `regions` on a local port while the block runs: its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_OfferFiles, regions=regions))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
