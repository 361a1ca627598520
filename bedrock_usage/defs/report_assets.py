"""The month's spend report as a Dagster asset: one HTML file per month (report.py),
refreshed every morning for the month in progress, with its headline figures in the UI."""

from datetime import date, datetime

import dagster as dg

from ..days import utc_today
from ..report import write_report
from .assets import GROUP
from .bill_assets import billing_periods, periods_to_read
from .tags import tag_run

REPORT_ASSET = "bedrock_spend_report"


@dg.asset(
    name=REPORT_ASSET,
    group_name=GROUP,
    partitions_def=billing_periods,
    kinds={"html"},
    deps=[
        dg.AssetDep("bedrock_cost_daily", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("bedrock_billed_daily"),
    ],
)
def bedrock_spend_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One self-contained HTML file per month (no network at view time): daily spend and
    tokens by model beside the month before, accounts, owners, estimate against the bill,
    the week's top movers, budgets and anomalies, and data coverage. Written beside the
    analysts' copy (reports/bedrock-spend-YYYY-MM.html) or under the lake's data path;
    `bedrock-usage report` writes the same."""
    tag_run(context, by_connection=False)
    month = date.fromisoformat(context.partition_key)
    where, report = write_report(month, today=utc_today())
    table = "\n".join(
        ["| figure | value |", "|---|---|"]
        + [f"| {k.replace('_', ' ')} | {v} |" for k, v in report.headline.items()]
    )
    location = (
        dg.MetadataValue.url(where) if where.startswith("s3://") else dg.MetadataValue.path(where)
    )
    return dg.MaterializeResult(
        metadata={
            "report": location,
            "headline": dg.MetadataValue.md(table),
            "bytes": len(report.html.encode()),
        }
    )


report_job = dg.define_asset_job(
    "bedrock_spend_report_build",
    selection=[REPORT_ASSET],
    description="Write a month's spend report (HTML with charts).",
)


@dg.schedule(
    job=report_job,
    cron_schedule="30 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily 07:30 UTC (after the syncs and the bill): the month in progress's "
    "report, and the month before's on the first 3 days.",
)
def daily_report_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time or datetime.now()).date()
    # The month just closed too, for 3 days, with its last days and bill.
    for month in periods_to_read(day, month_before_for_days=3):
        yield dg.RunRequest(partition_key=month, run_key=f"{day}:{month}")


defs = dg.Definitions(
    assets=[bedrock_spend_report], jobs=[report_job], schedules=[daily_report_schedule]
)
