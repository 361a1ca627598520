"""The two assets: what CloudWatch answered, and the daily usage table built from it.

Both are partitioned by UTC day × connection and run a whole backfill as one run
(`BackfillPolicy.single_run()`), so a year for one connection is one run and as few
GetMetricData calls as the core allows. They write through the warehouse resource in
explicit transactions (the stock DuckDB IO manager fails on these partitions), inside
the "duckdb" concurrency pool: one writer at a time.
"""

from collections.abc import Callable

import dagster as dg

from ..connections import service
from ..extraction.errors import FailureKind
from ..extraction.fetch import RegionFetch
from ..storage.warehouse import (
    WarehouseBusyError,
    publish_snapshot,
    rebuild_usage,
    transaction,
)
from .checks import (
    PERMISSION_CHECK,
    USAGE_CHECKS,
    permission_check_result,
    usage_check_results,
)
from .partitions import usage_partitions, windows_by_connection
from .resources import StateStoreResource, WarehouseResource

GROUP = "bedrock_usage"
POOL = "duckdb"

# In-process listeners (the CLI's progress display) told as each region finishes.
region_listeners: list[Callable[[RegionFetch], None]] = []


def _notify(fetch: RegionFetch) -> None:
    for listener in region_listeners:
        listener(fetch)


@dg.asset(
    group_name=GROUP,
    partitions_def=usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=POOL,
    kinds={"aws", "duckdb"},
    check_specs=[PERMISSION_CHECK],
)
def cloudwatch_datapoints(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    state_store: StateStoreResource,
) -> dg.MaterializeResult:
    """What CloudWatch answered for each day, connection, region, model and metric
    (table `cloudwatch_daily_datapoints`; the dimensionless region total is stored as
    model_id '(region total)').

    Reads only the AWS/Bedrock namespace with ListMetrics and GetMetricData, one call
    spanning all the run's days. A region that cannot be read keeps its earlier rows and
    fails the `cloudwatch_permissions` check with the reason and the fix; when every region
    fails, the run fails with the same explanation."""
    store = state_store.get()
    fetches_by_connection: dict[str, list[RegionFetch]] = {}
    accounts: dict[str, str] = {}
    for connection_id, day_range in windows_by_connection(context.partition_keys).items():
        context.log.info(f"Reading {connection_id} for {day_range}")
        try:
            connection, fetches = service.fetch_and_store(
                connection_id, day_range, warehouse.get_connection, store, _notify
            )
        except service.UserError as error:
            raise dg.Failure(description=str(error)) from None
        except WarehouseBusyError as error:
            raise _busy(error) from None
        accounts[connection_id] = connection.account_id
        fetches_by_connection[connection_id] = fetches
        for fetch in fetches:
            if fetch.failure:
                context.log.error(f"{connection_id} {fetch.failure.describe()}")
    all_fetches = [f for fetches in fetches_by_connection.values() for f in fetches]
    if all_fetches and not any(f.ok for f in all_fetches):
        raise dg.Failure(
            description="No region could be read:\n"
            + "\n".join(f.failure.describe() for f in all_fetches),
            metadata=_fetch_metadata(fetches_by_connection, accounts),
        )
    return dg.MaterializeResult(
        metadata=_fetch_metadata(fetches_by_connection, accounts),
        check_results=[permission_check_result(store)],
    )


def _busy(error: WarehouseBusyError) -> dg.Failure:
    return dg.Failure(description=str(error), metadata={"warehouse_busy": True})


def _fetch_metadata(fetches_by_connection, accounts) -> dict[str, object]:
    fetches = [f for group in fetches_by_connection.values() for f in group]
    failed = {
        f"{connection_id}/{f.region}": f"{f.failure.code}: {f.failure.next_action}"
        for connection_id, group in fetches_by_connection.items()
        for f in group
        if f.failure
    }
    return {
        "connections": dg.MetadataValue.json(accounts),
        "get_metric_data_calls": sum(f.get_metric_data_calls for f in fetches),
        "metrics_requested": sum(f.metrics_requested for f in fetches),
        "datapoints_by_region": dg.MetadataValue.json(
            {
                f"{connection_id}/{f.region}": len(f.datapoints)
                for connection_id, group in fetches_by_connection.items()
                for f in group
                if f.ok
            }
        ),
        "models_seen": dg.MetadataValue.json(
            sorted({m for f in fetches for m in f.datapoints.model_id.dropna().unique()})
        ),
        "regions_failed": dg.MetadataValue.json(failed),
        "permission_failures": sum(
            1
            for f in fetches
            if f.failure and f.failure.kind in (FailureKind.PERMISSION, FailureKind.CREDENTIALS)
        ),
    }


@dg.asset(
    group_name=GROUP,
    partitions_def=usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=POOL,
    kinds={"pandas", "duckdb"},
    deps=[cloudwatch_datapoints],
    check_specs=USAGE_CHECKS,
)
def bedrock_usage_daily(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    state_store: StateStoreResource,
) -> dg.MaterializeResult:
    """Daily Bedrock usage per UTC day, connection, account, region and model (table
    `bedrock_usage_daily`): tokens, invocations, cache tokens, errors, throttles and
    latency, as exact integers.

    Rebuilt from `cloudwatch_daily_datapoints` without calling AWS. Only series with
    exactly the ModelId dimension count per model; usage in the region total that no
    model explains is one '(unattributed)' row, so sums never double count."""
    windows = windows_by_connection(context.partition_keys)
    rows_by_region: dict[str, int] = {}
    tokens: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
    models: set[str] = set()
    try:
        with warehouse.get_connection() as connection:
            with transaction(connection):
                for connection_id, day_range in windows.items():
                    usage = rebuild_usage(connection, connection_id, day_range)
                    for region, count in usage.groupby("region").size().items():
                        rows_by_region[f"{connection_id}/{region}"] = int(count)
                    for column in tokens:
                        tokens[column] += int(usage[column].sum()) if len(usage) else 0
                    models.update(usage.model_id)
            check_results = usage_check_results(connection, windows, state_store.get())
            snapshot = publish_snapshot(connection, warehouse.database)
    except WarehouseBusyError as error:
        raise _busy(error) from None
    return dg.MaterializeResult(
        metadata={
            "rows_by_region": dg.MetadataValue.json(rows_by_region),
            "rows": sum(rows_by_region.values()),
            "models": dg.MetadataValue.json(sorted(models)),
            "analysts_snapshot": dg.MetadataValue.path(str(snapshot)),
            **tokens,
        },
        check_results=check_results,
    )


defs = dg.Definitions(assets=[cloudwatch_datapoints, bedrock_usage_daily])
