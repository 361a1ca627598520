"""Queries behind the data-quality checks, over the windows a run wrote.

The Dagster checks (`defs/checks.py`) turn these numbers into pass or fail and advice.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from ..days import DayRange
from ..extraction.metrics import COUNT_COLUMNS, TOTAL
from ..shaping.model_ids import UNATTRIBUTED


def window_filter(windows: dict[str, DayRange]) -> tuple[str, list[object]]:
    """A WHERE clause (and its parameters) for the rows of `windows`."""
    clauses, params = [], []
    for connection_id, day_range in windows.items():
        clauses.append("(connection_id = ? AND usage_date BETWEEN ? AND ?)")
        params += [connection_id, day_range.first, day_range.last]
    return " OR ".join(clauses) or "FALSE", params


def duplicate_keys(db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]) -> int:
    """Keys of the usage grain that occur more than once."""
    where, params = window_filter(windows)
    return db.execute(
        "SELECT count(*) FROM (SELECT usage_date, connection_id, region, model_id "
        f"FROM bedrock_usage_daily WHERE {where} GROUP BY ALL HAVING count(*) > 1)",
        params,
    ).fetchone()[0]


def rows_with_negative_counts(db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]) -> int:
    where, params = window_filter(windows)
    condition = " OR ".join(f"{column} < 0" for column in COUNT_COLUMNS)
    return db.execute(
        f"SELECT count(*) FROM bedrock_usage_daily WHERE ({where}) AND ({condition})", params
    ).fetchone()[0]


def total_gaps(
    db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange], tolerance: float
) -> pd.DataFrame:
    """(connection, region, day, metric) where the models' sum and the region total
    differ by more than `tolerance`, largest first."""
    where, params = window_filter(windows)
    return db.execute(
        f"""
        WITH sums AS (
            SELECT connection_id, region, usage_date, metric_name,
                   sum(value) FILTER (WHERE model_id = ?) AS region_total,
                   coalesce(sum(value) FILTER (WHERE model_id <> ?), 0) AS models_sum
            FROM cloudwatch_daily_datapoints
            WHERE ({where}) AND statistic = 'Sum' AND metric_name <> 'InvocationLatency'
              AND project_id = ''  -- the Project+Model level repeats the Model level
            GROUP BY ALL
        )
        SELECT connection_id, region, usage_date::VARCHAR AS usage_date, metric_name,
               region_total, models_sum, models_sum - region_total AS gap
        FROM sums
        WHERE region_total IS NOT NULL
          AND abs(models_sum - region_total) > ? * greatest(region_total, 1)
        ORDER BY abs(models_sum - region_total) DESC
        """,
        [TOTAL, TOTAL, *params, tolerance],
    ).df()


def project_gaps(db: duckdb.DuckDBPyConnection, windows: dict[str, DayRange]) -> pd.DataFrame:
    """(connection, region, day, model) of the mantle endpoint where the projects' sum
    (Project+Model level) differs from the Model level, in inferences or tokens."""
    where, params = window_filter(windows)
    return db.execute(
        f"""
        WITH models AS (
            SELECT connection_id, region, usage_date, model_id, invocations AS inferences,
                   input_tokens, output_tokens
            FROM bedrock_usage_daily
            WHERE ({where}) AND api_endpoint = 'bedrock-mantle' AND model_id <> ?
        ),
        projects AS (
            SELECT connection_id, region, usage_date, model_id,
                   sum(inferences) AS inferences, sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens
            FROM bedrock_usage_daily_by_project WHERE {where} GROUP BY ALL
        )
        SELECT connection_id, region, usage_date::VARCHAR AS usage_date, model_id,
               m.inferences AS model_inferences, coalesce(p.inferences, 0) AS project_inferences,
               m.input_tokens AS model_input_tokens,
               coalesce(p.input_tokens, 0) AS project_input_tokens
        FROM models m LEFT JOIN projects p USING (connection_id, region, usage_date, model_id)
        WHERE m.inferences <> coalesce(p.inferences, 0)
           OR m.input_tokens <> coalesce(p.input_tokens, 0)
           OR m.output_tokens <> coalesce(p.output_tokens, 0)
        ORDER BY abs(m.input_tokens - coalesce(p.input_tokens, 0)) DESC
        """,
        [*params, UNATTRIBUTED, *params],
    ).df()
