"""The cost view on a real DuckDB file: exact dollars from list prices, NULL where no
price applies, prices by date, region and scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest

from bedrock_usage.days import DayRange
from bedrock_usage.pricing.prices import ALL_REGIONS, PriceRow
from bedrock_usage.shaping.model_ids import describe_model_id
from bedrock_usage.storage.costs import (
    cost_summary,
    merge_unpriced,
    store_prices,
    unpriced_usage,
)
from bedrock_usage.storage.warehouse import open_warehouse, publish_snapshot, transaction

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET_V2 = "anthropic.claude-3-5-sonnet-20241022-v2:0"
PROVISIONED = "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/k3x9p2m1q8ab"
D1, D2, D3 = date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)
READ_AT = datetime(2026, 11, 27, 12, 0)


@pytest.fixture
def con(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as connection:
        yield connection


def add_usage(con, day, model_id, region="us-east-1", endpoint="bedrock-runtime", **tokens):
    described = describe_model_id(model_id)
    counts = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "invocations": 1,
        **tokens,
    }
    con.execute(
        "INSERT INTO bedrock_usage_daily VALUES (?, 'prod', '111122223333', ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, ?)",
        [
            day, region, endpoint, model_id, described.model_provider, described.base_model_id,
            described.inference_scope, counts["input_tokens"], counts["output_tokens"],
            counts["invocations"], counts["cache_read_input_tokens"],
            counts["cache_write_input_tokens"], READ_AT,
        ],
    )  # fmt: skip


def costs(con):
    return con.execute(
        "SELECT usage_date, region, model_id, estimated_cost_usd FROM bedrock_cost_daily "
        "ORDER BY ALL"
    ).fetchall()


def price(model, token_type, usd, start=date(2023, 9, 28), region=ALL_REGIONS, scope="in_region"):
    return PriceRow(model, scope, region, token_type, Decimal(usd), start, "test", READ_AT)


def test_a_million_input_and_output_tokens_cost_the_list_price_to_the_cent(con):
    add_usage(con, D1, HAIKU, input_tokens=1_000_000, output_tokens=1_000_000)
    [(_, _, _, cost)] = costs(con)
    assert cost == Decimal("1.500000")  # 0.25 + 1.25 USD per million, shipped snapshot
    assert isinstance(cost, Decimal)
    source, since = con.execute(
        "SELECT price_source, price_effective_from FROM bedrock_cost_daily"
    ).fetchone()
    assert source.startswith("genai-prices") and since == date(2023, 9, 28)


def test_cache_reads_and_writes_are_priced_at_their_own_rates(con):
    add_usage(
        con, D1, SONNET_V2, input_tokens=1_000_000, output_tokens=1_000_000,
        cache_read_input_tokens=2_000_000, cache_write_input_tokens=1_000_000,
    )  # fmt: skip
    # 3 input + 15 output + 2 x 0.30 cache read + 3.75 cache write
    assert costs(con)[0][3] == Decimal("22.350000")


def test_a_price_change_applies_from_its_effective_date(con):
    for day in (D1, D2, D3):
        add_usage(con, day, HAIKU, input_tokens=1_000_000)
    with transaction(con):
        store_prices(con, [price(HAIKU, "input", "0.25"), price(HAIKU, "output", "1.25")])
        store_prices(con, [price(HAIKU, "input", "0.20", start=D2)])
    assert [c[3] for c in costs(con)] == [
        Decimal("0.250000"),
        Decimal("0.200000"),
        Decimal("0.200000"),
    ]
    closed = con.execute(
        "SELECT effective_to FROM bedrock_prices WHERE source = 'test' AND token_type = 'input' "
        "AND effective_from = DATE '2023-09-28'"
    ).fetchone()
    assert closed == (D2,)


def test_a_regional_price_beats_the_all_regions_price_and_profiles_take_their_scope(con):
    add_usage(con, D1, HAIKU, region="eu-west-1", input_tokens=1_000_000)
    add_usage(con, D1, f"eu.{HAIKU}", region="eu-west-1", input_tokens=1_000_000)
    add_usage(con, D1, "global.anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=1_000_000)
    with transaction(con):
        store_prices(con, [price(HAIKU, "input", "0.30", region="eu-west-1")])
    assert costs(con) == [
        (D1, "eu-west-1", HAIKU, Decimal("0.300000")),
        (D1, "eu-west-1", f"eu.{HAIKU}", Decimal("0.300000")),  # geo: the in-region price
        (D1, "us-east-1", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("3.000000")),
    ]


def test_usage_without_a_list_price_is_null_never_zero_and_listed(con):
    add_usage(con, D1, PROVISIONED, input_tokens=500, output_tokens=100)
    add_usage(con, D1, "acme.unheard-of-model-v1:0", input_tokens=70)
    add_usage(con, D1, "(unattributed)", input_tokens=9)
    add_usage(con, D1, HAIKU, input_tokens=1_000_000, cache_read_input_tokens=10)  # no cache price
    add_usage(con, D1, SONNET_V2, input_tokens=1_000_000)
    # in model id order: (unattributed), acme..., Sonnet v2, Haiku, the ARN
    assert [c[3] for c in costs(con)] == [None, None, Decimal("3.000000"), None, None]
    window = {"prod": DayRange(D1, D1)}
    assert cost_summary(con, window) == {
        "estimated_cost_usd": Decimal("3.000000"),
        "unpriced_tokens": 500 + 100 + 70 + 9 + 1_000_010,
    }
    assert unpriced_usage(con, window)[["model_id", "tokens"]].values.tolist() == [
        [HAIKU, 1_000_010],
        [PROVISIONED, 600],
        ["acme.unheard-of-model-v1:0", 70],
        ["(unattributed)", 9],
    ]


def test_windows_queried_one_at_a_time_merge_to_the_query_over_all(con):
    add_usage(con, D1, PROVISIONED, input_tokens=500)
    add_usage(con, D1, PROVISIONED, region="eu-west-1", input_tokens=7, invocations=2)
    add_usage(con, D2, PROVISIONED, region="us-west-2", input_tokens=40)
    add_usage(con, D2, "acme.unheard-of-model-v1:0", input_tokens=600)
    add_usage(con, D1, "(unattributed)", input_tokens=0, invocations=3)
    windows = [{"prod": DayRange(D1, D1)}, {"prod": DayRange(D2, D2)}]
    merged = merge_unpriced([unpriced_usage(con, w) for w in windows])
    whole = unpriced_usage(con, {"prod": DayRange(D1, D2)})
    assert merged.values.tolist() == whole.values.tolist()
    assert whole.drop(columns="cause").values.tolist() == [
        ["acme.unheard-of-model-v1:0", "in_region", "us-east-1", 600, 1],
        [PROVISIONED, "provisioned", "eu-west-1,us-east-1,us-west-2", 547, 4],
        ["(unattributed)", "unattributed", "us-east-1", 0, 3],
    ]
    assert [cause.split(":")[0] for cause in whole.cause] == [
        "no list price for this model",
        "billed by the hour or through AWS Marketplace, not per token",
        "CloudWatch reported it without a model",
    ]
    assert merge_unpriced([unpriced_usage(con, {"prod": DayRange(D3, D3)})]).empty


def test_a_resync_or_late_data_changes_the_cost_with_the_usage(con):
    add_usage(con, D1, HAIKU, input_tokens=1_000_000)
    assert costs(con)[0][3] == Decimal("0.250000")
    con.execute("UPDATE bedrock_usage_daily SET input_tokens = 3_000_000")
    assert costs(con)[0][3] == Decimal("0.750000")


def test_a_very_large_month_does_not_overflow(con):
    add_usage(con, D1, "anthropic.claude-3-opus-20240229-v1:0", output_tokens=10**12)
    assert costs(con)[0][3] == Decimal("75000000.000000")  # 75 USD per million output


def test_every_estimate_is_rounded_half_up_to_the_micro_dollar_however_large(con):
    """Small products take integer arithmetic and large ones DECIMAL(38): both round the
    exact product half up, the estimate and each token type's part alike."""
    model = "amazon.test-model-v1:0"
    rates = {"input": "0.5", "output": "0.000000001", "cache_read": "0.0005005",
             "cache_write": "7.123456789"}  # fmt: skip
    with transaction(con):
        store_prices(con, [price(model, kind, usd) for kind, usd in rates.items()])
    rows = {
        D1: {"input_tokens": 1, "output_tokens": 2},  # 0.5 µ$ up to 1; 2e-9 µ$
        D2: {"input_tokens": 3, "cache_read_input_tokens": 999},  # 1.5 µ$ up; 0.4999995 µ$
        D3: {"cache_write_input_tokens": 1_263_000_000_000},  # ≈ $9M: beyond BIGINT
        date(2026, 11, 2): {"output_tokens": 9 * 10**18, "input_tokens": 1},  # at the edge
    }
    for day, tokens in rows.items():
        add_usage(con, day, model, **tokens)
    columns = {"input": "input_tokens", "output": "output_tokens",
               "cache_read": "cache_read_input_tokens",
               "cache_write": "cache_write_input_tokens"}  # fmt: skip

    def usd(parts):
        exact = sum((Decimal(n) * Decimal(rate) for n, rate in parts), Decimal(0))
        return (exact / 10**6).quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")

    got = con.execute(
        "SELECT usage_date, estimated_cost_usd, input_cost_usd, output_cost_usd, "
        "cache_read_cost_usd, cache_write_cost_usd FROM bedrock_cost_daily ORDER BY 1"
    ).fetchall()
    expected = [
        (day, usd([(tokens.get(columns[k], 0), rates[k]) for k in rates]),
         *(usd([(tokens.get(columns[k], 0), rates[k])]) for k in rates))
        for day, tokens in sorted(rows.items())
    ]  # fmt: skip
    assert got == expected
    assert [row[1] for row in got][:2] == [Decimal("0.000001"), Decimal("0.000002")]


def test_monthly_views_sum_priced_rows_and_count_unpriced_tokens(con):
    add_usage(con, D2, HAIKU, input_tokens=1_000_000, output_tokens=1_000_000)
    add_usage(con, D3, HAIKU, input_tokens=2_000_000)
    add_usage(con, D3, PROVISIONED, input_tokens=40)
    by_model = con.execute(
        "SELECT month, model_id, input_tokens, estimated_cost_usd, unpriced_tokens "
        "FROM bedrock_cost_monthly_by_model ORDER BY ALL"
    ).fetchall()
    assert by_model == [
        (date(2026, 10, 1), HAIKU, 1_000_000, Decimal("1.500000"), 0),
        (date(2026, 11, 1), HAIKU, 2_000_000, Decimal("0.500000"), 0),
        (date(2026, 11, 1), PROVISIONED, 40, None, 40),
    ]
    by_provider = con.execute(
        "SELECT month, model_provider, estimated_cost_usd, unpriced_tokens "
        "FROM bedrock_cost_monthly_by_provider ORDER BY ALL"
    ).fetchall()
    assert by_provider == [
        (date(2026, 10, 1), "anthropic", Decimal("1.500000"), 0),
        (date(2026, 11, 1), "anthropic", Decimal("0.500000"), 0),
        (date(2026, 11, 1), "unknown", None, 40),
    ]
    assert (
        con.execute(
            "SELECT comment FROM duckdb_columns() WHERE column_name = 'unpriced_tokens' "
            "AND table_name = 'bedrock_cost_monthly_by_account'"
        )
        .fetchone()[0]
        .startswith("Tokens in rows with no list price")
    )


def test_a_mantle_model_is_priced_through_its_runtime_twin_when_only_that_is_listed(con):
    """The OpenAI-compatible endpoint names openai.gpt-oss-120b; prices list only the
    runtime's openai.gpt-oss-120b-1:0. A model listed under its own id keeps its price."""
    with transaction(con):
        store_prices(con, [
            price("openai.gpt-oss-120b-1:0", "input", "0.15"),
            price("openai.gpt-oss-120b-1:0", "output", "0.6"),
            price("acme.exact-model", "input", "1"),
            price("acme.exact-model-1:0", "input", "9"),
        ])  # fmt: skip
    add_usage(con, D1, "openai.gpt-oss-120b", endpoint="bedrock-mantle",
              input_tokens=2_000_000, output_tokens=1_000_000)  # fmt: skip
    add_usage(con, D1, "acme.exact-model", endpoint="bedrock-mantle", input_tokens=1_000_000)
    add_usage(con, D1, "openai.gpt-oss-120b", input_tokens=1_000_000)  # runtime: no twin
    assert con.execute(
        "SELECT api_endpoint, model_id, estimated_cost_usd FROM bedrock_cost_daily ORDER BY ALL"
    ).fetchall() == [
        ("bedrock-mantle", "acme.exact-model", Decimal("1.000000")),
        ("bedrock-mantle", "openai.gpt-oss-120b", Decimal("0.900000")),
        ("bedrock-runtime", "openai.gpt-oss-120b", None),
    ]


def test_every_column_of_every_analysts_view_says_what_it_means(con):
    undocumented = con.execute(
        "SELECT c.table_name, c.column_name FROM duckdb_columns() c "
        "JOIN duckdb_views() v ON v.view_name = c.table_name AND v.database_name = "
        "c.database_name WHERE c.database_name = current_database() AND NOT v.internal "
        "AND (c.comment IS NULL OR c.comment = '') ORDER BY ALL"
    ).fetchall()
    assert undocumented == []


def test_the_analysts_copy_stores_each_estimate_and_reprices_when_prices_change(tmp_path):
    """In the analysts' copy `bedrock_cost_daily` is a table: a publish prices the
    windows it copies; a price or inference profile changed since re-prices every row.
    After each publish the copy holds exactly what the warehouse's view computes."""
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    copy_path = tmp_path / "warehouse.snapshot.duckdb"
    every_row = "SELECT * FROM bedrock_cost_daily ORDER BY ALL"
    estimates = (
        "SELECT usage_date, input_tokens, estimated_cost_usd FROM bedrock_cost_daily "
        "ORDER BY usage_date"
    )

    def stored(sql):
        with duckdb.connect(str(copy_path), read_only=True) as copy:
            return copy.execute(sql).fetchall()

    with open_warehouse(path) as db:
        with transaction(db):
            store_prices(db, [price(HAIKU, "input", "0.25"), price(HAIKU, "output", "1.25")])
        for day in (D1, D2, D3):
            add_usage(db, day, HAIKU, input_tokens=1_000_000, output_tokens=10)
        publish_snapshot(db, path)  # built whole
        assert stored(every_row) == db.execute(every_row).fetchall()
        assert stored(estimates) == [(d, 1_000_000, Decimal("0.250013")) for d in (D1, D2, D3)]

        # Late data: the windows published are priced again, the others kept as copied.
        db.execute("UPDATE bedrock_usage_daily SET input_tokens = 3000000 WHERE usage_date = ?",
                   [D3])  # fmt: skip
        db.execute("UPDATE bedrock_usage_daily SET input_tokens = 9 WHERE usage_date = ?", [D1])
        publish_snapshot(db, path, {"prod": DayRange(D3, D3)})
        assert stored(estimates) == [
            (D1, 1_000_000, Decimal("0.250013")),  # its window was not published
            (D2, 1_000_000, Decimal("0.250013")),
            (D3, 3_000_000, Decimal("0.750013")),
        ]

        # A refresh that finds the same prices (only their read time moves, still before
        # the shipped list's: the same price is preferred) re-prices nothing: the
        # unpublished day 1 keeps what was copied.
        later = READ_AT.replace(hour=13)
        with transaction(db):
            same = [price(HAIKU, "input", "0.25"), price(HAIKU, "output", "1.25")]
            store_prices(db, [replace(row, read_at=later) for row in same])
        publish_snapshot(db, path, {})
        assert stored(estimates)[0] == (D1, 1_000_000, Decimal("0.250013"))

        # A price refresh changes what every row costs, whichever windows are published.
        with transaction(db):
            store_prices(db, [price(HAIKU, "input", "0.50", start=D2)])
        publish_snapshot(db, path, {"prod": DayRange(D1, D1)})
        assert stored(every_row) == db.execute(every_row).fetchall()
        assert stored(estimates) == [
            (D1, 9, Decimal("0.000015")),
            (D2, 1_000_000, Decimal("0.500013")),
            (D3, 3_000_000, Decimal("1.500013")),
        ]


def test_a_warehouse_made_by_an_earlier_release_gets_this_releases_views(tmp_path):
    """Views change without a migration (a faster cost view): the first open by a new
    release replaces them, and only then."""
    from bedrock_usage.storage.schema import VIEWS_DIGEST_TABLE

    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as db:
        add_usage(db, D1, HAIKU, input_tokens=1_000_000)
        db.execute("CREATE OR REPLACE VIEW bedrock_cost_daily AS SELECT 1 AS old_column")
        db.execute(f"UPDATE {VIEWS_DIGEST_TABLE} SET digest = 'an-earlier-release'")
    with open_warehouse(path) as db:
        assert costs(db) == [(D1, "us-east-1", HAIKU, Decimal("0.250000"))]
        db.execute("CREATE OR REPLACE VIEW bedrock_cost_daily AS SELECT 1 AS old_column")
    with open_warehouse(path) as db:  # the same release: nothing is recreated
        assert db.execute("SELECT * FROM bedrock_cost_daily").fetchall() == [(1,)]
