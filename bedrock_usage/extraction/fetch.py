"""Fetch one region's daily Bedrock metrics for a range of UTC days.

Cost rules (GetMetricData is billed per metric requested and rate limited):
- one call spans the whole range with Period=86400 from 00:00Z, so a day is a bucket;
- a call carries at most 500 queries and a response at most 100,800 data points, so
  series are packed `min(500, 100800 // days)` to a call: for S series over D days the
  number of calls is the lower bound max(ceil(S/500), ceil(S*D/100800)) (up to
  rounding once S*D runs into hundreds of pages);
- NextToken and PartialData are followed to the end, and a (series, day) seen twice is
  kept once, never added twice.

Which series: in `AWS/Bedrock` exactly the `{ModelId}` dimension set per model, in
`AWS/BedrockMantle` exactly `{Model}` per model, plus each namespace's dimensionless
region total (the double-count trap: other dimension sets repeat the same usage). The
mantle endpoint's `{Project, Model}` series are read too, for attribution by project
only. Both namespaces share the same GetMetricData calls.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import boto3
import numpy as np
import pandas as pd

from ..days import DayRange, utc_today
from ..memory import release_freed_memory
from . import catalog
from .aws import cloudwatch_client
from .failures import FailureKind, ImplausibleValueError, RegionFailure, classify
from .metrics import (
    DAY_SECONDS,
    ENDPOINTS,
    MANTLE,
    MANTLE_METRICS,
    MANTLE_PRESENCE_METRICS,
    PRESENCE_METRICS,
    PROJECT_DIMENSION,
    RUNTIME,
    USAGE_METRICS,
    KnownSeries,
    Series,
    UsageMetric,
    project_series_for,
    series_for,
)

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
# ListMetrics only sees metrics that reported data in the past two weeks.
LIST_METRICS_WINDOW_DAYS = 14

DATAPOINT_COLUMNS = ["usage_date", "model_id", "project_id", "metric_name", "statistic", "value"]


@dataclass
class RegionFetch:
    """What one region answered: data points, or the reason it could not be read."""

    region: str
    day_range: DayRange
    datapoints: pd.DataFrame
    failure: RegionFailure | None = None
    get_metric_data_calls: int = 0
    list_metrics_calls: int = 0
    metrics_requested: int = 0
    models_listed: KnownSeries = field(default_factory=KnownSeries)
    models_found_in_catalog: set[str] = field(default_factory=set)
    datapoint_count: int = 0  # these two stay when the data points are released
    models_seen: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.failure is None

    def hold(self, datapoints: pd.DataFrame) -> None:
        """Keep what the region answered, with its count and its models."""
        self.datapoints = datapoints
        self.datapoint_count = len(datapoints)
        self.models_seen = frozenset(datapoints.model_id.dropna().unique())

    def release_datapoints(self) -> None:
        """Drop the data points once they are stored: a year of a region is ≈3 MB, and a
        run holds every connection's fetches until it ends."""
        self.datapoints = empty_datapoints()

    def summary(self) -> str:
        """What was read and what it cost, in one line."""
        return (
            f"{self.datapoint_count} data points, {len(self.models_seen)} model(s), "
            f"{self.get_metric_data_calls} GetMetricData call(s), "
            f"{self.metrics_requested} metrics requested"
        )


def queries_per_call(days: int) -> int:
    """How many series fit one GetMetricData call without a second page."""
    return max(1, min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_CALL // days))


def lower_bound_calls(series: int, days: int) -> int:
    """The fewest GetMetricData calls that can read `series` series over `days` days."""
    if series == 0:
        return 0
    return max(-(-series // MAX_QUERIES_PER_CALL), -(-(series * days) // MAX_DATAPOINTS_PER_CALL))


def list_bedrock_models(client) -> tuple[KnownSeries, int]:
    """The series ListMetrics shows in both namespaces (every page): models with a series
    of exactly the model dimension, mantle (project, model) pairs; and the calls made."""
    listed = KnownSeries()
    calls = 0
    for endpoint in ENDPOINTS:
        token = None
        while True:
            kwargs = {"Namespace": endpoint.namespace}
            if token:
                kwargs["NextToken"] = token
            page = client.list_metrics(**kwargs)
            calls += 1
            for metric in page.get("Metrics", []):
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []}
                if set(dimensions) == {endpoint.model_dimension}:
                    models = listed.runtime if endpoint is RUNTIME else listed.mantle
                    models.add(dimensions[endpoint.model_dimension])
                elif endpoint is MANTLE and set(dimensions) == {PROJECT_DIMENSION, "Model"}:
                    listed.projects.add((dimensions[PROJECT_DIMENSION], dimensions["Model"]))
            token = page.get("NextToken")
            if not token:
                break
    return listed, calls


@dataclass(frozen=True)
class FetchProgress:
    """A region's reading so far: told after every GetMetricData call."""

    region: str
    days: int
    calls: int
    metrics_requested: int


ProgressListener = Callable[[FetchProgress], None]


class _Reader:
    """GetMetricData and ListMetrics for one region, counting every call."""

    def __init__(
        self,
        client,
        region: str,
        day_range: DayRange,
        on_progress: ProgressListener | None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.region = region
        self.day_range = day_range
        self.on_progress = on_progress
        self.stop = stop
        self.get_metric_data_calls = 0
        self.list_metrics_calls = 0
        self.metrics_requested = 0

    def list_models(self) -> KnownSeries:
        models, calls = list_bedrock_models(self.client)
        self.list_metrics_calls += calls
        return models

    def read(self, series: list[Series]) -> Answers:
        answers = Answers()
        per_call = queries_per_call(self.day_range.days)
        for offset in range(0, len(series), per_call):
            chunk = series[offset : offset + per_call]
            queries = [s.query(f"q{i}") for i, s in enumerate(chunk)]
            token = None
            while True:
                kwargs = {
                    "MetricDataQueries": queries,
                    "StartTime": self.day_range.start,
                    "EndTime": self.day_range.end,
                    "ScanBy": "TimestampAscending",
                    "MaxDatapoints": MAX_DATAPOINTS_PER_CALL,
                }
                if token:
                    kwargs["NextToken"] = token
                if self.stop is not None and self.stop.is_set():
                    raise SyncStopped
                response = self.client.get_metric_data(**kwargs)
                self.get_metric_data_calls += 1
                self.metrics_requested += len(queries)
                if self.on_progress:
                    self.on_progress(
                        FetchProgress(
                            self.region,
                            self.day_range.days,
                            self.get_metric_data_calls,
                            self.metrics_requested,
                        )
                    )
                for result in response.get("MetricDataResults", []):
                    if result.get("StatusCode") == "InternalError":
                        raise CloudWatchInternalError(result.get("Id", ""))
                    answers.add(
                        chunk[int(result["Id"][1:])],
                        result.get("Timestamps", []),
                        result.get("Values", []),
                    )
                token = response.get("NextToken")
                del response
                release_freed_memory()
                if not token:
                    break
        return answers


class Answers:
    """What CloudWatch answered for one region, kept compact: per series, arrays of UTC
    epoch days and values in the order they arrived (a year of a region is 150k points:
    as Python objects they would cost ten times the memory). A (series, day) answered
    twice, as pages may repeat, keeps its last value and is never added twice."""

    def __init__(self) -> None:
        self._chunks: dict[Series, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)

    def add(self, series: Series, timestamps: list, values: list) -> None:
        if len(timestamps) != len(values):
            raise ValueError(f"{len(timestamps)} timestamps for {len(values)} values")
        if timestamps:
            days = np.fromiter(
                (int(moment.timestamp()) // DAY_SECONDS for moment in timestamps),
                dtype=np.int32,
                count=len(timestamps),
            )
            points = np.asarray(values, dtype=np.float64)
            implausible = ~np.isfinite(points) | (np.abs(points) > EXACT_LIMIT)
            if implausible.any():
                first = int(np.argmax(implausible))
                raise ImplausibleValueError(
                    metric=series.metric.metric_name,
                    value=f"{points[first]:g}",
                    day=_EPOCH + timedelta(days=int(days[first])),
                )
            self._chunks[series].append((days, points))

    def series(self) -> list[Series]:
        """The series that answered with at least one point."""
        return [series for series, chunks in self._chunks.items() if chunks]

    def by_day(self, series: Series) -> dict[date, float]:
        """One series' values by UTC day."""
        values: dict[date, float] = {}
        for days, points in self._chunks.get(series, ()):
            for day, value in zip(days.tolist(), points.tolist(), strict=True):
                values[_EPOCH + timedelta(days=day)] = value
        return values

    def take(self, other: Answers, keep: Callable[[Series], bool] = lambda _: True) -> None:
        """Adopt `other`'s series that `keep` accepts (replacing any held here)."""
        for series, chunks in other._chunks.items():
            if keep(series):
                self._chunks[series] = chunks

    def frame(self) -> pd.DataFrame:
        """One row per (series, day): DATAPOINT_COLUMNS, model_id None for the region
        total and project_id None where the series has no project."""
        keys = self.series()
        if not keys:
            return empty_datapoints()
        parts = [(i, days, values) for i, s in enumerate(keys) for days, values in self._chunks[s]]
        codes = np.concatenate([np.full(len(days), i, dtype=np.int64) for i, days, _ in parts])
        days = np.concatenate([days for _, days, _ in parts]).astype(np.int64)
        values = np.concatenate([values for _, _, values in parts])
        # The last answer of each (series, day): first seen when read backwards.
        _, first_backwards = np.unique((codes * 2**32 + days)[::-1], return_index=True)
        keep = np.sort(len(codes) - 1 - first_backwards)
        codes = codes[keep]

        def column(attribute: Callable[[Series], str | None]) -> pd.Categorical:
            # Few distinct strings, many rows: a code per row (None is code -1).
            names = [attribute(s) for s in keys]
            categories = sorted({name for name in names if name is not None})
            index = {name: i for i, name in enumerate(categories)}
            per_series = np.array([index.get(name, -1) for name in names], dtype=np.int32)
            return pd.Categorical.from_codes(per_series[codes], categories=categories)

        return pd.DataFrame(
            {
                "usage_date": days[keep].astype("datetime64[D]"),
                "model_id": column(lambda s: s.model_id),
                "project_id": column(lambda s: s.project_id),
                "metric_name": column(lambda s: s.metric.metric_name),
                "statistic": column(lambda s: s.metric.statistic),
                "value": values[keep],
            }
        )


_EPOCH = date(1970, 1, 1)
# Counts are rounded once into BIGINT: a double holds every integer up to 2^53.
EXACT_LIMIT = 2.0**53


class SyncStopped(BaseException):
    """The sync was interrupted: the other regions stop at their next call. A
    BaseException, so no region records it as a failure of its own."""


class CloudWatchInternalError(Exception):
    def __init__(self, query_id: str) -> None:
        super().__init__(f"CloudWatch answered InternalError for query {query_id}")


def fetch_region(
    session: boto3.Session,
    region: str,
    day_range: DayRange,
    known: KnownSeries | None = None,
    on_progress: ProgressListener | None = None,
    stop: threading.Event | None = None,
    extra_model_ids: Iterable[str] = (),
) -> RegionFetch:
    """Every usage metric of every model in `region` for `day_range`, in both
    namespaces, plus each namespace's region total. `known` holds the series seen
    before for this account and region (they may be idle for longer than ListMetrics
    can see); `extra_model_ids` are read although nothing lists them (custom or
    provisioned model ARNs, application profile ids)."""
    reader = _Reader(cloudwatch_client(session, region), region, day_range, on_progress, stop)
    fetch = RegionFetch(region, day_range, empty_datapoints())
    try:
        fetch.models_listed = reader.list_models()
        declared = set(extra_model_ids)
        wanted = fetch.models_listed | (known or KnownSeries()) | KnownSeries(declared, declared)
        runtime, mantle = sorted(wanted.runtime), sorted(wanted.mantle)
        answers = reader.read(
            series_for([None, *runtime])
            + series_for([None, *mantle], MANTLE_METRICS)
            + project_series_for(sorted(wanted.projects))
        )
        found = _probe_idle_models(reader, answers, runtime, RUNTIME_PROBE)
        found |= _probe_idle_models(reader, answers, mantle, MANTLE_PROBE)
        fetch.models_found_in_catalog = found
        fetch.hold(answers.frame())
        del answers
    except Exception as error:  # noqa: BLE001 - classified below, or re-raised
        failure = (
            RegionFailure(region, FailureKind.OTHER, "InternalError", str(error))
            if isinstance(error, CloudWatchInternalError)
            else classify(region, error)
        )
        fetch.failure = failure
        fetch.hold(empty_datapoints())
    fetch.get_metric_data_calls = reader.get_metric_data_calls
    fetch.list_metrics_calls = reader.list_metrics_calls
    fetch.metrics_requested = reader.metrics_requested
    return fetch


@dataclass(frozen=True)
class _Probe:
    """How to look for a model idle for longer than ListMetrics can see, per endpoint."""

    presence: tuple[UsageMetric, ...]
    metrics: tuple[UsageMetric, ...]
    catalog_ids: Callable[[], list[str]]


RUNTIME_PROBE = _Probe(PRESENCE_METRICS, USAGE_METRICS, catalog.known_model_ids)
MANTLE_PROBE = _Probe(MANTLE_PRESENCE_METRICS, MANTLE_METRICS, catalog.mantle_model_ids)


def _probe_idle_models(
    reader: _Reader,
    answers: Answers,
    models: list[str],
    probe: _Probe,
) -> set[str]:
    """When the region total shows usage older than two weeks that the known models do
    not explain, read the catalog's other models (presence first, the rest for those
    found) into `answers`; returns the models found."""
    if not _unattributed_days(answers, models, probe.presence):
        return set()
    probed = [m for m in probe.catalog_ids() if m not in set(models)]
    presence = reader.read(series_for(probed, probe.presence))
    found = sorted({s.model_id for s in presence.series()})
    answers.take(presence, lambda s: s.model_id in found)
    rest = tuple(m for m in probe.metrics if m not in probe.presence)
    answers.take(reader.read(series_for(found, rest)))
    return set(found)


def _unattributed_days(
    answers: Answers,
    models: list[str],
    presence: tuple[UsageMetric, ...],
) -> list[date]:
    """Days older than the ListMetrics window where the region total exceeds the sum over
    the known models: a model idle for over two weeks may hide there."""
    window_start = utc_today() - timedelta(days=LIST_METRICS_WINDOW_DAYS - 1)
    gaps = []
    for metric in presence:
        by_model = [answers.by_day(Series(metric, m)) for m in models]
        for day, total_value in answers.by_day(Series(metric, None)).items():
            if day >= window_start:
                continue
            if total_value > sum(values.get(day, 0.0) for values in by_model):
                gaps.append(day)
    return sorted(set(gaps))


def empty_datapoints() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "usage_date": pd.Series(dtype="object"),
            "model_id": pd.Series(dtype="object"),
            "project_id": pd.Series(dtype="object"),
            "metric_name": pd.Series(dtype="object"),
            "statistic": pd.Series(dtype="object"),
            "value": pd.Series(dtype="float64"),
        }
    )
