"""STS AssumeRole that honours the role's trust policy, as AWS does.

moto issues credentials for any role to any caller; AWS checks the role's trust policy:
the caller must be a trusted principal, and an `sts:ExternalId` condition must match.
"""

from __future__ import annotations

import json

from moto.iam.models import iam_backends
from moto.sts.responses import TokenResponse

from .aws_errors import AwsError, error_response
from .iam import _as_list, _conditions_hold, _statements

_ORIGINAL_CALL_ACTION = TokenResponse.call_action


def call_action(self: TokenResponse):
    if self._get_action() == "AssumeRole":
        try:
            _check_trust(self)
        except AwsError as error:
            return error_response(self, error)
    return _ORIGINAL_CALL_ACTION(self)


def _check_trust(response: TokenResponse) -> None:
    role_arn = response._get_param("RoleArn") or ""
    external_id = response._get_param("ExternalId")
    caller_account = response.current_account
    caller_arn = _caller_arn(caller_account, response.get_access_key())
    role_account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    try:
        role = iam_backends[role_account]["aws"].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto raises its own NoSuchEntity
        role = None
    trusted = role is not None and any(
        statement.get("Effect") == "Allow"
        and "sts:AssumeRole" in _as_list(statement.get("Action", []))
        and _principal_matches(statement.get("Principal", {}), caller_account, caller_arn)
        and _conditions_hold(
            statement.get("Condition", {}), {"sts:ExternalId": external_id} if external_id else {}
        )
        for statement in _statements(json.loads(role.assume_role_policy_document))
    )
    if not trusted:
        raise AwsError(
            "AccessDenied",
            f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn}",
            status=403,
        )


def _caller_arn(account_id: str, access_key_id: str) -> str:
    key = iam_backends[account_id]["aws"].access_keys.get(access_key_id)
    if key is not None and key.user_name:
        return f"arn:aws:iam::{account_id}:user/{key.user_name}"
    return f"arn:aws:iam::{account_id}:root"


def _principal_matches(principal: dict | str, account_id: str, caller_arn: str) -> bool:
    if principal == "*":
        return True
    for allowed in _as_list(principal.get("AWS", [])) if isinstance(principal, dict) else []:
        if allowed in ("*", account_id, f"arn:aws:iam::{account_id}:root", caller_arn):
            return True
    return False


def install() -> None:
    TokenResponse.call_action = call_action
