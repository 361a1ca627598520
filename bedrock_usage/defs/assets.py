"""The two assets: what CloudWatch answered, and the daily usage table built from it.

Both are partitioned by UTC day × connection and run a whole backfill as one run
(`BackfillPolicy.single_run()`), so a year for one connection is one run and as few
GetMetricData calls as the core allows. They write through the warehouse resource in
explicit transactions (the stock DuckDB IO manager fails on these partitions), inside
the "duckdb" concurrency pool: one writer at a time.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import dagster as dg
import duckdb

from .. import settings
from ..connections.secrets import SecretKeyError
from ..errors import UserError
from ..extraction.fetch import RegionFetch
from ..frames import one_at_a_time
from ..memory import release_freed_memory
from ..storage.columns import USAGE_COLUMN_DOCS
from ..storage.figures import datapoints_by_partition, usage_by_partition
from ..storage.warehouse import (
    UsageWritten,
    WarehouseBusyError,
    atomically,
    out_of_memory_message,
    publish_snapshot,
    rebuild_usage,
)
from ..sync import attempts, steps
from ..sync.progress import watched
from .checks import (
    PERMISSION_CHECK,
    USAGE_CHECKS,
    permission_check_result,
    regions_this_run,
    usage_check_results,
)
from .dagster_internals import add_partition_metadata
from .partitions import partition_days, usage_partitions, windows_by_connection
from .resources import StateStoreResource, SyncSettingsResource, WarehouseResource
from .run_health import POOL
from .tags import (
    FAILED_CONNECTIONS_TAG,
    FAILED_REGIONS_TAG,
    FINISHED_TAG,
    connections_of,
    tag_run,
)

GROUP = "bedrock_usage"
# Dagster's table metadata keys: the UI shows the table name, its columns and rows.
USAGE_TABLE_METADATA = {
    "dagster/table_name": "bedrock_usage_daily",
    "dagster/column_schema": dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description)
            for name, type_, description in USAGE_COLUMN_DOCS
        ]
    ),  # fmt: skip
}
INTERRUPTS = (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)
# Errors of one connection (disconnected mid-run, its secret unreadable): in a fleet run
# they end that connection's sync only.
CONNECTION_ERRORS = (UserError, SecretKeyError)
RUN_TOTALS = "Run totals (every connection and day of this run):"


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
    sync_settings: SyncSettingsResource,
) -> dg.MaterializeResult:
    """What CloudWatch answered for each day, connection, region, model and metric
    (table `cloudwatch_daily_datapoints`; the dimensionless region total is stored as
    model_id '(region total)').

    Reads only Bedrock's two namespaces, AWS/Bedrock (the runtime endpoint) and
    AWS/BedrockMantle (the OpenAI-compatible endpoint), with ListMetrics and
    GetMetricData, each call spanning all the run's days. A region that cannot be read
    keeps its earlier rows and fails the `cloudwatch_permissions` check with the reason
    and the fix; when every region fails, the run fails with the same explanation."""
    tag_run(context)
    store = state_store.get()
    windows = windows_by_connection(context.partition_keys)
    fetches_by_connection: dict[str, list[RegionFetch]] = {}
    accounts: dict[str, str] = {}
    failed_connections: dict[str, str] = {}
    unfinished = set(windows)  # the attempts an error raised here would end
    with _as_failure(), attempts.recorded(store, unfinished, INTERRUPTS):
        settings.check_all()
        sync_settings.check()
        warehouse.check()
        options = sync_settings.options()
        progress = watched()
        for connection_id, day_range in windows.items():
            context.log.info(f"Reading {connection_id} for {day_range}")
            try:
                connection, fetches = steps.fetch_and_store(
                    connection_id,
                    day_range,
                    warehouse.open_db,
                    store,
                    context.run.run_id,
                    progress,
                    options,
                )
            except CONNECTION_ERRORS as error:
                if len(windows) == 1:
                    raise
                # A fleet run: this connection's own problem ends its attempt alone.
                outcome, message, next_action = attempts.classify_error(error, INTERRUPTS)
                attempts.finish(store, connection_id, outcome, message, next_action)
                unfinished.discard(connection_id)
                failed_connections[connection_id] = message
                context.log.error(f"{connection_id}: {message}")
                continue
            accounts[connection_id] = connection.account_id
            fetches_by_connection[connection_id] = fetches
            for fetch in fetches:
                if fetch.failure:
                    context.log.error(f"{connection_id} {fetch.failure.describe()}")
            if fetches and not any(f.ok for f in fetches):
                failed_connections[connection_id] = _nothing_read(fetches)
        failed = [
            f"{connection_id}/{f.region}"
            for connection_id, fetches in fetches_by_connection.items()
            for f in fetches
            if not f.ok
        ]
        run_tags = {}
        if failed:
            # The runs list shows the tag: a run that could not read a region is not
            # a plain success.
            run_tags[FAILED_REGIONS_TAG] = ",".join(failed)
        if failed_connections:
            run_tags[FAILED_CONNECTIONS_TAG] = ",".join(sorted(failed_connections))
        if run_tags:
            context.instance.add_run_tags(context.run.run_id, run_tags)
        totals = _fetch_totals(fetches_by_connection, accounts)
        if len(failed_connections) == len(windows):
            described = (
                list(failed_connections.values()) if len(windows) == 1
                else [f"{c}: {cause}" for c, cause in sorted(failed_connections.items())]
            )  # fmt: skip
            context.instance.add_run_tags(context.run.run_id, {FINISHED_TAG: ",".join(windows)})
            raise dg.Failure(description="\n".join(described), metadata=totals)
        for connection_id in sorted(failed_connections.keys() & unfinished):
            # The others of the fleet run go on; this one's sync ends here.
            attempts.finish(store, connection_id, attempts.Outcome.FAILED,
                            f"{windows[connection_id]}: {failed_connections[connection_id]}",
                            next_action=f"See bedrock-usage events {connection_id}.")  # fmt: skip
            unfinished.discard(connection_id)
        log_run_totals(context, totals)
        with warehouse.open_db() as db:
            points = datapoints_by_partition(db, windows)
        regions = {
            connection_id: _regions_metadata(
                [f.region for f in fetches if f.ok], [f.region for f in fetches if not f.ok]
            )
            for connection_id, fetches in fetches_by_connection.items()
        }
        add_partition_metadata(
            context,
            {
                key: {
                    "datapoints": points[connection_id, day],
                    **regions.get(connection_id, {}),
                    **_failure_metadata(failed_connections.get(connection_id)),
                }
                for key, (connection_id, day) in partition_days(context.partition_keys)
            },
        )
    return dg.MaterializeResult(check_results=[permission_check_result(store)])


def _nothing_read(fetches: list[RegionFetch]) -> str:
    return "No region could be read:\n" + "\n".join(f.failure.describe() for f in fetches)


def _failure_metadata(cause: str | None) -> dict[str, object]:
    """On the partitions of a connection whose sync failed in a fleet run: Dagster
    records every partition of a step, so the failure is said in its metadata (and in
    the checks, the run's tags and the event log); its rows are an earlier sync's."""
    if cause is None:
        return {}
    return {"sync_failed": dg.MetadataValue.text(cause)}


@contextmanager
def _as_failure() -> Iterator[None]:
    """Errors a user can act on end the step as a Failure with the message alone (no
    traceback); a busy warehouse is marked so the CLI exits with its own code."""
    try:
        yield
    except WarehouseBusyError as error:
        raise dg.Failure(description=str(error), metadata={"warehouse_busy": True}) from None
    except (UserError, settings.SettingsError, SecretKeyError) as error:
        raise dg.Failure(description=str(error)) from None
    except duckdb.OutOfMemoryException as error:
        raise dg.Failure(description=out_of_memory_message(error)) from None


def _regions_metadata(read: list[str], not_read: list[str]) -> dict[str, object]:
    """Which of the connection's regions this run read; the rows of the others are the
    ones an earlier sync stored."""
    return {
        "regions_read": dg.MetadataValue.text(", ".join(sorted(read)) or "none"),
        "regions_not_read": dg.MetadataValue.text(", ".join(sorted(not_read)) or "none"),
    }


def log_run_totals(context: dg.AssetExecutionContext, totals: dict[str, object]) -> None:
    """One event for the whole run (every connection and day it covered): partitions
    carry only their own day's figures."""
    plain = {k: v.value if isinstance(v, dg.MetadataValue) else v for k, v in totals.items()}
    context.log.info(f"{RUN_TOTALS} {json.dumps(plain, default=str)}")


def _fetch_totals(fetches_by_connection, accounts) -> dict[str, object]:
    fetches = [f for group in fetches_by_connection.values() for f in group]
    failed = {
        f"{connection_id}/{f.region}": f"{f.failure.code}: {f.failure.next_action}"
        for connection_id, group in fetches_by_connection.items()
        for f in group
        if f.failure
    }
    return {
        "run_connections": dg.MetadataValue.json(accounts),
        "run_days": dg.MetadataValue.json(
            {
                connection_id: str(group[0].day_range)
                for connection_id, group in fetches_by_connection.items()
                if group
            }
        ),  # fmt: skip
        "run_get_metric_data_calls": sum(f.get_metric_data_calls for f in fetches),
        "run_metrics_requested": sum(f.metrics_requested for f in fetches),
        "run_datapoints_by_region": dg.MetadataValue.json(
            {
                f"{connection_id}/{f.region}": f.datapoint_count
                for connection_id, group in fetches_by_connection.items()
                for f in group
                if f.ok
            }
        ),
        "run_models_seen": dg.MetadataValue.json(
            sorted({m for f in fetches for m in f.models_seen})
        ),
        "run_regions_failed": dg.MetadataValue.json(failed),
        "run_permission_failures": sum(
            1 for f in fetches if f.failure and f.failure.kind.is_access
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
    metadata=USAGE_TABLE_METADATA,
)
def bedrock_usage_daily(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    state_store: StateStoreResource,
    sync_settings: SyncSettingsResource,
) -> dg.MaterializeResult:
    """Daily Bedrock usage per UTC day, connection, account, region, API endpoint
    (bedrock-runtime or bedrock-mantle) and model (table `bedrock_usage_daily`; per
    mantle project in `bedrock_usage_daily_by_project`): tokens, invocations, cache
    tokens, errors, throttles and latency, as exact integers.

    Rebuilt from `cloudwatch_daily_datapoints` without calling AWS. Only series with
    exactly the model dimension (ModelId; Model on the mantle endpoint) count per model;
    usage in an endpoint's region total that no model explains is one '(unattributed)'
    row, so sums never double count."""
    tag_run(context)
    store = state_store.get()
    windows = windows_by_connection(context.partition_keys)
    # A fleet run's connections whose sync failed in the first step: their attempt has
    # ended and their stored rows stay as they are.
    tags = context.instance.get_run_by_id(context.run.run_id).tags
    failed = set(connections_of(tags, FAILED_CONNECTIONS_TAG))
    rows_by_region: dict[str, int] = {}
    tokens: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
    models: set[str] = set()
    synced = {c: d for c, d in windows.items() if c not in failed}
    with _as_failure(), attempts.recorded(store, synced, INTERRUPTS):
        for connection_id in synced:
            store.set_phase(connection_id, attempts.REBUILDING)
        with warehouse.open_db() as db:
            # One transaction per connection's window, as its data points were stored;
            # DuckDB's cache is shed between windows, so a run over many connections
            # holds one window's memory at a time.
            for connection_id, day_range in one_at_a_time(db, synced):
                if store.get(connection_id) is None:
                    context.log.warning(f"{connection_id} was disconnected: not rebuilt.")
                    continue
                written: UsageWritten = atomically(
                    db,
                    partial(rebuild_usage, db, connection_id, day_range),
                    connection_id=connection_id,
                )
                for region, count in written.rows_by_region.items():
                    rows_by_region[f"{connection_id}/{region}"] = count
                tokens["input_tokens"] += written.input_tokens
                tokens["output_tokens"] += written.output_tokens
                models.update(written.models)
        # Committed: the analysts' copy is refreshed before any check can fail the step.
        # A fresh connection: closing the rebuild's gives DuckDB's memory back first.
        release_freed_memory()
        with warehouse.open_db() as db:
            for connection_id in synced:
                store.set_phase(connection_id, attempts.PUBLISHING)
            snapshot = publish_snapshot(db, warehouse.path, windows)
            figures = usage_by_partition(db, windows)
            check_results = usage_check_results(db, windows, store, sync_settings.tolerance())
        regions = {c: regions_this_run(store, c) for c in windows}
        for connection_id, day_range in synced.items():
            _finish_attempt(store, connection_id, day_range, rows_by_region)
    # Every connection's sync has ended: a schedule's next tick leaves them be.
    context.instance.add_run_tags(context.run.run_id, {FINISHED_TAG: ",".join(windows)})
    log_run_totals(
        context,
        {
            "run_days": {c: str(d) for c, d in windows.items()},
            "run_rows_by_region": rows_by_region,
            "run_rows": sum(rows_by_region.values()),
            "run_models": sorted(models),
            **{f"run_{column}": total for column, total in tokens.items()},
        },
    )
    regions_metadata = {c: _regions_metadata(*read) for c, read in regions.items()}
    by_key = {}
    for key, (connection_id, day) in partition_days(context.partition_keys):
        day_figures = dict(figures[connection_id, day])
        by_key[key] = {
            "dagster/row_count": dg.MetadataValue.int(day_figures.pop("rows")),
            **day_figures,
            **regions_metadata[connection_id],
            **_failure_metadata(
                "its data points were not read in this run; see cloudwatch_datapoints"
                if connection_id in failed
                else None
            ),
        }
    add_partition_metadata(context, by_key)
    return dg.MaterializeResult(
        metadata={**USAGE_TABLE_METADATA, **_analysts_metadata(snapshot, warehouse.path)},
        check_results=check_results,
    )


def _analysts_metadata(snapshot, target) -> dict[str, object]:
    """Where analysts read: the refreshed copy of the file, or the lake itself."""
    if snapshot is None:
        return {"analysts_attach": dg.MetadataValue.text(f"{target} — see docs/analysts.md")}
    return {"analysts_snapshot": dg.MetadataValue.path(str(snapshot))}


def _finish_attempt(store, connection_id: str, day_range, rows_by_region) -> None:
    if store.get(connection_id) is None:
        attempts.finish(
            store,
            connection_id,
            attempts.Outcome.FAILED,
            f"{day_range}: disconnected while it synced; nothing of it was written",
        )
        return
    attempt = store.attempt(connection_id)
    failed = attempt.failed_regions if attempt else None
    rows = sum(n for key, n in rows_by_region.items() if key.startswith(f"{connection_id}/"))
    message = f"{day_range}: {rows} usage rows written"
    if failed:
        attempts.finish(
            store,
            connection_id,
            attempts.Outcome.PARTIAL,
            f"{message}; regions not read: {failed}",
            next_action=f"See the failed regions' events: bedrock-usage events {connection_id}.",
        )
    else:
        attempts.finish(store, connection_id, attempts.Outcome.OK, message)


defs = dg.Definitions(assets=[cloudwatch_datapoints, bedrock_usage_daily])
