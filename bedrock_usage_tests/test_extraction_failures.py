"""Error classification: by code and by HTTP status, with the guide's next action."""

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from bedrock_usage.extraction.failures import FailureKind, classify


def _client_error(code, status):
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetMetricData",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AccessDenied", 403, FailureKind.PERMISSION),
        ("AccessDeniedException", 400, FailureKind.PERMISSION),
        ("SomethingNew", 403, FailureKind.PERMISSION),
        ("InvalidClientTokenId", 403, FailureKind.CREDENTIALS),
        ("UnrecognizedClientException", 400, FailureKind.CREDENTIALS),
        ("SignatureDoesNotMatch", 403, FailureKind.CREDENTIALS),
        ("ExpiredTokenException", 400, FailureKind.CREDENTIALS),
        ("Throttling", 400, FailureKind.THROTTLING),
        ("Whatever", 429, FailureKind.THROTTLING),
        ("InternalFailure", 500, FailureKind.OTHER),
    ],
)
def test_client_errors_are_classified_by_code_and_status(code, status, kind):
    failure = classify("eu-west-1", _client_error(code, status))
    assert (failure.kind, failure.code, failure.region) == (kind, code, "eu-west-1")
    assert failure.next_action


def test_missing_credentials_and_network_errors_are_classified():
    assert classify("us-east-1", NoCredentialsError()).kind is FailureKind.CREDENTIALS
    missing_profile = classify("sts", ProfileNotFound(profile="bedrock"))
    assert missing_profile.kind is FailureKind.CREDENTIALS
    assert "profile" in missing_profile.next_action
    network = classify("us-east-1", EndpointConnectionError(endpoint_url="http://x"))
    assert network.kind is FailureKind.NETWORK and "us-east-1" in network.next_action


def test_a_permission_failure_names_the_policy_and_the_region():
    failure = classify("ap-south-1", _client_error("AccessDenied", 403))
    assert "cloudwatch:GetMetricData" in failure.next_action
    assert "ap-south-1" in failure.describe()


def test_programming_errors_are_not_swallowed():
    with pytest.raises(KeyError):
        classify("us-east-1", KeyError("bug"))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("SignatureDoesNotMatch", "Signature expired: 20261203T100000Z is now earlier than "
         "20261203T101500Z (20261203T103000Z - 15 min.)"),
        ("RequestExpired", "Request has expired."),
        ("RequestTimeTooSkewed", "The difference between the request time and the current "
         "time is too large."),
    ],
)  # fmt: skip
def test_a_clock_off_by_minutes_is_named_not_blamed_on_the_credentials(code, message):
    error = ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetMetricData",
    )
    failure = classify("eu-west-1", error)
    assert failure.kind is FailureKind.OTHER and not failure.kind.is_access
    assert "clock" in failure.next_action and "credentials were not judged" in failure.next_action
