"""What went wrong in a region, in the words of the guide's troubleshooting table.

Classified by error code and by HTTP status: a missing permission comes back as
`AccessDenied` or `AccessDeniedException`, always with HTTP 403, while an invalid key
also answers 403 but with its own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)
from botocore.parsers import ResponseParserError

CREDENTIAL_CODES = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
}
# AWS refuses a request signed more than 5 minutes away from its own clock; the code
# (SignatureDoesNotMatch, RequestExpired, RequestTimeTooSkewed) does not tell it apart
# from a bad key, the message does.
CLOCK_SKEW_CODES = {"RequestTimeTooSkewed", "RequestExpired"}
CLOCK_SKEW_MESSAGES = ("signature expired", "request has expired", "time too skewed")
CLOCK_SKEW_ADVICE = (
    "This machine's clock differs from AWS's by more than 5 minutes, so AWS refused the "
    "signed request for {region}; the credentials were not judged. Set the clock right "
    "(NTP, e.g. 'timedatectl set-ntp true'), then sync again."
)
PERMISSION_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}


class FailureKind(StrEnum):
    PERMISSION = "permission"
    CREDENTIALS = "credentials"
    THROTTLING = "throttling"
    NETWORK = "network"
    OTHER = "other"

    @property
    def is_access(self) -> bool:
        """Access was refused (a permission, or the credentials): only the account's
        owner can fix it, so it is flagged to a person rather than retried."""
        return self in ACCESS_KINDS


ACCESS_KINDS = frozenset({FailureKind.PERMISSION, FailureKind.CREDENTIALS})


NEXT_ACTIONS = {
    FailureKind.PERMISSION: (
        "Check the read-only policy attached to the IAM user: it must allow "
        "cloudwatch:GetMetricData and cloudwatch:ListMetrics in {region}, with no Deny or "
        "region condition that excludes it."
    ),
    FailureKind.CREDENTIALS: (
        "The credentials were rejected or not found (unknown or deleted access key, wrong "
        "secret, expired session, missing profile). Create a new access key for the read-only "
        "IAM user and rotate it in with 'bedrock-usage rotate NAME', or fix the profile."
    ),
    FailureKind.THROTTLING: (
        "CloudWatch kept throttling after retries. Sync again later, or raise the "
        "GetMetricData rate quota (Service Quotas, code 'monitoring') for {region}."
    ),
    FailureKind.NETWORK: (
        "AWS could not be reached for {region} (no connection, DNS, timeout, TLS): check "
        "this machine's network, proxy (HTTPS_PROXY), CA bundle (AWS_CA_BUNDLE) and "
        "AWS_ENDPOINT_URL, then sync again. The credentials were not judged."
    ),
    FailureKind.OTHER: (
        "AWS answered with an unexpected error for {region}; sync again, and if it "
        "persists, check AWS Health for CloudWatch in that region."
    ),
}


class MalformedAnswerError(BotoCoreError):
    """HTTP 200 whose body is not AWS's answer (empty, HTML, garbled)."""

    fmt = (
        "The endpoint answered {operation} with HTTP 200 and a body that is not AWS's "
        "({what}): a proxy or captive portal in between?"
    )


class ImplausibleValueError(BotoCoreError):
    """A value no count can be: infinite, NaN, or beyond 2^53 (where a double stops
    holding every integer, so the BIGINT it is rounded into would not be exact)."""

    fmt = "CloudWatch answered {metric} = {value} for {day}, which no count can be"


IMPLAUSIBLE_ADVICE = (
    "The rows stored for {region} were kept and nothing of this answer was written. Sync "
    "again later; if CloudWatch keeps answering it, report it to AWS Support with the "
    "metric and day."
)

MALFORMED_ADVICE = (
    "Something between this machine and AWS answered instead of AWS (a proxy, a captive "
    "portal, a misconfigured AWS_ENDPOINT_URL). Stored rows for {region} were kept. Check "
    "HTTPS_PROXY and AWS_ENDPOINT_URL, then sync again."
)


@dataclass(frozen=True)
class RegionFailure:
    """One region that could not be read."""

    region: str
    kind: FailureKind
    code: str
    message: str
    advice: str | None = None  # replaces the table's next action where the cause is known

    @property
    def next_action(self) -> str:
        return self.advice or NEXT_ACTIONS[self.kind].format(region=self.region)

    def describe(self) -> str:
        return f"{self.region}: {self.code}: {self.message} Next: {self.next_action}"


def classify(region: str, error: Exception) -> RegionFailure:
    if isinstance(error, ImplausibleValueError):
        advice = IMPLAUSIBLE_ADVICE.format(region=region)
        return RegionFailure(region, FailureKind.OTHER, "ImplausibleValue", str(error), advice)
    if isinstance(error, MalformedAnswerError | ResponseParserError | UnicodeDecodeError):
        message = (
            str(error) if isinstance(error, MalformedAnswerError)
            else f"AWS's answer could not be read ({type(error).__name__}): a proxy or "
            "captive portal in between?"
        )  # fmt: skip
        advice = MALFORMED_ADVICE.format(region=region)
        return RegionFailure(region, FailureKind.NETWORK, "MalformedAnswer", message, advice)
    if isinstance(error, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return RegionFailure(region, FailureKind.CREDENTIALS, type(error).__name__, str(error))
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "Unknown")
        message = str(details.get("Message") or error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in CLOCK_SKEW_CODES or any(m in message.lower() for m in CLOCK_SKEW_MESSAGES):
            advice = CLOCK_SKEW_ADVICE.format(region=region)
            return RegionFailure(region, FailureKind.OTHER, code, message, advice)
        if code in CREDENTIAL_CODES:
            kind = FailureKind.CREDENTIALS
        elif code in PERMISSION_CODES or status == 403:
            kind = FailureKind.PERMISSION
        elif code in THROTTLING_CODES or status == 429:
            kind = FailureKind.THROTTLING
        else:
            kind = FailureKind.OTHER
        return RegionFailure(region, kind, code, message)
    if isinstance(error, HTTPClientError | SSLError | ConnectionError):
        return RegionFailure(region, FailureKind.NETWORK, type(error).__name__, str(error))
    if isinstance(error, BotoCoreError):
        return RegionFailure(region, FailureKind.OTHER, type(error).__name__, str(error))
    raise error
