"""IAM for the emulator's CloudWatch: the real `cloudwatch:` policy, region conditions.

moto checks CloudWatch actions as `monitoring:GetMetricData` (the endpoint's name),
so the read-only policy from the integration guide would be denied, and it ignores
policy conditions on user keys. Here an action is checked as `cloudwatch:<Action>`
and statements may carry an `aws:RequestedRegion` condition, which is how a policy
grants or withdraws one region.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from moto.iam.access_control import IAMPolicy, IAMRequest

from .aws_errors import AwsError


class CloudWatchIAMRequest(IAMRequest):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._action = self._action.replace("monitoring:", "cloudwatch:", 1)

    def check_action_permitted(self, resource: str) -> None:
        context = {"aws:RequestedRegion": self._region}
        permitted = False
        for policy in self._access_key.collect_policies():
            for statement in _statements(IAMPolicy(policy)._policy_json):
                if not _statement_applies(statement, self._action, resource, context):
                    continue
                if statement.get("Effect") == "Deny":
                    self._raise_access_denied()
                permitted = True
        if not permitted:
            self._raise_access_denied()

    def _raise_access_denied(self) -> None:
        raise AwsError(
            "AccessDenied",
            f"User: {self._access_key.arn} is not authorized to perform: {self._action}",
            status=403,
        )

    def _raise_invalid_access_key(self, _: str) -> None:
        raise AwsError(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            status=403,
        )

    def _raise_signature_does_not_match(self) -> None:
        raise AwsError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            status=403,
        )


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _statement_applies(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, str]
) -> bool:
    if "NotAction" in statement:
        if any(_glob(pattern, action) for pattern in _as_list(statement["NotAction"])):
            return False
    elif not any(_glob(pattern, action) for pattern in _as_list(statement.get("Action", []))):
        return False
    if not any(_glob(pattern, resource) for pattern in _as_list(statement.get("Resource", "*"))):
        return False
    return _conditions_hold(statement.get("Condition", {}), context)


def _glob(pattern: str, value: str) -> bool:
    # IAM action names are case-insensitive.
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _conditions_hold(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, checks in conditions.items():
        for key, expected in checks.items():
            actual = context.get(key)
            wanted = _as_list(expected)
            if operator == "StringEquals":
                holds = actual in wanted
            elif operator == "StringNotEquals":
                holds = actual not in wanted
            elif operator == "StringLike":
                holds = actual is not None and any(_glob(w, actual) for w in wanted)
            elif operator == "StringNotLike":
                holds = actual is None or not any(_glob(w, actual) for w in wanted)
            else:
                raise AwsError(
                    "MalformedPolicyDocument",
                    f"The emulator does not evaluate the condition operator {operator}.",
                )
            if not holds:
                return False
    return True
