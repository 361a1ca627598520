"""The sync job: the partitioned assets, for a set of partitions."""

import dagster as dg

from .assets import bedrock_usage_daily, cloudwatch_datapoints
from .cost_assets import bedrock_cost_daily
from .freshness import freshness_checks
from .tags import TRIGGER_TAG

sync_job = dg.define_asset_job(
    "bedrock_usage_sync",
    # The assets with their own checks. Freshness is the daemon's to judge (a run that
    # just wrote would always pass it), and Dagster evaluates an unpartitioned check of a
    # partitioned asset by listing every partition: days × connections, growing daily.
    selection=dg.AssetSelection.assets(
        cloudwatch_datapoints, bedrock_usage_daily, bedrock_cost_daily
    )
    - dg.AssetSelection.checks(*freshness_checks),
    tags={TRIGGER_TAG: "ui"},
    description="Read CloudWatch for the selected days and connections, rebuild the daily "
    "usage table, and estimate its cost.",
)

defs = dg.Definitions(jobs=[sync_job])
