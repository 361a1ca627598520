"""The shipped catalog of Bedrock model ids (model_catalog.json beside this file).

ListMetrics only sees metrics with data in the past two weeks, so a model that has been
idle longer is invisible to it. When a region's total shows usage in older days that
no known model accounts for, these ids are probed to find it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def _catalog() -> dict:
    text = resources.files("bedrock_usage.extraction").joinpath("model_catalog.json").read_text()
    return json.loads(text)


def inference_profile_prefixes() -> tuple[str, ...]:
    return tuple(_catalog()["inference_profile_prefixes"])


def mantle_model_ids() -> list[str]:
    """Model ids of the bedrock-mantle endpoint (AWS/BedrockMantle's `Model`)."""
    return list(_catalog()["mantle_models"])


def known_model_ids() -> list[str]:
    """Foundation models and their geographic inference profiles."""
    catalog = _catalog()
    return list(dict.fromkeys(catalog["foundation_models"] + catalog["inference_profiles"]))
