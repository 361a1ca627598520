"""Verification before anything is stored: the keys work, they belong to the stated
account, and they can read CloudWatch's AWS/Bedrock namespace in every region.

STS GetCallerIdentity needs no permission (it succeeds even under an explicit deny), so
it proves the keys are valid and names their account, but says nothing about
CloudWatch: each region is asked with the two calls a sync makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3

from ..extraction.aws import cloudwatch_client, sts_client
from ..extraction.failures import FailureKind, RegionFailure, classify
from ..extraction.metrics import NAMESPACE, USAGE_METRICS, Series

# The region's total invocations: one metric, as cheap as a real query gets.
REGION_INVOCATIONS = Series(next(m for m in USAGE_METRICS if m.metric_name == "Invocations"), None)

WRONG_ACCOUNT_ACTION = (
    "Use an access key of an IAM user in account {expected}, or connect account {actual} "
    "under its own name: each AWS account that owns usage needs its own connection."
)


@dataclass
class Verification:
    expected_account: str
    actual_account: str | None = None
    identity_arn: str | None = None
    identity_failure: RegionFailure | None = None
    region_failures: dict[str, RegionFailure] = field(default_factory=dict)
    regions_ok: list[str] = field(default_factory=list)

    @property
    def account_matches(self) -> bool:
        return self.actual_account == self.expected_account

    @property
    def ok(self) -> bool:
        return self.identity_failure is None and self.account_matches and not self.region_failures

    def problems(self) -> list[str]:
        """Each failure, with its cause and next action, in one line each."""
        lines = []
        if self.identity_failure:
            lines.append(self.identity_failure.describe())
        elif not self.account_matches:
            lines.append(
                f"account: the key belongs to account {self.actual_account}, not "
                f"{self.expected_account}. Next: "
                + WRONG_ACCOUNT_ACTION.format(
                    expected=self.expected_account, actual=self.actual_account
                )
            )
        lines += [failure.describe() for failure in self.region_failures.values()]
        return lines


def verify_access(
    session: boto3.Session,
    expected_account: str,
    regions: tuple[str, ...],
    on_region: Callable[[str, RegionFailure | None], None] | None = None,
) -> Verification:
    result = Verification(expected_account)
    try:
        identity = sts_client(session, regions[0]).get_caller_identity()
        result.actual_account = identity["Account"]
        result.identity_arn = identity["Arn"]
    except Exception as error:  # noqa: BLE001 - classified; programming errors re-raised
        failure = classify("credentials", error)
        if failure.kind is not FailureKind.PERMISSION:
            result.identity_failure = failure
            return result
    for region in regions:
        failure = check_region(session, region)
        if failure:
            result.region_failures[region] = failure
        else:
            result.regions_ok.append(region)
        if on_region:
            on_region(region, failure)
    return result


def check_region(session: boto3.Session, region: str) -> RegionFailure | None:
    """ListMetrics and one GetMetricData query on AWS/Bedrock, as a sync would make."""
    client = cloudwatch_client(session, region)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        client.list_metrics(Namespace=NAMESPACE)
        client.get_metric_data(
            MetricDataQueries=[REGION_INVOCATIONS.query("verify", period=3600)],
            StartTime=end - timedelta(hours=1),
            EndTime=end,
        )
    except Exception as error:  # noqa: BLE001 - classified; programming errors re-raised
        return classify(region, error)
    return None
