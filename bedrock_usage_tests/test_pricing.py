"""Prices: AWS's Price List offer files read over real HTTP from a local server serving
trimmed files in the offer format, the refresh command, and the shipped snapshot."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest

from bedrock_usage.days import utc_today
from bedrock_usage.pricing.genai_snapshot import genai_prices_rows
from bedrock_usage.pricing.price_list import PriceListError, fetch_offer_prices, parse_offer
from bedrock_usage.pricing.prices import shipped_prices

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_LITE = "amazon.nova-lite-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def _offer(*rows: tuple[str, dict, str]) -> dict:
    """An offer file of (usage type, extra attributes, USD per 1K tokens) rows, in AWS's
    shape (knowledge/billing.md has the public examples)."""
    products, terms = {}, {}
    for number, (usage_type, extra, price) in enumerate(rows):
        sku = f"SKU{number}"
        products[sku] = {
            "sku": sku,
            "productFamily": "Amazon Bedrock",
            "attributes": {"usagetype": usage_type, "regionCode": "us-east-1", **extra},
        }
        terms[sku] = {
            f"{sku}.T": {
                "effectiveDate": "2025-11-01T00:00:00Z",
                "priceDimensions": {
                    f"{sku}.T.D": {"unit": "1K tokens", "pricePerUnit": {"USD": price}}
                },
            }
        }
    return {"products": products, "terms": {"OnDemand": terms}}


def _prices(rows):
    return sorted(
        (r.model_id, r.price_scope, r.region, r.token_type, r.usd_per_million_tokens,
         r.effective_from)
        for r in rows
    )  # fmt: skip


def test_offer_files_give_on_demand_token_prices_per_region_as_decimals(price_list):
    _, url = price_list
    offer = fetch_offer_prices(["us-east-1", "eu-west-1", "ap-south-9"], url)
    start = date(2025, 11, 1)
    assert _prices(r for r in offer.rows if r.source == "aws-price-list:AmazonBedrock") == [
        ("amazon.nova-2-lite-v1:0", "global", "us-east-1", "input", Decimal("0.3"), start),
        (NOVA_LITE, "in_region", "us-east-1", "cache_read", Decimal("0.015"), start),
        (NOVA_LITE, "in_region", "us-east-1", "input", Decimal("0.06"), start),
        (NOVA_LITE, "in_region", "us-east-1", "input:batch", Decimal("0.03"), start),
        (NOVA_LITE, "in_region", "us-east-1", "output", Decimal("0.24"), start),
        (NOVA_PRO, "in_region", "us-east-1", "input:flex", Decimal("0.4"), start),
        (HAIKU, "in_region", "eu-west-1", "input", Decimal("0.3"), start),
        (HAIKU, "in_region", "eu-west-1", "output", Decimal("1.5"), start),
        (HAIKU, "in_region", "us-east-1", "input", Decimal("0.25"), start),
        (HAIKU, "in_region", "us-east-1", "output", Decimal("1.25"), start),
    ]  # provisioned throughput (hours), images and volume tiers are not token prices
    assert offer.unknown_names == {"Claude Fable 9": {"us-east-1"}}  # in both offers
    assert offer.regions_read == ["us-east-1", "eu-west-1"]
    assert offer.regions_not_listed == ["ap-south-9"]
    assert offer.offers_not_published == ["AmazonBedrockService"]


def test_marketplace_rows_price_claude_4_per_million_tokens_by_scope_and_tier(price_list):
    """Models sold through AWS Marketplace on Bedrock are priced in another offer, named
    by servicename, one usage type per token type ("Units": a million tokens); both the
    older (InputTokenCount_Global) and newer (input_tokens_global_standard) spellings."""
    _, url = price_list
    offer = fetch_offer_prices(["us-east-1"], url)
    rows = [r for r in offer.rows if r.source == "aws-price-list:AmazonBedrockFoundationModels"]
    start = date(2025, 11, 1)
    assert _prices(rows) == [
        (HAIKU_45, "global", "us-east-1", "cache_read", Decimal("0.1"), start),
        (HAIKU_45, "global", "us-east-1", "input", Decimal("1"), start),
        (HAIKU_45, "global", "us-east-1", "output", Decimal("5"), start),
        (HAIKU_45, "in_region", "us-east-1", "cache_write", Decimal("1.375"), start),
        (HAIKU_45, "in_region", "us-east-1", "input", Decimal("1.1"), start),
        (HAIKU_45, "in_region", "us-east-1", "output", Decimal("5.5"), start),
        (SONNET_45, "global", "us-east-1", "input:batch", Decimal("1.5"), start),
        (SONNET_45, "global", "us-east-1", "input:long_context", Decimal("6"), start),
        (SONNET_45, "global", "us-east-1", "output", Decimal("15"), start),
        (SONNET_45, "in_region", "us-east-1", "input", Decimal("3.3"), start),
    ]  # the search-units row prices no tokens
    assert offer.tiers == {"batch": 2, "flex": 1, "long_context": 1}


def test_tiers_one_hour_cache_writes_and_mantle_rows_are_never_read_as_the_standard_price():
    """Tier rows are kept as token types of their own, never as the standard price."""
    haiku = {"model": "Claude 3 Haiku", "feature": "On-demand Inference"}
    output, write = (
        {**haiku, "inferenceType": "Output tokens"},
        {
            **haiku,
            "inferenceType": "Cache write input tokens",
        },
    )
    mantle = {"service_tier": "standard", "servicename": "Amazon Bedrock"}
    offer = parse_offer(
        _offer(
            ("USE1-Claude3Haiku-output-tokens", output, "0.00125"),
            ("USE1-Claude3Haiku-output-tokens-long-context-cross-region-global", output, "0.0025"),
            ("USE1-Claude3Haiku-output-tokens-long-ctx", output, "0.0025"),
            ("USE1-Claude3Haiku-output-tokens-batch", output, "0.000625"),
            ("USE1-Claude3Haiku-output-tokens-flex", output, "0.000625"),
            ("USE1-Claude3Haiku-cache-write-input-token-count", write, "0.0003"),
            ("USE1-Claude3Haiku-cache-write-input-token-count-1-hour", write, "0.0005"),
            ("USE1-openai.gpt-oss-120b-mantle-input-tokens-standard", mantle, "0.00015"),
            ("USE1-openai.gpt-oss-120b-mantle-output-tokens-standard", mantle, "0.0006"),
            ("USE1-openai.gpt-oss-120b-mantle-output-tokens-priority", mantle, "0.0012"),
        ),
        datetime(2026, 1, 1),
    )
    start = date(2025, 11, 1)
    assert _prices(r for r in offer.rows if ":" not in r.token_type) == [
        (HAIKU, "in_region", "us-east-1", "cache_write", Decimal("0.3"), start),
        (HAIKU, "in_region", "us-east-1", "cache_write_1h", Decimal("0.5"), start),
        (HAIKU, "in_region", "us-east-1", "output", Decimal("1.25"), start),
        ("openai.gpt-oss-120b", "in_region", "us-east-1", "input", Decimal("0.15"), start),
        ("openai.gpt-oss-120b", "in_region", "us-east-1", "output", Decimal("0.6"), start),
    ]
    tiers = [r for r in offer.rows if ":" in r.token_type]
    assert _prices(tiers) == [
        (HAIKU, "global", "us-east-1", "output:long_context", Decimal("2.5"), start),
        (HAIKU, "in_region", "us-east-1", "output:batch", Decimal("0.625"), start),
        (HAIKU, "in_region", "us-east-1", "output:flex", Decimal("0.625"), start),
        (HAIKU, "in_region", "us-east-1", "output:long_context", Decimal("2.5"), start),
        ("openai.gpt-oss-120b", "in_region", "us-east-1", "output:mantle_priority",
         Decimal("1.2"), start),
    ]  # fmt: skip
    assert offer.tiers == {"long_context": 2, "batch": 1, "flex": 1, "mantle_priority": 1}
    assert offer.unknown_names == {}


def test_a_file_in_another_format_is_an_error_not_an_empty_price_list(price_list):
    root, url = price_list
    (root / "AmazonBedrock" / "us-east-1" / "index.json").write_text(
        json.dumps({"formatVersion": "v2"})
    )
    with pytest.raises(PriceListError, match="no 'products'"):
        fetch_offer_prices(["us-east-1"], url)


def _stored(home):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT region, token_type, usd_per_million_tokens, effective_from, effective_to "
            "FROM bedrock_prices WHERE model_id = ? AND source LIKE 'aws-price-list%' "
            "ORDER BY ALL",
            [HAIKU],
        ).fetchall()


def test_refresh_stores_prices_keeps_history_and_reports_what_differs(cli, home, price_list):
    root, url = price_list
    env = {"BEDROCK_USAGE_PRICE_LIST_URL": url}
    result = cli("prices", "refresh", "--region", "us-east-1", "--region", "eu-west-1", env=env)
    assert result.returncode == 0, result.stderr
    # 10 of AmazonBedrock (2 of them tiers) and 10 of the Marketplace offer (2 tiers).
    assert "Read 20 prices for us-east-1, eu-west-1" in result.stdout
    assert "stored as tiers of their own" in result.stdout
    assert "batch 2, flex 1, long_context 1 (rows)" in result.stdout
    assert "offers not published there: AmazonBedrockService" in result.stdout
    assert "'Claude Fable 9' (us-east-1)" in result.stdout
    assert f"{HAIKU} eu-west-1 input: AWS 0.3 vs 0.25" in result.stdout
    # AWS announces that Haiku's input price in us-east-1 falls in 30 days.
    lowered_on = utc_today() + timedelta(days=30)
    offer_path = root / "AmazonBedrock" / "us-east-1" / "index.json"
    offer = json.loads(offer_path.read_text())
    term = offer["terms"]["OnDemand"]["3RQ2WV4XQ8F6BZ3D"]
    [(code, details)] = term.items()
    details["effectiveDate"] = f"{lowered_on}T00:00:00Z"
    [dimension] = details["priceDimensions"].values()
    dimension["pricePerUnit"]["USD"] = "0.0002"
    offer_path.write_text(json.dumps(offer))
    again = cli("prices", "refresh", "--region", "us-east-1", env=env)
    assert again.returncode == 0, again.stderr
    assert _stored(home) == [
        ("eu-west-1", "input", Decimal("0.3"), date(2025, 11, 1), None),
        ("eu-west-1", "output", Decimal("1.5"), date(2025, 11, 1), None),
        ("us-east-1", "input", Decimal("0.2"), lowered_on, None),
        ("us-east-1", "input", Decimal("0.25"), date(2025, 11, 1), lowered_on),
        ("us-east-1", "output", Decimal("1.25"), date(2025, 11, 1), None),
    ]
    shown = cli("prices", "show", "claude-3-haiku", "--json")
    assert shown.returncode == 0, shown.stderr
    assert {(p["region"], p["token_type"], p["usd_per_million_tokens"]) for p in json.loads(
        shown.stdout
    )} >= {("us-east-1", "input", "0.250000000"), ("*", "output", "1.250000000")}  # fmt: skip


def test_an_unreachable_price_list_changes_nothing_and_says_what_to_do(
    cli_in_process, home, price_list
):
    _, url = price_list
    assert cli_in_process("prices", "refresh", "--region", "us-east-1",
               env={"BEDROCK_USAGE_PRICE_LIST_URL": url}).returncode == 0  # fmt: skip
    before = _stored(home)
    result = cli_in_process(
        "prices", "refresh", "--region", "us-east-1",
        env={"BEDROCK_USAGE_PRICE_LIST_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "could not be reached" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert _stored(home) == before


def test_a_region_the_price_list_does_not_have_is_named(cli_in_process, price_list):
    _, url = price_list
    result = cli_in_process(
        "prices", "refresh", "--region", "us-east-1", "--region", "us-eats-1",
        env={"BEDROCK_USAGE_PRICE_LIST_URL": url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not in AWS's price list for Bedrock: us-eats-1" in result.stdout


def test_refresh_without_connections_or_regions_says_how(cli_in_process, price_list):
    _, url = price_list
    result = cli_in_process("prices", "refresh", env={"BEDROCK_USAGE_PRICE_LIST_URL": url})
    assert result.returncode == 1 and "--region us-east-1" in result.stderr


def test_the_shipped_snapshot_is_genai_prices_data_exactly():
    """The cross-check between the two sources starts from a snapshot that is exactly
    what genai-prices publishes (regenerate it with genai_snapshot after an upgrade)."""

    def comparable(rows):
        return sorted((*r.key, r.usd_per_million_tokens, r.effective_from, r.effective_to,
                       r.source) for r in rows)  # fmt: skip

    assert comparable(shipped_prices()) == comparable(genai_prices_rows())
    haiku = {r.token_type: r.usd_per_million_tokens for r in shipped_prices()
             if r.model_id == HAIKU and r.price_scope == "in_region"}  # fmt: skip
    assert haiku == {"input": Decimal("0.25"), "output": Decimal("1.25")}


def test_the_emulators_price_list_reads_back_as_the_shipped_prices():
    """The demo's offline Price List: every shipped price in force of a model with a known
    name comes back through the offer it is sold in (Anthropic's through the Marketplace,
    whose geo profiles pay the in-region rate, so it lists no geo rows)."""
    from bedrock_usage.emulator import price_list
    from bedrock_usage.pricing.price_list import known_names

    named = set(known_names().values())
    expected = {
        (r.model_id, r.price_scope, r.token_type, r.usd_per_million_tokens)
        for r in shipped_prices()
        if r.model_id in named and r.effective_to is None and r.region in ("*", "us-east-1")
        and not (r.model_id.startswith("anthropic.") and r.price_scope == "geo")
    }  # fmt: skip
    with price_list.serving(["us-east-1"]) as url:
        offer = fetch_offer_prices(["us-east-1"], url)
    assert {(r.model_id, r.price_scope, r.token_type, r.usd_per_million_tokens)
            for r in offer.rows} == expected  # fmt: skip
    sources = {r.source for r in offer.rows if r.model_id.startswith("anthropic.")}
    assert sources == {"aws-price-list:AmazonBedrockFoundationModels"}
    assert offer.unknown_names == {} and offer.offers_not_published == []
    assert any(r.model_id.startswith("anthropic.") for r in offer.rows)
