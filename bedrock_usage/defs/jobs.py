"""The job that materializes both assets for a set of partitions."""

import dagster as dg

from .assets import bedrock_usage_daily, cloudwatch_datapoints

sync_job = dg.define_asset_job(
    "bedrock_usage_sync",
    selection=[cloudwatch_datapoints, bedrock_usage_daily],
    description="Read CloudWatch for the selected days and connections, then rebuild the "
    "daily usage table.",
)

defs = dg.Definitions(jobs=[sync_job])
