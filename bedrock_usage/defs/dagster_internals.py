"""Every use of Dagster's private internals, in one place.

Dagster's underscore modules change between releases without notice. bedrock_usage pins
the Dagster family to one release (pyproject.toml) and is written against
`WRITTEN_AGAINST`; `version_mismatch()` says so when another is installed, and
bedrock_usage_tests/test_dagster_internals.py fails with its message. No other module
imports `dagster._...` (the same file checks it). To upgrade Dagster:
docs/architecture.md, "Upgrading Dagster".

Why each is needed, and what public API would replace it:

1. Running the code location's job in this process (local_runs.py), so a CLI or demo
   sync is a run of `bedrock_usage_sync` with a remote origin, re-executable from the UI,
   without a gRPC server: CodePointer, DefinitionsLoadContext/-LoadType,
   ReconstructableRepository, SINGLETON_REPOSITORY_NAME, RepositoryLoadData, execute_run,
   JobExecutionResult, InProcessCodeLocation(Origin), RemoteRepository, RepositorySnap,
   RepositoryHandle, set_defs_state_storage, LoadableTargetOrigin (and its load
   context), recon_job_from_origin. Public replacement: none.
   `JobDefinition.execute_in_process` makes a run without a code location origin (the UI
   cannot re-execute it), and `DagsterInstance.create_run_for_job` lacks the remote job
   that only a code location gives.
2. Dagster's SQLite event log writing a batch of asset events in one transaction
   (instance_storage.py; a year backfill spent most of its time in one fsync'd commit per
   event): SqliteEventLogStorage, DagsterSqliteStorage, event_logs_directory, db_result,
   EventLogEntry, ASSET_EVENTS, ConfigurableClassData. Public replacement: none; Dagster's
   PostgreSQL storage batches by itself.
3. Per-partition metadata added at once (`add_partition_metadata`). Public replacement:
   `context.add_asset_metadata(..., partition_key=...)`, once its check per call stops
   listing every partition key of the run (a year of one connection: 10 s more).
4. The pool-slot wait (`fix_pool_slot_wait`). Public replacement: none; drop it once
   Dagster's `interval_to_next_pending_claim_check` returns a positive wait.
5. Outside this module, and not an import: postgres_storage.py gives the three stores of
   dagster_postgres's `DagsterPostgresStorage` (`_run_storage`, `_event_log_storage`,
   `_schedule_storage`) pooled engines, through their `_engine`, `_token_provider` and
   `postgres_url` attributes (a team deployment's run opened 319 sessions). Public
   replacement: none; only the webserver's `optimize_for_webserver` pools.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.definitions.repository_definition.repository_definition import (
    RepositoryLoadData,
)
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.api import execute_run
from dagster._core.execution.context.metadata_logging import (
    AssetMetadataHandle,
    OutputMetadataAccumulator,
)
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.remote_representation.handle import RepositoryHandle
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._core.types.loadable_target_origin import (
    LoadableTargetOrigin,
    enter_loadable_target_origin_load_context,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils.hosted_user_process import recon_job_from_origin

WRITTEN_AGAINST = "1.13.27"

__all__ = [
    "ASSET_EVENTS",
    "SINGLETON_REPOSITORY_NAME",
    "CodePointer",
    "ConfigurableClassData",
    "DagsterSqliteStorage",
    "DefinitionsLoadContext",
    "DefinitionsLoadType",
    "EventLogEntry",
    "InProcessCodeLocation",
    "InProcessCodeLocationOrigin",
    "JobExecutionResult",
    "LoadableTargetOrigin",
    "ReconstructableRepository",
    "RemoteRepository",
    "RepositoryHandle",
    "RepositoryLoadData",
    "RepositorySnap",
    "SqliteEventLogStorage",
    "add_partition_metadata",
    "db_result",
    "enter_loadable_target_origin_load_context",
    "event_logs_directory",
    "execute_run",
    "fix_pool_slot_wait",
    "recon_job_from_origin",
    "set_defs_state_storage",
    "version_mismatch",
]

event_logs_directory = _event_logs_directory


def version_mismatch() -> str | None:
    """What to do when the installed Dagster is not the one this module was written
    against, else None."""
    if dg.__version__ == WRITTEN_AGAINST:
        return None
    return (
        f"Dagster {dg.__version__} is installed; bedrock_usage/defs/dagster_internals.py uses "
        f"private parts of Dagster {WRITTEN_AGAINST}. Install the pinned versions "
        "(make .venv/.installed), or follow docs/architecture.md, 'Upgrading Dagster'."
    )


def add_partition_metadata(
    context: dg.AssetExecutionContext, by_key: dict[str, dict[str, object]]
) -> None:
    """Each partition's own metadata for this step's materializations, added at once.
    Dagster's `add_asset_metadata(..., partition_key=...)` lists every partition key of
    the run to check each call and copies all it holds each time: a year of one
    connection took 10 s longer per asset. The keys here are the run's own."""
    step = context.get_step_execution_context()
    held = dict(step._metadata_accumulator.per_output_metadata)  # noqa: SLF001
    for key, metadata in by_key.items():
        handle = AssetMetadataHandle(asset_key=context.asset_key, partition_key=key)
        held[handle] = {**held.get(handle, {}), **metadata}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=held)  # noqa: SLF001


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    # Dagster 1.13.27 returns min(0, ...) here, i.e. never a positive wait, so a step
    # waiting for a pool slot polls the database in a tight loop at 100% CPU and cannot
    # be interrupted. The intended wait is the time until the next claim is due.
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    now = time.time()
    return max(0.0, min(ready_at - now for ready_at in self._pending_timeouts.values()))


def fix_pool_slot_wait() -> None:
    """A step waiting for a "duckdb" pool slot sleeps until its next claim is due."""
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (
        _interval_to_next_pending_claim_check
    )
