"""The `bedrock-usage` command line: connections, syncs, and their health.

Exit codes: 0 ok; 1 failed; 2 bad input; 3 verification failed (nothing stored);
4 no such connection; 5 name or account already connected; 6 sync finished with
failed regions; 7 the DuckDB file stayed busy; 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import settings
from .days import DayRangeError, parse_day, readable_range, utc_today
from .errors import ExitCode, UserError
from .settings import SettingsError, state_path

# --help and a mistyped argument answer at once: what pulls in boto3, pandas or DuckDB
# (about a second of imports) is imported by the commands that use it.
if TYPE_CHECKING:
    from .connections.credentials import AuthSpec
    from .extraction.failures import RegionFailure
    from .extraction.fetch import FetchProgress, RegionFetch


def _loaded(module: str, name: str) -> tuple[type[BaseException], ...]:
    """The exception class `name` of `module` if that module is imported, else nothing
    for an `except` to match: a module never imported raised none of its errors."""
    found = sys.modules.get(module)
    return (getattr(found, name),) if found is not None else ()


def handles_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            # The schedule's cron is checked by the commands that load the code location
            # (its check imports Dagster, which the others never need).
            name = click.get_current_context().command.name
            settings.check_all(with_schedule=name in LOAD_THE_CODE_LOCATION)
            for line in settings.unknown_variables():
                click.echo(line, err=True)
            _use_the_demo_emulator_in_a_demo_home()
            return command(*args, **kwargs)
        except UserError as error:
            _fail(str(error), error.exit_code)
        except (DayRangeError, SettingsError) as error:
            _fail(str(error), ExitCode.USAGE)
        except _loaded("bedrock_usage.storage.warehouse", "WarehouseBusyError") as error:
            _fail(str(error), ExitCode.WAREHOUSE_BUSY)
        except _loaded("bedrock_usage.connections.secrets", "SecretKeyError") as error:
            _fail(str(error), ExitCode.FAILED)
        except KeyboardInterrupt:
            # Connections are stored only after verification and every write is one
            # transaction, so an interruption leaves the previous state intact.
            _fail(INTERRUPTED, ExitCode.INTERRUPTED)
        except (sqlite3.Error, *_loaded("psycopg2", "Error")) as error:
            from .connections.store import StateStore

            _fail(
                f"The state store {StateStore().location} cannot be used: {error}. If the disk "
                "is full or read-only, free space or fix its permissions; if it is a database "
                "server, check that it is up and the URL's user may connect; if the file is "
                "damaged, restore it from a backup (it holds the connections).",
                ExitCode.FAILED,
            )
        except _loaded("duckdb", "Error") as error:
            _fail(
                f"A DuckDB file could not be used: {error}. If the disk is full, free space "
                "and run again; if the warehouse or its analysts' copy is damaged, move it "
                "aside and sync again (the analysts' copy is rebuilt on the next sync).",
                ExitCode.FAILED,
            )
        except OSError as error:
            _fail(
                f"{error.strerror or error}: {error.filename or ''}. Check free space and "
                "permissions there, or point BEDROCK_USAGE_HOME elsewhere.",
                ExitCode.FAILED,
            )
        except Exception as error:
            if not type(error).__module__.startswith("sqlalchemy"):
                raise
            # Dagster's own storage (SQLAlchemy over DAGSTER_HOME's SQLite files, or
            # PostgreSQL) failed: say where, not a traceback.
            _fail(
                f"Dagster's instance in {settings.dagster_home()} cannot be used: "
                f"{str(error).splitlines()[0]}. If the disk is full, free space; if its "
                "database is a server, check that it is up; if a file there is damaged "
                "(history/runs.db, schedules/schedules.db), move that folder aside (the run "
                "history goes; usage stays in the warehouse) and run again.",
                ExitCode.FAILED,
            )

    return wrapper


LOAD_THE_CODE_LOCATION = {"connect", "sync", "demo", "ui"}
INTERRUPTED = (
    "Interrupted: the open write was rolled back (windows already committed are kept, and "
    "the analysts' copy catches up with them at the next sync or status); run the command "
    "again."
)
INTERRUPT_ERRORS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}
CHECK_FAILED = "DagsterAssetCheckFailedError"  # a blocking check failed its step


def _sigterm_as_interrupt(signum, frame) -> None:
    # A container stop or `kill` ends the command like Ctrl-C: rolled back, recorded,
    # exit 130 (Dagster maps SIGTERM to its interrupt during a run).
    raise KeyboardInterrupt


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _read_secret(prompt: str = "Secret access key") -> str:
    """From standard input when piped, else a prompt that does not echo: never argv."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return click.prompt(prompt, hide_input=True).strip()


def _auth_from_options(access_key_id, role_arn, external_id, profile) -> AuthSpec:
    from .connections import service
    from .connections.credentials import AuthSpec

    secret = _read_secret() if access_key_id else None
    return service.check_auth(AuthSpec(access_key_id, secret, role_arn, external_id, profile))


def _region_check_printer(title: str) -> Callable[[str, RegionFailure | None], None]:
    """Prints `title` before the first region's result, so input errors come alone."""
    printed = []

    def echo(region: str, failure: RegionFailure | None) -> None:
        if not printed:
            click.echo(title)
            printed.append(True)
        _echo_region_check(region, failure)

    return echo


def _echo_region_check(region: str, failure: RegionFailure | None) -> None:
    if failure is None:
        click.echo(f"  {region}: CloudWatch AWS/Bedrock readable")
    else:
        click.echo(f"  {region}: FAILED {failure.code}", err=True)


def _echo_region_synced(fetch: RegionFetch) -> None:
    if fetch.ok:
        click.echo(f"  {fetch.region}: {fetch.summary()}")
    else:
        failure = fetch.failure
        click.echo(
            f"  {fetch.region}: FAILED {failure.code}: {failure.message}\n"
            f"    Next: {failure.next_action}",
            err=True,
        )


auth_options = [
    click.option(
        "--access-key-id",
        help="Access key id of the read-only IAM user; the secret "
        "is read from standard input, or prompted for without echo.",
    ),
    click.option(
        "--role-arn", help="Assume this role (with the key above, or the ambient AWS credentials)."
    ),
    click.option("--external-id", help="External id the role's trust policy requires."),
    click.option("--profile", help="Use this named AWS profile instead (no secret stored)."),
]


def with_auth_options(command: Callable) -> Callable:
    for option in reversed(auth_options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bedrock_usage")
def main() -> None:
    """Amazon Bedrock usage from CloudWatch metrics into a daily DuckDB table.

    State (connections, encrypted credentials, event log) lives in BEDROCK_USAGE_HOME
    (default ./.bedrock_usage); usage in its warehouse.duckdb, or BEDROCK_USAGE_WAREHOUSE.
    """
    # Dagster's beta and supersession notices are for developers of this project, not for
    # the people running it.
    warnings.filterwarnings("ignore", module=r"dagster\..*")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*Beta.*")
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # The home holds encrypted secrets, the event log and usage: ours alone (0600/0700),
    # Dagster's files in it included.
    os.umask(0o077)


def _use_the_demo_emulator_in_a_demo_home() -> None:
    """In a home made by `make demo`, a command talks to the demo's emulator. Started
    only once the command's arguments parsed: --help and argument errors stay instant."""
    context = click.get_current_context()
    command = context.command.name
    root = context.find_root()
    if command in ("demo", "ui") or root.meta.get("bedrock_usage.demo_emulator"):
        return
    if not _is_demo_home():
        return
    from .demo import demo_emulator_for_commands

    emulator = demo_emulator_for_commands()
    if emulator is not None:
        click.echo("(This home was made by 'make demo': using its emulator.)", err=True)
        root.meta["bedrock_usage.demo_emulator"] = emulator
        root.call_on_close(emulator.stop)


def _is_demo_home() -> bool:
    try:
        return settings.demo_state_path().exists()
    except SettingsError:
        return False  # the command reports the bad setting itself


@main.command()
@click.argument("name")
@click.option("--account-id", required=True, help="The 12-digit AWS account id.")
@click.option("--regions", required=True, help="Comma-separated regions where Bedrock runs.")
@with_auth_options
@click.option(
    "--backfill-days",
    default=settings.DEFAULT_BACKFILL_DAYS,
    show_default=True,
    help="Days of history the initial sync reads (1-454).",
)
@click.option("--no-sync", is_flag=True, help="Skip the initial sync; the schedule will run it.")
@handles_errors
def connect(
    name, account_id, regions, access_key_id, role_arn, external_id, profile, backfill_days, no_sync
):
    """Verify and store a connection to one AWS account, then sync its history.

    Verification checks that the key is valid, belongs to --account-id, and can read
    CloudWatch's AWS/Bedrock metrics in every region. If anything fails, nothing is stored.
    """
    from .connections import service

    auth = _auth_from_options(access_key_id, role_arn, external_id, profile)
    connection = service.connect(
        name,
        account_id,
        regions,
        auth,
        backfill_days,
        no_sync,
        on_region=_region_check_printer(f"Verifying '{name}' ({account_id}):"),
    )
    click.echo(
        f"Connected '{name}': account {account_id}, regions {', '.join(connection.regions)}."
    )
    if no_sync:
        click.echo("Initial sync skipped (--no-sync): the daily schedule will pick it up.")
        return
    _initial_sync(connection)


def _initial_sync(connection) -> None:
    from .sync import steps

    if not steps.claim_initial_sync(connection.connection_id):
        click.echo(
            "The Dagster daemon's sensor has already started the initial sync: follow it "
            "in the Dagster UI, or with 'bedrock-usage status "
            f"{connection.connection_id}'."
        )
        return
    day_range = steps.initial_sync_range(connection)
    click.echo(f"Initial sync of {day_range.days} days ({day_range}), recorded in Dagster:")
    _run_sync(connection.connection_id, day_range, {"bedrock_usage/initial_sync": "cli"})


def _run_sync(name: str, day_range, tags: dict[str, str] | None = None) -> None:
    """Materialize both assets in this process, as one Dagster run, printing each region."""
    from .defs.local_runs import cause_of, run_sync
    from .storage.warehouse import warehouse_target
    from .sync.progress import SyncProgress, watching

    unread: list[str] = []  # the regions, not their data points: those can be large
    display = _ProgressDisplay()

    def region_done(fetch: RegionFetch) -> None:
        if not fetch.ok:
            unread.append(fetch.region)
        display.clear()
        _echo_region_synced(fetch)

    try:
        with watching(SyncProgress(region_done, display.show)):
            result = run_sync(name, day_range, tags)
    finally:
        display.clear()
    # Each day's materialization carries that day's rows.
    rows = sum(
        event.materialization.metadata["dagster/row_count"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key.path == ["bedrock_usage_daily"]
    )
    failures = result.get_step_failure_events()
    # A partial sync fails its run on purpose, by the blocking every_region_read check,
    # once every region that could be read is written.
    partial = bool(unread) and all(
        f.step_failure_data.error and f.step_failure_data.error.cls_name == CHECK_FAILED
        for f in failures
    )
    if not result.success and not partial:
        outcome = "FAILED"
    elif unread:
        outcome = (
            f"PARTIAL, could not read {', '.join(unread)} (their earlier rows are kept; exit 6)"
        )
    else:
        outcome = "succeeded"
    click.echo(
        f"Dagster run {result.run_id}: {outcome}; {rows} usage rows in {warehouse_target()}."
    )
    if any(
        f.step_failure_data.error and f.step_failure_data.error.cls_name in INTERRUPT_ERRORS
        for f in failures
    ):
        raise KeyboardInterrupt
    if not result.success and not partial:
        message = (
            cause_of(failures[0].step_failure_data.error)
            if failures and failures[0].step_failure_data.error
            else "see the run in the Dagster UI"
        )
        user_data = failures[0].step_failure_data.user_failure_data if failures else None
        if user_data and "warehouse_busy" in user_data.metadata:
            code = ExitCode.WAREHOUSE_BUSY
        else:
            # 6 whenever a region could not be read (all of them included), else 1.
            code = ExitCode.PARTIAL_SYNC if unread else ExitCode.FAILED
        raise UserError(f"The sync of '{name}' failed: {message}", code)
    if unread:
        sys.exit(ExitCode.PARTIAL_SYNC)


class _ProgressDisplay:
    """A region's reading as it goes: one line rewritten in a terminal, plain lines
    (every call) in a log."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def show(self, progress: FetchProgress) -> None:
        line = (
            f"  {progress.region}: GetMetricData call {progress.calls}, "
            f"{progress.metrics_requested:,} series x {progress.days} days read"
        )
        if self.tty:
            click.echo(f"\r{line}\x1b[K", nl=False, err=True)
            self.shown = True
        else:
            click.echo(line, err=True)

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\x1b[K", nl=False, err=True)
            self.shown = False


def _usage_or_none(connection_id, since):
    """Usage rows from the warehouse, or None (said on stderr) while a sync holds it: the
    state and health still answer."""
    from .storage.warehouse import (
        WarehouseBusyError,
        catch_up_snapshot,
        usage_rows,
        warehouse_target,
    )

    republished = catch_up_snapshot(warehouse_target())
    if republished:
        click.echo(
            "Note: the analysts' copy was behind the warehouse (a sync or purge stopped "
            f"before publishing it) for {', '.join(republished)}: brought up to date.",
            err=True,
        )
    try:
        return usage_rows(warehouse_target(), connection_id, since)
    except WarehouseBusyError:
        click.echo(
            f"Note: {warehouse_target()} is busy (a sync is writing); usage rows are not shown.",
            err=True,
        )
        return None


@main.command("connections")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def list_connections(as_json):
    """Every connection: account, regions, state, last successful sync, usage rows."""
    from .connections.store import StateStore
    from .sync import attempts

    store = StateStore()
    attempts.reap(store)
    rows = _usage_or_none(None, None)
    listing = []
    for connection in store.all():
        health = store.region_health(connection.connection_id)
        mine = None if rows is None else rows[rows.connection_id == connection.connection_id]
        successes = [h.last_success_at for h in health.values() if h.last_success_at]
        listing.append(
            {
                "name": connection.connection_id,
                "account_id": connection.account_id,
                "regions": list(connection.regions),
                "auth_method": connection.auth_method,
                **_state(connection, health),
                "last_successful_sync": max(successes) if successes else None,
                "usage_rows": None if mine is None else int(mine["rows"].sum()),
            }
        )
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing:
        click.echo(
            "No connections yet. Add one with 'bedrock-usage connect NAME --account-id "
            "... --regions ... --access-key-id ...'."
        )
        return
    for item in listing:
        state = item["state"] + (f" ({item['reason']})" if item["reason"] else "")
        click.echo(
            f"{item['name']}  account {item['account_id']}  regions {','.join(item['regions'])}"
            f"\n  state: {state}\n  last successful sync: {item['last_successful_sync'] or 'never'}"
            f"\n  usage rows: {item['usage_rows']}"
        )


def _state(connection, health) -> dict:
    from .connections.store import StateStore
    from .sync import steps

    state, reason = steps.connection_state(connection, health, StateStore())
    return {"state": state, "reason": reason}


@main.command()
@click.argument("name")
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 455),
    help="Recent days of usage to show (CloudWatch keeps 455).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def status(name, days, as_json):
    """A connection's health: state, last sync per region, recent usage per region and
    model, and recent events (errors first, with what to do)."""
    from .connections import service
    from .connections.store import StateStore
    from .sync import attempts

    store = StateStore()
    attempts.reap(store, only=name)
    connection = service.get_connection(name, store)
    health = store.region_health(name)
    since = utc_today() - timedelta(days=days)
    usage = _usage_or_none(name, since)
    events = store.events(name, limit=20)
    events.sort(key=lambda e: (e.outcome == "ok", -e.event_id))
    report = {
        "name": name,
        "account_id": connection.account_id,
        **_state(connection, health),
        "initial_sync": connection.initial_sync,
        "regions": [
            {
                "region": region,
                "last_success_at": health[region].last_success_at if region in health else None,
                "last_synced_day": health[region].last_synced_day if region in health else None,
                "failure": {
                    "code": health[region].failure_code,
                    "message": health[region].failure_message,
                    "next_action": health[region].failure_next_action,
                }
                if region in health and health[region].needs_attention
                else None,
            }
            for region in connection.regions
        ],
        "usage_since": str(since),
        "usage": [
            {
                k: (v.item() if hasattr(v, "item") else (str(v) if k.endswith("_day") else v))
                for k, v in row.items()
                if k != "connection_id"
            }
            for row in usage.to_dict("records")
        ]
        if usage is not None
        else None,
        "events": [e.__dict__ for e in events],
        "optional_permissions_missing": store.missing_optional_permissions(name),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    state = report["state"] + (f" ({report['reason']})" if report["reason"] else "")
    click.echo(
        f"{name}: account {connection.account_id}, {state}; initial sync {connection.initial_sync}"
    )
    for region in report["regions"]:
        line = (
            f"  {region['region']}: last sync {region['last_success_at'] or 'never'}"
            f" (through {region['last_synced_day'] or '-'})"
        )
        if region["failure"]:
            line += (
                f"\n    FAILING: {region['failure']['code']}: {region['failure']['message']}"
                f"\n    Next: {region['failure']['next_action']}"
            )
        click.echo(line)
    _echo_missing_optional(report["optional_permissions_missing"])
    click.echo(f"Usage since {since}:")
    if usage is None:
        click.echo("  unavailable while the warehouse is busy; try again in a moment.")
    elif usage.empty:
        click.echo(
            "  no rows. If the sync succeeded but nothing shows, check that the key can "
            "read CloudWatch in the regions where Bedrock ran ('bedrock-usage doctor "
            f"{name}')."
        )
    else:
        click.echo(usage.drop(columns=["connection_id"]).to_string(index=False))
    click.echo("Recent events:")
    for event in events[:10]:
        click.echo(_event_line(event))


def _event_line(event) -> str:
    region = f" {event.region}" if event.region else ""
    code = f" {event.error_code}" if event.error_code else ""
    line = (
        f"  {event.at} {event.connection_id}{region} {event.action} {event.outcome}{code}: "
        f"{event.message}"
    )
    if event.next_action:
        line += f"\n    Next: {event.next_action}"
    return line


@main.command()
@click.argument("name", required=False)
@click.option(
    "--all", "every", is_flag=True, help="Every connection, in runs of BEDROCK_USAGE_FLEET_BATCH."
)
@click.option("--start", help="First UTC day, YYYY-MM-DD (default: yesterday minus 2 days).")
@click.option("--end", help="Last UTC day, YYYY-MM-DD (default: yesterday).")
@handles_errors
def sync(name, every, start, end):
    """Sync an inclusive range of UTC days now, through the same code as the Dagster assets:
    one connection (NAME), or every connection (--all) as the schedule does."""
    from .connections import service
    from .sync import steps

    if bool(name) == every:
        raise click.UsageError("Name one connection, or pass --all for every connection.")
    default = steps.default_sync_range()
    first = parse_day(start) if start else default.first
    last = parse_day(end) if end else (max(default.last, first) if start else default.last)
    day_range = readable_range(first, last)
    if every:
        _run_fleet(day_range)
        return
    service.get_connection(name)
    click.echo(f"Syncing '{name}' for {day_range}, recorded in Dagster:")
    _run_sync(name, day_range)


def _run_fleet(day_range) -> None:
    """Every connection in fleet runs, a line per connection as each run ends. Exit 6 when
    some connection or region could not be read, 1 when a run failed otherwise."""
    from .defs.local_runs import cause_of, run_fleet
    from .defs.tags import CONNECTION_TAG, FAILED_CONNECTIONS_TAG, FAILED_REGIONS_TAG
    from .defs.tags import connections_of as named

    click.echo(
        f"Syncing every connection for {day_range} in runs of up to "
        f"{settings.fleet_batch()} connections (BEDROCK_USAGE_FLEET_BATCH), recorded in Dagster:"
    )
    worst = ExitCode.OK
    for result in run_fleet(day_range):
        tags = result.dagster_run.tags | _run_tags(result.run_id)
        failed = set(named(tags, FAILED_CONNECTIONS_TAG))
        unread: dict[str, list[str]] = {}
        for pair in named(tags, FAILED_REGIONS_TAG):
            connection_id, region = pair.split("/", 1)
            unread.setdefault(connection_id, []).append(region)
        failures = [f for f in result.get_step_failure_events() if f.step_failure_data.error]
        other = [f for f in failures if f.step_failure_data.error.cls_name != CHECK_FAILED]
        click.echo(f"Dagster run {result.run_id}:")
        for connection_id in named(tags, CONNECTION_TAG):
            if connection_id in failed:
                line = "FAILED, nothing read (its earlier rows are kept)"
            elif connection_id in unread:
                line = f"PARTIAL, could not read {', '.join(unread[connection_id])}"
            elif other:
                line = f"FAILED: {cause_of(other[0].step_failure_data.error)}"
            else:
                line = "synced"
            click.echo(f"  {connection_id}: {line}")
        # As for one connection: 6 when a region could not be read, else 1 on failure.
        code = ExitCode.PARTIAL_SYNC if failed or unread else ExitCode.FAILED if other else 0
        worst = code if worst != ExitCode.FAILED and code else worst
    click.echo("Why a connection failed, and what to do: bedrock-usage events NAME.")
    if worst != ExitCode.OK:
        sys.exit(worst)


def _run_tags(run_id: str) -> dict[str, str]:
    """The tags a run added to itself as it went (the result holds those it began with)."""
    from .defs.local_runs import instance

    run = instance().get_run_by_id(run_id)
    return dict(run.tags) if run else {}


@main.command()
@click.argument("name")
@click.option("--regions", required=True, help="The full comma-separated list of regions.")
@handles_errors
def edit(name, regions):
    """Change a connection's regions; new regions are verified first."""
    from .connections import service

    connection, added = service.edit_regions(
        name, regions, on_region=_region_check_printer("Verifying the new regions:")
    )
    click.echo(f"'{name}' now reads {', '.join(connection.regions)}.")
    if added:
        click.echo(
            f"Sync the new regions' history with 'bedrock-usage sync {name} --start YYYY-MM-DD'."
        )


@main.command()
@click.argument("name")
@with_auth_options
@handles_errors
def rotate(name, access_key_id, role_arn, external_id, profile):
    """Replace a connection's credentials; the new ones are verified first."""
    from .connections import service

    auth = _auth_from_options(access_key_id, role_arn, external_id, profile)
    service.rotate(name, auth, on_region=_region_check_printer("Verifying the new credentials:"))
    click.echo(
        f"Credentials of '{name}' replaced. Delete the old access key in AWS (IAM, "
        "Users, Security credentials)."
    )


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def doctor(name, as_json):
    """Run the troubleshooting checks against AWS and say what was found (exit 1 when a
    check fails)."""
    from .connections.doctor import diagnose
    from .extraction.failures import FailureKind

    diagnosis = diagnose(name)
    if as_json:
        click.echo(json.dumps(diagnosis.as_dict(), indent=2, default=str))
        if not diagnosis.ok:
            sys.exit(ExitCode.FAILED)
        return
    connection = diagnosis.connection
    click.echo(f"Checking '{name}' (account {connection.account_id}):")
    if diagnosis.credentials_failure:
        failure = diagnosis.credentials_failure
        what = (
            "AWS could not be reached"
            if failure.kind is FailureKind.NETWORK
            else "The credentials were refused"
        )
        click.echo(f"- {what}: {failure.code}: {failure.message} Next: {failure.next_action}")
    else:
        click.echo(
            f"- The key belongs to account {diagnosis.key_account} ({diagnosis.key_arn}): "
            + (
                "as expected."
                if diagnosis.key_matches_account
                else f"NOT {connection.account_id}. Rotate in a key of the right account."
            )
        )
    for finding in diagnosis.regions:
        if finding.failure:
            click.echo(
                f"- {finding.region}: cannot read CloudWatch: {finding.failure.code}. "
                f"Next: {finding.failure.next_action}"
            )
            continue
        click.echo(
            f"- {finding.region}: CloudWatch readable; models with usage in the last two "
            f"weeks: {', '.join(sorted(finding.recent_models)) or 'none'}"
        )
        for endpoint, newest in finding.newest_datapoints.items():
            if newest is None:
                click.echo(f"    {endpoint}: no data point in the last 24 hours")
                continue
            minutes = int((datetime.now(UTC) - newest).total_seconds() // 60)
            click.echo(
                f"    {endpoint}: newest data point {newest:%Y-%m-%d %H:%M}Z, {minutes} minutes "
                "ago (CloudWatch delay)"
            )
    from .connections.store import StateStore

    _echo_missing_optional(StateStore().missing_optional_permissions(name), prefix="- ")
    errors = diagnosis.recent_errors
    click.echo("- Recent errors in the event log:" + ("" if errors else " none"))
    for event in errors:
        click.echo(_event_line(event))
    if not diagnosis.ok:
        sys.exit(ExitCode.FAILED)


def _echo_missing_optional(missing: list[dict], prefix: str = "  ") -> None:
    """Optional permissions the last sync found missing: nothing failed for them."""
    for row in missing:
        click.echo(
            f"{prefix}{row['region']}: optional permission '{row['permission']}' missing "
            f"({row['missing_code']}, last sync {row['checked_at']}). {row['advice']}"
        )


@main.command()
@click.argument("name", required=False)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def events(name, limit, as_json):
    """The integration event log, newest first: verifications, each region read (fetch)
    and each sync's outcome."""
    from .connections.store import StateStore

    if name:
        from .connections import service

        service.get_connection(name)
    found = StateStore().events(name, limit)
    if as_json:
        click.echo(json.dumps([e.__dict__ for e in found], indent=2))
        return
    if not found:
        click.echo("No events yet.")
    for event in found:
        click.echo(_event_line(event))


@main.command()
@click.argument("name")
@click.option("--purge-usage", is_flag=True, help="Also delete this connection's usage rows.")
@handles_errors
def disconnect(name, purge_usage):
    """Delete a connection's stored credentials now (usage history stays)."""
    from .connections import service
    from .connections.store import StateStore

    purged = service.disconnect(name, purge_usage)
    click.echo(f"Disconnected '{name}': its credentials are deleted from {StateStore().location}.")
    if purge_usage:
        click.echo(f"Purged {purged} usage rows.")
    else:
        click.echo("Its usage history stays in the warehouse (--purge-usage deletes it).")
    click.echo("To remove provider-side access too, delete the IAM user or its access key in AWS.")


@main.command()
@handles_errors
def scrub():
    """Wipe deleted credentials from the state store's free pages and write-ahead log now.

    'disconnect' does this itself; run it when disconnect said another process kept the
    state store open."""
    from .connections.store import StateStore

    if not StateStore().scrub(timeout=settings.lock_timeout_seconds()):
        raise UserError(
            f"Another process still holds a read transaction on {state_path()}: close it "
            "(a sqlite3 shell, a stuck command) and run 'bedrock-usage scrub' again."
        )
    store = StateStore()
    done = "the write-ahead log is empty" if store.path else "the tables were rewritten"
    click.echo(f"{store.location}: deleted data wiped; {done}.")


@main.group()
def prices() -> None:
    """List prices behind the cost estimate (table bedrock_prices)."""


@prices.command("refresh")
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="A region to read (repeatable). Default: every connection's regions.",
)
@handles_errors
def prices_refresh(regions: tuple[str, ...]) -> None:
    """Read AWS's public Price List for Bedrock into bedrock_prices (no credentials).

    Changed prices close the old row on the day the new one starts, so past days keep
    the price they had. Prices that differ from the shipped snapshot are listed."""
    from .connections.store import StateStore
    from .price_refresh import connected_regions, refresh_prices
    from .pricing.price_list import PriceListError
    from .storage.warehouse import open_warehouse, warehouse_target

    wanted = list(regions) or connected_regions(StateStore())
    if not wanted:
        raise UserError(
            "No connections yet, so no regions to price: pass --region, e.g. --region us-east-1."
        )
    path, url = warehouse_target(), settings.price_list_url()
    try:
        report = refresh_prices(lambda: open_warehouse(path), path, wanted, url)
    except PriceListError as error:
        raise UserError(str(error), ExitCode.FAILED) from None
    click.echo(
        f"Read {report.rows_read} prices for {', '.join(report.regions_read) or 'no region'} "
        f"from {url}; {report.rows_changed} new or changed."
    )
    if report.regions_not_listed:
        click.echo(
            f"  not in AWS's price list for Bedrock: {', '.join(report.regions_not_listed)} "
            "(check the region's name; Bedrock may not be sold there)."
        )
    if report.tiers:
        tiers = ", ".join(f"{tier} {rows}" for tier, rows in report.tiers.items())
        click.echo(
            f"  stored as tiers of their own (token types such as output:batch): {tiers} "
            "(rows). The estimate prices the tokens CloudWatch counts at the standard rate: "
            "CloudWatch cannot tell these tiers apart."
        )
    if report.offers_not_published:
        click.echo(f"  offers not published there: {', '.join(report.offers_not_published)}.")
    for name, names_regions in report.unknown_names.items():
        click.echo(
            f"  not mapped to a model id: {name!r} ({', '.join(names_regions)}): add it to "
            "bedrock_usage/pricing/price_list_names.json to price it."
        )
    for model_id, region, token_type, aws, shipped in report.differences:
        click.echo(
            f"  differs from the shipped snapshot: {model_id} {region} {token_type}: "
            f"AWS {aws} vs {shipped} USD per million tokens (AWS's applies)."
        )


@prices.command("show")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def prices_show(model: str | None, as_json: bool) -> None:
    """Prices in force today, per model (MODEL: part of a model id to filter on)."""
    from .storage.costs import prices_in_force
    from .storage.warehouse import open_warehouse, warehouse_target

    with open_warehouse(warehouse_target()) as db:
        rows = prices_in_force(db, model or "")
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo(f"No price in force matches {model!r}.")
        return
    for row in rows:
        click.echo(
            f"{row['model_id']}  {row['price_scope']}  {row['region']}  {row['token_type']}: "
            f"{row['usd_per_million_tokens']} USD per million tokens since "
            f"{row['effective_from']} ({row['source']})"
        )


@main.command()
@click.option("--port", default=3000, show_default=True, help="Port of the web UI.")
@click.option(
    "--workspace",
    default="workspace.yaml",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The workspace file to load.",
)
@handles_errors
def ui(port: int, workspace: Path) -> None:
    """Open the Dagster UI on this home's state (after 'make demo': on the demo's emulator)."""
    from .ui import run_ui

    sys.exit(run_ui(port, workspace))


@main.command()
@click.option("--days", default=30, show_default=True, help="Days of history to sync first.")
@handles_errors
def demo(days: int) -> None:
    """Run the whole pipeline on synthetic history in a local AWS emulator (no AWS account).

    Writes to BEDROCK_USAGE_HOME (default ./.bedrock_usage)."""
    from .demo import run_demo

    run_demo(days)


def _owner_match_options(command):
    """What an ownership rule covers: any of these, most specific wins."""
    for name, help_text in reversed(
        [
            ("--account", "An AWS account id."),
            ("--connection", "A connection's name."),
            ("--region", "An AWS region."),
            ("--model", "A model id (the base model, or the id CloudWatch reports)."),
            ("--profile", "An application inference profile's id, ARN or name."),
            ("--project", "A mantle endpoint project id."),
            ("--principal", "An IAM principal's ARN (as the bill names it)."),
        ]
    ):
        command = click.option(name, help=help_text)(command)
    return command


def _owner_match(account, connection, region, model, profile, project, principal):
    from .storage.owners import Match

    return Match(account, connection, region, model, profile, project, principal)


@main.group()
def owners() -> None:
    """Who owns the spend: the ownership map (team, application, cost center by account,
    connection, region, model, profile, project or principal; the most specific rule
    wins; tags fill in where no rule does). Analysts group by it in
    bedrock_usage_daily_by_owner and bedrock_cost_monthly_by_owner."""


@owners.command("set")
@click.option("--team", help="The owning team.")
@click.option("--application", help="The owning application.")
@click.option("--cost-center", help="The owning cost center.")
@_owner_match_options
@click.option(
    "--from",
    "effective_from",
    type=click.DateTime(["%Y-%m-%d"]),
    help="First UTC day the owner applies (default: from the start for what had no owner "
    "yet, else today, so a change does not rewrite the past).",
)
@handles_errors
def owners_set(team, application, cost_center, effective_from, **criteria):
    """Give what the options name to an owner."""
    from .owner_map import set_owner
    from .storage.owners import Owner

    match = _owner_match(**criteria)
    start = effective_from.date() if effective_from else None
    took = set_owner(match, Owner(team, application, cost_center), start)
    covered = ", ".join(f"{k}={v}" for k, v in match.named().items())
    click.echo(f"Owner of {covered}: {team or '-'} / {application or '-'} / "
               f"{cost_center or '-'}, from {took}.")  # fmt: skip


@owners.command("unset")
@_owner_match_options
@click.option(
    "--from", "effective_from", type=click.DateTime(["%Y-%m-%d"]),
    help="First UTC day without the owner (default today; earlier days keep it).",
)  # fmt: skip
@handles_errors
def owners_unset(effective_from, **criteria):
    """End the rule that names exactly these options."""
    from .owner_map import unset_owner

    match = _owner_match(**criteria)
    unset_owner(match, effective_from.date() if effective_from else None)
    click.echo(f"Rule for {', '.join(f'{k}={v}' for k, v in match.named().items())} ended.")


@owners.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def owners_list(as_json):
    """Every rule of the ownership map, with its effective dates."""
    from .owner_map import owner_rules

    rules = owner_rules()
    if as_json:
        click.echo(json.dumps(rules, indent=2, default=str))
        return
    if not rules:
        click.echo("No ownership rule yet: 'bedrock-usage owners set --team T --connection C'.")
    for rule in rules:
        covers = ", ".join(f"{k}={rule[k]}" for k in
                           ("account_id", "connection_id", "region", "model_id", "profile",
                            "project_id", "principal") if rule[k])  # fmt: skip
        until = f" until {rule['effective_to']}" if rule["effective_to"] else ""
        owner = " / ".join(rule[a] or "-" for a in ("team", "application", "cost_center"))
        click.echo(f"{covers}: {owner} from {rule['effective_from']}{until}")


@owners.command("tag-keys")
@click.option("--team", help="The tag key that names the team (default 'team').")
@click.option("--application", help="The tag key that names the application.")
@click.option("--cost-center", help="The tag key that names the cost center.")
@handles_errors
def owners_tag_keys(team, application, cost_center):
    """Show or change the tag keys owners are read from (an application inference
    profile's tags; on the bill, its IAM principal's, as iamPrincipal/KEY or user_KEY)."""
    from .owner_map import owner_tag_keys

    changes = {a: k for a, k in
               (("team", team), ("application", application), ("cost_center", cost_center))
               if k}  # fmt: skip
    keys = owner_tag_keys(changes)
    click.echo(", ".join(f"{attribute}: tag '{key}'" for attribute, key in keys.items()))


@owners.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handles_errors
def owners_import(csv_file):
    """Set every rule of a CSV file at once (header: team, application, cost_center,
    account_id, connection_id, region, model_id, profile, project_id, principal,
    effective_from); nothing is stored if any row is wrong."""
    from .owner_map import import_owners

    count = import_owners(csv_file)
    click.echo(f"Imported {count} ownership rule(s) from {csv_file}.")


@main.command()
@click.option("--month", help="The month, YYYY-MM (default: this UTC month, to yesterday).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: reports/bedrock-spend-YYYY-MM.html beside the "
    "analysts' copy, or under the lake's data path).",
)  # fmt: skip
@handles_errors
def report(month, out):
    """Write the month's spend report: one self-contained HTML file with charts (daily
    spend by model, accounts, owners, the bill, movers, budgets, anomalies, coverage)."""
    from .report import write_report

    first = None
    if month:
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError:
            raise UserError(f"--month {month!r}: give YYYY-MM, e.g. 2026-11.",
                            ExitCode.USAGE) from None  # fmt: skip
    where, built = write_report(first, out)
    figures = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in built.headline.items())
    click.echo(f"Spend report for {built.month}: {where}\n  {figures}")


@main.group()
def budgets() -> None:
    """Monthly budgets over all spend or one account, connection, owner (team) or model:
    month-to-date spend (billed where the bill covers the month, else estimated) and a
    month-end forecast; thresholds alerted once by the spend alert sensor."""


@budgets.command("set")
@click.argument("name")
@click.option("--monthly-usd", required=True, help="The budget for a calendar month, in USD.")
@click.option("--account", help="Only this AWS account's spend.")
@click.option("--connection", help="Only this connection's spend.")
@click.option("--owner", help="Only this team's spend (bedrock_usage_daily_by_owner).")
@click.option("--model", help="Only this model's spend (base model id).")
@click.option(
    "--thresholds", default="50,80,100", show_default=True,
    help="Percentages of the budget that alert once each month.",
)  # fmt: skip
@handles_errors
def budgets_set(name, monthly_usd, account, connection, owner, model, thresholds):
    """Set (or replace) a budget."""
    from .connections.validation import InvalidInput, check_connection_id
    from .spend_alerts import set_budget

    try:
        check_connection_id(name)
    except InvalidInput as error:
        raise UserError(f"Budget name: {error}", ExitCode.USAGE) from None
    scope = {"account": account, "connection": connection, "owner": owner, "model": model}
    budget = set_budget(name, monthly_usd, scope, thresholds)
    click.echo(f"Budget {budget.describe()}; alerts at {', '.join(map(str, budget.thresholds))}%.")


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def budgets_list(as_json):
    """Every budget with this month's spend so far, its basis and the forecast."""
    from .spend_alerts import budget_statuses, reading_spend

    with reading_spend() as db:
        statuses = budget_statuses(db, utc_today()) if db is not None else []
    listing = [status.as_dict() for status in statuses]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing:
        click.echo("No budget (or nothing synced yet): 'bedrock-usage budgets set NAME "
                   "--monthly-usd 5000'.")  # fmt: skip
    for item in listing:
        click.echo(
            f"{item['name']}: ${item['month_to_date_usd']} {item['basis']} in {item['month']} "
            f"of ${item['monthly_usd']} ({item['used_percent']}%, {item['scope']}); forecast "
            f"{'$' + item['forecast_usd'] if item['forecast_usd'] else 'not yet'}"
        )


@budgets.command("unset")
@click.argument("name")
@handles_errors
def budgets_unset(name):
    """Remove a budget."""
    from .connections.store import StateStore

    if not StateStore().remove_budget(name):
        raise UserError(f"No budget named '{name}': 'bedrock-usage budgets list'.",
                        ExitCode.NOT_FOUND)  # fmt: skip
    click.echo(f"Budget {name} removed.")


@main.group()
def alerts() -> None:
    """Spend alerts: budget thresholds, month-end forecasts, anomalies and new models, each
    sent once (the Dagster daemon's spend_alert_sensor evaluates them every 5 minutes)."""


@alerts.command("check")
@handles_errors
def alerts_check():
    """Evaluate now and send what is due (what the sensor does), printing it."""
    from .spend_alerts import check_alerts

    evaluation, sent = check_alerts()
    for item in sent:
        status = "sent" if item["delivered"] else f"NOT DELIVERED ({'; '.join(item['errors'])})"
        click.echo(f"{item['state'].upper()} {item['text']} [{status}]")
    click.echo(f"{len(evaluation.firing)} condition(s) hold; {len(sent)} alert(s) sent now.")


@main.group()
def billing() -> None:
    """What AWS billed for Bedrock: a CUR 2.0 export (AWS Data Exports) read into
    bedrock_billed_daily, beside the estimate."""


@billing.command("connect")
@click.argument("name")
@click.option(
    "--s3-uri",
    required=True,
    help="The export's folder: s3://bucket/prefix/export-name/ (holding data/ and metadata/).",
)
@with_auth_options
@handles_errors
def billing_connect(name, s3_uri, access_key_id, role_arn, external_id, profile):
    """Verify and store a billing source, then read every billing period delivered.

    Use a credential of the export bucket's own (typically in the payer account), never a
    CloudWatch connection's key. It needs only this (BUCKET and PREFIX/export-name yours):

    \b
    {"Version": "2012-10-17", "Statement": [
      {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::BUCKET",
       "Condition": {"StringLike": {"s3:prefix": "PREFIX/*"}}},
      {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::BUCKET/PREFIX/*"}]}

    Verification checks that the bucket answers, at least one billing period is
    delivered, and its newest period reads as CUR 2.0 (Parquet). If anything fails,
    nothing is stored."""
    from .bill_sync import connect_billing_source
    from .defs.local_runs import run_bill_read

    auth = _auth_from_options(access_key_id, role_arn, external_id, profile)
    periods = connect_billing_source(name, s3_uri, auth)
    click.echo(f"Connected billing source '{name}' ({s3_uri}); reading {', '.join(periods)}:")
    _echo_bill_reads(run_bill_read(periods, trigger="cli"))


@billing.command("read")
@click.option("--period", "periods", multiple=True, help="A billing period, YYYY-MM (repeatable).")
@handles_errors
def billing_read(periods):
    """Read the billing sources' periods again (default: every period delivered); a
    period is replaced whole, as AWS rewrites it until the month closes."""
    from .bill_sync import delivered_periods
    from .connections.store import StateStore
    from .defs.local_runs import run_bill_read

    if not StateStore().billing_sources():
        raise UserError(
            "No billing source yet: 'bedrock-usage billing connect NAME --s3-uri ...'.",
            ExitCode.NOT_FOUND,
        )
    wanted = sorted(periods) or delivered_periods()
    if not wanted:
        click.echo("No billing period is delivered yet: nothing to read.")
        return
    _echo_bill_reads(run_bill_read(wanted, trigger="cli"))


def _echo_bill_reads(reads) -> None:
    for read in reads:
        click.echo(
            f"{read.billing_source}: {', '.join(read.periods) or 'no period'}, {read.rows} rows"
        )


@billing.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def billing_status(as_json):
    """Every billing source: its export, credential kind, last read and periods read."""
    from .connections.store import StateStore

    listing = [
        {
            "name": s["billing_source_id"],
            "s3_uri": s["s3_uri"],
            "auth_method": s["auth_method"],
            "last_read_at": s["last_read_at"],
            "periods_read": json.loads(s["periods_read"] or "[]"),
        }
        for s in StateStore().billing_sources()
    ]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing:
        click.echo("No billing source: 'bedrock-usage billing connect NAME --s3-uri ...'.")
    for item in listing:
        click.echo(
            f"{item['name']}  {item['s3_uri']}  ({item['auth_method']})\n"
            f"  last read: {item['last_read_at'] or 'never'}; periods: "
            f"{', '.join(item['periods_read']) or 'none'}"
        )


@billing.command("disconnect")
@click.argument("name")
@handles_errors
def billing_disconnect(name):
    """Delete a billing source and its stored credential at once (the rows it read stay
    in bedrock_billed_daily, as history)."""
    from .bill_sync import disconnect_billing_source

    scrubbed = disconnect_billing_source(name)
    click.echo(f"Disconnected billing source '{name}': its credential is deleted.")
    if not scrubbed:
        click.echo(
            "  Another process holds the state store open, so the old ciphertext may remain "
            "in its free pages: run 'bedrock-usage scrub' once it is closed."
        )
    click.echo("  Also delete or deactivate the access key (or role) in AWS IAM.")


@main.group()
def lake() -> None:
    """The warehouse as a DuckLake (BEDROCK_USAGE_LAKE_CATALOG, BEDROCK_USAGE_LAKE_DATA_PATH)."""


@lake.command("import")
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The local warehouse file to copy. Default: BEDROCK_USAGE_WAREHOUSE's, or the one "
    "in BEDROCK_USAGE_HOME.",
)
@handles_errors
def lake_import(source: Path | None) -> None:
    """Copy a local warehouse file into the (new, empty) DuckLake, checked row for row.

    The file stays as it was; once this succeeds, keep the lake settings in every
    service and run, and move the file aside."""
    from .storage.lake import configured_lake
    from .storage.warehouse import LakeNotEmptyError, copy_into_lake

    target = configured_lake()
    if target is None:
        raise UserError(
            "Set BEDROCK_USAGE_LAKE_CATALOG (a postgresql:// URL) and "
            "BEDROCK_USAGE_LAKE_DATA_PATH (s3://bucket/prefix/) to the lake to copy into.",
            ExitCode.USAGE,
        )
    source = source or settings.warehouse_path()
    try:
        copied = copy_into_lake(source, target)
    except (FileNotFoundError, LakeNotEmptyError) as error:
        raise UserError(str(error), ExitCode.FAILED) from None
    for table, rows in copied.items():
        click.echo(f"  {table}: {rows} rows")
    click.echo(f"Copied {source} into {target}; every table's rows and sums match.")
