"""What it cost: the list-price table, refreshed weekly, and the estimated cost of each
usage partition, with a check that shows usage no list price covers."""

import dagster as dg

from .. import settings
from ..days import utc_today
from ..frames import one_at_a_time
from ..price_refresh import connected_regions, refresh_prices
from ..pricing.price_list import PriceListError
from ..spend_alerts import BudgetStatus, budget_severity, budget_statuses
from ..storage.columns import USAGE_COLUMN_DOCS
from ..storage.costs import (
    COST_COLUMNS,
    cost_by_partition,
    cost_totals,
    merge_unpriced,
    unpriced_usage,
)
from ..storage.owners import OwnerCoverage, owner_coverage
from ..storage.quality import window_filter
from .assets import GROUP, bedrock_usage_daily, log_run_totals
from .checks import REGIONS_READ_CHECK, regions_read_result
from .dagster_internals import add_partition_metadata
from .partitions import partition_days, usage_partitions, windows_by_connection
from .resources import PriceListResource, StateStoreResource, WarehouseResource
from .run_health import POOL
from .tags import FAILED_CONNECTIONS_TAG, connections_of, tag_run

# Usage columns the cost view does not repeat.
COST_OMITS = {
    "client_errors", "server_errors", "throttles", "latency_ms_sum", "latency_samples",
    "synced_at",
}  # fmt: skip
OWNER_CHECK = dg.AssetCheckSpec(
    "spend_has_owner",
    asset="bedrock_cost_daily",
    description="The estimated spend of the run's days has an owner (the ownership map or "
    "tags); the share without one and its largest sources are named, with the command that "
    "would assign each.",
)
BUDGET_CHECK = dg.AssetCheckSpec(
    "budgets_within_limits",
    asset="bedrock_cost_daily",
    description="Each budget's month-to-date spend and forecast (bedrock-usage budgets): "
    "WARN near a budget (its highest threshold under 100 %, or a forecast over it), ERROR "
    "over it.",
)
UNPRICED_CHECK = dg.AssetCheckSpec(
    "usage_priced",
    asset="bedrock_cost_daily",
    description="Every model with usage has a list price; unpriced usage is listed by model.",
)


@dg.asset(group_name=GROUP, pool=POOL, kinds={"aws", "duckdb"})
def bedrock_prices(
    warehouse: WarehouseResource, state_store: StateStoreResource, price_list: PriceListResource
) -> dg.MaterializeResult:
    """On-demand list prices per model, region and token type (table `bedrock_prices`),
    dated: `effective_from` / `effective_to`. A snapshot ships with the package and works
    offline; this asset adds AWS's Price List offer files for the regions of every
    connection (public files: no credentials, nothing from the read-only policy) and
    keeps the history when a price changes. Prices AWS and the shipped snapshot disagree
    on, and offer names this version cannot map to a model id, are in the metadata."""
    regions = connected_regions(state_store.get())
    if not regions:
        return dg.MaterializeResult(
            metadata={"skipped": "No connections yet: the shipped prices apply."}
        )
    try:
        report = refresh_prices(warehouse.open_db, warehouse.path, regions, price_list.base_url())
    except (PriceListError, settings.SettingsError) as error:
        raise dg.Failure(description=str(error)) from None
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": "bedrock_prices",
            "regions_read": dg.MetadataValue.json(report.regions_read),
            "regions_not_in_price_list": dg.MetadataValue.json(report.regions_not_listed),
            "rows_read": report.rows_read,
            "rows_changed": report.rows_changed,
            "names_not_mapped": dg.MetadataValue.json(report.unknown_names),
            "tier_rows_stored_apart": dg.MetadataValue.json(report.tiers),
            "offers_not_published": dg.MetadataValue.json(report.offers_not_published),
            "differences_from_shipped": dg.MetadataValue.json(
                [[m, r, t, str(a), str(s)] for m, r, t, a, s in report.differences]
            ),
        }
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=POOL,
    kinds={"duckdb"},
    deps=[bedrock_usage_daily],
    check_specs=[UNPRICED_CHECK, OWNER_CHECK, BUDGET_CHECK, REGIONS_READ_CHECK],
    metadata={
        "dagster/table_name": "bedrock_cost_daily",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, type_, description)
                for name, type_, description in (*USAGE_COLUMN_DOCS, *COST_COLUMNS)
                if name not in COST_OMITS
            ]
        ),
    },  # fmt: skip
)
def bedrock_cost_daily(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    state_store: StateStoreResource,
) -> dg.MaterializeResult:
    """Estimated cost in USD of each usage row (view `bedrock_cost_daily`: the usage
    columns plus `estimated_cost_usd`, `price_effective_from`, `price_source`): tokens x
    the on-demand list price in force that day in that region, cache reads and writes at
    their own rates. NULL, never 0, where no list price applies (provisioned, custom and
    imported models, unattributed usage, models missing from `bedrock_prices`): the
    `usage_priced` check lists them. A view, so re-syncs and late data change it at once.
    Excludes discounts, credits, batch, service tiers and provisioned hours, which
    CloudWatch does not report."""
    tag_run(context)
    windows = windows_by_connection(context.partition_keys)
    unpriced_parts = []
    daily = {}
    with warehouse.open_db() as db:
        # A connection's window at a time, DuckDB's cache shed between: one query over
        # ten connection-years took 149 MB, one over a connection-year 42 MB.
        for connection_id, day_range in one_at_a_time(db, windows):
            window = {connection_id: day_range}
            daily.update(cost_by_partition(db, window))
            unpriced_parts.append(unpriced_usage(db, window))
        coverage = owner_coverage(db, *window_filter(windows))
        statuses = budget_statuses(db, utc_today(), state_store.get())
    records = merge_unpriced(unpriced_parts).to_dict("records")
    summary = cost_totals(daily.values())
    log_run_totals(
        context,
        {
            "run_estimated_cost_usd": str(summary["estimated_cost_usd"]),
            "run_unpriced_tokens": summary["unpriced_tokens"],
            "run_days": {c: str(d) for c, d in windows.items()},
        },
    )
    # The cost a float, so Dagster plots it: exact to the cent and far below.
    add_partition_metadata(
        context,
        {
            key: {
                "estimated_cost_usd": dg.MetadataValue.float(float(daily[day][0])),
                "unpriced_tokens": dg.MetadataValue.int(daily[day][1]),
            }
            for key, day in partition_days(context.partition_keys)
        },
    )
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="usage_priced",
                passed=not records,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"unpriced_by_model": dg.MetadataValue.json(records)},
                description=None
                if not records
                else (
                    "Usage without a list price has no estimate (NULL) and is left out of the "
                    "monthly totals; unpriced_by_model gives each model's cause. "
                    "Provisioned, custom and imported models are billed by the hour or by "
                    "AWS Marketplace, not per token; an application inference profile needs "
                    "the optional profile permissions to be priced as its model; for a "
                    "foundation model, run 'bedrock-usage prices refresh' or add its offer "
                    "name to pricing/price_list_names.json."
                ),
            ),
            _owner_result(coverage),
            _budget_result(statuses),
            regions_read_result(
                state_store.get(),
                windows,
                connections_of(
                    context.instance.get_run_by_id(context.run.run_id).tags,
                    FAILED_CONNECTIONS_TAG,
                ),
            ),
        ],
    )


def _budget_result(statuses: list[BudgetStatus]) -> dg.AssetCheckResult:
    graded = [(budget_severity(s), s) for s in statuses]
    flagged = [(severity, s) for severity, s in graded if severity]
    metadata = {"budgets": dg.MetadataValue.json([s.as_dict() for s in statuses])}
    if not flagged:
        return dg.AssetCheckResult(
            check_name=BUDGET_CHECK.name, passed=True, metadata=metadata,
            description=f"{len(statuses)} budget(s), none near its limit."
            if statuses else "No budget: 'bedrock-usage budgets set NAME --monthly-usd N'.",
        )  # fmt: skip
    over = any(severity == "ERROR" for severity, _ in flagged)
    return dg.AssetCheckResult(
        check_name=BUDGET_CHECK.name,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if over else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description="; ".join(
            f"{s.budget.describe()}: ${s.month_to_date_usd} {s.basis} in {s.month} "
            f"({100 * s.used_share:.0f}%), forecast "
            f"{'$' + str(s.forecast_usd) if s.forecast_usd is not None else 'not yet'}"
            + (" — OVER" if severity == "ERROR" else " — near")
            for severity, s in flagged
        )
        + ". 'bedrock-usage budgets list' shows every budget.",
    )


def _owner_result(coverage: OwnerCoverage) -> dg.AssetCheckResult:
    metadata = {
        "unassigned_share": dg.MetadataValue.float(round(coverage.unassigned_share, 6)),
        "unassigned_usd": dg.MetadataValue.float(round(coverage.unassigned_usd, 6)),
        "estimated_usd": dg.MetadataValue.float(round(coverage.total_usd, 6)),
        "largest_unassigned": dg.MetadataValue.json(coverage.largest_unassigned),
    }
    if not coverage.configured:
        return dg.AssetCheckResult(
            check_name=OWNER_CHECK.name, passed=True, metadata=metadata,
            description="No ownership map or owner tags yet: 'bedrock-usage owners set "
            "--team TEAM --connection NAME' assigns spend (docs/analysts.md, owners).",
        )  # fmt: skip
    worst = "; ".join(
        f"{s['connection_id']} {s['region']} "
        f"{s['project_id'] or s['profile_name'] or s['model_id']} "
        f"(${s['estimated_cost_usd']}): {s['assign_with']}"
        for s in coverage.largest_unassigned
    )
    return dg.AssetCheckResult(
        check_name=OWNER_CHECK.name,
        passed=coverage.unassigned_usd == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=None if coverage.unassigned_usd == 0 else (
            f"{coverage.unassigned_share:.1%} of the estimated spend "
            f"(${coverage.unassigned_usd:.2f} of ${coverage.total_usd:.2f}) has no owner "
            "and shows as (unassigned). "
            f"Largest: {worst}."
        ),
    )  # fmt: skip


prices_job = dg.define_asset_job(
    "bedrock_prices_refresh",
    selection=[bedrock_prices],
    description="Read AWS's Price List for the connections' regions into bedrock_prices.",
)
weekly_prices_schedule = dg.ScheduleDefinition(
    job=prices_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 06:00 UTC: refresh list prices from AWS's Price List.",
)

defs = dg.Definitions(
    assets=[bedrock_prices, bedrock_cost_daily],
    jobs=[prices_job],
    schedules=[weekly_prices_schedule],
)
