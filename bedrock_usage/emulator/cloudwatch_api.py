"""The emulator's CloudWatch operations: GetMetricData, ListMetrics, PutMetricData.

These replace moto's handlers on its CloudWatch response class (moto's server runs
in this process, so the patch is live for every HTTP request). Each rule below is
AWS's, cited from ../shared/knowledge/cloudwatch-bedrock.md and AWS's API reference.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult, EmptyResult

from .aws_errors import AwsError, error_response
from .iam import CloudWatchIAMRequest
from .metric_store import DAY, STATISTICS, MetricStore, SeriesKey, dimension_key

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_RESPONSE = 100_800
LIST_METRICS_PAGE_SIZE = 500
# PutMetricData takes data points up to two weeks old and two hours ahead.
PUT_OLDEST_SECONDS = 14 * DAY
PUT_NEWEST_SECONDS = 2 * 3600
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


@dataclass
class CallLog:
    """What the emulator was asked, for tests and benchmarks to count."""

    calls: Counter = field(default_factory=Counter)
    metrics_requested: Counter = field(default_factory=Counter)
    namespaces_requested: set = field(default_factory=set)
    # The most CloudWatch requests answered at the same time (regions read in parallel).
    max_in_flight: int = 0
    in_flight: int = 0

    def record(self, operation: str, account_id: str, region: str, metrics: int = 0) -> None:
        self.calls[(operation, account_id, region)] += 1
        self.metrics_requested[(operation, account_id, region)] += metrics

    def count(self, operation: str, account_id: str | None = None, region: str | None = None):
        return sum(
            n
            for (op, account, reg), n in self.calls.items()
            if op == operation and account_id in (None, account) and region in (None, reg)
        )

    def reset(self) -> None:
        self.calls.clear()
        self.metrics_requested.clear()
        self.namespaces_requested.clear()
        self.max_in_flight = 0


@dataclass
class EmulatorState:
    store: MetricStore = field(default_factory=MetricStore)
    log: CallLog = field(default_factory=CallLog)
    # AWS may answer with fewer points than MaxDatapoints (a PartialData page); tests
    # lower this to prove a client follows NextToken to the end.
    page_limit: int = MAX_DATAPOINTS_PER_RESPONSE
    # Responses to throttle next, per region, to exercise client retries.
    throttle_next: Counter = field(default_factory=Counter)
    # Seconds each CloudWatch request takes, as a slow network would: tests stop a sync
    # while it waits for AWS.
    latency_seconds: float = 0.0
    # Raw answers (operation or None for any, status, content type, body) to give next,
    # per region, instead of CloudWatch's: what a proxy or captive portal would send.
    raw_next: defaultdict = field(default_factory=lambda: defaultdict(deque))
    _pages: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def results_for(self, digest: str, first_page: bool, compute) -> list[dict[str, Any]]:
        """A request's results: computed afresh for its first page (data may have
        arrived since), kept for the pages its NextToken asks for."""
        with self._lock:
            if not first_page and digest in self._pages:
                return self._pages[digest]
        results = compute()
        with self._lock:
            self._pages[digest] = results
            while len(self._pages) > 16:
                self._pages.popitem(last=False)
        return results

    def forget_pages(self) -> None:
        with self._lock:
            self._pages.clear()


STATE = EmulatorState()


def _authorize(response: CloudWatchResponse) -> None:
    response._authenticate_and_authorize_action(CloudWatchIAMRequest, "*")


def _throttle_if_asked(region: str) -> None:
    with STATE._lock:
        if STATE.throttle_next[region] > 0:
            STATE.throttle_next[region] -= 1
            raise AwsError("Throttling", "Rate exceeded", status=400)


def _raw_answer_if_asked(region: str, action: str) -> tuple[int, dict, bytes] | None:
    with STATE._lock:
        waiting = STATE.raw_next[region]
        if not waiting or waiting[0][0] not in (None, action):
            return None
        _, status, content_type, body = waiting.popleft()
    return status, {"Content-Type": content_type, "status": status}, body


def call_action(self: CloudWatchResponse):
    """moto's call_action, with AWS's IAM semantics and errors in the client's protocol."""
    raw = _raw_answer_if_asked(self.region, self._get_action())
    if raw is not None:
        return raw
    try:
        _authorize(self)
        _throttle_if_asked(self.region)
    except AwsError as error:
        return error_response(self, error)
    log = STATE.log
    with STATE._lock:
        log.in_flight += 1
        log.max_in_flight = max(log.max_in_flight, log.in_flight)
    try:
        if STATE.latency_seconds:
            time.sleep(STATE.latency_seconds)
        return _ORIGINAL_CALL_ACTION(self)
    except AwsError as error:
        return error_response(self, error)
    finally:
        with STATE._lock:
            log.in_flight -= 1


def _skip_moto_auth(self: CloudWatchResponse, resource: str = "*") -> None:
    """Authorization already ran in call_action, with the `cloudwatch:` prefix."""


def get_metric_data(self: CloudWatchResponse) -> ActionResult:
    params = self._get_params()
    queries = params.get("MetricDataQueries") or []
    start = _as_utc(params["StartTime"])
    end = _as_utc(params["EndTime"])
    max_datapoints = int(params.get("MaxDatapoints") or MAX_DATAPOINTS_PER_RESPONSE)
    scan_by = params.get("ScanBy") or "TimestampDescending"
    _validate_metric_data_request(queries, start, end, max_datapoints)
    STATE.log.record("GetMetricData", self.current_account, self.region, metrics=len(queries))
    for query in queries:
        STATE.log.namespaces_requested.add(query["MetricStat"]["Metric"].get("Namespace"))

    request_digest = _digest(self.current_account, self.region, params)
    offset = _decode_token(params.get("NextToken"), request_digest)

    def compute() -> list[dict[str, Any]]:
        return [
            _run_query(self.current_account, self.region, query, start, end, scan_by)
            for query in queries
        ]

    results = STATE.results_for(request_digest, offset == 0, compute)
    page_size = min(max_datapoints, STATE.page_limit)
    page, next_offset = _page(results, offset, page_size)
    answer: dict[str, Any] = {"MetricDataResults": page, "Messages": []}
    if next_offset is not None:
        answer["NextToken"] = _encode_token(next_offset, request_digest)
    return ActionResult(answer)


def _validate_metric_data_request(
    queries: list[dict[str, Any]], start: datetime, end: datetime, max_datapoints: int
) -> None:
    if not queries:
        raise AwsError("ValidationError", "The parameter MetricDataQueries is required.")
    if len(queries) > MAX_QUERIES_PER_CALL:
        raise AwsError(
            "ValidationError",
            "The collection MetricDataQueries must not have a size greater than 500.",
        )
    if start >= end:
        raise AwsError("ValidationError", "The parameter StartTime must be less than EndTime.")
    if max_datapoints < 1:
        raise AwsError("ValidationError", "MaxDatapoints must be at least 1.")
    seen = set()
    for index, query in enumerate(queries, start=1):
        query_id = query.get("Id", "")
        if not QUERY_ID.match(query_id):
            raise AwsError(
                "ValidationError",
                f"The value {query_id} for parameter MetricDataQueries.member.{index}.Id is "
                "invalid: it must start with a lowercase letter and contain only letters, "
                "digits and underscores.",
            )
        if query_id in seen:
            raise AwsError("ValidationError", f"The values for Id must be unique: {query_id}.")
        seen.add(query_id)
        if "MetricStat" not in query:
            raise AwsError(
                "ValidationError",
                f"MetricDataQueries.member.{index}: the emulator answers MetricStat queries "
                "only (no Expression, SEARCH or metric math).",
            )
        stat = query["MetricStat"]
        period = int(stat.get("Period") or 0)
        if period <= 0 or (period % 60 and period not in (1, 5, 10, 30)):
            raise AwsError(
                "ValidationError",
                f"The parameter MetricDataQueries.member.{index}.MetricStat.Period must be "
                "1, 5, 10, 30, or a multiple of 60.",
            )
        if stat.get("Stat") not in STATISTICS:
            raise AwsError(
                "ValidationError",
                f"MetricDataQueries.member.{index}.MetricStat.Stat {stat.get('Stat')!r} is not "
                f"one the emulator computes ({', '.join(STATISTICS)}).",
            )


def _run_query(
    account_id: str,
    region: str,
    query: dict[str, Any],
    start: datetime,
    end: datetime,
    scan_by: str,
) -> dict[str, Any]:
    stat = query["MetricStat"]
    metric = stat["Metric"]
    key = SeriesKey(
        metric.get("Namespace", ""),
        metric.get("MetricName", ""),
        dimension_key((d["Name"], d["Value"]) for d in metric.get("Dimensions") or []),
    )
    timestamps, values = STATE.store.query(
        account_id, region, key, stat["Stat"], start, end, int(stat["Period"])
    )
    if scan_by == "TimestampDescending":
        timestamps.reverse()
        values.reverse()
    return {
        "Id": query["Id"],
        "Label": query.get("Label") or metric.get("MetricName", ""),
        "Timestamps": [datetime.fromtimestamp(ts, UTC) for ts in timestamps],
        "Values": values,
    }


def _page(
    results: list[dict[str, Any]], offset: int, page_size: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Lay the queries' points end to end and cut `page_size` of them from `offset`.
    A query cut short says PartialData; the rest comes with NextToken."""
    page = []
    position = 0
    page_end = offset + page_size
    for result in results:
        size = len(result["Timestamps"])
        first, last = max(offset, position), min(page_end, position + size)
        on_page = last > first or (size == 0 and offset == 0)
        if on_page:
            lo, hi = max(first - position, 0), max(last - position, 0)
            page.append(
                {
                    "Id": result["Id"],
                    "Label": result["Label"],
                    "Timestamps": result["Timestamps"][lo:hi],
                    "Values": result["Values"][lo:hi],
                    "StatusCode": "PartialData" if position + size > page_end else "Complete",
                }
            )
        position += size
    return page, (page_end if position > page_end else None)


def _digest(account_id: str, region: str, params: dict[str, Any]) -> str:
    request = {k: v for k, v in params.items() if k != "NextToken"}
    text = json.dumps([account_id, region, request], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _encode_token(offset: int, digest: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, digest]).encode()).decode()


def _decode_token(token: str | None, digest: str) -> int:
    if not token:
        return 0
    try:
        offset, token_digest = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        offset, token_digest = None, None
    if token_digest != digest:
        raise AwsError(
            "InvalidNextToken", "The NextToken does not belong to this request.", status=400
        )
    return int(offset)


def list_metrics(self: CloudWatchResponse) -> ActionResult:
    params = self._get_params()
    STATE.log.record("ListMetrics", self.current_account, self.region)
    keys = STATE.store.list_metrics(
        self.current_account,
        self.region,
        params.get("Namespace"),
        params.get("MetricName"),
        params.get("Dimensions") or [],
        recently_active=params.get("RecentlyActive") == "PT3H",
    )
    digest = _digest(self.current_account, self.region, params)
    offset = _decode_token(params.get("NextToken"), digest)
    chunk = keys[offset : offset + LIST_METRICS_PAGE_SIZE]
    answer: dict[str, Any] = {
        "Metrics": [
            {
                "Namespace": key.namespace,
                "MetricName": key.metric_name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in key.dimensions],
            }
            for key in chunk
        ]
    }
    if offset + LIST_METRICS_PAGE_SIZE < len(keys):
        answer["NextToken"] = _encode_token(offset + LIST_METRICS_PAGE_SIZE, digest)
    return ActionResult(answer)


def put_metric_data(self: CloudWatchResponse) -> ActionResult:
    params = self._get_params()
    namespace = params.get("Namespace") or ""
    if namespace.startswith("AWS/"):
        raise AwsError(
            "InvalidParameterValue",
            f"The value {namespace} for parameter Namespace is invalid: namespaces starting "
            "with AWS/ are reserved for AWS services.",
        )
    STATE.log.record("PutMetricData", self.current_account, self.region)
    now = STATE.store.now()
    for index, datum in enumerate(params.get("MetricData") or [], start=1):
        timestamp = _as_utc(datum.get("Timestamp") or datetime.now(UTC))
        age = now - timestamp.timestamp()
        if age > PUT_OLDEST_SECONDS or age < -PUT_NEWEST_SECONDS:
            raise AwsError(
                "InvalidParameterValue",
                f"The parameter MetricData.member.{index}.Timestamp must specify a time no "
                "more than two weeks in the past and no more than two hours in the future.",
            )
        key = SeriesKey(
            namespace,
            datum["MetricName"],
            dimension_key((d["Name"], d["Value"]) for d in datum.get("Dimensions") or []),
        )
        if "StatisticValues" in datum:
            STATE.store.add_statistic_set(
                self.current_account, self.region, key, timestamp, datum["StatisticValues"]
            )
            continue
        values = datum.get("Values") or [datum.get("Value", 0.0)]
        counts = datum.get("Counts") or [1.0] * len(values)
        STATE.store.add_points(
            self.current_account,
            self.region,
            key.namespace,
            key.metric_name,
            key.dimensions,
            [timestamp] * len(values),
            [float(v) * float(c) for v, c in zip(values, counts, strict=True)],
            counts,
        )
    return EmptyResult()


def _as_utc(value: datetime | str | float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_ORIGINAL_CALL_ACTION = CloudWatchResponse.call_action


def install() -> None:
    """Route moto's CloudWatch handlers to this module (idempotent)."""
    CloudWatchResponse.call_action = call_action
    CloudWatchResponse._authenticate_and_authorize_normal_action = _skip_moto_auth
    CloudWatchResponse.get_metric_data = get_metric_data
    CloudWatchResponse.list_metrics = list_metrics
    CloudWatchResponse.put_metric_data = put_metric_data
