"""The sync job: the partitioned assets, for a set of partitions."""

import dagster as dg

from .assets import bedrock_usage_daily, cloudwatch_datapoints
from .costs import bedrock_cost_daily

# Every run says which connection it syncs and what started it: cli, demo, schedule,
# sensor, or ui (the default, for runs and backfills launched in the Dagster UI).
CONNECTION_TAG = "bedrock_usage/connection"
TRIGGER_TAG = "bedrock_usage/trigger"

sync_job = dg.define_asset_job(
    "bedrock_usage_sync",
    selection=[cloudwatch_datapoints, bedrock_usage_daily, bedrock_cost_daily],
    tags={TRIGGER_TAG: "ui"},
    description="Read CloudWatch for the selected days and connections, rebuild the daily "
    "usage table, and estimate its cost.",
)

defs = dg.Definitions(jobs=[sync_job])
