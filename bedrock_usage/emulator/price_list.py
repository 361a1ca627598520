"""AWS's Price List for the demo: AmazonBedrock offer files in AWS's layout, served over
HTTP from the prices shipped with the package, so `make demo` refreshes `bedrock_prices`
the way a deployment does, with no network.

Only models whose offer-file display name we know (pricing/price_list_names.json) are
listed, at the shipped prices in force, one product per region, scope and token type.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..pricing.price_list import OFFER_CODE, REGION_INDEX, known_names
from ..pricing.prices import shipped_prices

VERSION = "20251120000000"
INFERENCE_TYPES = {
    "input": "Input tokens",
    "output": "Output tokens",
    "cache_read": "Cache read input tokens",
    "cache_write": "Cache write input tokens",
}
USAGE_SUFFIX = {"in_region": "", "geo": "-cross-region-geo", "global": "-cross-region-global"}


def region_index(regions: list[str]) -> dict:
    return {
        "formatVersion": "v1.0",
        "regions": {
            region: {
                "regionCode": region,
                "currentVersionUrl": f"/offers/v1.0/aws/{OFFER_CODE}/{VERSION}/{region}/index.json",
            }
            for region in regions
        },
    }


def offer_file(region: str) -> dict:
    """The region's offer file: the shipped prices in force, for models with a known name."""
    display = {}
    for name, model_id in known_names().items():
        display.setdefault(model_id, name)
    products, on_demand = {}, {}
    for row in shipped_prices():
        name = display.get(row.model_id)
        if name is None or row.effective_to is not None or row.region not in ("*", region):
            continue
        usage = f"{region}-{name.replace(' ', '')}-{row.token_type}-tokens"
        usage += USAGE_SUFFIX.get(row.price_scope, "")
        sku = hashlib.sha1(usage.encode()).hexdigest()[:16].upper()
        products[sku] = {
            "sku": sku,
            "productFamily": "Amazon Bedrock",
            "attributes": {
                "servicecode": OFFER_CODE,
                "usagetype": usage,
                "regionCode": region,
                "model": name,
                "feature": "On-demand Inference",
                "inferenceType": INFERENCE_TYPES[row.token_type],
            },
        }
        term = f"{sku}.JRTCKXETXF"
        on_demand[sku] = {
            term: {
                "sku": sku,
                "effectiveDate": f"{row.effective_from}T00:00:00Z",
                "priceDimensions": {
                    f"{term}.6YS6EN2CT7": {
                        "unit": "1M tokens",
                        "pricePerUnit": {"USD": str(row.usd_per_million_tokens)},
                    }
                },
            }
        }
    return {
        "formatVersion": "v1.0",
        "offerCode": OFFER_CODE,
        "version": VERSION,
        "publicationDate": "2025-11-20T00:00:00Z",
        "products": products,
        "terms": {"OnDemand": on_demand},
    }


class _OfferFiles(BaseHTTPRequestHandler):
    def __init__(self, *args, regions: list[str], **kwargs):
        self.regions = regions
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == REGION_INDEX.format(offer=OFFER_CODE):
            body = region_index(self.regions)
        elif parts[-1] == "index.json" and len(parts) >= 2 and parts[-2] in self.regions:
            body = offer_file(parts[-2])
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
