"""Running the code location's job in this process, so a sync started from the CLI or
the demo is a run of `bedrock_usage_sync` like a scheduled one: in the job's history
and the Overview timeline, tagged with its connection and trigger, and re-executable
from the UI (the run names the code location `bedrock_usage` of workspace.yaml)."""

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import dagster as dg

from .. import settings
from ..bill_sync import BillRead
from ..connections.store import StateStore
from ..days import DayRange
from ..errors import ExitCode, UserError
from .bill_assets import billing_job
from .dagster_internals import (
    SINGLETON_REPOSITORY_NAME,
    CodePointer,
    DefinitionsLoadContext,
    DefinitionsLoadType,
    InProcessCodeLocation,
    InProcessCodeLocationOrigin,
    JobExecutionResult,
    LoadableTargetOrigin,
    ReconstructableRepository,
    RemoteRepository,
    RepositoryHandle,
    RepositoryLoadData,
    RepositorySnap,
    enter_loadable_target_origin_load_context,
    execute_run,
    recon_job_from_origin,
    set_defs_state_storage,
)
from .jobs import sync_job
from .partitions import CONNECTION_DIMENSION, fleet_batches, range_tags
from .run_health import wait_for_slot
from .tags import CONNECTION_TAG, TRIGGER_TAG, process_tags

LOCATION_NAME = "bedrock_usage"  # as in workspace.yaml
DEFINITIONS_MODULE = "bedrock_usage.defs.definitions"
DEFINITIONS_ATTRIBUTE = "defs"  # the Definitions object in DEFINITIONS_MODULE

# The CLI prints its own account of the run; the events stay in the instance for the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def prepare_dagster_home() -> Path:
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


@contextmanager
def _first_use_turn(home: Path) -> Iterator[None]:
    """Processes using a new DAGSTER_HOME at once (two first syncs) take turns: the first
    creates Dagster's storage (its migrations are not safe to run twice at once). The
    lock file lies in the temporary folder, so a home keeps only Dagster's own files."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"bedrock_usage-dagster-{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def instance() -> dg.DagsterInstance:
    with _first_use_turn(prepare_dagster_home()):
        return dg.DagsterInstance.get()


def register_connection(dagster: dg.DagsterInstance, connection_id: str) -> None:
    if dagster.has_dynamic_partition(CONNECTION_DIMENSION, connection_id):
        return
    try:
        dagster.add_dynamic_partitions(CONNECTION_DIMENSION, [connection_id])
    except Exception:  # noqa: BLE001 - another process added it first: that is the goal
        if not dagster.has_dynamic_partition(CONNECTION_DIMENSION, connection_id):
            raise


def run_sync(
    connection_id: str,
    day_range: DayRange,
    tags: dict[str, str] | None = None,
    trigger: str = "cli",
    resources: dict[str, dict] | None = None,
) -> JobExecutionResult:
    """Run `bedrock_usage_sync` for one connection over `day_range`, as one run.
    `resources` sets resource fields for this run, as the UI's launchpad does, e.g.
    {"sync_settings": {"region_concurrency": 1}}. A sync that cannot start because the
    write slot stayed busy is in the event log too."""
    dagster = instance()
    register_connection(dagster, connection_id)
    try:
        return run_tagged(
            {**range_tags(connection_id, day_range), CONNECTION_TAG: connection_id, **(tags or {})},
            trigger,
            resources,
            dagster,
        )
    except UserError as error:
        if error.exit_code == ExitCode.WAREHOUSE_BUSY:
            StateStore().log_event(connection_id, "sync", "busy", f"{day_range}: {error}")
        raise


def run_fleet(day_range: DayRange, trigger: str = "cli") -> Iterator[JobExecutionResult]:
    """Sync every connection over `day_range` as the schedule does: in runs of up to
    BEDROCK_USAGE_FLEET_BATCH connections, one after another; yields each run's result
    as it ends."""
    dagster = instance()
    names = [connection.connection_id for connection in StateStore().all()]
    if not names:
        raise UserError("No connections yet: add one with 'bedrock-usage connect'.")
    for connection_id in names:
        register_connection(dagster, connection_id)
    ordered = dagster.get_dynamic_partitions(CONNECTION_DIMENSION)
    for batch in fleet_batches(ordered, set(names), settings.fleet_batch()):
        tags = {**range_tags(batch[0], day_range, through=batch[-1]),
                CONNECTION_TAG: ",".join(batch)}  # fmt: skip
        yield run_tagged(tags, trigger, dagster=dagster)


@cache
def _code_location(dagster_home_path: str) -> InProcessCodeLocation:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=DEFINITIONS_MODULE, working_directory=os.getcwd()),
        location_name=LOCATION_NAME,
    )
    dagster = instance()
    # Loading reads Dagster's "current" defs-state storage from a context variable, which
    # an instance used as a context manager earlier in this process can leave pointing
    # at a disposed instance ("Attempted to resolve undefined DagsterInstance weakref"):
    # point it at this instance while loading.
    with set_defs_state_storage(dagster.defs_state_storage):
        return _DefinitionsLocation(origin, instance=dagster)


class _DefinitionsLocation(InProcessCodeLocation):
    """Dagster's in-process code location for our one Definitions object, loaded as
    Dagster's own loader (`dagster._grpc.server.LoadedRepositories`) loads it — the same
    code pointer, repository and snapshots — without importing that module: it imports
    grpc and protobuf (8.6 MB resident) for serving, which a run in this process never
    does. A test holds both loaders' origins and snapshots equal."""

    def __init__(self, origin: InProcessCodeLocationOrigin, instance: dg.DagsterInstance):
        self._origin = origin
        self._instance = instance
        target = origin.loadable_target_origin
        state = instance.defs_state_storage
        DefinitionsLoadContext.set(
            DefinitionsLoadContext(
                DefinitionsLoadType.INITIALIZATION,
                repository_load_data=RepositoryLoadData(
                    defs_state_info=state.get_latest_defs_state_info() if state else None,
                    code_location_name=origin.location_name,
                ),
            )
        )
        pointer = CodePointer.from_module(
            target.module_name, DEFINITIONS_ATTRIBUTE, target.working_directory
        )
        reconstructable = ReconstructableRepository(
            pointer,
            origin.container_image,
            executable_path=target.executable_path or sys.executable,
            entry_point=origin.entry_point,
            container_context=origin.container_context,
        )
        with enter_loadable_target_origin_load_context(target):
            definition = reconstructable.get_definition()
            definition.load_all_definitions()
        name = definition.name
        self._loaded_repositories = SimpleNamespace(
            definitions_by_name={name: definition},
            reconstructables_by_name={name: reconstructable},
        )
        self._repository_code_pointer_dict = {name: pointer}
        self._repositories = {
            name: RemoteRepository(
                RepositorySnap.from_def(definition),
                RepositoryHandle.from_location(repository_name=name, code_location=self),
                auto_materialize_use_sensors=instance.auto_materialize_use_sensors,
            )
        }


def run_bill_read(periods: list[str], trigger: str = "cli") -> list[BillRead]:
    """Read billing periods (YYYY-MM) from every billing source as one run of
    `bedrock_billing_read` over the partitions from the first period to the last (a
    period between them is read again too: a period is replaced whole). Returns what
    each source read; a failed run raises its cause."""
    result = run_tagged(
        {
            "dagster/asset_partition_range_start": f"{min(periods)}-01",
            "dagster/asset_partition_range_end": f"{max(periods)}-01",
        },
        trigger,
        job_name=billing_job.name,
    )
    if not result.success:
        failures = result.get_step_failure_events()
        error = failures[0].step_failure_data.error if failures else None
        cause = cause_of(error) if error else "see the run in the Dagster UI"
        raise UserError(f"Dagster run {result.run_id} failed: {cause}")
    periods_by_source: dict[str, list[str]] = {}
    rows_by_source: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        for source in metadata["delivered_by"].value:
            periods_by_source.setdefault(source, []).append(metadata["billing_period"].value)
        for source, rows in metadata["rows_by_source"].value.items():
            rows_by_source[source] = rows_by_source.get(source, 0) + rows
    return [
        BillRead(source, sorted(read), rows_by_source.get(source, 0))
        for source, read in sorted(periods_by_source.items())
    ]


def cause_of(error) -> str:
    """What a step failed with, in the event log's words: Dagster wraps the error in
    'Error occurred while executing op ...', with the real one as its cause."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    for wrapper in ("dagster._core.definitions.events.Failure: ", "Failure: "):
        message = message.removeprefix(wrapper)
    return message or error.cls_name


def run_tagged(
    tags: dict[str, str],
    trigger: str = "cli",
    resources: dict[str, dict] | None = None,
    dagster: dg.DagsterInstance | None = None,
    job_name: str = sync_job.name,
) -> JobExecutionResult:
    """Run `bedrock_usage_sync` (or the job `job_name`) for the partitions `tags` name
    (a schedule's or a sensor's run request, or a CLI range), once the DuckDB slot is
    free: a run whose process died is reaped first; a live holder is waited for, asleep,
    up to BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS. Returns the run's execution result.
    `dagster` is the instance when the caller has one open (opening another costs
    ≈0.3 s)."""
    dagster = dagster or instance()
    wait_for_slot(dagster, settings.lock_timeout_seconds())
    run = create_tagged_run(dagster, tags, trigger, resources, job_name)
    with set_defs_state_storage(dagster.defs_state_storage):  # see _code_location
        return execute_run(recon_job_from_origin(run.job_code_origin), run, dagster)


def create_tagged_run(
    dagster: dg.DagsterInstance,
    tags: dict[str, str],
    trigger: str,
    resources: dict[str, dict] | None = None,
    job_name: str = sync_job.name,
) -> dg.DagsterRun:
    """A run of `bedrock_usage_sync` for the partitions `tags` name, created in the
    instance and not started. It is tagged with this process, where a local run
    executes; a run started elsewhere re-tags itself with its own process."""
    location = _code_location(str(prepare_dagster_home()))
    repository = location.get_repository(SINGLETON_REPOSITORY_NAME)
    job = repository.get_full_job(job_name)
    run_config = {
        **QUIET_LOGS,
        "resources": {name: {"config": fields} for name, fields in (resources or {}).items()},
    }
    plan = location.get_execution_plan(
        job, run_config, step_keys_to_execute=None, known_state=None, instance=dagster
    ).execution_plan_snapshot
    return dagster.create_run(
        job_name=job.name,
        run_id=None,
        run_config=run_config,
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**job.tags, **tags, TRIGGER_TAG: trigger, **process_tags()},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )
