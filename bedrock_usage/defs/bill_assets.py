"""What AWS billed: `bedrock_billed_daily`, one partition per billing period, read from
every billing source's CUR 2.0 export (`bedrock-usage billing connect`).

Partitioned by billing period, not by day: AWS delivers and rewrites an export a whole
period at a time (until the month closes, and up to two weeks after), so a period is the
unit that can be read, and replaced, exactly; a day's partition would re-read its month.
The schedule reads the open month every day, and the month before while AWS may still
revise it."""

from datetime import date, datetime, timedelta

import dagster as dg

from .. import settings
from ..bill_sync import read_bill
from ..errors import UserError
from ..storage.reconcile import bill_gaps
from .assets import GROUP
from .dagster_internals import add_partition_metadata
from .resources import StateStoreResource, WarehouseResource
from .run_health import POOL
from .tags import tag_run

# CUR 2.0 (AWS Data Exports) became available in November 2023: no export holds an
# earlier period.
billing_periods = dg.MonthlyPartitionsDefinition(start_date="2023-11-01", end_offset=1)
REVISED_FOR_DAYS = 15  # AWS may revise a closed period for two weeks after it closes


BILL_CHECK = dg.AssetCheckSpec(
    "bill_matches_estimate",
    asset="bedrock_billed_daily",
    description="Billed tokens and dollars agree with CloudWatch's tokens and the estimate "
    "within BEDROCK_USAGE_BILL_TOLERANCE; the worst gaps are named with their probable cause.",
)


@dg.asset(
    group_name=GROUP,
    partitions_def=billing_periods,
    check_specs=[BILL_CHECK],
    pool=POOL,
    kinds={"aws", "s3", "duckdb"},
    metadata={"dagster/table_name": "bedrock_billed_daily"},
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def bedrock_billed_daily(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    state_store: StateStoreResource,
) -> dg.MaterializeResult:
    """Bedrock's line items of each billing source's CUR 2.0 export for one billing
    period (table `bedrock_billed_daily`): per day, payer and usage account, region,
    model, token type, service tier and line item type (usage, discounts, credits and
    refunds kept apart), tokens, unblended and net cost, IAM principal and tags. The
    period is replaced whole each time it is read; a run over a range of periods (a
    backfill, `bedrock-usage billing read`) lists each export once."""
    tag_run(context, by_connection=False)
    periods = sorted(key[:7] for key in context.partition_keys)
    store = state_store.get()
    if not store.billing_sources():
        return dg.MaterializeResult(
            metadata={
                "skipped": "No billing source: 'bedrock-usage billing connect NAME --s3-uri ...'."
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=BILL_CHECK.name,
                    passed=True,
                    description="No billing source: nothing to compare.",
                )
            ],
        )
    try:
        reads = read_bill(warehouse.open_db, warehouse.path, periods, store)
    except UserError as error:
        raise dg.Failure(description=str(error)) from None
    with warehouse.open_db() as db:
        gaps = bill_gaps(db, periods, settings.bill_tolerance())
        figures = db.execute(
            "SELECT billing_period, billing_source, count(*), coalesce(sum(tokens), 0), "
            "coalesce(sum(unblended_cost_usd), 0), coalesce(sum(net_unblended_cost_usd), 0) "
            "FROM bedrock_billed_daily WHERE billing_period IN (SELECT unnest($periods)) "
            "GROUP BY ALL ORDER BY ALL",
            {"periods": periods},
        ).fetchall()
    add_partition_metadata(
        context,
        {f"{period}-01": _period_metadata(period, reads, figures) for period in periods},
    )
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name=BILL_CHECK.name,
                passed=not gaps,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "billing_periods": ", ".join(periods),
                    "worst_gaps": dg.MetadataValue.json(gaps),
                },
                description=None if not gaps else _gaps_description(gaps),
            )
        ],
    )


def _period_metadata(period: str, reads, figures) -> dict[str, object]:
    """One billing period's figures, read back from the table: what its partition shows."""
    rows = [f for f in figures if f[0] == period]
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(f[2] for f in rows)),
        "billing_period": period,
        "delivered_by": dg.MetadataValue.json(
            sorted(r.billing_source for r in reads if period in r.periods)
        ),
        "rows_by_source": dg.MetadataValue.json({f[1]: f[2] for f in rows}),
        "billed_tokens": dg.MetadataValue.int(int(sum(f[3] for f in rows))),
        "unblended_cost_usd": dg.MetadataValue.float(float(sum(f[4] for f in rows))),
        "net_cost_usd": dg.MetadataValue.float(float(sum(f[5] for f in rows))),
    }


def _gaps_description(gaps: list[dict]) -> str:
    worst = "; ".join(
        f"{g['usage_date']} {g['account_id']} {g['region']} {g['model_id']} {g['token_type']}: "
        f"CloudWatch {_figure(g['cloudwatch_tokens'], g['estimated_usd'], 'counted nothing')}, "
        f"billed {_figure(g['billed_tokens'], g['billed_unblended_usd'], 'nothing')} "
        f"({g['probable_cause']})"
        for g in gaps
    )
    return (
        f"The bill and the estimate differ: {worst}. Query bedrock_cost_vs_bill for every "
        "gap; sync again for late CloudWatch data, 'bedrock-usage prices refresh' for a "
        "price, connect the account or region the bill covers; service tiers, batch and "
        "credits are billed apart by design (cost_usd uses the bill)."
    )


def _figure(tokens, usd, missing: str) -> str:
    if tokens is None and usd is None:
        return missing
    counted = "no tokens" if tokens is None else f"{int(tokens):,} tokens"
    return f"{counted} / {'no price' if usd is None else f'${usd}'}"


billing_job = dg.define_asset_job(
    "bedrock_billing_read",
    selection=[bedrock_billed_daily],
    description="Read the billing sources' CUR 2.0 exports for a billing period.",
)


def periods_to_read(today: date, month_before_for_days: int = REVISED_FOR_DAYS) -> list[str]:
    """The open month, and the month before during the first `month_before_for_days`
    days (by default while AWS may still revise it)."""
    this_month = today.replace(day=1)
    periods = [this_month]
    if today.day <= month_before_for_days:
        periods.insert(0, (this_month - timedelta(days=1)).replace(day=1))
    return [p.isoformat() for p in periods]


@dg.schedule(
    job=billing_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily 07:00 UTC: read the open billing period (and the last one while AWS "
    "may still revise it) from every billing source.",
)
def daily_billing_schedule(context: dg.ScheduleEvaluationContext):
    scheduled = context.scheduled_execution_time or datetime.now()
    day = scheduled.date()
    for key in periods_to_read(day):
        yield dg.RunRequest(partition_key=key, run_key=f"{day}:{key}")


defs = dg.Definitions(
    assets=[bedrock_billed_daily], jobs=[billing_job], schedules=[daily_billing_schedule]
)
