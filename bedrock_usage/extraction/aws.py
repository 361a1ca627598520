"""boto3 sessions and clients, built in one place.

Every client uses botocore's standard retry mode (throttling is retried with backoff)
and the standard AWS environment: AWS_ENDPOINT_URL, HTTPS_PROXY, AWS_CA_BUNDLE,
AWS_MAX_ATTEMPTS and AWS_RETRY_MODE are honoured as boto3 documents them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

from .. import settings
from .failures import MalformedAnswerError


@dataclass(frozen=True)
class AwsKeys:
    """An access key pair. The secret never appears in repr or str."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def client_config() -> Config:
    retries: dict[str, object] = {"mode": settings.aws_retry_mode()}
    max_attempts = settings.aws_max_attempts()
    if max_attempts:
        retries["total_max_attempts"] = max_attempts
    return Config(retries=retries, connect_timeout=10, read_timeout=60)


def _fast_timestamp(value: object) -> datetime:
    # botocore turns every timestamp into a datetime in the local zone at ~17 µs each,
    # which bounds a year-long backfill (100,800 points a page); epoch numbers are cheap.
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return parse_timestamp(value)


def make_session(keys: AwsKeys | None = None, profile: str | None = None) -> boto3.Session:
    """A session from explicit keys, a named profile, or the ambient AWS environment."""
    core = botocore.session.Session(profile=profile)
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_fast_timestamp
    )
    if keys is None:
        return boto3.Session(botocore_session=core)
    return boto3.Session(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
        botocore_session=core,
    )


# A boto3 Session is not thread-safe, its clients are: regions read in parallel make
# their clients one at a time.
_CLIENT_LOCK = threading.Lock()


# What every answer of these operations holds: botocore parses an empty or foreign body
# into an answer without it, which would read as "no usage" and replace stored rows.
REQUIRED_ANSWER_KEYS = {"GetMetricData": "MetricDataResults", "GetCallerIdentity": "Account"}


def _body_kind(body: bytes) -> str | None:
    """What the body is, if it is not a document of an AWS protocol (JSON, CBOR, XML)."""
    text = body.lstrip()
    if not text:
        return "an empty body"
    if text[:1] == b"{" or 0xA0 <= text[0] <= 0xBF:  # a JSON object, or a CBOR map
        return None
    if text[:1] == b"<":
        return "an HTML page" if b"<html" in text[:512].lower() else None
    return "text that is neither JSON, CBOR nor XML"


def _refuse_malformed_answer(http_response, parsed, model, **_) -> None:
    if http_response.status_code != 200:
        return
    what = _body_kind(http_response.content or b"")
    required = REQUIRED_ANSWER_KEYS.get(model.name)
    if what is None and required and required not in parsed:
        what = f"no {required}"
    if what is not None:
        raise MalformedAnswerError(operation=model.name, what=what)


def cloudwatch_client(session: boto3.Session, region: str):
    with _CLIENT_LOCK:
        client = session.client("cloudwatch", region_name=region, config=client_config())
    client.meta.events.register("after-call.cloudwatch", _refuse_malformed_answer)
    return client


def sts_client(session: boto3.Session, region: str = "us-east-1"):
    with _CLIENT_LOCK:
        client = session.client("sts", region_name=region, config=client_config())
    client.meta.events.register("after-call.sts", _refuse_malformed_answer)
    return client
