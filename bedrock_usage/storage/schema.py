"""All DDL of the warehouse, as numbered migrations applied in order.

A migration is never edited once released: add the next one. `schema_version` records
which have run, so an older file is brought up to date when it is next written.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import duckdb

from ..pricing.prices import shipped_prices
from .costs import create_cost_views, has_source, store_prices
from .lake import is_lake
from .owners import OWNER_SCHEMA

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE bedrock_usage_daily (
            usage_date DATE NOT NULL,
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            model_provider VARCHAR NOT NULL,
            base_model_id VARCHAR NOT NULL,
            inference_scope VARCHAR NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            invocations BIGINT NOT NULL,
            cache_read_input_tokens BIGINT NOT NULL,
            cache_write_input_tokens BIGINT NOT NULL,
            client_errors BIGINT NOT NULL,
            server_errors BIGINT NOT NULL,
            throttles BIGINT NOT NULL,
            latency_ms_sum DOUBLE NOT NULL,
            latency_samples BIGINT NOT NULL,
            synced_at TIMESTAMP NOT NULL,
            PRIMARY KEY (usage_date, connection_id, region, model_id)
        );
        CREATE TABLE cloudwatch_daily_datapoints (
            usage_date DATE NOT NULL,
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            metric_name VARCHAR NOT NULL,
            statistic VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            fetched_at TIMESTAMP NOT NULL,
            PRIMARY KEY (usage_date, connection_id, region, model_id, metric_name, statistic)
        );
        """,
    ),
    (
        # The bedrock-mantle endpoint (AWS/BedrockMantle): a row says which endpoint it
        # came from, raw points keep the mantle Project dimension, and usage per project
        # has its own table. The PRIMARY KEYs go: their ART indexes made the file ~35x
        # larger and every write slower; the grain stays unique because every write
        # replaces whole windows in one transaction (checked by `unique_grain`).
        2,
        """
        CREATE TABLE cloudwatch_daily_datapoints_v2 (
            usage_date DATE NOT NULL,
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            project_id VARCHAR NOT NULL DEFAULT '',
            metric_name VARCHAR NOT NULL,
            statistic VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            fetched_at TIMESTAMP NOT NULL
        );
        INSERT INTO cloudwatch_daily_datapoints_v2
            SELECT usage_date, connection_id, account_id, region, model_id, '', metric_name,
                   statistic, value, fetched_at
            FROM cloudwatch_daily_datapoints
            ORDER BY connection_id, region, usage_date;
        DROP TABLE cloudwatch_daily_datapoints;
        ALTER TABLE cloudwatch_daily_datapoints_v2 RENAME TO cloudwatch_daily_datapoints;

        CREATE TABLE bedrock_usage_daily_v2 (
            usage_date DATE NOT NULL,
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            api_endpoint VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            model_provider VARCHAR NOT NULL,
            base_model_id VARCHAR NOT NULL,
            inference_scope VARCHAR NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            invocations BIGINT NOT NULL,
            cache_read_input_tokens BIGINT NOT NULL,
            cache_write_input_tokens BIGINT NOT NULL,
            client_errors BIGINT NOT NULL,
            server_errors BIGINT NOT NULL,
            throttles BIGINT NOT NULL,
            latency_ms_sum DOUBLE NOT NULL,
            latency_samples BIGINT NOT NULL,
            synced_at TIMESTAMP NOT NULL
        );
        INSERT INTO bedrock_usage_daily_v2
            SELECT usage_date, connection_id, account_id, region, 'bedrock-runtime', model_id,
                   model_provider, base_model_id, inference_scope, input_tokens, output_tokens,
                   invocations, cache_read_input_tokens, cache_write_input_tokens,
                   client_errors, server_errors, throttles, latency_ms_sum, latency_samples,
                   synced_at
            FROM bedrock_usage_daily
            ORDER BY connection_id, region, usage_date;
        DROP TABLE bedrock_usage_daily;
        ALTER TABLE bedrock_usage_daily_v2 RENAME TO bedrock_usage_daily;

        CREATE TABLE bedrock_usage_daily_by_project (
            usage_date DATE NOT NULL,
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            project_id VARCHAR NOT NULL,
            model_id VARCHAR NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            inferences BIGINT NOT NULL,
            client_errors BIGINT NOT NULL,
            synced_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        # List prices for the cost estimate (`storage/costs.py`); the shipped snapshot
        # is loaded into it by `ensure_schema`.
        3,
        """
        CREATE TABLE bedrock_prices (
            model_id VARCHAR NOT NULL,
            price_scope VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            token_type VARCHAR NOT NULL,
            usd_per_million_tokens DECIMAL(18,9) NOT NULL,
            effective_from DATE NOT NULL,
            effective_to DATE,
            source VARCHAR NOT NULL,
            read_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        # Windows of the usage tables committed but not yet in the analysts' copy: noted
        # in the transaction that rewrote them, removed once a publish copied them, so a
        # copy left behind by a killed or failed publish is caught up by the next one.
        # first_day and last_day NULL: every day of the connection (a purge).
        4,
        """
        CREATE TABLE unpublished_windows (
            window_id VARCHAR NOT NULL,
            connection_id VARCHAR NOT NULL,
            first_day DATE,
            last_day DATE
        );
        """,
    ),
    (
        # What AWS billed for Bedrock, from a billing source's CUR 2.0 export
        # (`billing/cur.py`), a billing period replaced whole each time it is read.
        5,
        """
        CREATE TABLE bedrock_billed_daily (
            billing_source VARCHAR NOT NULL,
            billing_period VARCHAR NOT NULL,
            usage_date DATE NOT NULL,
            payer_account_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            product_code VARCHAR NOT NULL,
            usage_type VARCHAR NOT NULL,
            model_id VARCHAR,
            token_type VARCHAR,
            service_tier VARCHAR NOT NULL,
            price_scope VARCHAR NOT NULL,
            line_item_type VARCHAR NOT NULL,
            usage_amount DOUBLE NOT NULL,
            pricing_unit VARCHAR NOT NULL,
            tokens BIGINT,
            unblended_cost_usd DECIMAL(24,10) NOT NULL,
            net_unblended_cost_usd DECIMAL(24,10) NOT NULL,
            iam_principal VARCHAR NOT NULL,
            tags VARCHAR NOT NULL,
            read_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        # Application inference profiles a connection's usage names, resolved to the
        # model behind them (storage/profiles.py).
        6,
        """
        CREATE TABLE bedrock_inference_profiles (
            connection_id VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL,
            region VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            profile_arn VARCHAR NOT NULL,
            profile_name VARCHAR NOT NULL,
            model_arns VARCHAR[] NOT NULL,
            base_model_id VARCHAR NOT NULL,
            model_provider VARCHAR NOT NULL,
            inference_scope VARCHAR NOT NULL,
            tags VARCHAR NOT NULL,
            read_at TIMESTAMP NOT NULL
        );
        """,
    ),
    # The ownership map and the tag keys owners are read from (storage/owners.py).
    (7, OWNER_SCHEMA),
)


# A new DuckLake starts at this version with the layout the migrations up to it built:
# DuckLake has no PRIMARY KEY, so migration 1 cannot run there. A test checks that the
# two layouts are the same; migrations after it apply to files and lakes alike.
LAKE_BASELINE_VERSION = 3
LAKE_BASELINE = """
CREATE TABLE cloudwatch_daily_datapoints (
    usage_date DATE NOT NULL, connection_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL,
    region VARCHAR NOT NULL, model_id VARCHAR NOT NULL, project_id VARCHAR NOT NULL,
    metric_name VARCHAR NOT NULL, statistic VARCHAR NOT NULL, value DOUBLE NOT NULL,
    fetched_at TIMESTAMP NOT NULL
);
CREATE TABLE bedrock_usage_daily (
    usage_date DATE NOT NULL, connection_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL,
    region VARCHAR NOT NULL, api_endpoint VARCHAR NOT NULL, model_id VARCHAR NOT NULL,
    model_provider VARCHAR NOT NULL, base_model_id VARCHAR NOT NULL,
    inference_scope VARCHAR NOT NULL, input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL, invocations BIGINT NOT NULL,
    cache_read_input_tokens BIGINT NOT NULL, cache_write_input_tokens BIGINT NOT NULL,
    client_errors BIGINT NOT NULL, server_errors BIGINT NOT NULL, throttles BIGINT NOT NULL,
    latency_ms_sum DOUBLE NOT NULL, latency_samples BIGINT NOT NULL,
    synced_at TIMESTAMP NOT NULL
);
CREATE TABLE bedrock_usage_daily_by_project (
    usage_date DATE NOT NULL, connection_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL,
    region VARCHAR NOT NULL, project_id VARCHAR NOT NULL, model_id VARCHAR NOT NULL,
    input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, inferences BIGINT NOT NULL,
    client_errors BIGINT NOT NULL, synced_at TIMESTAMP NOT NULL
);
CREATE TABLE bedrock_prices (
    model_id VARCHAR NOT NULL, price_scope VARCHAR NOT NULL, region VARCHAR NOT NULL,
    token_type VARCHAR NOT NULL, usd_per_million_tokens DECIMAL(18,9) NOT NULL,
    effective_from DATE NOT NULL, effective_to DATE, source VARCHAR NOT NULL,
    read_at TIMESTAMP NOT NULL
);
"""


def ensure_schema(db: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations this warehouse lacks (a new lake starts from the baseline),
    then make sure the cost views exist and the price snapshot shipped with this version
    is loaded; return the schema version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    migrated = False
    if current == 0 and is_lake(db):
        db.execute("BEGIN TRANSACTION")
        db.execute(LAKE_BASELINE)
        db.execute("INSERT INTO schema_version VALUES (?)", [LAKE_BASELINE_VERSION])
        db.execute("COMMIT")
        current, migrated = LAKE_BASELINE_VERSION, True
    for version, ddl in MIGRATIONS:
        if version > current:
            db.execute("BEGIN TRANSACTION")
            db.execute(ddl)
            db.execute("INSERT INTO schema_version VALUES (?)", [version])
            db.execute("COMMIT")
            current = version
            migrated = True
    _ensure_prices(db, migrated)
    return current


# Which definition of the analysts' views a warehouse holds: a digest of the modules that
# write their SQL. A release that changes a view without a migration (a faster cost view,
# a new column) replaces them the first time it opens the warehouse.
VIEWS_DIGEST_TABLE = "analyst_views_digest"


@cache
def views_digest() -> str:
    from . import costs, owners, reconcile

    digest = hashlib.sha256()
    for module in (costs, owners, reconcile):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _ensure_prices(db: duckdb.DuckDBPyConnection, migrated: bool) -> None:
    shipped = shipped_prices()
    db.execute(f"CREATE TABLE IF NOT EXISTS {VIEWS_DIGEST_TABLE} (digest VARCHAR NOT NULL)")
    stored = db.execute(f"SELECT max(digest) FROM {VIEWS_DIGEST_TABLE}").fetchone()[0]
    if not migrated and stored == views_digest() and has_source(db, shipped[0].source):
        return
    db.execute("BEGIN TRANSACTION")
    try:
        if not has_source(db, shipped[0].source):
            store_prices(db, shipped)
        create_cost_views(db)
        db.execute(f"DELETE FROM {VIEWS_DIGEST_TABLE}")
        db.execute(f"INSERT INTO {VIEWS_DIGEST_TABLE} VALUES (?)", [views_digest()])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
