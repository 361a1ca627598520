"""The bedrock_usage code location: assets, job, schedule, sensors and resources."""

import dagster as dg

from .. import settings
from . import (
    assets,
    bill_assets,
    cost_assets,
    freshness,
    jobs,
    report_assets,
    run_health,
    schedules,
    sensors,
)
from .alerts import alert_resource
from .resources import default_resources

defs = dg.Definitions.merge(
    assets.defs,
    cost_assets.defs,
    bill_assets.defs,
    report_assets.defs,
    jobs.defs,
    schedules.defs,
    sensors.defs,
    freshness.defs,
    run_health.defs,
    dg.Definitions(
        resources={**default_resources(), "alerts": alert_resource()},
        # Both assets run in the run's own process, one after the other (they share one
        # DuckDB slot anyway): a run is one process whose death `run_health` can see.
        executor=dg.in_process_executor,
    ),
)

# A misspelt BEDROCK_USAGE_* variable is named where the daemon and webserver log it.
for _line in settings.unknown_variables():
    dg.get_dagster_logger().warning(_line)
