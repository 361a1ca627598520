"""The emulator follows AWS's CloudWatch semantics: each rule the pipeline relies on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from bedrock_usage.emulator.server import READ_ONLY_POLICY

from .conftest import ACCOUNT, NAMESPACE, days_ago, midnight, seed_daily, session_for


def _query(metric, dimensions=(), stat="Sum", period=86400, namespace=NAMESPACE, qid="q"):
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
            },
            "Period": period,
            "Stat": stat,
        },
    }


def _cloudwatch(key, region="us-east-1"):
    return session_for(key).client("cloudwatch", region_name=region)


def _values(client, queries, first, last, **kwargs):
    response = client.get_metric_data(
        MetricDataQueries=queries,
        StartTime=kwargs.pop("start", midnight(first)),
        EndTime=midnight(last + timedelta(days=1)),
        ScanBy="TimestampAscending",
        **kwargs,
    )
    return {
        r["Id"]: dict(zip(r["Timestamps"], r["Values"], strict=True))
        for r in response["MetricDataResults"]
    }, response


def test_a_dimensionless_query_matches_only_the_dimensionless_series(aws, reader):
    day = days_ago(2)
    seed_daily(aws, "Invocations", None, {day: 30})
    seed_daily(aws, "Invocations", "model-a", {day: 10})
    seed_daily(aws, "Invocations", "model-b", {day: 20})
    values, _ = _values(_cloudwatch(reader), [_query("Invocations")], day, day)
    assert list(values["q"].values()) == [30.0]


def test_a_model_query_matches_the_exact_dimension_set_only(aws, reader):
    day = days_ago(2)
    seed_daily(aws, "Invocations", "model-a", {day: 10})
    seed_daily(aws, "Invocations", "model-a", {day: 7}, extra_dimensions={"ImageSize": "1024"})
    values, _ = _values(
        _cloudwatch(reader), [_query("Invocations", [("ModelId", "model-a")])], day, day
    )
    assert list(values["q"].values()) == [10.0]


def test_namespaces_are_respected(aws, reader):
    day = days_ago(2)
    seed_daily(aws, "Invocations", "model-a", {day: 10})
    seed_daily(aws, "Invocations", "model-a", {day: 99}, namespace="AWS/Bedrock/Agents")
    seed_daily(aws, "Invocations", "model-a", {day: 55}, namespace="Custom/App")
    client = _cloudwatch(reader)
    values, _ = _values(client, [_query("Invocations", [("ModelId", "model-a")])], day, day)
    assert list(values["q"].values()) == [10.0]
    values, _ = _values(
        client,
        [_query("Invocations", [("ModelId", "model-a")], namespace="AWS/Bedrock/Agents")],
        day,
        day,
    )
    assert list(values["q"].values()) == [99.0]


def test_more_than_500_queries_in_one_call_is_refused(aws, reader):
    queries = [_query("Invocations", [("ModelId", f"m{i}")], qid=f"q{i}") for i in range(501)]
    with pytest.raises(ClientError) as raised:
        _values(_cloudwatch(reader), queries, days_ago(1), days_ago(1))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "500" in raised.value.response["Error"]["Message"]


def test_responses_page_at_100800_points_with_next_token(aws, reader):
    first, last = days_ago(364), days_ago(0)
    for i in range(300):
        seed_daily(
            aws, "Invocations", f"m{i}", {first + timedelta(days=d): 1 for d in range(365)}, hours=1
        )
    queries = [_query("Invocations", [("ModelId", f"m{i}")], qid=f"q{i}") for i in range(300)]
    client = _cloudwatch(reader)
    _, page = _values(client, queries, first, last)
    points = sum(len(r["Values"]) for r in page["MetricDataResults"])
    assert points == 100_800
    assert "NextToken" in page
    statuses = {r["Id"]: r["StatusCode"] for r in page["MetricDataResults"]}
    assert statuses["q0"] == "Complete" and "PartialData" in statuses.values()
    second = client.get_metric_data(
        MetricDataQueries=queries,
        StartTime=midnight(first),
        EndTime=midnight(last + timedelta(days=1)),
        ScanBy="TimestampAscending",
        NextToken=page["NextToken"],
    )
    assert sum(len(r["Values"]) for r in second["MetricDataResults"]) == 300 * 365 - 100_800
    assert "NextToken" not in second


def test_max_datapoints_lowers_the_page_size(aws, reader):
    day = days_ago(20)
    seed_daily(aws, "Invocations", "m", {day + timedelta(days=d): 1 for d in range(10)})
    _, page = _values(
        _cloudwatch(reader),
        [_query("Invocations", [("ModelId", "m")])],
        day,
        day + timedelta(days=9),
        MaxDatapoints=4,
    )
    assert len(page["MetricDataResults"][0]["Values"]) == 4
    assert page["MetricDataResults"][0]["StatusCode"] == "PartialData"


@pytest.mark.parametrize(
    ("age_days", "period", "answers"),
    [
        (10, 60, True),
        (20, 60, False),
        (20, 300, True),
        (70, 300, False),
        (70, 3600, True),
        (400, 86400, True),
    ],
)
def test_the_period_must_fit_the_age_of_the_data(aws, reader, age_days, period, answers):
    day = days_ago(age_days)
    seed_daily(aws, "Invocations", "m", {day: 8})
    values, _ = _values(
        _cloudwatch(reader), [_query("Invocations", [("ModelId", "m")], period=period)], day, day
    )
    assert (sum(values["q"].values()) == 8.0) is answers


@pytest.mark.parametrize(
    ("age_days", "offset_seconds", "rounded_to"), [(3, 90, 60), (30, 90, 0), (100, 1800, 0)]
)
def test_start_time_is_rounded_down_by_age(aws, reader, age_days, offset_seconds, rounded_to):
    start_of_day = midnight(days_ago(age_days))
    aws.seed(
        ACCOUNT,
        "us-east-1",
        NAMESPACE,
        "Invocations",
        {"ModelId": "m"},
        [start_of_day, start_of_day + timedelta(minutes=2)],
        [1.0, 1.0],
    )
    response = _cloudwatch(reader).get_metric_data(
        MetricDataQueries=[_query("Invocations", [("ModelId", "m")], period=3600)],
        StartTime=start_of_day + timedelta(seconds=offset_seconds),
        EndTime=start_of_day + timedelta(hours=2),
    )
    result = response["MetricDataResults"][0]
    assert result["Timestamps"] == [start_of_day + timedelta(seconds=rounded_to)]
    assert result["Values"] == [2.0 if rounded_to == 0 else 1.0]


def test_nothing_older_than_455_days_is_returned(aws, reader):
    kept, expired = days_ago(454), days_ago(456)
    seed_daily(aws, "Invocations", "m", {kept: 5, expired: 7})
    values, _ = _values(
        _cloudwatch(reader), [_query("Invocations", [("ModelId", "m")])], expired, kept
    )
    assert sorted(values["q"].values()) == [5.0]


def test_list_metrics_sees_two_weeks_once_per_metric_and_pages(aws, reader):
    seed_daily(aws, "Invocations", "recent", {days_ago(d): 1 for d in range(1, 10)})
    seed_daily(aws, "Invocations", "idle", {days_ago(20): 1})
    seed_daily(aws, "Invocations", None, {days_ago(d): 1 for d in range(1, 10)})
    for i in range(600):
        seed_daily(aws, "InputTokenCount", f"bulk{i}", {days_ago(1): 1}, hours=1)
    client = _cloudwatch(reader)
    metrics, token, pages = [], None, 0
    while True:
        page = client.list_metrics(Namespace=NAMESPACE, **({"NextToken": token} if token else {}))
        pages += 1
        metrics += page["Metrics"]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 2 and len(metrics) == 602
    names = [tuple((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in metrics]
    assert names.count((("ModelId", "recent"),)) == 1
    assert names.count(()) == 1
    assert (("ModelId", "idle"),) not in names


def test_the_guides_read_only_policy_is_enough_and_a_partial_one_is_denied(aws, reader):
    day = days_ago(1)
    seed_daily(aws, "Invocations", "m", {day: 3})
    values, _ = _values(_cloudwatch(reader), [_query("Invocations", [("ModelId", "m")])], day, day)
    assert sum(values["q"].values()) == 3.0
    policy = {
        **READ_ONLY_POLICY,
        "Statement": [{**READ_ONLY_POLICY["Statement"][0], "Action": ["cloudwatch:ListMetrics"]}],
    }
    partial = aws.create_reader(ACCOUNT, "list-only", policy=policy)
    client = _cloudwatch(partial)
    client.list_metrics(Namespace=NAMESPACE)
    with pytest.raises(ClientError) as raised:
        _values(client, [_query("Invocations")], day, day)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_one_region_can_be_denied_to_one_key(aws, reader):
    other = aws.create_reader(ACCOUNT, "other-reader")
    aws.deny_region(reader, "eu-west-1")
    with pytest.raises(ClientError) as raised:
        _cloudwatch(reader, "eu-west-1").list_metrics(Namespace=NAMESPACE)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    _cloudwatch(reader, "us-east-1").list_metrics(Namespace=NAMESPACE)
    _cloudwatch(other, "eu-west-1").list_metrics(Namespace=NAMESPACE)
    aws.allow_region(reader, "eu-west-1")
    _cloudwatch(reader, "eu-west-1").list_metrics(Namespace=NAMESPACE)


def test_bad_keys_are_rejected_with_aws_codes(aws, reader):
    wrong_secret = type(reader)(reader.account_id, reader.user_name, reader.access_key_id, "x" * 40)
    with pytest.raises(ClientError) as raised:
        _cloudwatch(wrong_secret).list_metrics(Namespace=NAMESPACE)
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    aws.delete_access_key(reader)
    with pytest.raises(ClientError) as raised:
        _cloudwatch(reader).list_metrics(Namespace=NAMESPACE)
    assert raised.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_put_metric_data_takes_two_weeks_and_no_aws_namespace(aws, reader):
    aws.put_policy(
        ACCOUNT,
        reader.user_name,
        "put",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}
            ],
        },
    )
    client = _cloudwatch(reader)
    recent = midnight(days_ago(13)) + timedelta(hours=1)
    client.put_metric_data(
        Namespace="Custom/App",
        MetricData=[
            {"MetricName": "Calls", "Timestamp": recent, "Values": [2, 3], "Counts": [1, 2]}
        ],
    )
    values, _ = _values(
        client, [_query("Calls", namespace="Custom/App")], days_ago(13), days_ago(13)
    )
    assert list(values["q"].values()) == [8.0]
    for namespace, timestamp in (("Custom/App", midnight(days_ago(15))), ("AWS/Bedrock", recent)):
        with pytest.raises(ClientError) as raised:
            client.put_metric_data(
                Namespace=namespace,
                MetricData=[{"MetricName": "Calls", "Timestamp": timestamp, "Value": 1}],
            )
        assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_throttled_requests_are_retried_by_botocore(aws, reader):
    aws.throttle("us-east-1", 2)
    _cloudwatch(reader).list_metrics(Namespace=NAMESPACE)
    assert aws.log.count("ListMetrics") == 1
