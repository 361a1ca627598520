"""Asset checks: each says what is wrong and what to do, for the data engineer on call."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import pandas as pd

from ..connections.store import StateStore
from ..days import DayRange, utc_today
from ..extraction.failures import FailureKind
from ..frames import one_at_a_time
from ..storage import quality

FRESHNESS_DAYS = 2

PERMISSION_CHECK = dg.AssetCheckSpec(
    "cloudwatch_permissions",
    asset="cloudwatch_datapoints",
    description="Every connected region can be read with its connection's credentials. "
    "Fails (ERROR) on AccessDenied or rejected credentials, naming the connection, account, "
    "region, error code and the fix, and stays failed until a sync of that region works.",
)
# On the last asset of a sync, so it fails the run only once every region that could be
# read has been stored, rebuilt and priced: a partial sync ends as a failed run.
REGIONS_READ_CHECK = dg.AssetCheckSpec(
    "every_region_read",
    asset="bedrock_cost_daily",
    blocking=True,
    description="This run read every region of its connections. Fails (ERROR, and with it "
    "the run) when one could not be read: its rows for these days are the ones an earlier "
    "sync stored. The regions read were stored, rebuilt and priced all the same.",
)
USAGE_CHECKS = [
    dg.AssetCheckSpec(
        "unique_grain",
        asset="bedrock_usage_daily",
        description="One row per usage_date, connection, region, api_endpoint and model.",
    ),
    dg.AssetCheckSpec(
        "no_negative_counts",
        asset="bedrock_usage_daily",
        description="No token, invocation, error or throttle count below zero.",
    ),
    dg.AssetCheckSpec(
        "totals_reconcile",
        asset="bedrock_usage_daily",
        description="Per region, day and metric, the models' sum matches the region total "
        "CloudWatch reports, within BEDROCK_USAGE_RECONCILE_TOLERANCE (default 1%).",
    ),
    dg.AssetCheckSpec(
        "fresh",
        asset="bedrock_usage_daily",
        description=f"Each connection's regions are synced through at least {FRESHNESS_DAYS} "
        "days ago.",
    ),
    dg.AssetCheckSpec(
        "projects_reconcile",
        asset="bedrock_usage_daily",
        description="On the bedrock-mantle endpoint, each model's usage summed over its "
        "projects (bedrock_usage_daily_by_project) equals the model's own usage.",
    ),
]


def regions_this_run(store: StateStore, connection_id: str) -> tuple[list[str], list[str]]:
    """The connection's regions read and not read by its latest fetch (this run's: a run
    reads every region of its connections before it rebuilds)."""
    connection = store.get(connection_id)
    if connection is None:
        return [], []
    health = store.region_health(connection_id)
    failed = [r for r in connection.regions if r in health and health[r].needs_attention]
    return [r for r in connection.regions if r not in failed], failed


def regions_read_result(
    store: StateStore, windows: dict[str, DayRange], failed_connections: list[str] = ()
) -> dg.AssetCheckResult:
    """`failed_connections`: a fleet run's connections whose sync failed outright (a
    disconnected one, or one whose secret cannot be read, has no failed region)."""
    not_read = {
        connection_id: failed or ["every region"]
        for connection_id in windows
        if (failed := regions_this_run(store, connection_id)[1])
        or connection_id in failed_connections
    }
    described = "; ".join(f"{c}: {', '.join(regions)}" for c, regions in not_read.items())
    return dg.AssetCheckResult(
        check_name=REGIONS_READ_CHECK.name,
        passed=not not_read,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"Partial sync: regions not read ({described}). Their rows for "
            f"{', '.join(f'{c} {windows[c]}' for c in not_read)} are the ones an earlier "
            "sync stored; every other region was written. The cloudwatch_permissions check "
            "says why and what to do; the next sync that reads them clears this."
            if not_read
            else "Every region of this run's connections was read."
        ),
        metadata={"regions_not_read": dg.MetadataValue.json(not_read)},
    )


def permission_check_result(store: StateStore) -> dg.AssetCheckResult:
    """Fails while any connected region cannot be read (this run's and every other
    connection's), so a failure stays visible until a later sync of that region works."""
    failures = [
        {
            "connection": connection.connection_id,
            "account": connection.account_id,
            "region": region,
            "error_code": health.failure_code,
            "kind": health.failure_kind,
            "message": health.failure_message,
            "next_action": health.failure_next_action,
            "since": health.failed_at,
        }
        for connection in store.all()
        for region, health in store.region_health(connection.connection_id).items()
        if health.needs_attention and region in connection.regions
    ]
    blocking = [f for f in failures if FailureKind(f["kind"]).is_access]
    worst = (blocking or failures or [{}])[0]
    return dg.AssetCheckResult(
        check_name=PERMISSION_CHECK.name,
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(failures)} region(s) cannot be read. {worst['connection']} "
            f"({worst['account']}) {worst['region']}: {worst['error_code']}. "
            f"{worst['next_action']}"
            if failures
            else "Every connected region was read."
        ),
        metadata={
            **{
                k: worst[k]
                for k in ("connection", "account", "region", "error_code", "next_action")
                if k in worst
            },
            "failures": dg.MetadataValue.json(failures),
        },
    )


def usage_check_results(
    db: duckdb.DuckDBPyConnection,
    windows: dict[str, DayRange],
    store: StateStore,
    tolerance: float,
) -> list[dg.AssetCheckResult]:
    # A connection's window at a time, DuckDB's cache shed between: queries over many
    # connections' rows at once hold them all.
    duplicates = negatives = 0
    total_gaps, project_gaps = [], []
    for connection_id, day_range in one_at_a_time(db, windows):
        window = {connection_id: day_range}
        duplicates += quality.duplicate_keys(db, window)
        negatives += quality.rows_with_negative_counts(db, window)
        total_gaps.append(quality.total_gaps(db, window, tolerance))
        project_gaps.append(quality.project_gaps(db, window))
    return [
        _unique_grain(duplicates),
        _no_negative_counts(negatives),
        _totals_reconcile(_largest_first(total_gaps, "gap"), tolerance),
        _fresh(windows, store),
        _projects_reconcile(
            _largest_first(project_gaps, "model_input_tokens", "project_input_tokens")
        ),
    ]


def _largest_first(parts: list[pd.DataFrame], column: str, minus: str | None = None):
    """The windows' gaps as one frame, by the absolute `column` (less `minus`), largest
    first, as each window's query orders them."""
    frames = [part for part in parts if not part.empty]
    if not frames:
        return parts[0] if parts else pd.DataFrame()
    gaps = pd.concat(frames, ignore_index=True)
    size = (gaps[column] - gaps[minus]) if minus else gaps[column]
    return gaps.iloc[size.abs().sort_values(ascending=False, kind="stable").index].reset_index(
        drop=True
    )


def _projects_reconcile(gaps: pd.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="projects_reconcile",
        passed=gaps.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "gaps": len(gaps),
            "largest_gaps": dg.MetadataValue.json(gaps.head(10).to_dict("records")),
        },
        description=None
        if gaps.empty
        else (
            "Some mantle usage is not attributed to a project: a project idle for more than "
            "two weeks is invisible to ListMetrics until a sync has stored it, or CloudWatch "
            "was still delivering. Re-materialize those days later; bedrock_usage_daily "
            "itself is complete."
        ),
    )


def _unique_grain(duplicates: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="unique_grain",
        passed=duplicates == 0,
        metadata={"duplicate_keys": duplicates},
        description=None
        if duplicates == 0
        else (
            "Rows repeat a (usage_date, connection, region, model) key: re-materialize the "
            "partitions to rebuild them from the stored data points."
        ),
    )


def _no_negative_counts(negatives: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="no_negative_counts",
        passed=negatives == 0,
        metadata={"rows_with_negative_counts": negatives},
        description=None
        if negatives == 0
        else (
            "Negative counts cannot come from CloudWatch sums: inspect "
            "cloudwatch_daily_datapoints for these days and re-materialize."
        ),
    )


def _totals_reconcile(gaps: pd.DataFrame, tolerance: float) -> dg.AssetCheckResult:
    if gaps.empty:
        return dg.AssetCheckResult(
            check_name="totals_reconcile",
            passed=True,
            metadata={"tolerance": tolerance, "gaps": 0},
        )
    over = gaps[gaps.gap > 0]
    advice = []
    if len(over):
        advice.append(
            "Models add up to more than the region total on some days: CloudWatch may still "
            "be delivering the total (late data); re-materialize those days later."
        )
    if len(over) < len(gaps):
        advice.append(
            "The region total exceeds the models on some days: that usage is kept as "
            "'(unattributed)'. If it persists, a model id is missing: add it with "
            "BEDROCK_USAGE_EXTRA_MODEL_IDS and re-materialize."
        )
    return dg.AssetCheckResult(
        check_name="totals_reconcile",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=" ".join(advice),
        metadata={
            "tolerance": tolerance,
            "gaps": len(gaps),
            "largest_gaps": dg.MetadataValue.json(gaps.head(10).to_dict("records")),
        },
    )


def _fresh(windows: dict[str, DayRange], store: StateStore) -> dg.AssetCheckResult:
    oldest_allowed = utc_today() - timedelta(days=FRESHNESS_DAYS)
    stale = {}
    for connection_id in windows:
        connection = store.get(connection_id)
        if connection is None:
            continue
        health = store.region_health(connection_id)
        for region in connection.regions:
            synced = health[region].last_synced_day if region in health else None
            if synced is None or synced < str(oldest_allowed):
                stale[f"{connection_id}/{region}"] = synced or "never"
    return dg.AssetCheckResult(
        check_name="fresh",
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "stale_regions": dg.MetadataValue.json(stale),
            "oldest_allowed_day": str(oldest_allowed),
        },
        description=None
        if not stale
        else (
            f"Synced only through the days shown (older than {oldest_allowed}): check that "
            "the daily schedule is running and 'bedrock-usage status' for failing regions."
        ),
    )
