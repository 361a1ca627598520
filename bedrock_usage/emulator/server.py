"""An AWS-faithful CloudWatch, STS and IAM on a real HTTP port, for tests, the demo
and benchmarks. moto serves the protocols; `cloudwatch_api` gives CloudWatch AWS's
semantics; IAM is enforced on every request, as on AWS.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.models import iam_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from . import bedrock_api, cloudwatch_api, sts_api
from .cloudwatch_api import STATE, CallLog

# Errors such as AccessDenied are not in CloudWatch's service model (IAM raises them);
# moto warns while serialising them, correctly. Request lines would drown test output.
warnings.filterwarnings("ignore", message=r"Exception\(AwsError\)")
logging.getLogger("werkzeug").setLevel(logging.ERROR)

# The minimum policy from the integration guide, verbatim in effect.
READ_ONLY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"],
            "Resource": "*",
        }
    ],
}


@dataclass(frozen=True)
class AccessKeyPair:
    account_id: str
    user_name: str
    access_key_id: str
    secret_access_key: str


class Emulator:
    """One emulator per process (moto's backends are process-wide).

    >>> with Emulator() as aws:
    ...     key = aws.create_reader("111122223333")
    ...     aws.seed("111122223333", "us-east-1", "AWS/Bedrock", "Invocations", {}, ts, values)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.endpoint_url = ""

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Emulator:
        cloudwatch_api.install()
        sts_api.install()
        bedrock_api.install()
        self.reset()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every account, key and data point; IAM enforcement on."""
        moto_api_backend.reset()
        STATE.store.clear()
        STATE.log.reset()
        STATE.forget_pages()
        STATE.throttle_next.clear()
        STATE.raw_next.clear()
        STATE.latency_seconds = 0.0
        bedrock_api.STATE.reset()
        STATE.page_limit = cloudwatch_api.MAX_DATAPOINTS_PER_RESPONSE
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

    @property
    def log(self) -> CallLog:
        return STATE.log

    def set_page_limit(self, points: int) -> None:
        """Answer GetMetricData with at most `points` a page, as AWS may."""
        STATE.page_limit = points

    def advance_clock(self, days: int) -> None:
        """Let time pass for CloudWatch: data ages (ListMetrics' two weeks, retention)."""
        STATE.store.clock_offset_seconds += days * 86_400

    def slow_down(self, seconds: float) -> None:
        """Make every CloudWatch request take `seconds` (0 restores full speed)."""
        STATE.latency_seconds = seconds

    def answer_raw(
        self,
        region: str,
        body: bytes,
        status: int = 200,
        content_type: str = "text/html",
        responses: int = 1,
        operation: str | None = None,
    ) -> None:
        """Answer the next `responses` CloudWatch requests in `region` (of `operation`
        only, if given) with this raw body instead of CloudWatch's, as a proxy or captive
        portal in between would."""
        for _ in range(responses):
            STATE.raw_next[region].append((operation, status, content_type, body))

    def reset_raw_answers(self) -> None:
        """CloudWatch answers every request itself again."""
        STATE.raw_next.clear()

    def throttle(self, region: str, responses: int) -> None:
        """Throttle the next `responses` CloudWatch requests in `region`."""
        STATE.throttle_next[region] += responses

    # IAM -----------------------------------------------------------------

    def create_reader(
        self,
        account_id: str,
        user_name: str = "bedrock-readonly",
        policy: dict | None = None,
        key_pair: tuple[str, str] | None = None,
    ) -> AccessKeyPair:
        """An IAM user with `policy` (the guide's read-only policy by default) and a new
        access key; `key_pair` fixes its id and secret (so a demo can be served again)."""
        iam = self._iam(account_id)
        if user_name not in iam.users:
            iam.create_user(region_name="us-east-1", user_name=user_name)
        self.put_policy(account_id, user_name, "bedrock-usage-read", policy or READ_ONLY_POLICY)
        key = iam.create_access_key(user_name)
        if key_pair:
            iam.access_keys.pop(key.access_key_id)
            key.access_key_id, key.secret_access_key = key_pair
            iam.access_keys[key.access_key_id] = key
        return AccessKeyPair(account_id, user_name, key.access_key_id, key.secret_access_key)

    def create_role(
        self,
        account_id: str,
        role_name: str,
        trusted_account: str,
        external_id: str | None = None,
        policy: dict | None = None,
    ) -> str:
        """A role in `account_id` that `trusted_account` may assume (with `external_id`),
        carrying `policy` (the read-only policy by default). Returns its ARN."""
        statement: dict = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{trusted_account}:root"},
            "Action": "sts:AssumeRole",
        }
        if external_id:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        iam = self._iam(account_id)
        role = iam.create_role(
            role_name=role_name,
            assume_role_policy_document=json.dumps(
                {"Version": "2012-10-17", "Statement": [statement]}
            ),
            path="/",
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration=3600,
            linked_service=None,
        )
        iam.put_role_policy(role_name, "bedrock-usage-read", json.dumps(policy or READ_ONLY_POLICY))
        return role.arn

    def put_policy(self, account_id: str, user_name: str, name: str, policy: dict) -> None:
        self._iam(account_id).put_user_policy(user_name, name, json.dumps(policy))

    def deny_region(self, key: AccessKeyPair, region: str) -> None:
        """Withdraw CloudWatch in one region from the key's user, as an edited IAM policy
        with an explicit Deny on `aws:RequestedRegion` would."""
        self.put_policy(
            key.account_id,
            key.user_name,
            f"deny-cloudwatch-{region}",
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Action": "cloudwatch:*",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
                    }
                ],
            },
        )

    def allow_region(self, key: AccessKeyPair, region: str) -> None:
        self._iam(key.account_id).delete_user_policy(key.user_name, f"deny-cloudwatch-{region}")

    def delete_access_key(self, key: AccessKeyPair) -> None:
        self._iam(key.account_id).delete_access_key(key.access_key_id, key.user_name)

    @staticmethod
    def _iam(account_id: str):
        return iam_backends[account_id]["aws"]

    # Bedrock's control plane ----------------------------------------------

    def create_application_profile(
        self,
        account_id: str,
        region: str,
        name: str,
        model_arns: list[str],
        tags: dict[str, str] | None = None,
        profile_id: str | None = None,
    ) -> bedrock_api.Profile:
        """An application inference profile routing to `model_arns` (one foundation
        model's ARN, or a system profile's regions), with its tags; `profile_id` fixes its
        id (so a demo can be served again)."""
        return bedrock_api.add_application_profile(
            account_id, region, name, model_arns, tags or {}, profile_id
        )

    @property
    def bedrock_log(self) -> bedrock_api.BedrockState:
        return bedrock_api.STATE

    # Metric data -----------------------------------------------------------

    def seed(
        self,
        account_id: str,
        region: str,
        namespace: str,
        metric_name: str,
        dimensions: dict[str, str] | None,
        timestamps: list[datetime] | np.ndarray,
        values: list[float] | np.ndarray,
        counts: list[float] | np.ndarray | None = None,
    ) -> None:
        """Store history in bulk, of any age (PutMetricData over HTTP only takes two weeks,
        as on AWS; AWS's own namespaces are published by AWS, so tests seed them here)."""
        STATE.store.add_points(
            account_id, region, namespace, metric_name, dimensions, timestamps, values, counts
        )
