"""Bedrock's control plane, the part a sync may read: application inference profiles
(ListInferenceProfiles, GetInferenceProfile) and their tags (ListTagsForResource).

moto has no inference profiles, and it checks Bedrock's actions without AWS's region
conditions. Here they answer in AWS's shapes (botocore's `bedrock` service model:
`inferenceProfileSummaries`, `models[].modelArn`, `tags[].key/value`), with AWS's
errors: `AccessDeniedException` (HTTP 403) when the caller's policy does not allow the
`bedrock:` action, `ResourceNotFoundException` (404) for an unknown profile, and
`ValidationException` (400) for a bad page size.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from moto.bedrock.responses import BedrockResponse

from .aws_errors import AwsError, error_response
from .iam import CloudWatchIAMRequest

_ORIGINAL_CALL_ACTION = BedrockResponse.call_action
PAGE_SIZE = 1000  # ListInferenceProfiles' maxResults: 1 to 1000


@dataclass
class Profile:
    profile_id: str
    arn: str
    name: str
    model_arns: list[str]
    tags: dict[str, str]
    created_at: str


@dataclass
class BedrockState:
    profiles: dict[tuple[str, str], list[Profile]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (action, account, region)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.profiles.clear()
            self.log.clear()

    def calls(self, action: str) -> int:
        return sum(1 for logged, _, _ in self.log if logged == action)


STATE = BedrockState()


def add_application_profile(
    account_id: str,
    region: str,
    name: str,
    model_arns: list[str],
    tags: dict[str, str],
    profile_id: str | None = None,
) -> Profile:
    """An application inference profile, as CreateInferenceProfile makes one: a random
    12-character id of lowercase letters and digits (or `profile_id`, for a demo served
    again)."""
    alphabet = string.ascii_lowercase + string.digits
    profile_id = profile_id or "".join(secrets.choice(alphabet) for _ in range(12))
    arn = f"arn:aws:bedrock:{region}:{account_id}:application-inference-profile/{profile_id}"
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    profile = Profile(profile_id, arn, name, list(model_arns), dict(tags), created)
    with STATE._lock:
        STATE.profiles.setdefault((account_id, region), []).append(profile)
    return profile


class BedrockIAMRequest(CloudWatchIAMRequest):
    """moto signs a GET's query parameters as if they were its body; AWS signs a GET
    with an empty body (the parameters are in the canonical query string)."""

    def _create_aws_request(self):
        request = super()._create_aws_request()
        if self._method == "GET":
            request.data = b""
        return request


def call_action(self: BedrockResponse):
    """moto's call_action for the profile actions, with AWS's IAM semantics and errors."""
    action = self._get_action()
    if action not in ("ListInferenceProfiles", "GetInferenceProfile", "ListTagsForResource"):
        return _ORIGINAL_CALL_ACTION(self)
    try:
        try:
            self._authenticate_and_authorize_action(BedrockIAMRequest, "*")
        except AwsError as error:
            if error.code != "AccessDenied":
                raise
            raise AwsError("AccessDeniedException", error.message, status=403) from None
        with STATE._lock:
            STATE.log.append((action, self.current_account, self.region))
        body = {
            "ListInferenceProfiles": _list_profiles,
            "GetInferenceProfile": _get_profile,
            "ListTagsForResource": _list_tags,
        }[action](self)
    except AwsError as error:
        return error_response(self, error)
    return 200, {"Content-Type": "application/json", "status": 200}, json.dumps(body)


def _profiles(response: BedrockResponse) -> list[Profile]:
    with STATE._lock:
        return list(STATE.profiles.get((response.current_account, response.region), []))


def _summary(profile: Profile) -> dict:
    return {
        "inferenceProfileName": profile.name,
        "createdAt": profile.created_at,
        "updatedAt": profile.created_at,
        "inferenceProfileArn": profile.arn,
        "models": [{"modelArn": arn} for arn in profile.model_arns],
        "inferenceProfileId": profile.profile_id,
        "status": "ACTIVE",
        "type": "APPLICATION",
    }


def _list_profiles(response: BedrockResponse) -> dict:
    kind = _query(response, "type") or "SYSTEM_DEFINED"  # typeEquals on the wire
    size = int(_query(response, "maxResults") or PAGE_SIZE)
    if not 1 <= size <= PAGE_SIZE:
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
            f"constraint: Member must have value less than or equal to {PAGE_SIZE}",
        )
    start = int(_query(response, "nextToken") or 0)
    listed = _profiles(response) if kind == "APPLICATION" else []
    page = listed[start : start + size]
    answer: dict = {"inferenceProfileSummaries": [_summary(p) for p in page]}
    if start + size < len(listed):
        answer["nextToken"] = str(start + size)
    return answer


def _query(response: BedrockResponse, name: str) -> str | None:
    return (response.querystring.get(name) or [None])[0]


def _find(response: BedrockResponse, identifier: str) -> Profile:
    for profile in _profiles(response):
        if identifier in (profile.profile_id, profile.arn):
            return profile
    raise AwsError(
        "ResourceNotFoundException", "The specified inference profile does not exist.", 404
    )


def _get_profile(response: BedrockResponse) -> dict:
    identifier = unquote(response.path.rstrip("/").rsplit("/", 1)[-1])
    return _summary(_find(response, identifier))


def _list_tags(response: BedrockResponse) -> dict:
    arn = json.loads(response.body or "{}").get("resourceARN", "")
    profile = _find(response, arn)  # only profiles are served
    return {"tags": [{"key": k, "value": v} for k, v in profile.tags.items()]}


def install() -> None:
    BedrockResponse.call_action = call_action
