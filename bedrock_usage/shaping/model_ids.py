"""What a raw `ModelId` says: provider, base model and inference scope.

CloudWatch reports the id the caller invoked, which takes several shapes:
- a foundation model: `anthropic.claude-3-haiku-20240307-v1:0`
- a geographic or global inference profile: `us.` / `eu.` / `apac.` / `global.` ... + model
- an application inference profile: its 12-character id, or its ARN
- provisioned throughput, custom and imported models: ARNs
The raw id is always kept; these are derived so analysts can group by them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ..extraction.catalog import inference_profile_prefixes

UNATTRIBUTED = "(unattributed)"

ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[\w-]*:\d*:(?P<kind>[\w-]+)/(?P<resource>.+)$")
APPLICATION_PROFILE_ID = re.compile(r"^[a-z0-9]{12}$")
FOUNDATION_MODEL = re.compile(r"^(?P<provider>[a-z0-9-]+)\.[\w.:-]+$")

ARN_SCOPES = {
    "provisioned-model": "provisioned",
    "custom-model": "custom",
    "custom-model-deployment": "custom",
    "imported-model": "imported",
    "application-inference-profile": "application_profile",
    "prompt-router": "prompt_router",
}


@dataclass(frozen=True)
class ModelDescription:
    model_provider: str
    base_model_id: str
    inference_scope: str


@cache
def describe_model_id(model_id: str) -> ModelDescription:
    """`inference_scope` is `in_region` for a foundation model called directly, the
    geography (`us`, `eu`, `apac`, `global`, ...) for an inference profile, or one of
    `application_profile`, `provisioned`, `custom`, `imported`, `prompt_router`,
    `unknown`, `unattributed`."""
    if model_id == UNATTRIBUTED:
        return ModelDescription(UNATTRIBUTED, UNATTRIBUTED, "unattributed")
    arn = ARN.match(model_id)
    if arn:
        kind, resource = arn["kind"], arn["resource"]
        if kind in ("foundation-model", "inference-profile"):
            return describe_model_id(resource)
        return ModelDescription("unknown", model_id, ARN_SCOPES.get(kind, "unknown"))
    geography, _, rest = model_id.partition(".")
    if geography in inference_profile_prefixes() and FOUNDATION_MODEL.match(rest):
        base = describe_model_id(rest)
        return ModelDescription(base.model_provider, base.base_model_id, geography)
    foundation = FOUNDATION_MODEL.match(model_id)
    if foundation:
        return ModelDescription(foundation["provider"], model_id, "in_region")
    if APPLICATION_PROFILE_ID.match(model_id):
        return ModelDescription("unknown", model_id, "application_profile")
    return ModelDescription("unknown", model_id, "unknown")
