"""Sensors: connection partitions and initial syncs; permission failures flagged once."""

import json

import dagster as dg

from ..connections.store import Connection
from ..days import DayRange
from ..extraction.failures import ACCESS_KINDS
from ..sync.steps import initial_sync_range
from .alerts import AlertResource
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, connection_partitions, fleet_batches, range_tags
from .resources import StateStoreResource, SyncSettingsResource
from .tags import CONNECTION_TAG, TRIGGER_TAG

FLAGGED_KINDS = {str(kind) for kind in ACCESS_KINDS}


@dg.sensor(job=sync_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def connection_partitions_sensor(
    context: dg.SensorEvaluationContext,
    state_store: StateStoreResource,
    sync_settings: SyncSettingsResource,
) -> dg.SensorResult:
    """Keeps the `connection` partitions equal to the connected accounts (a disconnected
    account's partitions go; its history stays in DuckDB), and starts the initial sync of
    a new connection unless the CLI already took it: connections added together with
    the same history sync in fleet runs of up to BEDROCK_USAGE_FLEET_BATCH."""
    store = state_store.get()
    connections = store.all()
    wanted = {c.connection_id for c in connections}
    existing_order = context.instance.get_dynamic_partitions(CONNECTION_DIMENSION)
    existing = set(existing_order)
    partition_requests = []
    if wanted - existing:
        partition_requests.append(
            connection_partitions.build_add_request(sorted(wanted - existing))
        )
    if existing - wanted:
        partition_requests.append(
            connection_partitions.build_delete_request(sorted(existing - wanted))
        )
    claimed = [
        c
        for c in connections
        if c.initial_sync == "pending" and store.claim_initial_sync(c.connection_id)
    ]
    # The order the connection dimension will have once the new keys are added.
    ordered = [c for c in existing_order if c in wanted] + sorted(wanted - existing)
    run_requests = [
        # No run key: the claim in the state store already makes it once per attempt, and
        # an initial sync whose process died goes back to pending to be run again.
        dg.RunRequest(
            tags={
                **range_tags(batch[0], day_range, through=batch[-1]),
                CONNECTION_TAG: ",".join(batch),
                TRIGGER_TAG: "sensor",
                "bedrock_usage/initial_sync": ",".join(batch),
            },
        )
        for day_range, group in _by_range(claimed).items()
        for batch in fleet_batches(ordered, group, sync_settings.batch())
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None if run_requests or partition_requests else "Connections unchanged.",
    )


def _by_range(connections: list[Connection]) -> dict[DayRange, set[str]]:
    groups: dict[DayRange, set[str]] = {}
    for connection in connections:
        groups.setdefault(initial_sync_range(connection), set()).add(connection.connection_id)
    return groups


PERMISSION_SENSOR = "permission_failure_sensor"  # its cursor's key in the state store


@dg.sensor(
    name=PERMISSION_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def permission_failure_sensor(
    context: dg.SensorEvaluationContext,
    state_store: StateStoreResource,
    alerts: AlertResource,
) -> dg.SensorResult:
    """Flags once each region that a sync could not read for lack of permission or
    because the credentials were rejected (Slack when configured, else this log), and
    says so again when a later sync of that region succeeds."""
    store = state_store.get()
    sent: list[str] = []

    def flag(connection_id: str, region: str, code, message: str, next_action) -> None:
        connection = store.get(connection_id)
        account = connection.account_id if connection else "disconnected"
        sent.append(
            alerts.send(
                f"bedrock_usage: {connection_id} (account {account}) cannot read CloudWatch in "
                f"{region}: {code}. {message} Next: {next_action}",
                context.log,
            )
        )

    # The cursor lives in the state store, not in Dagster's sensor state: the demo and the
    # daemon (or two Dagster instances) evaluate the same cursor and never alert twice.
    cursor = store.sensor_cursor(PERMISSION_SENSOR)
    if cursor is not None:
        events = store.events(after_event_id=cursor["event_id"], limit=10_000)
    else:
        # First evaluation: flag what needs attention now, not the whole history.
        newest = store.events(limit=1)
        cursor = {"event_id": newest[0].event_id if newest else 0, "flagged": []}
        events = []
        for connection in store.all():
            for region, health in store.region_health(connection.connection_id).items():
                if health.failure_kind in FLAGGED_KINDS:
                    cursor["flagged"].append(f"{connection.connection_id}/{region}")
                    flag(
                        connection.connection_id,
                        region,
                        health.failure_code,
                        health.failure_message,
                        health.failure_next_action,
                    )
    flagged = set(cursor["flagged"])
    for event in sorted(events, key=lambda e: e.event_id):
        if event.action != "fetch" or event.region is None:
            continue
        key = f"{event.connection_id}/{event.region}"
        if event.outcome == "failed" and event.failure_kind in FLAGGED_KINDS:
            if key not in flagged:
                flagged.add(key)
                flag(
                    event.connection_id,
                    event.region,
                    event.error_code,
                    event.message,
                    event.next_action,
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
    store.save_sensor_cursor(PERMISSION_SENSOR, new_cursor)
    return dg.SensorResult(
        cursor=json.dumps(new_cursor),
        skip_reason=None
        if sent
        else (f"No new permission failures ({len(flagged)} region(s) still flagged)."),
    )


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def spend_alert_sensor(
    context: dg.SensorEvaluationContext,
    state_store: StateStoreResource,
    alerts: AlertResource,
) -> dg.SkipReason:
    """Budgets, month-end forecasts, spend anomalies and new models, evaluated from the
    warehouse by the daemon (never inside a sync run) and each sent once: the webhook
    (BEDROCK_USAGE_ALERT_WEBHOOK_URL), Slack when configured, always the event log.
    Which condition was sent is kept in the state store, so a restarted daemon or a
    second process never sends it again."""
    from ..spend_alerts import check_alerts

    def slack(payload: dict) -> str | None:
        if not (alerts.slack_token and alerts.slack_channel):
            return None  # the event log has it
        try:
            alerts.send(f"bedrock_usage: {payload['text']}", context.log)
        except Exception as error:  # noqa: BLE001 - retried at the next tick
            return f"slack: {type(error).__name__}: {error}"
        return None

    evaluation, sent = check_alerts([slack], store=state_store.get())
    for item in sent:
        (context.log.info if item["delivered"] else context.log.warning)(
            f"{item['state']}: {item['text']}"
            + ("" if item["delivered"] else f" (not delivered: {'; '.join(item['errors'])})")
        )
    return dg.SkipReason(
        f"{len(evaluation.firing)} spend condition(s) hold; {len(sent)} alert(s) sent."
    )


defs = dg.Definitions(
    sensors=[connection_partitions_sensor, permission_failure_sensor, spend_alert_sensor]
)
