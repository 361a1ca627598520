"""Application inference profiles: what the opaque id CloudWatch reports routes to.

CloudWatch names usage through an application inference profile by the profile's
12-character id (or its ARN), never by the model behind it. With the optional
statement below, a sync asks Bedrock's control plane (ListInferenceProfiles, then
ListTagsForResource for each profile the usage names) which foundation model(s) the
profile routes to and what it is tagged with. Without it, nothing fails: the usage stays
visible, unpriced, and the missing permission is reported.

How a profile routes is read from its model ARNs (inferred from AWS's examples, not a
documented rule): every ARN in the profile's own region is an in-region profile; ARNs in
several regions of one geography (us-*, eu-*, ...) are that geography's cross-region
profile; regions of more than one geography are global.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ..extraction.aws import client_config
from ..extraction.failures import classify
from ..shaping.model_ids import describe_model_id

PROFILE_ACTIONS = (
    "bedrock:ListInferenceProfiles",
    "bedrock:GetInferenceProfile",
    "bedrock:ListTagsForResource",
)
# Beside the minimal policy, never instead of it: its resources are the account's
# application inference profiles only.
PROFILE_PERMISSION = "inference_profiles"  # the optional permission, as status names it
PROFILE_POLICY_STATEMENT = {
    "Effect": "Allow",
    "Action": list(PROFILE_ACTIONS),
    "Resource": "*",
}
PROFILE_PERMISSION_ADVICE = (
    "Application inference profiles cannot be read ({code}): their usage stays unpriced "
    "and without the model behind it. Add the optional statement allowing "
    + ", ".join(PROFILE_ACTIONS)
    + " to the read-only policy (docs/operating.md, 'Application inference profiles'), "
    "then sync again."
)
# A region's prefix names its geography, as the cross-region profiles' prefixes do.
GEOGRAPHIES = {"us": "us", "ca": "ca", "eu": "eu", "ap": "apac", "sa": "sa", "me": "me"}


@dataclass(frozen=True)
class Profile:
    profile_id: str
    profile_arn: str
    profile_name: str
    model_arns: tuple[str, ...]
    base_model_id: str
    model_provider: str
    inference_scope: str
    tags: dict[str, str] = field(default_factory=dict)

    def tags_json(self) -> str:
        return json.dumps(self.tags, sort_keys=True)


@dataclass
class ProfileRead:
    """The profiles a region's usage names, resolved; or why they could not be."""

    profiles: list[Profile] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)  # deleted since, or never listed
    failure_code: str | None = None
    calls: int = 0

    def rows(self) -> list[dict]:
        """The profiles as bedrock_inference_profiles rows (storage/profiles.py)."""
        return [
            {
                "profile_id": p.profile_id, "profile_arn": p.profile_arn,
                "profile_name": p.profile_name, "model_arns": list(p.model_arns),
                "base_model_id": p.base_model_id, "model_provider": p.model_provider,
                "inference_scope": p.inference_scope, "tags": p.tags_json(),
            }
            for p in self.profiles
        ]  # fmt: skip

    @property
    def advice(self) -> str | None:
        if self.failure_code is None:
            return None
        return PROFILE_PERMISSION_ADVICE.format(code=self.failure_code)


def application_profile_ids(model_ids) -> list[str]:
    """The model ids that name an application inference profile (id or ARN)."""
    return sorted(
        m for m in model_ids if describe_model_id(m).inference_scope == "application_profile"
    )


def read_profiles(session: boto3.Session, region: str, seen: list[str]) -> ProfileRead:
    """Resolve the application profiles in `seen` (ids or ARNs) for one region: one
    paginated ListInferenceProfiles, then ListTagsForResource per profile named."""
    read = ProfileRead()
    if not seen:
        return read
    client = session.client("bedrock", region_name=region, config=client_config())
    try:
        listed = {}
        for page in client.get_paginator("list_inference_profiles").paginate(
            typeEquals="APPLICATION"
        ):
            read.calls += 1
            for summary in page["inferenceProfileSummaries"]:
                listed[summary["inferenceProfileId"]] = summary
                listed[summary["inferenceProfileArn"]] = summary
        for model_id in seen:
            summary = listed.get(model_id)
            if summary is None:
                read.not_found.append(model_id)
                continue
            tags = client.list_tags_for_resource(resourceARN=summary["inferenceProfileArn"])
            read.calls += 1
            read.profiles.append(
                _profile(summary, region, {t["key"]: t["value"] for t in tags["tags"]})
            )
    except (ClientError, BotoCoreError) as error:
        read.failure_code = classify(region, error).code
        read.profiles.clear()
    return read


def _profile(summary: dict, region: str, tags: dict[str, str]) -> Profile:
    arns = tuple(m["modelArn"] for m in summary.get("models", []))
    model_ids = sorted({arn.rsplit("/", 1)[-1] for arn in arns})
    base = describe_model_id(model_ids[0]) if model_ids else None
    return Profile(
        profile_id=summary["inferenceProfileId"],
        profile_arn=summary["inferenceProfileArn"],
        profile_name=summary["inferenceProfileName"],
        model_arns=arns,
        base_model_id=base.base_model_id if base else summary["inferenceProfileId"],
        model_provider=base.model_provider if base else "unknown",
        inference_scope=routing_scope(arns, region) if base else "application_profile",
        tags=tags,
    )


def routing_scope(model_arns: tuple[str, ...], region: str) -> str:
    """`in_region`, a geography (`us`, `eu`, `apac`, ...) or `global`, from the regions
    of the model ARNs a profile routes to."""
    regions = {arn.split(":")[3] for arn in model_arns if arn.count(":") >= 5}
    if regions <= {region, ""}:
        return "in_region"
    geographies = {GEOGRAPHIES.get(r.split("-")[0], r.split("-")[0]) for r in regions if r}
    return geographies.pop() if len(geographies) == 1 else "global"
