"""Estimated cost: the price table, the cost view at the usage grain, and the monthly
views analysts query. All SQL about dollars lives here.

`bedrock_cost_daily` is a view over `bedrock_usage_daily` and `bedrock_prices`, so a
re-sync, late data or a price refresh changes the estimate at once, with nothing to
rebuild. Each usage row takes, per token type, the price in force on its day: a price
for its own region before one for all regions ('*'), its own scope before the fallback
of a geographic profile to the in-region price, then the latest to take effect (a price
change one source knows of), then the latest read. A row gets NULL — never 0 — when its
model has no input price, or when it has tokens of a type that has no price
(provisioned, custom and imported ARNs, '(unattributed)' and unknown models are never
priced).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

import duckdb
import pandas as pd

from ..days import DayRange, utc_today
from ..frames import insert_frame, literal
from ..pricing.prices import PriceRow, merge_prices
from .columns import USAGE_COLUMN_DOCS
from .figures import by_day, window_days
from .lake import is_lake
from .owners import create_owner_views
from .profiles import PROFILE_COLUMN_DOCS, PROFILES_TABLE
from .quality import window_filter
from .reconcile import create_bill_views

PRICES_TABLE = "bedrock_prices"
PRICE_COLUMNS = (
    "model_id, price_scope, region, token_type, usd_per_million_tokens, effective_from, "
    "effective_to, source, read_at"
)
# Token counts times prices, exact. `usd_per_million_tokens` is DECIMAL(18,9), so a price
# is a whole number of nano-dollars per million tokens (`nano`, from `_NANO`, once per
# price row), and tokens × that is a whole number of 1e-15 USD in HUGEINT (BIGINT tokens
# cannot overflow it). Rounded half up to the micro-dollar in BIGINT, that is the
# estimate: the same as DuckDB's DECIMAL(38) products rounded to DECIMAL(18,6), at a
# thirtieth of the time (those made every cost query take 1.5-3.4 s on ten
# connection-years). A product beyond BIGINT (over ≈ $9,000 in one row-day) takes the
# DECIMAL(38) arithmetic still.
_TOKENS = "CAST({column} AS DECIMAL(38,0))"
_NANO = "CAST(CAST({rate} AS DECIMAL(38,9)) * 1000000000 AS BIGINT)"
_FAST_FEMTO = "BETWEEN 0 AND 9000000000000000000"


def _usd(femto: str, exact: str) -> str:
    """USD (DECIMAL(18,6)) of `femto`, a HUGEINT count of 1e-15 USD; `exact` is the same
    sum as DECIMAL(38) products of tokens and USD per million, for what BIGINT cannot
    hold."""
    return (
        f"CASE WHEN ({femto}) {_FAST_FEMTO} "
        f"THEN CAST((({femto})::BIGINT + 500000000) // 1000000000 AS DECIMAL(12,0)) "
        "* 0.000001::DECIMAL(6,6) "
        f"ELSE CAST(({exact}) * 0.000001::DECIMAL(7,6) AS DECIMAL(18,6)) END"
    )


_KINDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_write": "cache_write_input_tokens",
}


def _exact(kinds: list[str]) -> str:
    return " + ".join(
        f"{_TOKENS.format(column=f'u.{_KINDS[kind]}')} * coalesce(u.{kind}_rate, 0)"
        for kind in kinds
    )


def _type_cost(kind: str) -> str:
    """One token type's estimate: 0 without tokens, NULL without a price."""
    return (
        f"CASE WHEN u.{_KINDS[kind]} = 0 THEN 0::DECIMAL(18,6) "
        f"WHEN u.{kind}_rate IS NULL THEN NULL "
        f"ELSE {_usd(f'u.{kind}_femto', _exact([kind]))} END"
    )


COST_DAILY_VIEW = """
CREATE OR REPLACE VIEW bedrock_cost_daily AS
WITH priced AS (
    SELECT DISTINCT model_id FROM bedrock_prices
),
twins AS (
    -- The mantle endpoint names a model without its version (openai.gpt-oss-120b); a
    -- price list may list only its runtime twin (openai.gpt-oss-120b-1:0).
    SELECT regexp_extract(model_id, '^(.+)-[0-9]+:[0-9]+$', 1) AS stem, max(model_id) AS twin
    FROM priced
    WHERE regexp_matches(model_id, '^.+-[0-9]+:[0-9]+$')
    GROUP BY 1
),
routed AS (
    -- Usage through an application inference profile takes the model behind it, its
    -- provider and its routing (bedrock_inference_profiles, read by the sync).
    SELECT u.* REPLACE (
            coalesce(ip.model_provider, u.model_provider) AS model_provider,
            coalesce(ip.base_model_id, u.base_model_id) AS base_model_id,
            coalesce(ip.inference_scope, u.inference_scope) AS inference_scope),
        ip.profile_name AS inference_profile_name
    FROM bedrock_usage_daily u
    LEFT JOIN bedrock_inference_profiles ip
        ON ip.connection_id = u.connection_id AND ip.region = u.region
        AND u.inference_scope = 'application_profile'
        AND u.model_id IN (ip.profile_id, ip.profile_arn)
),
usage AS (
    SELECT u.*,
        CASE
            WHEN u.inference_scope = 'in_region' THEN 'in_region'
            WHEN u.inference_scope = 'global' THEN 'global'
            WHEN u.inference_scope IN ('us', 'eu', 'apac', 'jp', 'au', 'ca', 'us-gov')
                THEN 'geo'
        END AS price_scope,
        CASE
            WHEN u.api_endpoint = 'bedrock-mantle' AND p.model_id IS NULL
                THEN coalesce(t.twin, u.base_model_id)
            ELSE u.base_model_id
        END AS price_model_id
    FROM routed u
    LEFT JOIN priced p ON p.model_id = u.base_model_id
    LEFT JOIN twins t ON t.stem = u.base_model_id
),
nano_prices AS (
    SELECT *, {nano} AS nano FROM bedrock_prices
),
keys AS (
    -- A rate depends on the day, the region, the model priced and the scope alone: many
    -- connections' rows (and both endpoints') share each, so each is looked up once.
    SELECT DISTINCT usage_date, region, price_model_id, price_scope FROM usage
),
best AS (
    -- Per key and token type, the preferred price (the greatest of the preference).
    SELECT k.usage_date, k.region, k.price_model_id, k.price_scope, p.token_type,
        arg_max(
            {{'rate': p.usd_per_million_tokens, 'nano': p.nano,
                'effective_from': p.effective_from, 'source': p.source}},
            {{'own_region': p.region = k.region, 'own_scope': p.price_scope = k.price_scope,
                'effective_from': p.effective_from, 'read_at': p.read_at}}
        ) AS price
    FROM keys k
    JOIN nano_prices p
        ON p.model_id = k.price_model_id
        AND (p.price_scope = k.price_scope
            OR (k.price_scope = 'geo' AND p.price_scope = 'in_region'))
        AND p.region IN (k.region, '*')
        AND k.usage_date >= p.effective_from
        AND (p.effective_to IS NULL OR k.usage_date < p.effective_to)
    GROUP BY ALL
),
rates AS (
    SELECT usage_date, region, price_model_id, price_scope,
        max(price.rate) FILTER (token_type = 'input') AS input_rate,
        max(price.rate) FILTER (token_type = 'output') AS output_rate,
        max(price.rate) FILTER (token_type = 'cache_read') AS cache_read_rate,
        max(price.rate) FILTER (token_type = 'cache_write') AS cache_write_rate,
        max(price.effective_from) AS price_effective_from,
        max(price.source) FILTER (token_type = 'input') AS price_source,
        max(price.nano) FILTER (token_type = 'input') AS input_nano,
        max(price.nano) FILTER (token_type = 'output') AS output_nano,
        max(price.nano) FILTER (token_type = 'cache_read') AS cache_read_nano,
        max(price.nano) FILTER (token_type = 'cache_write') AS cache_write_nano
    FROM best
    GROUP BY ALL
),
costed AS (
    SELECT u.*, r.input_rate, r.output_rate, r.cache_read_rate, r.cache_write_rate,
        r.price_effective_from, r.price_source,
        {input_femto} AS input_femto, {output_femto} AS output_femto,
        {cache_read_femto} AS cache_read_femto, {cache_write_femto} AS cache_write_femto
    FROM usage u
    LEFT JOIN rates r
        ON r.usage_date = u.usage_date AND r.region = u.region
        AND r.price_model_id = u.price_model_id AND r.price_scope = u.price_scope
)
SELECT u.usage_date, u.connection_id, u.account_id, u.region, u.api_endpoint, u.model_id,
    u.model_provider, u.base_model_id, u.inference_scope, u.input_tokens, u.output_tokens,
    u.invocations, u.cache_read_input_tokens, u.cache_write_input_tokens,
    CASE
        WHEN u.input_rate IS NULL
            OR (u.output_rate IS NULL AND u.output_tokens > 0)
            OR (u.cache_read_rate IS NULL AND u.cache_read_input_tokens > 0)
            OR (u.cache_write_rate IS NULL AND u.cache_write_input_tokens > 0)
            THEN NULL
        ELSE {estimate}
    END AS estimated_cost_usd,
    {input_cost} AS input_cost_usd,
    {output_cost} AS output_cost_usd,
    {cache_read_cost} AS cache_read_cost_usd,
    {cache_write_cost} AS cache_write_cost_usd,
    CASE WHEN u.input_rate IS NOT NULL THEN u.price_effective_from END AS price_effective_from,
    CASE WHEN u.input_rate IS NOT NULL THEN u.price_source END AS price_source,
    u.inference_profile_name,
    u.input_rate AS input_usd_per_million, u.output_rate AS output_usd_per_million,
    u.cache_read_rate AS cache_read_usd_per_million,
    u.cache_write_rate AS cache_write_usd_per_million
FROM costed u
""".format(
    estimate=_usd(" + ".join(f"u.{kind}_femto" for kind in _KINDS), _exact(list(_KINDS))),
    nano=_NANO.format(rate="usd_per_million_tokens"),
    **{
        f"{kind}_femto": f"u.{tokens}::HUGEINT * coalesce(r.{kind}_nano, 0)"
        for kind, tokens in _KINDS.items()
    },
    **{f"{kind}_cost": _type_cost(kind) for kind in _KINDS},
)


def _monthly_view(name: str, keys: str) -> str:
    return f"""
CREATE OR REPLACE VIEW {name} AS
SELECT date_trunc('month', usage_date)::DATE AS month, {keys},
    sum(input_tokens)::BIGINT AS input_tokens,
    sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_read_input_tokens)::BIGINT AS cache_read_input_tokens,
    sum(cache_write_input_tokens)::BIGINT AS cache_write_input_tokens,
    sum(invocations)::BIGINT AS invocations,
    CAST(sum(estimated_cost_usd) AS DECIMAL(18,6)) AS estimated_cost_usd,
    sum(CASE WHEN estimated_cost_usd IS NULL
        THEN input_tokens + output_tokens + cache_read_input_tokens + cache_write_input_tokens
        ELSE 0 END)::BIGINT AS unpriced_tokens
FROM bedrock_cost_daily
GROUP BY ALL
"""


MONTHLY_VIEWS = {
    "bedrock_cost_monthly_by_account": "account_id, connection_id",
    "bedrock_cost_monthly_by_provider": "model_provider",
    "bedrock_cost_monthly_by_model": "model_provider, base_model_id, model_id",
}

# The columns bedrock_cost_daily adds to the usage columns: (name, type, meaning).
COST_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        "estimated_cost_usd",
        "DECIMAL(18,6)",
        "Estimated USD: tokens x the on-demand list price in force that day in that region "
        "(cache reads and writes at their own rates). NULL when no list price applies "
        "(provisioned, custom or imported models, unattributed usage, models missing from "
        "bedrock_prices). Excludes discounts, credits, batch, service tiers and provisioned "
        "hours.",
    ),
    *(
        (
            f"{kind}_cost_usd",
            "DECIMAL(18,6)",
            f"Estimated USD of the {what} alone: 0 without such tokens, NULL without a "
            "price for them (the reconciliation with the bill compares token type by token "
            "type).",
        )
        for kind, what in (
            ("input", "input tokens"),
            ("output", "output tokens"),
            ("cache_read", "tokens read from the prompt cache"),
            ("cache_write", "tokens written to the prompt cache"),
        )
    ),
    ("price_effective_from", "DATE", "Start of the newest price row used for this row."),
    ("price_source", "VARCHAR", "Where the input price came from (bedrock_prices.source)."),
    (
        "inference_profile_name",
        "VARCHAR",
        "The application inference profile's name where model_id is one (its model, "
        "provider and scope then come from bedrock_inference_profiles); else NULL.",
    ),
    *(
        (
            f"{kind}_usd_per_million",
            "DECIMAL(18,9)",
            f"The list price applied to the {kind.replace('_', ' ')} tokens, USD per million; "
            "NULL without one.",
        )
        for kind in ("input", "output", "cache_read", "cache_write")
    ),
)
COLUMN_COMMENTS: dict[str, dict[str, str]] = {
    "bedrock_cost_daily": {name: text for name, _, text in COST_COLUMNS},
    PRICES_TABLE: {
        "model_id": "The base model id (the foundation model behind an inference profile).",
        "price_scope": "in_region; geo (us./eu./apac. ... profiles, else priced in_region); "
        "global (global. profiles).",
        "region": "The AWS region the price is for, or * for every region.",
        "token_type": "input, output, cache_read, cache_write (five-minute) or cache_write_1h "
        "(one-hour; the estimate cannot tell the two apart and uses cache_write); a tier's "
        "own price is the token type and the tier, e.g. output:batch, input:long_context, "
        "output:flex, input:mantle_priority (never used by the estimate).",
        "usd_per_million_tokens": "List price in USD per million tokens.",
        "effective_from": "First day the price applies (UTC).",
        "effective_to": "First day it no longer applies; NULL while in force.",
        "source": "aws-price-list:<offer> (AmazonBedrock, AmazonBedrockFoundationModels or "
        "AmazonBedrockService), or the shipped genai-prices snapshot.",
        "read_at": "When the source was read (UTC).",
    },
    PROFILES_TABLE: PROFILE_COLUMN_DOCS,
}
USAGE_COMMENTS = {name: text for name, _, text in USAGE_COLUMN_DOCS}
COLUMN_COMMENTS["bedrock_cost_daily"] = {
    **USAGE_COMMENTS,
    **COLUMN_COMMENTS["bedrock_cost_daily"],
}
MONTHLY_COMMENTS = {
    **USAGE_COMMENTS,
    "month": "First day of the UTC month.",
    "input_tokens": "Input tokens in the month.",
    "output_tokens": "Output tokens in the month.",
    "cache_read_input_tokens": "Input tokens read from the prompt cache in the month.",
    "cache_write_input_tokens": "Input tokens written to the prompt cache in the month.",
    "estimated_cost_usd": "Sum of the priced rows' estimates; unpriced rows are left out "
    "(see unpriced_tokens).",
    "unpriced_tokens": "Tokens in rows with no list price: not in estimated_cost_usd.",
    "invocations": "Requests accepted in the month.",
}


COST_TABLE = "bedrock_cost_daily"


def create_cost_views(db: duckdb.DuckDBPyConnection, catalog: str | None = None) -> None:
    """(Re)create the cost views, with column comments, in the warehouse or, given
    `catalog`, in an attached copy (the analysts'), where `bedrock_cost_daily` is a
    table of the same columns (`publish_costs` fills it) and the views read it."""
    prefix = f"{catalog}." if catalog else ""
    if catalog is None:
        db.execute(COST_DAILY_VIEW)
    for name, keys in MONTHLY_VIEWS.items():
        db.execute(_monthly_view(f"{prefix}{name}", keys))
    comments = {**COLUMN_COMMENTS}
    comments.update({name: MONTHLY_COMMENTS for name in MONTHLY_VIEWS})
    comments.update(create_bill_views(db, prefix))
    comments.update(create_owner_views(db, prefix))
    if catalog is None and is_lake(db):
        # DuckLake keeps comments on tables' columns, not on views'.
        comments = {
            name: columns
            for name, columns in comments.items()
            if name in (PRICES_TABLE, PROFILES_TABLE)
        }
    database = catalog or db.execute("SELECT current_database()").fetchone()[0]
    for relation, columns in comments.items():
        present = {
            name
            for (name,) in db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                "AND table_name = ?",
                [database, relation],
            ).fetchall()
        }
        for column, text in columns.items():
            if column in present:
                db.execute(f"COMMENT ON COLUMN {prefix}{relation}.{column} IS {literal(text)}")


# What of each table an estimate depends on. A daily price refresh rewrites `read_at` of
# every unchanged price: only its order among prices of the same key and start day (which
# one the cost view prefers) counts. A profile's tags and read time do not count.
_PRICING_INPUTS = {
    PRICES_TABLE: (
        "SELECT model_id, price_scope, region, token_type, usd_per_million_tokens, "
        "effective_from, effective_to, source, rank() OVER (PARTITION BY model_id, "
        "price_scope, region, token_type, effective_from ORDER BY read_at) AS preferred "
        "FROM {table}"
    ),
    PROFILES_TABLE: (
        "SELECT connection_id, region, profile_id, profile_arn, profile_name, base_model_id, "
        "model_provider, inference_scope FROM {table}"
    ),
}


def pricing_fingerprint(db: duckdb.DuckDBPyConnection, catalog: str | None = None) -> list:
    """Row count and a sum of row hashes of what the estimates depend on besides the
    usage rows: equal fingerprints, equal estimates."""
    prefix = f"{catalog}." if catalog else ""
    return [
        db.execute(
            "SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) "
            f"FROM ({query.format(table=prefix + table)}) t"
        ).fetchone()
        for table, query in _PRICING_INPUTS.items()
    ]


def _cost_relation(db: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    """What `bedrock_cost_daily` is in `catalog`: 'BASE TABLE', 'VIEW', or None."""
    found = db.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_name = ?",
        [catalog, COST_TABLE],
    ).fetchone()
    return found[0] if found else None


def create_cost_table(db: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """An empty `bedrock_cost_daily` table in `catalog` (the analysts' copy), with the
    view's columns; a view of that name there (a copy published before) is replaced."""
    if _cost_relation(db, catalog) == "VIEW":
        db.execute(f"DROP VIEW {catalog}.{COST_TABLE}")
    db.execute(
        f"CREATE OR REPLACE TABLE {catalog}.{COST_TABLE} AS SELECT * FROM {COST_TABLE} WHERE false"
    )


def has_cost_table(db: duckdb.DuckDBPyConnection, catalog: str) -> bool:
    return _cost_relation(db, catalog) == "BASE TABLE"


def publish_costs(
    db: duckdb.DuckDBPyConnection, catalog: str, where: str, params: list[object]
) -> None:
    """Store in `catalog`'s `bedrock_cost_daily` the estimates of the usage rows `where`
    selects, as the warehouse's view computes them now (its filter reaches the usage
    rows, so a window costs what its rows do). The caller holds the transaction."""
    db.execute(f"DELETE FROM {catalog}.{COST_TABLE} WHERE {where}", params)
    db.execute(
        f"INSERT INTO {catalog}.{COST_TABLE} SELECT * FROM {COST_TABLE} WHERE {where} "
        "ORDER BY usage_date, region",
        params,
    )


def stored_prices(db: duckdb.DuckDBPyConnection, source: str) -> list[PriceRow]:
    rows = db.execute(
        f"SELECT {PRICE_COLUMNS} FROM {PRICES_TABLE} WHERE source = ?", [source]
    ).fetchall()
    return [
        PriceRow(m, s, r, t, p, f, src, read_at, effective_to=to)
        for m, s, r, t, p, f, to, src, read_at in rows
    ]


def store_prices(db: duckdb.DuckDBPyConnection, incoming: list[PriceRow]) -> int:
    """Merge a reading into the table, source by source, keeping each source's history
    (see `merge_prices`). The caller holds the transaction. Returns the rows changed."""
    changed = 0
    for source in sorted({row.source for row in incoming}):
        existing = stored_prices(db, source)
        merged = merge_prices(existing, [row for row in incoming if row.source == source])
        changed += len(set(merged) - set(existing))
        db.execute(f"DELETE FROM {PRICES_TABLE} WHERE source = ?", [source])
        columns = PRICE_COLUMNS.split(", ")
        frame = pd.DataFrame([row.as_record() for row in merged], columns=columns)
        insert_frame(db, PRICES_TABLE, columns, frame)
    return changed


def has_source(db: duckdb.DuckDBPyConnection, source: str) -> bool:
    query = f"SELECT count(*) FROM {PRICES_TABLE} WHERE source = ?"
    return db.execute(query, [source]).fetchone()[0] > 0


def cost_by_partition(
    db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]
) -> dict[tuple[str, date], tuple[Decimal, int]]:
    """Estimated cost in USD and tokens without a price, per connection and day of
    `windows` (zeros for a day without usage)."""
    found = by_day(
        db,
        "CAST(coalesce(sum(estimated_cost_usd), 0) AS DECIMAL(18,6)), "
        "coalesce(sum(CASE WHEN estimated_cost_usd IS NULL THEN input_tokens + output_tokens"
        " + cache_read_input_tokens + cache_write_input_tokens END), 0)::BIGINT",
        "bedrock_cost_daily",
        windows,
    )
    return {key: found.get(key, (Decimal("0.000000"), 0)) for key in window_days(windows)}


def cost_totals(daily: Iterable[tuple[Decimal, int]]) -> dict:
    """Estimated cost and unpriced tokens of `cost_by_partition`'s days, summed (each
    day's cost is exact to 6 decimals, so the sum is the total's)."""
    total = {"estimated_cost_usd": Decimal("0.000000"), "unpriced_tokens": 0}
    for cost, unpriced in daily:
        total["estimated_cost_usd"] += cost
        total["unpriced_tokens"] += unpriced
    return total


def cost_summary(db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]) -> dict:
    """Estimated cost and unpriced tokens of the rows in `windows`."""
    return cost_totals(cost_by_partition(db, windows).values())


PROFILE_CAUSE = (
    "an application inference profile not resolved: allow bedrock:ListInferenceProfiles, "
    "bedrock:GetInferenceProfile and bedrock:ListTagsForResource (the optional statement, "
    "docs/operating.md) and sync again; 'bedrock-usage status' shows where it is missing"
)


def unpriced_usage(db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]) -> pd.DataFrame:
    """Usage with tokens or invocations that has no estimate, by model."""
    where, params = window_filter(windows)
    return db.execute(
        f"""SELECT model_id, inference_scope,
            CASE
                WHEN inference_scope = 'application_profile' THEN {literal(PROFILE_CAUSE)}
                WHEN inference_scope IN ('provisioned', 'custom', 'imported')
                    THEN 'billed by the hour or through AWS Marketplace, not per token'
                WHEN inference_scope = 'unattributed'
                    THEN 'CloudWatch reported it without a model'
                ELSE 'no list price for this model: bedrock-usage prices refresh, or add its '
                    || 'offer name to pricing/price_list_names.json'
            END AS cause,
            string_agg(DISTINCT region, ',' ORDER BY region) AS regions,
            sum(input_tokens + output_tokens + cache_read_input_tokens
                + cache_write_input_tokens)::BIGINT AS tokens,
            sum(invocations)::BIGINT AS invocations
        FROM bedrock_cost_daily
        WHERE estimated_cost_usd IS NULL AND (input_tokens + output_tokens
            + cache_read_input_tokens + cache_write_input_tokens + invocations) > 0
            AND ({where})
        GROUP BY ALL ORDER BY tokens DESC, model_id""",
        params,
    ).df()


def merge_unpriced(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """`unpriced_usage` of several windows as one: by model, their regions joined and
    their tokens and invocations summed, largest first."""
    frames = [part for part in parts if not part.empty]
    if len(frames) <= 1:
        return frames[0] if frames else (parts[0] if parts else pd.DataFrame())
    merged = (
        pd.concat(frames)
        .groupby(["model_id", "inference_scope", "cause"], dropna=False, sort=False)
        .agg(
            regions=("regions", lambda r: ",".join(sorted({x for v in r for x in v.split(",")}))),
            tokens=("tokens", "sum"),
            invocations=("invocations", "sum"),
        )
        .reset_index()
    )
    return merged.sort_values(["tokens", "model_id"], ascending=[False, True], ignore_index=True)


def prices_in_force(db: duckdb.DuckDBPyConnection, model_filter: str) -> list[dict]:
    """Price rows in force today (UTC) whose model id contains `model_filter`."""
    cursor = db.execute(
        f"""SELECT {PRICE_COLUMNS} FROM {PRICES_TABLE}
        WHERE effective_from <= $today
            AND (effective_to IS NULL OR effective_to > $today)
            AND contains(model_id, $model)
        ORDER BY model_id, price_scope, region, token_type""",
        {"today": utc_today(), "model": model_filter},
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
