"""Sensors: connection partitions and initial syncs; permission failures flagged once."""

import json

import dagster as dg

from ..connections.service import initial_sync_range
from ..extraction.errors import FailureKind
from .alerts import AlertResource
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, connection_partitions, range_tags
from .resources import StateStoreResource

FLAGGED_KINDS = {str(FailureKind.PERMISSION), str(FailureKind.CREDENTIALS)}


@dg.sensor(job=sync_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def connection_partitions_sensor(
    context: dg.SensorEvaluationContext, state_store: StateStoreResource
) -> dg.SensorResult:
    """Keeps the `connection` partitions equal to the connected accounts (a disconnected
    account's partitions go; its history stays in DuckDB), and starts the initial sync of
    a new connection unless the CLI already took it."""
    store = state_store.get()
    connections = store.all()
    wanted = {c.connection_id for c in connections}
    existing = set(context.instance.get_dynamic_partitions(CONNECTION_DIMENSION))
    partition_requests = []
    if wanted - existing:
        partition_requests.append(
            connection_partitions.build_add_request(sorted(wanted - existing))
        )
    if existing - wanted:
        partition_requests.append(
            connection_partitions.build_delete_request(sorted(existing - wanted))
        )
    run_requests = [
        dg.RunRequest(
            run_key=f"initial-sync:{c.connection_id}:{c.created_at}",
            tags={
                **range_tags(c.connection_id, initial_sync_range(c)),
                "bedrock_usage/initial_sync": c.connection_id,
            },
        )
        for c in connections
        if c.initial_sync == "pending" and store.claim_initial_sync(c.connection_id)
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None if run_requests or partition_requests else "Connections unchanged.",
    )


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def permission_failure_sensor(
    context: dg.SensorEvaluationContext,
    state_store: StateStoreResource,
    alerts: AlertResource,
) -> dg.SensorResult:
    """Flags once each region that a sync could not read for lack of permission or
    because the credentials were rejected (Slack when configured, else this log), and
    says so again when a later sync of that region succeeds."""
    cursor = json.loads(context.cursor) if context.cursor else {"event_id": 0, "flagged": []}
    store = state_store.get()
    flagged = set(cursor["flagged"])
    events = sorted(
        store.events(after_event_id=cursor["event_id"], limit=10_000), key=lambda e: e.event_id
    )
    sent = []
    for event in events:
        if event.action != "sync" or event.region is None:
            continue
        key = f"{event.connection_id}/{event.region}"
        if event.outcome == "failed" and event.failure_kind in FLAGGED_KINDS:
            if key not in flagged:
                flagged.add(key)
                connection = store.get(event.connection_id)
                account = connection.account_id if connection else "disconnected"
                sent.append(
                    alerts.send(
                        f"bedrock_usage: {event.connection_id} (account {account}) cannot read "
                        f"CloudWatch in {event.region}: {event.error_code}. {event.message} "
                        f"Next: {event.next_action}",
                        context.log,
                    )
                )
        elif event.outcome == "ok" and key in flagged:
            flagged.discard(key)
            sent.append(
                alerts.send(
                    f"bedrock_usage: {event.connection_id} reads {event.region} again; the "
                    "permission flag is cleared.",
                    context.log,
                )
            )
    new_cursor = {
        "event_id": max([cursor["event_id"], *(e.event_id for e in events)]),
        "flagged": sorted(flagged),
    }
    return dg.SensorResult(
        cursor=json.dumps(new_cursor),
        skip_reason=None
        if sent
        else (f"No new permission failures ({len(flagged)} region(s) still flagged)."),
    )


defs = dg.Definitions(sensors=[connection_partitions_sensor, permission_failure_sensor])
