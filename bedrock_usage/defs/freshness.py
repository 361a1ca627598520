"""Freshness that fails when nothing runs: evaluated by the daemon's sensor, not by our
runs, so a stopped schedule or daemon outage is what turns it red.

Dagster 1.13 marks these builders superseded by `FreshnessPolicy`; we keep the checks
because they show under the asset with the other checks and can be run in a test."""

import warnings
from datetime import timedelta

import dagster as dg

from .assets import bedrock_usage_daily

with warnings.catch_warnings():
    # Their supersession notice is for us (see above), not for whoever loads the code.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    # The schedule fires at 00:30 UTC; by 03:00 the table must have been written that day.
    freshness_checks = dg.build_last_update_freshness_checks(
        assets=[bedrock_usage_daily],
        deadline_cron="0 3 * * *",
        lower_bound_delta=timedelta(hours=3),
        timezone="UTC",
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )

defs = dg.Definitions(asset_checks=freshness_checks, sensors=[freshness_sensor])
