"""One tick of the daemon, in a process of its own, as a test's next day: the partitions
sensor registers the connections, the dead-run sensor reaps the runs whose process died,
then the daily schedule is evaluated now and each of its run requests is run.

    python -m bedrock_usage_tests.schedule_tick
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from bedrock_usage.connections.store import StateStore
from bedrock_usage.defs.local_runs import instance, register_connection, run_tagged
from bedrock_usage.defs.resources import default_resources
from bedrock_usage.defs.run_health import reap_dead_runs
from bedrock_usage.defs.schedules import daily_usage_schedule


def main() -> None:
    dagster = instance()
    for connection in StateStore().all():
        register_connection(dagster, connection.connection_id)
    reap_dead_runs(dagster)
    context = dg.build_schedule_context(
        instance=dagster,
        scheduled_execution_time=datetime.now(UTC),
        resources={"sync_settings": default_resources()["sync_settings"]},
    )
    requests = daily_usage_schedule(context)
    if isinstance(requests, dg.SkipReason):
        print(f"skipped: {requests.skip_message}")
        return
    for request in requests:
        result = run_tagged(request.tags, "schedule", dagster=dagster)
        print(f"{request.run_key} {'succeeded' if result.success else 'FAILED'}")


if __name__ == "__main__":
    main()
