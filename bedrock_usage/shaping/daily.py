"""From long CloudWatch data points to the wide daily usage frame.

Grain: (usage_date, connection_id, account_id, region, api_endpoint, model_id). Each
endpoint is shaped on its own: the runtime endpoint's `AWS/Bedrock` series and the
mantle endpoint's `AWS/BedrockMantle` Model-level series, each against its own region
total, so a region's rows sum to the two totals added. Counts are exact
integers: CloudWatch answers doubles, which hold integers exactly up to 2**53, so each
value is rounded once and all arithmetic after that is int64.

The region total (the dimensionless series) is never added to the models: where it
exceeds the sum over the models for a metric and day, one `(unattributed)` row carries
the difference, so the table sums to the region total. Where it is lower, nothing is
written; the gap stays visible to the reconciliation check through the raw table.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ..extraction.metrics import (
    COUNT_COLUMNS,
    ENDPOINTS,
    MANTLE_METRICS,
    PROJECT_METRICS,
    USAGE_METRICS,
    endpoint_of_metric,
)
from .model_ids import UNATTRIBUTED, describe_model_id

TOTAL = "(region total)"
NO_PROJECT = ""  # project_id of every series that has no Project dimension
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
# Metric names differ between the two namespaces, so one map serves both.
_COLUMN_OF = {f"{m.metric_name}|{m.statistic}": m.column for m in USAGE_METRICS + MANTLE_METRICS}
_VALUE_COLUMNS = [m.column for m in USAGE_METRICS]


def project_ids(datapoints: pd.DataFrame) -> pd.Series:
    """Each point's mantle project, NO_PROJECT where the series has none."""
    if "project_id" not in datapoints:
        return pd.Series(NO_PROJECT, index=datapoints.index, dtype=object)
    return datapoints["project_id"].fillna(NO_PROJECT)


def _naive_utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def exact_counts(values: pd.Series | np.ndarray) -> np.ndarray:
    """CloudWatch's doubles as int64, without drift up to 2**53."""
    return np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)


def wide_by_model(datapoints: pd.DataFrame) -> pd.DataFrame:
    """One row per (usage_date, model_id) and a column per usage metric; the region total
    is the row with model_id TOTAL."""
    if datapoints.empty:
        return pd.DataFrame(columns=["usage_date", "model_id", *_VALUE_COLUMNS])
    keys = datapoints.metric_name + "|" + datapoints.statistic
    frame = datapoints.assign(
        column=keys.map(_COLUMN_OF), model_id=datapoints.model_id.fillna(TOTAL)
    )
    # Each (day, model, metric, statistic) arrives once: the extractor keeps one value per key.
    wide = frame.pivot(index=["usage_date", "model_id"], columns="column", values="value")
    wide = wide.reindex(columns=_VALUE_COLUMNS).fillna(0.0).reset_index()
    for column in COUNT_COLUMNS:
        wide[column] = exact_counts(wide[column])
    return wide


def shape_daily_usage(
    datapoints: pd.DataFrame,
    connection_id: str,
    account_id: str,
    region: str,
    synced_at: datetime,
) -> pd.DataFrame:
    """The rows of `bedrock_usage_daily` for one region's data points (Project+Model
    series excluded: they repeat the Model level)."""
    datapoints = datapoints[project_ids(datapoints) == NO_PROJECT]
    endpoints = datapoints.metric_name.map(lambda name: endpoint_of_metric(name).name)
    parts = []
    for endpoint in ENDPOINTS:
        wide = wide_by_model(datapoints[endpoints == endpoint.name])
        is_total = wide.model_id == TOTAL
        models, totals = wide[~is_total], wide[is_total].set_index("usage_date")
        part = pd.concat([models, _unattributed(models, totals)], ignore_index=True)
        parts.append(part.assign(api_endpoint=endpoint.name))
    rows = pd.concat(parts, ignore_index=True)
    descriptions = [describe_model_id(m) for m in rows.model_id]  # cached per id
    rows = rows.assign(
        connection_id=connection_id,
        account_id=account_id,
        region=region,
        model_provider=[d.model_provider for d in descriptions],
        base_model_id=[d.base_model_id for d in descriptions],
        inference_scope=[d.inference_scope for d in descriptions],
        synced_at=_naive_utc(synced_at),
    )
    rows = rows.reindex(columns=USAGE_COLUMNS)
    for column in COUNT_COLUMNS:
        rows[column] = rows[column].astype(np.int64)
    rows["latency_ms_sum"] = rows["latency_ms_sum"].astype(np.float64)
    return rows.sort_values(["usage_date", "api_endpoint", "model_id"], ignore_index=True)


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
_PROJECT_COLUMN_OF = {f"{m.metric_name}|{m.statistic}": m.column for m in PROJECT_METRICS}


def shape_project_usage(
    datapoints: pd.DataFrame,
    connection_id: str,
    account_id: str,
    region: str,
    synced_at: datetime,
) -> pd.DataFrame:
    """The rows of `bedrock_usage_daily_by_project`: the mantle endpoint's usage per
    project and model, from its Project+Model series."""
    points = datapoints[project_ids(datapoints) != NO_PROJECT]
    if points.empty:
        return pd.DataFrame(columns=PROJECT_COLUMNS)
    keys = points.metric_name + "|" + points.statistic
    frame = points.assign(column=keys.map(_PROJECT_COLUMN_OF)).dropna(subset=["column"])
    wide = frame.pivot(
        index=["usage_date", "project_id", "model_id"], columns="column", values="value"
    )
    value_columns = list(_PROJECT_COLUMN_OF.values())
    wide = wide.reindex(columns=value_columns).fillna(0.0).reset_index()
    for column in value_columns:
        wide[column] = exact_counts(wide[column])
    wide = wide.assign(
        connection_id=connection_id,
        account_id=account_id,
        region=region,
        synced_at=_naive_utc(synced_at),
    )
    return wide.reindex(columns=PROJECT_COLUMNS).sort_values(
        ["usage_date", "project_id", "model_id"], ignore_index=True
    )


def _unattributed(models: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    if totals.empty:
        return models.iloc[0:0]
    attributed = (
        models.groupby("usage_date")[_VALUE_COLUMNS].sum().reindex(totals.index, fill_value=0)
    )
    gap = totals[_VALUE_COLUMNS] - attributed
    for column in COUNT_COLUMNS:
        gap[column] = gap[column].clip(lower=0).astype(np.int64)
    # Latency only where the total has samples no model accounts for.
    gap["latency_ms_sum"] = np.where(gap["latency_samples"] > 0, gap["latency_ms_sum"], 0.0)
    gap = gap[(gap[list(COUNT_COLUMNS)] > 0).any(axis=1)]
    return gap.reset_index().assign(model_id=UNATTRIBUTED)
