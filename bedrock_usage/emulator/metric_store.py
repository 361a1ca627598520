"""CloudWatch metric storage and queries with AWS's semantics, for the emulator.

moto's own metric queries differ from AWS in ways that would let wrong code pass
(see ../shared/knowledge/cloudwatch-bedrock.md): a dimensionless query matches
every series, namespaces are ignored, and nothing is paged or expired. This store
keeps each series (namespace, name, exact dimension set) in sorted numpy arrays
so that a year of data for hundreds of series seeds in seconds and a query is a
binary search plus a bincount.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

DAY = 86_400
# CloudWatch retention tiers: 1-minute data for 15 days, 5-minute for 63 days,
# 1-hour for 455 days; nothing older can be read at all.
ONE_MINUTE_TIER_SECONDS = 15 * DAY
FIVE_MINUTE_TIER_SECONDS = 63 * DAY
RETENTION_SECONDS = 455 * DAY
# ListMetrics and SEARCH only see metrics that reported data in the past two weeks.
LIST_METRICS_WINDOW_SECONDS = 14 * DAY

STATISTICS = ("Sum", "SampleCount", "Average", "Minimum", "Maximum")

Dimensions = tuple[tuple[str, str], ...]


def dimension_key(dimensions: Iterable[tuple[str, str]] | dict[str, str] | None) -> Dimensions:
    """The canonical, order-free form of a dimension set: AWS treats each distinct set as
    its own metric, whatever order the dimensions were given in."""
    if not dimensions:
        return ()
    items = dimensions.items() if isinstance(dimensions, dict) else dimensions
    return tuple(sorted((str(name), str(value)) for name, value in items))


@dataclass(frozen=True)
class SeriesKey:
    namespace: str
    metric_name: str
    dimensions: Dimensions


@dataclass
class _Series:
    """One metric's points. Appends land in pending chunks and are merged on read."""

    timestamps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.empty(0))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0))
    minimums: np.ndarray = field(default_factory=lambda: np.empty(0))
    maximums: np.ndarray = field(default_factory=lambda: np.empty(0))
    pending: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def append(self, timestamps, sums, counts, minimums, maximums) -> None:
        self.pending.append((timestamps, sums, counts, minimums, maximums))

    def consolidate(self) -> None:
        if not self.pending:
            return
        columns = [
            np.concatenate([current, *(chunk[i] for chunk in self.pending)])
            for i, current in enumerate(
                (self.timestamps, self.sums, self.counts, self.minimums, self.maximums)
            )
        ]
        order = np.argsort(columns[0], kind="stable")
        (self.timestamps, self.sums, self.counts, self.minimums, self.maximums) = (
            column[order] for column in columns
        )
        self.pending = []


def _start_time_rounding(age_seconds: float) -> int:
    """AWS rounds StartTime down: to the minute under 15 days old, to 5 minutes up to
    63 days, to the hour beyond."""
    if age_seconds < ONE_MINUTE_TIER_SECONDS:
        return 60
    if age_seconds < FIVE_MINUTE_TIER_SECONDS:
        return 300
    return 3600


class MetricStore:
    """All metric data of the emulator, per (account, region)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], dict[SeriesKey, _Series]] = {}
        self._lock = threading.RLock()
        self.clock_offset_seconds = 0

    def now(self) -> int:
        """The emulator's time: the real clock, moved forward when a test lets time pass."""
        return int(datetime.now(UTC).timestamp()) + self.clock_offset_seconds

    def add_points(
        self,
        account_id: str,
        region: str,
        namespace: str,
        metric_name: str,
        dimensions: Iterable[tuple[str, str]] | dict[str, str] | None,
        timestamps: Sequence[datetime] | np.ndarray,
        values: Sequence[float] | np.ndarray,
        counts: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Store data points in bulk. `timestamps` are datetimes or epoch seconds; each
        value is one sample unless `counts` says how many it aggregates (then the value is
        the samples' sum)."""
        epoch = _epoch_seconds(timestamps)
        sums = np.asarray(values, dtype=np.float64)
        sample_counts = (
            np.ones_like(sums) if counts is None else np.asarray(counts, dtype=np.float64)
        )
        means = np.divide(sums, sample_counts, out=np.zeros_like(sums), where=sample_counts > 0)
        key = SeriesKey(namespace, metric_name, dimension_key(dimensions))
        with self._lock:
            series = self._series.setdefault((account_id, region), {}).setdefault(key, _Series())
            series.append(epoch, sums, sample_counts, means, means.copy())

    def add_statistic_set(
        self,
        account_id: str,
        region: str,
        key: SeriesKey,
        timestamp: datetime,
        statistic_values: dict[str, float],
    ) -> None:
        """Store one PutMetricData StatisticValues entry (pre-aggregated samples)."""
        with self._lock:
            series = self._series.setdefault((account_id, region), {}).setdefault(key, _Series())
            series.append(
                _epoch_seconds([timestamp]),
                np.array([statistic_values["Sum"]], dtype=np.float64),
                np.array([statistic_values["SampleCount"]], dtype=np.float64),
                np.array([statistic_values["Minimum"]], dtype=np.float64),
                np.array([statistic_values["Maximum"]], dtype=np.float64),
            )

    def list_metrics(
        self,
        account_id: str,
        region: str,
        namespace: str | None,
        metric_name: str | None,
        dimension_filters: list[dict[str, str]],
        recently_active: bool = False,
    ) -> list[SeriesKey]:
        """Metrics with a data point in the past two weeks (or three hours when
        `recently_active`), each once. A dimension filter matches any metric that has
        those dimensions, whatever else it has, as on AWS."""
        window = 3 * 3600 if recently_active else LIST_METRICS_WINDOW_SECONDS
        oldest = self.now() - window
        found = []
        with self._lock:
            for key, series in self._series.get((account_id, region), {}).items():
                if namespace is not None and key.namespace != namespace:
                    continue
                if metric_name is not None and key.metric_name != metric_name:
                    continue
                if not _matches_filters(key.dimensions, dimension_filters):
                    continue
                series.consolidate()
                if len(series.timestamps) and series.timestamps[-1] >= oldest:
                    found.append(key)
        return found

    def query(
        self,
        account_id: str,
        region: str,
        key: SeriesKey,
        statistic: str,
        start: datetime,
        end: datetime,
        period: int,
    ) -> tuple[list[int], list[float]]:
        """One MetricStat query: bucket starts (epoch seconds, ascending) and values.

        Matches the exact dimension set only. Buckets align to StartTime after AWS's
        rounding; a period that does not fit the data's age returns nothing for that data
        (AWS does this silently); data past retention is gone."""
        now = self.now()
        start_epoch = int(start.timestamp())
        end_epoch = int(end.timestamp())
        rounding = _start_time_rounding(now - start_epoch)
        start_epoch -= start_epoch % rounding
        with self._lock:
            series = self._series.get((account_id, region), {}).get(key)
            if series is None:
                return [], []
            series.consolidate()
            lo = np.searchsorted(series.timestamps, max(start_epoch, now - RETENTION_SECONDS))
            hi = np.searchsorted(series.timestamps, end_epoch)
            timestamps = series.timestamps[lo:hi]
            columns = (
                series.sums[lo:hi],
                series.counts[lo:hi],
                series.minimums[lo:hi],
                series.maximums[lo:hi],
            )
        if not len(timestamps):
            return [], []
        age = now - timestamps
        readable = np.ones(len(timestamps), dtype=bool)
        if period % 300:
            readable &= age < ONE_MINUTE_TIER_SECONDS
        if period % 3600:
            readable &= age < FIVE_MINUTE_TIER_SECONDS
        timestamps = timestamps[readable]
        sums, counts, minimums, maximums = (column[readable] for column in columns)
        if not len(timestamps):
            return [], []
        buckets = (timestamps - start_epoch) // period
        present, inverse = np.unique(buckets, return_inverse=True)
        if statistic in ("Sum", "Average", "SampleCount"):
            bucket_sums = np.bincount(inverse, weights=sums)
            bucket_counts = np.bincount(inverse, weights=counts)
            values = {
                "Sum": bucket_sums,
                "SampleCount": bucket_counts,
                "Average": bucket_sums / bucket_counts,
            }[statistic]
        elif statistic == "Minimum":
            values = np.full(len(present), np.inf)
            np.minimum.at(values, inverse, minimums)
        elif statistic == "Maximum":
            values = np.full(len(present), -np.inf)
            np.maximum.at(values, inverse, maximums)
        else:
            raise ValueError(f"unsupported statistic {statistic}")
        bucket_starts = (start_epoch + present * period).tolist()
        return bucket_starts, values.tolist()

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
            self.clock_offset_seconds = 0


def _matches_filters(dimensions: Dimensions, filters: list[dict[str, str]]) -> bool:
    present = dict(dimensions)
    for wanted in filters:
        name = wanted.get("Name")
        if name not in present:
            return False
        if wanted.get("Value") is not None and present[name] != wanted["Value"]:
            return False
    return True


def _epoch_seconds(timestamps: Sequence[datetime] | np.ndarray) -> np.ndarray:
    if isinstance(timestamps, np.ndarray) and timestamps.dtype.kind in "iu":
        return timestamps.astype(np.int64)
    if isinstance(timestamps, np.ndarray) and timestamps.dtype.kind == "M":
        return timestamps.astype("datetime64[s]").astype(np.int64)
    return np.array(
        [
            int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp())
            if isinstance(ts, datetime)
            else int(ts)
            for ts in timestamps
        ],
        dtype=np.int64,
    )
