"""From long CloudWatch data points to the daily usage rows, in SQL.

Grain: (usage_date, connection_id, account_id, region, api_endpoint, model_id). Each
endpoint is shaped on its own: the runtime endpoint's `AWS/Bedrock` series and the
mantle endpoint's `AWS/BedrockMantle` Model-level series, each against its own region
total, so a region's rows sum to the two totals added. Counts are exact
integers: CloudWatch answers doubles, which hold integers exactly up to 2**53, so each
value is rounded once (half to even) and all arithmetic after that is BIGINT.

The region total (the dimensionless series) is never added to the models: where it
exceeds the sum over the models for a metric and day, one `(unattributed)` row carries
the difference, so the table sums to the region total. Where it is lower, nothing is
written; the gap stays visible to the reconciliation check through the raw table.

The shaping runs inside DuckDB, over the stored data points: a year of a connection
is 600k points, which as pandas objects would cost hundreds of megabytes.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ..extraction.metrics import (
    COUNT_COLUMNS,
    MANTLE_METRICS,
    NO_PROJECT,
    PROJECT_METRICS,
    TOTAL,
    USAGE_METRICS,
    UsageMetric,
)
from ..frames import literal, registered
from .model_ids import UNATTRIBUTED, describe_model_id

GRAIN = ["usage_date", "connection_id", "account_id", "region", "api_endpoint", "model_id"]
DERIVED = ["model_provider", "base_model_id", "inference_scope"]
USAGE_COLUMNS = [
    *GRAIN,
    *DERIVED,
    "input_tokens",
    "output_tokens",
    "invocations",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "client_errors",
    "server_errors",
    "throttles",
    "latency_ms_sum",
    "latency_samples",
    "synced_at",
]
PROJECT_COLUMNS = [
    "usage_date",
    "connection_id",
    "account_id",
    "region",
    "project_id",
    "model_id",
    "input_tokens",
    "output_tokens",
    "inferences",
    "client_errors",
    "synced_at",
]
# The columns every query here reads from its `points` relation.
POINT_COLUMNS = [
    "usage_date",
    "connection_id",
    "account_id",
    "region",
    "model_id",  # TOTAL for the region total
    "project_id",  # NO_PROJECT where the series has none
    "metric_name",
    "statistic",
    "value",
    "synced_at",
]
_KEYS = ["usage_date", "connection_id", "account_id", "region", "api_endpoint", "synced_at"]
_SUMMED = [*COUNT_COLUMNS, "latency_ms_sum"]


def _metric_table(metrics: list[UsageMetric]) -> str:
    rows = ", ".join(
        f"({literal(m.metric_name)}, {literal(m.statistic)}, "
        f"{literal(m.endpoint.name)}, {literal(m.column)})"
        for m in metrics
    )
    return f"(VALUES {rows}) AS metric_columns(metric_name, statistic, api_endpoint, metric_column)"


def _pivoted(columns: list[str]) -> str:
    """One column per usage metric: the day's value, 0 where none came; counts rounded."""
    out = []
    for column in columns:
        value = f"coalesce(sum(value) FILTER (WHERE metric_column = {literal(column)}), 0)"
        if column == "latency_ms_sum":
            out.append(f"{value}::DOUBLE AS {column}")
        else:
            out.append(f"round_even({value}, 0)::BIGINT AS {column}")
    return ", ".join(out)


def usage_query(points: str, descriptions: str) -> str:
    """SELECT of `bedrock_usage_daily`'s rows (USAGE_COLUMNS) from the relation `points`
    (POINT_COLUMNS) and the relation `descriptions` (model_descriptions' columns).
    Project+Model series are left out: they repeat the Model level."""
    keys = ", ".join(_KEYS)
    gap_columns = ", ".join(
        f"greatest(t.{c} - coalesce(a.{c}, 0), 0)::BIGINT AS {c}" for c in COUNT_COLUMNS
    )
    attributed = ", ".join(f"sum({c}) AS {c}" for c in _SUMMED)
    any_count = " OR ".join(f"{c} > 0" for c in COUNT_COLUMNS)
    return f"""
        WITH wide AS (
            SELECT {keys}, model_id, {_pivoted(_SUMMED)}
            FROM {points} JOIN {_metric_table(USAGE_METRICS + MANTLE_METRICS)}
                USING (metric_name, statistic)
            WHERE project_id = {literal(NO_PROJECT)}
            GROUP BY ALL
        ),
        models AS (SELECT * FROM wide WHERE model_id <> {literal(TOTAL)}),
        attributed AS (SELECT {keys}, {attributed} FROM models GROUP BY ALL),
        gaps AS (
            SELECT {", ".join(f"t.{k}" for k in _KEYS)},
                {literal(UNATTRIBUTED)} AS model_id, {gap_columns},
                CASE WHEN t.latency_samples > coalesce(a.latency_samples, 0)
                    THEN t.latency_ms_sum - coalesce(a.latency_ms_sum, 0) ELSE 0 END
                    AS latency_ms_sum
            FROM wide AS t LEFT JOIN attributed AS a USING ({keys})
            WHERE t.model_id = {literal(TOTAL)}
        ),
        rows AS (
            SELECT * FROM models
            UNION ALL BY NAME
            SELECT * FROM gaps WHERE {any_count}
        )
        SELECT {", ".join(USAGE_COLUMNS)}
        FROM rows JOIN {descriptions} USING (model_id)
        ORDER BY usage_date, region, api_endpoint, model_id
    """


def project_query(points: str, descriptions: str = "") -> str:
    """SELECT of `bedrock_usage_daily_by_project`'s rows (PROJECT_COLUMNS) from `points`:
    the mantle endpoint's usage per project and model, from its Project+Model series
    (`descriptions` is not needed: the signature matches usage_query's)."""
    columns = [m.column for m in PROJECT_METRICS]
    return f"""
        SELECT usage_date, connection_id, account_id, region, project_id, model_id,
            {_pivoted(columns)}, synced_at
        FROM {points} JOIN {_metric_table(PROJECT_METRICS)} USING (metric_name, statistic)
        WHERE project_id <> {literal(NO_PROJECT)}
        GROUP BY ALL
        ORDER BY usage_date, region, project_id, model_id
    """


def model_descriptions(model_ids) -> pd.DataFrame:
    """DERIVED for each model id, and for the unattributed row."""
    ids = sorted({*model_ids, UNATTRIBUTED})
    descriptions = [describe_model_id(m) for m in ids]  # cached per id
    return pd.DataFrame(
        {
            "model_id": ids,
            "model_provider": [d.model_provider for d in descriptions],
            "base_model_id": [d.base_model_id for d in descriptions],
            "inference_scope": [d.inference_scope for d in descriptions],
        }
    )


def shape_daily_usage(
    datapoints: pd.DataFrame,
    connection_id: str,
    account_id: str,
    region: str,
    synced_at: datetime,
) -> pd.DataFrame:
    """`bedrock_usage_daily`'s rows for one region's data points as fetched (model_id
    None for the region total), shaped by the same query the warehouse runs."""
    return _shape(usage_query, datapoints, connection_id, account_id, region, synced_at)


def _shape(query, datapoints, connection_id, account_id, region, synced_at) -> pd.DataFrame:
    points = datapoints.assign(
        **{column: None for column in ("model_id", "project_id") if column not in datapoints}
    )
    with duckdb.connect() as db:
        name = registered(db, points)
        descriptions = registered(db, model_descriptions(points.model_id.dropna()))
        relation = f"""(
            SELECT usage_date::DATE AS usage_date, $connection AS connection_id,
                $account AS account_id, $region AS region,
                coalesce(model_id, {literal(TOTAL)}) AS model_id,
                coalesce(project_id, {literal(NO_PROJECT)}) AS project_id,
                metric_name, statistic, value, $synced::TIMESTAMP AS synced_at
            FROM {name}
        )"""
        params = {
            "connection": connection_id,
            "account": account_id,
            "region": region,
            "synced": synced_at.replace(tzinfo=None) if synced_at.tzinfo else synced_at,
        }
        return db.execute(query(relation, descriptions), params).df()
