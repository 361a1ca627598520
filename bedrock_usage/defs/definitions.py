"""The bedrock_usage code location: assets, job, schedule, sensors and resources."""

import dagster as dg

from . import assets, jobs, schedules, sensors
from .alerts import alert_resource
from .resources import default_resources

defs = dg.Definitions.merge(
    assets.defs,
    jobs.defs,
    schedules.defs,
    sensors.defs,
    dg.Definitions(resources={**default_resources(), "alerts": alert_resource()}),
)
