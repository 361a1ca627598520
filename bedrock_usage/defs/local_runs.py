"""Running the assets in this process, recorded in the Dagster instance, so a sync
started from the CLI shows in the UI's run history like a scheduled one."""

import os
import shutil
from importlib import resources
from pathlib import Path

import dagster as dg

from .. import settings
from ..days import DayRange
from .alerts import alert_resource
from .assets import bedrock_usage_daily, cloudwatch_datapoints
from .partitions import CONNECTION_DIMENSION, range_tags
from .resources import default_resources
from .run_health import process_tags, wait_for_slot

# The CLI prints its own account of the run; the events stay in the instance for the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def dagster_home() -> Path:
    """DAGSTER_HOME, by default BEDROCK_USAGE_HOME/dagster, with the project's
    dagster.yaml (the DuckDB concurrency pool) when it has none."""
    path = settings.dagster_home()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        source = resources.files("bedrock_usage.defs").joinpath("dagster.yaml")
        with resources.as_file(source) as shipped:
            shutil.copyfile(shipped, config)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()


def register_connection(dagster: dg.DagsterInstance, connection_id: str) -> None:
    if not dagster.has_dynamic_partition(CONNECTION_DIMENSION, connection_id):
        dagster.add_dynamic_partitions(CONNECTION_DIMENSION, [connection_id])


def run_sync(
    connection_id: str, day_range: DayRange, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize both assets for one connection over `day_range`, as one run."""
    register_connection(instance(), connection_id)
    return run_tagged({**range_tags(connection_id, day_range), **(tags or {})})


def run_tagged(tags: dict[str, str]) -> dg.ExecuteInProcessResult:
    """Materialize both assets for the partitions a schedule or sensor's tags name, once
    the DuckDB slot is free (a run whose process died is reaped first; a live holder is
    waited for, sleeping, up to BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS)."""
    dagster = instance()
    wait_for_slot(dagster, settings.lock_timeout_seconds())
    return dg.materialize(
        [cloudwatch_datapoints, bedrock_usage_daily],
        instance=dagster,
        resources={**default_resources(), "alerts": alert_resource()},
        tags={**tags, **process_tags()},
        run_config=QUIET_LOGS,
        raise_on_error=False,
    )
