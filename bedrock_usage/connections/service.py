"""What a platform owner does with connections: connect, sync, edit, rotate, disconnect.

The CLI and the Dagster assets call these; each refuses bad input before contacting
AWS, verifies before storing, and stores nothing when anything fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import settings
from ..days import oldest_readable_day
from ..errors import ExitCode, UserError
from ..extraction.failures import FailureKind, RegionFailure, classify
from ..storage.warehouse import (
    catch_up_snapshot,
    purge_connection,
    stored_connection_rows,
    warehouse_target,
)
from .credentials import AuthSpec, session_for, stored_auth, stored_credentials
from .store import (
    PARTITION_START,
    Connection,
    DuplicateConnectionError,
    StateStore,
    now_iso,
)
from .validation import (
    InvalidInput,
    check_access_key_id,
    check_account_id,
    check_connection_id,
    check_regions,
    check_role_arn,
)
from .verify import Verification, verify_access


class VerificationFailed(UserError):
    def __init__(self, verification: Verification, what: str) -> None:
        lines = "\n  ".join(verification.problems())
        super().__init__(
            f"{what}: verification failed, nothing was stored.\n  {lines}",
            ExitCode.VERIFICATION_FAILED,
        )
        self.verification = verification


def _invalid(error: InvalidInput) -> UserError:
    return UserError(str(error), ExitCode.USAGE)


def check_auth(auth: AuthSpec) -> AuthSpec:
    try:
        if auth.access_key_id is not None:
            check_access_key_id(auth.access_key_id)
            if not auth.secret_access_key:
                raise InvalidInput(
                    "No secret access key was given: pipe it on standard input or type it at "
                    "the prompt."
                )
        if auth.role_arn:
            check_role_arn(auth.role_arn)
        if auth.access_key_id is None and not auth.role_arn and not auth.profile:
            raise InvalidInput(
                "Give --access-key-id (the secret is read from standard input), or "
                "--role-arn, or --profile."
            )
    except InvalidInput as error:
        raise _invalid(error) from None
    return auth


def connect(
    connection_id: str,
    account_id: str,
    regions: str | tuple[str, ...],
    auth: AuthSpec,
    backfill_days: int = settings.DEFAULT_BACKFILL_DAYS,
    sync_later: bool = False,
    store: StateStore | None = None,
    on_region: Callable[[str, RegionFailure | None], None] | None = None,
) -> Connection:
    """Verify, then store a new connection. Nothing is stored when anything fails."""
    store = store or StateStore()
    try:
        check_connection_id(connection_id)
        check_account_id(account_id)
        regions = check_regions(regions)
    except InvalidInput as error:
        raise _invalid(error) from None
    check_auth(auth)
    if not 1 <= backfill_days <= 454:
        raise UserError(
            f"--backfill-days {backfill_days} is out of range: CloudWatch keeps 455 days, so "
            "use 1 to 454.",
            ExitCode.USAGE,
        )
    _refuse_duplicate(store, connection_id, account_id)
    verification = _verify(auth, account_id, regions, on_region)
    if not verification.ok:
        raise VerificationFailed(verification, f"Connecting '{connection_id}'")
    created = now_iso()
    connection = Connection(
        connection_id=connection_id,
        account_id=account_id,
        regions=regions,
        **stored_credentials(auth),
        backfill_days=backfill_days,
        initial_sync="skipped" if sync_later else "pending",
        created_at=created,
        updated_at=created,
    )
    try:
        store.add(connection)
        # The date partitions start at the oldest day CloudWatch could answer for the
        # first connection, recorded once: the partition view never moves afterwards.
        store.record_once(PARTITION_START, oldest_readable_day().isoformat())
    except DuplicateConnectionError:
        # Connected by another process meanwhile: say what the checks above say.
        _refuse_duplicate(store, connection_id, account_id)
        raise
    for region in regions:
        store.log_event(
            connection_id, "verify", "ok", "CloudWatch AWS/Bedrock readable", region=region
        )
    return connection


def _refuse_duplicate(store: StateStore, connection_id: str, account_id: str) -> None:
    if store.get(connection_id):
        raise UserError(
            f"A connection named '{connection_id}' already exists. Pick another name, or "
            f"change it with 'bedrock-usage edit {connection_id}' / 'bedrock-usage rotate "
            f"{connection_id}'.",
            ExitCode.CONFLICT,
        )
    existing = store.by_account(account_id)
    if existing:
        raise UserError(
            f"Account {account_id} is already connected as '{existing.connection_id}'. A second "
            "connection to the same account would count its usage twice; add regions to the "
            f"existing one with 'bedrock-usage edit {existing.connection_id} --regions ...'.",
            ExitCode.CONFLICT,
        )


ROLE_ADVICE = (
    "The role could not be assumed. Check that its trust policy names this key's user or "
    "account as principal, that --external-id matches its sts:ExternalId condition, and "
    "that the user may call sts:AssumeRole on it."
)


def session_failure(auth: AuthSpec, error: Exception) -> RegionFailure:
    """Why no session could be made: the base credentials, or the role on top of them."""
    failure = classify("role" if auth.role_arn else "credentials", error)
    if auth.role_arn and failure.kind is not FailureKind.CREDENTIALS:
        return replace(failure, advice=ROLE_ADVICE)
    return failure


def _verify(auth, account_id, regions, on_region) -> Verification:
    try:
        session = session_for(auth)
    except Exception as error:  # noqa: BLE001 - role assumption failures are classified
        return Verification(account_id, identity_failure=session_failure(auth, error))
    return verify_access(session, account_id, regions, on_region)


def get_connection(connection_id: str, store: StateStore | None = None) -> Connection:
    store = store or StateStore()
    connection = store.get(connection_id)
    if connection is None:
        names = ", ".join(c.connection_id for c in store.all()) or "none yet"
        raise UserError(
            f"No connection named '{connection_id}' (connections: {names}). See 'bedrock-usage "
            "connections'.",
            ExitCode.NOT_FOUND,
        )
    return connection


def edit_regions(
    connection_id: str,
    regions: str,
    store: StateStore | None = None,
    on_region: Callable[[str, RegionFailure | None], None] | None = None,
) -> tuple[Connection, tuple[str, ...]]:
    """Change the regions; regions new to the connection are verified first. Returns the
    updated connection and the regions added."""
    store = store or StateStore()
    connection = get_connection(connection_id, store)
    try:
        wanted = check_regions(regions)
    except InvalidInput as error:
        raise _invalid(error) from None
    added = tuple(r for r in wanted if r not in connection.regions)
    if added:
        verification = _verify(stored_auth(connection), connection.account_id, added, on_region)
        if not verification.ok:
            raise VerificationFailed(verification, f"Adding regions to '{connection_id}'")
    store.update(connection_id, regions=wanted)
    store.log_event(connection_id, "edit", "ok", f"regions set to {', '.join(wanted)}")
    return replace(connection, regions=wanted), added


def rotate(
    connection_id: str,
    auth: AuthSpec,
    store: StateStore | None = None,
    on_region: Callable[[str, RegionFailure | None], None] | None = None,
) -> Connection:
    """Replace the stored credentials once the new ones verify in every region."""
    store = store or StateStore()
    connection = get_connection(connection_id, store)
    check_auth(auth)
    verification = _verify(auth, connection.account_id, connection.regions, on_region)
    if not verification.ok:
        raise VerificationFailed(verification, f"Rotating '{connection_id}'")
    store.update(connection_id, **stored_credentials(auth))
    store.log_event(connection_id, "rotate", "ok", "credentials replaced after verification")
    _scrub_ciphertext(store, connection, "replaced")
    return get_connection(connection_id, store)


def disconnect(
    connection_id: str,
    purge_usage: bool = False,
    store: StateStore | None = None,
    location: Path | None = None,
) -> int:
    """Delete the stored credentials now; usage history stays unless `purge_usage`.
    Returns the usage rows purged.

    With `purge_usage`, the warehouse is taken first: if it stays busy nothing is
    deleted, credentials included. Once taken, no sync can write for the connection
    again (see `ensure_still_connected`). A purge interrupted after the credentials
    went is completed by running the same command again."""
    store = store or StateStore()
    path = location or warehouse_target()
    connection = store.get(connection_id)
    if connection is None:
        if purge_usage and stored_connection_rows(path, connection_id):
            purged = purge_connection(path, connection_id)
            store.log_event(connection_id, "disconnect", "ok", f"{purged} usage rows purged")
            return purged
        if purge_usage and connection_id in catch_up_snapshot(
            path
        ):  # a purge stopped before publishing
            store.log_event(
                connection_id, "disconnect", "ok", "purged rows removed from the analysts' copy"
            )
            return 0
        get_connection(connection_id, store)
    if purge_usage:
        purged = purge_connection(
            path, connection_id, before_delete=lambda: store.remove(connection_id)
        )
    else:
        purged = 0
        store.remove(connection_id)
    _scrub_ciphertext(store, connection)
    store.log_event(
        connection_id,
        "disconnect",
        "ok",
        "credentials deleted" + (f"; {purged} usage rows purged" if purge_usage else ""),
    )
    return purged


def _scrub_ciphertext(store: StateStore, connection: Connection, done: str = "deleted") -> None:
    """Return only once no file of the state store holds the old secret's ciphertext."""
    store.scrub(timeout=settings.lock_timeout_seconds())
    if not connection.secret_ciphertext or store.path is None:
        return  # PostgreSQL: rows deleted and tables rewritten; its files are its own
    needle = connection.secret_ciphertext.encode()
    holding = [
        path
        for path in sorted(store.path.parent.glob(f"{store.path.name}*"))
        if path.is_file() and needle in path.read_bytes()
    ]
    if holding:
        raise UserError(
            f"The credentials of '{connection.connection_id}' are {done}, but their old "
            f"encrypted copy still lies in {', '.join(map(str, holding))}: another process "
            "keeps the state store open in a read transaction (a sqlite3 shell, a stuck "
            "command). Close it, then run 'bedrock-usage scrub' to wipe it."
        )
