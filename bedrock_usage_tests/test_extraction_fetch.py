"""Extraction against the emulator over HTTP: exact numbers, exact call counts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import pytest

from bedrock_usage.days import DayRange
from bedrock_usage.extraction.failures import FailureKind
from bedrock_usage.extraction.fetch import (
    Answers,
    fetch_region,
    lower_bound_calls,
    queries_per_call,
)
from bedrock_usage.extraction.metrics import MANTLE_METRICS, USAGE_METRICS, KnownSeries, Series

from .conftest import days_ago, seed_daily, session_for

# Every region also reads the mantle endpoint's region total, one series per metric.
MANTLE_TOTAL = len(MANTLE_METRICS)
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_US = "us.amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-70b-instruct-v1:0"


def _sums(fetch) -> dict[tuple[str | None, str], float]:
    frame = fetch.datapoints[fetch.datapoints.statistic == "Sum"]
    models = frame.model_id.astype(object).fillna("TOTAL")
    grouped = frame.groupby([models, frame.metric_name.astype(object)])["value"].sum()
    return {(m if m != "TOTAL" else None, metric): v for (m, metric), v in grouped.items()}


def test_only_exact_model_series_and_the_total_are_read(aws, reader):
    day = days_ago(3)
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1000})
    seed_daily(aws, "InputTokenCount", NOVA_US, {day: 500})
    seed_daily(aws, "InputTokenCount", None, {day: 1500})
    # The same usage again under another dimension set and other namespaces.
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1000}, extra_dimensions={"Operation": "x"})
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1000}, namespace="AWS/Bedrock/Agents")
    seed_daily(aws, "InputTokenCount", HAIKU, {day: 1000}, namespace="Custom/Bedrock")
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(day, day))
    assert fetch.ok
    assert fetch.models_listed.runtime == {HAIKU, NOVA_US}
    sums = _sums(fetch)
    assert sums[(HAIKU, "InputTokenCount")] == 1000
    assert sums[(NOVA_US, "InputTokenCount")] == 500
    assert sums[(None, "InputTokenCount")] == 1500
    # Only the two Bedrock namespaces, never a sub-namespace or another one.
    assert aws.log.namespaces_requested == {"AWS/Bedrock", "AWS/BedrockMantle"}
    assert "EstimatedTPMQuotaUsage" not in set(fetch.datapoints.metric_name)


def test_days_are_utc_calendar_days(aws, reader):
    first = days_ago(5)
    seed_daily(aws, "Invocations", HAIKU, {first: 10, first + timedelta(days=1): 20})
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(first, first))
    assert _sums(fetch) == {(HAIKU, "Invocations"): 10}


def test_a_model_idle_for_40_days_is_found_by_a_60_day_backfill(aws, reader):
    old, recent = days_ago(40), days_ago(2)
    seed_daily(aws, "Invocations", LLAMA, {old: 7})
    seed_daily(aws, "InputTokenCount", LLAMA, {old: 700})
    seed_daily(aws, "Invocations", HAIKU, {recent: 3})
    seed_daily(aws, "Invocations", None, {old: 7, recent: 3})
    seed_daily(aws, "InputTokenCount", None, {old: 700})
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(59), days_ago(0)))
    assert fetch.models_listed.runtime == {HAIKU}
    assert fetch.models_found_in_catalog == {LLAMA}
    sums = _sums(fetch)
    assert sums[(LLAMA, "Invocations")] == 7
    assert sums[(LLAMA, "InputTokenCount")] == 700


def test_a_model_seen_before_is_read_even_when_listmetrics_no_longer_shows_it(aws, reader):
    custom = "arn:aws:bedrock:us-east-1:111122223333:custom-model-deployment/abc123"
    seed_daily(aws, "Invocations", custom, {days_ago(30): 4})
    seed_daily(aws, "Invocations", None, {days_ago(30): 4})
    fetch = fetch_region(
        session_for(reader),
        "us-east-1",
        DayRange(days_ago(40), days_ago(0)),
        KnownSeries(runtime={custom}),
    )
    assert _sums(fetch)[(custom, "Invocations")] == 4
    assert fetch.models_found_in_catalog == set()


def test_no_catalog_probe_when_the_total_is_accounted_for(aws, reader):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(30): 4, days_ago(1): 1})
    seed_daily(aws, "Invocations", None, {days_ago(30): 4, days_ago(1): 1})
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(59), days_ago(0)))
    series = 2 * len(USAGE_METRICS) + MANTLE_TOTAL
    assert fetch.get_metric_data_calls == lower_bound_calls(series, 60) == 1
    assert fetch.metrics_requested == series


def test_more_than_500_series_take_the_fewest_calls(aws, reader):
    models = [f"amazon.test-model-{i}-v1:0" for i in range(60)]
    day = days_ago(1)
    for model in models:
        seed_daily(aws, "Invocations", model, {day: 1}, hours=1)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(6), day))
    series = (len(models) + 1) * len(USAGE_METRICS) + MANTLE_TOTAL
    assert series > 500
    assert aws.log.count("GetMetricData") == fetch.get_metric_data_calls
    assert fetch.get_metric_data_calls == lower_bound_calls(series, 7) == 2
    assert _sums(fetch)[(models[59], "Invocations")] == 1


def test_more_than_100800_points_take_the_fewest_calls(aws, reader):
    models = [f"amazon.test-model-{i}-v1:0" for i in range(40)]
    first, last = days_ago(299), days_ago(0)
    every_day = {first + timedelta(days=d): 2 for d in range(300)}
    for model in models:
        seed_daily(aws, "Invocations", model, every_day, hours=1)
    seed_daily(aws, "Invocations", None, {d: 80 for d in every_day}, hours=1)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(first, last))
    series = 41 * len(USAGE_METRICS) + MANTLE_TOTAL
    assert series * 300 > 100_800
    assert aws.log.count("GetMetricData") == fetch.get_metric_data_calls
    assert fetch.get_metric_data_calls == lower_bound_calls(series, 300) == 2
    sums = _sums(fetch)
    assert sums[(models[0], "Invocations")] == 600
    assert sums[(None, "Invocations")] == 24_000


def test_partial_pages_are_followed_to_the_end(aws, reader):
    models = [f"amazon.test-model-{i}-v1:0" for i in range(5)]
    days = {days_ago(d): 3 for d in range(1, 11)}
    for model in models:
        seed_daily(aws, "Invocations", model, days)
    aws.set_page_limit(7)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(10), days_ago(1)))
    assert fetch.get_metric_data_calls == 8  # 50 points in pages of 7
    assert all(_sums(fetch)[(m, "Invocations")] == 30 for m in models)


def test_a_denied_region_fails_alone_with_its_cause(aws, reader):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5}, region="eu-west-1")
    aws.deny_region(reader, "eu-west-1")
    session = session_for(reader)
    denied = fetch_region(session, "eu-west-1", DayRange(days_ago(1), days_ago(1)))
    assert not denied.ok
    assert denied.failure.kind is FailureKind.PERMISSION
    assert denied.failure.code == "AccessDenied"
    assert "eu-west-1" in denied.failure.next_action
    assert denied.datapoints.empty
    assert fetch_region(session, "us-east-1", DayRange(days_ago(1), days_ago(1))).ok


def test_rejected_credentials_are_classified(aws, reader):
    aws.delete_access_key(reader)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(1), days_ago(1)))
    assert fetch.failure.kind is FailureKind.CREDENTIALS
    assert fetch.failure.code == "InvalidClientTokenId"
    assert reader.secret_access_key not in fetch.failure.describe()


def test_throttling_is_retried_then_classified(aws, reader, monkeypatch):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    aws.throttle("us-east-1", 2)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(1), days_ago(1)))
    assert fetch.ok and _sums(fetch)[(HAIKU, "Invocations")] == 5
    aws.throttle("us-east-1", 10)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(1), days_ago(1)))
    assert fetch.failure.kind is FailureKind.THROTTLING


def test_queries_per_call_keeps_each_call_to_one_page():
    assert queries_per_call(1) == 500
    assert queries_per_call(201) == 500
    assert queries_per_call(365) == 276
    assert 276 * 365 <= 100_800 < 277 * 365
    assert lower_bound_calls(0, 10) == 0


def test_empty_region_reads_nothing_and_succeeds(aws, reader):
    fetch = fetch_region(session_for(reader), "ap-south-1", DayRange(days_ago(3), days_ago(1)))
    assert fetch.ok
    assert isinstance(fetch.datapoints, pd.DataFrame) and fetch.datapoints.empty


def test_declared_model_ids_are_always_read(aws, reader):
    application_profile = "abc123def456"
    seed_daily(aws, "Invocations", application_profile, {days_ago(30): 6})
    seed_daily(aws, "Invocations", None, {days_ago(30): 6})
    fetch = fetch_region(
        session_for(reader),
        "us-east-1",
        DayRange(days_ago(30), days_ago(30)),
        extra_model_ids=[application_profile],
    )
    assert _sums(fetch)[(application_profile, "Invocations")] == 6
    assert fetch.models_found_in_catalog == set()


def test_a_series_day_answered_twice_keeps_its_last_value_once():
    moment = datetime.combine(days_ago(2), time(), UTC)
    later = moment + timedelta(days=1)
    invocations, total = Series(USAGE_METRICS[2], HAIKU), Series(USAGE_METRICS[2], None)
    answers = Answers()
    answers.add(invocations, [moment, later], [4.0, 5.0])
    answers.add(total, [moment], [9.0])
    answers.add(invocations, [later], [6.0])  # a later page repeats a day
    frame = answers.frame()
    assert len(frame) == 3
    rows = {
        (m, str(d.date())): v
        for m, d, v in zip(
            frame.model_id.astype(object).fillna("TOTAL"),
            frame.usage_date,
            frame.value,
            strict=True,
        )
    }
    assert rows == {
        (HAIKU, str(days_ago(2))): 4.0,
        (HAIKU, str(days_ago(1))): 6.0,
        ("TOTAL", str(days_ago(2))): 9.0,
    }
    assert answers.by_day(invocations) == {days_ago(2): 4.0, days_ago(1): 6.0}


PORTAL = b"<!DOCTYPE html><html><body>Sign in to the hotel Wi-Fi</body></html>"


@pytest.mark.parametrize(
    ("operation", "status", "body"),
    [
        ("GetMetricData", 200, b""),
        ("GetMetricData", 200, PORTAL),
        ("GetMetricData", 200, b'{"Messages": []}'),  # JSON, but no MetricDataResults
        ("GetMetricData", 200, b"\xff\xfe garbled \x00"),
        ("ListMetrics", 200, b""),
        ("ListMetrics", 200, PORTAL),
        ("ListMetrics", 200, b"Service temporarily unavailable"),
        ("GetMetricData", 503, b"\xff\xfe not UTF-8 \x80"),  # a malformed error body
    ],
)
def test_an_answer_that_is_not_cloudwatchs_fails_the_region_as_a_network_fault(
    aws, reader, operation, status, body
):
    seed_daily(aws, "Invocations", HAIKU, {days_ago(1): 5})
    # Every attempt of the client's retries gets the same answer.
    aws.answer_raw("us-east-1", body, status=status, responses=5, operation=operation)
    day = DayRange(days_ago(1), days_ago(1))
    fetch = fetch_region(session_for(reader), "us-east-1", day)
    assert not fetch.ok and fetch.datapoints.empty
    assert (fetch.failure.kind, fetch.failure.code) == (FailureKind.NETWORK, "MalformedAnswer")
    assert "proxy or captive portal" in fetch.failure.message
    assert "were kept" in fetch.failure.next_action
    # The next answer is CloudWatch's own again: the region reads exactly.
    aws.reset_raw_answers()
    assert _sums(fetch_region(session_for(reader), "us-east-1", day))[(HAIKU, "Invocations")] == 5


def test_a_value_no_count_can_be_fails_the_region_and_names_it(aws, reader):
    seed_daily(aws, "InputTokenCount", HAIKU, {days_ago(2): 1e300}, hours=1)
    seed_daily(aws, "InputTokenCount", HAIKU, {days_ago(1): 5}, hours=1)
    fetch = fetch_region(session_for(reader), "us-east-1", DayRange(days_ago(2), days_ago(1)))
    assert not fetch.ok and fetch.datapoints.empty
    assert (fetch.failure.kind, fetch.failure.code) == (FailureKind.OTHER, "ImplausibleValue")
    assert f"InputTokenCount = 1e+300 for {days_ago(2)}" in fetch.failure.message
    assert "were kept" in fetch.failure.next_action
