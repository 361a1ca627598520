"""Billing sources: a CUR 2.0 export (AWS Data Exports) and the credential of its bucket,
connected, read into `bedrock_billed_daily` and disconnected as a CloudWatch connection
is — verified before anything is stored, the secret encrypted, gone on disconnect.

The credential is the billing source's own (typically in the payer account, where the
export lives): `s3:ListBucket` on the export's prefix and `s3:GetObject` on its objects.
A CloudWatch connection's key is never used for it, so that key stays minimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from .billing.cur import BillingExportError, ExportLocation, billing_periods, read_period
from .connections.credentials import AuthSpec, auth_from_stored, session_for, stored_credentials
from .connections.store import DuplicateConnectionError, StateStore, now_iso
from .connections.validation import InvalidInput, check_connection_id
from .errors import ExitCode, UserError
from .extraction.aws import client_config
from .extraction.failures import FailureKind, classify
from .storage.billed import replace_billing_period
from .storage.lake import Lake
from .storage.warehouse import WarehouseOpener, atomically, publish_snapshot

BILLING_POLICY = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::BUCKET",
     "Condition": {"StringLike": {"s3:prefix": "PREFIX/*"}}},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::BUCKET/PREFIX/*"}
  ]
}"""


@dataclass(frozen=True)
class BillRead:
    billing_source: str
    periods: list[str]
    rows: int


def _s3(auth: AuthSpec):
    return session_for(auth).client("s3", config=client_config())


def _refused(location: ExportLocation, error: Exception) -> UserError:
    """What failed on S3, with the step that fixes it (the kinds of a region's failure)."""
    failure = classify(location.bucket, error)
    if failure.kind is FailureKind.NETWORK:
        advice = (
            "S3 could not be reached (no connection, DNS, timeout, TLS, or something else "
            "answering): check this machine's network, proxy (HTTPS_PROXY), CA bundle "
            "(AWS_CA_BUNDLE) and AWS_ENDPOINT_URL, then try again; the credential was not "
            "judged"
        )
    elif failure.kind is FailureKind.CREDENTIALS:
        advice = (
            "the billing credential was rejected or not found (unknown or deleted access "
            "key, wrong secret, expired session, missing profile): disconnect the billing "
            "source and connect it again with a working one"
        )
    elif failure.code == "NoSuchBucket":
        advice = f"no bucket named '{location.bucket}' exists: check the --s3-uri"
    else:
        advice = (
            "the billing credential needs s3:ListBucket on the export's prefix and "
            "s3:GetObject on its objects (see 'bedrock-usage billing connect --help' for the "
            "policy)"
        )
    return UserError(
        f"Reading the export at {location} failed: {failure.code}. Next: {advice}; nothing "
        "was stored.",
        ExitCode.VERIFICATION_FAILED,
    )


def connect_billing_source(
    name: str, s3_uri: str, auth: AuthSpec, store: StateStore | None = None
) -> list[str]:
    """Verify (the bucket answers, at least one billing period is delivered, its newest
    period reads as CUR 2.0) and store the source; returns the periods delivered, for
    the caller to read as a run of `bedrock_billing_read`."""
    store = store or StateStore()
    try:
        check_connection_id(name)
        export = ExportLocation.parse(s3_uri)
    except (InvalidInput, BillingExportError) as error:
        raise UserError(str(error), ExitCode.USAGE) from None
    if store.billing_source(name):
        raise UserError(
            f"A billing source named '{name}' already exists: pick another name, or "
            f"'bedrock-usage billing disconnect {name}' first.",
            ExitCode.CONFLICT,
        )
    try:
        s3 = _s3(auth)
        periods = billing_periods(s3, export)
        if not periods:
            raise UserError(
                f"No billing period is delivered under {export} yet: check that the URI "
                "names the export's folder (the one holding data/ and metadata/), or wait "
                "for AWS's first delivery (up to 24 hours after the export was created); "
                "nothing was stored.",
                ExitCode.VERIFICATION_FAILED,
            )
        newest = max(periods)
        read_period(s3, export, newest, periods[newest])
    except BillingExportError as error:
        raise UserError(f"{error} Nothing was stored.", ExitCode.VERIFICATION_FAILED) from None
    except (ClientError, BotoCoreError) as error:
        raise _refused(export, error) from None
    source = {
        "billing_source_id": name,
        "s3_uri": str(export),
        **stored_credentials(auth),
        "created_at": now_iso(),
    }
    try:
        store.add_billing_source(source)
    except DuplicateConnectionError:
        raise UserError(
            f"A billing source named '{name}' was added at the same time: kept that one.",
            ExitCode.CONFLICT,
        ) from None
    store.log_event(name, "billing connect", "ok", f"export {export}: {len(periods)} periods")
    return sorted(periods)


def delivered_periods(store: StateStore | None = None) -> list[str]:
    """Every billing period some billing source's export holds, oldest first."""
    store = store or StateStore()
    periods: set[str] = set()
    for source in store.billing_sources():
        export = ExportLocation.parse(source["s3_uri"])
        with _reading(source["billing_source_id"], export, store):
            periods.update(billing_periods(_s3(auth_from_stored(source)), export))
    return sorted(periods)


def read_bill(
    open_db: WarehouseOpener,
    location: Path | Lake,
    periods: list[str] | None = None,
    store: StateStore | None = None,
) -> list[BillRead]:
    """Read each billing source's `periods` (default: every period delivered) into the
    warehouse, a period replaced whole in one transaction, then refresh the analysts'
    copy. A source that cannot be read fails with its name and what to do; the periods
    read before it are kept."""
    store = store or StateStore()
    reads = [_read_source(source, open_db, periods, store) for source in store.billing_sources()]
    with open_db() as db:
        publish_snapshot(db, location, {})
    return reads


def _read_source(
    source: dict, open_db: WarehouseOpener, periods: list[str] | None, store: StateStore
) -> BillRead:
    name = source["billing_source_id"]
    export = ExportLocation.parse(source["s3_uri"])
    with _reading(name, export, store):
        s3 = _s3(auth_from_stored(source))
        delivered = billing_periods(s3, export)
        wanted = sorted(p for p in delivered if periods is None or p in periods)
        rows = 0
        for period in wanted:
            lines = read_period(s3, export, period, delivered[period])
            read_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
            replace = partial(replace_billing_period, billing_source=name, period=period,
                              lines=lines, read_at=read_at)  # fmt: skip
            with open_db() as db:
                rows += atomically(db, partial(replace, db))
    store.billing_source_read(name, wanted)
    store.log_event(name, "billing read", "ok", f"{', '.join(wanted) or 'no period'}: {rows} rows")
    return BillRead(name, wanted, rows)


@contextmanager
def _reading(name: str, export: ExportLocation, store: StateStore) -> Iterator[None]:
    """A billing source that cannot be read fails with its name, the cause and what to
    do, in the event log too."""
    try:
        yield
    except BillingExportError as error:
        store.log_event(name, "billing read", "failed", str(error))
        raise UserError(f"Billing source '{name}': {error}") from None
    except (ClientError, BotoCoreError) as error:
        store.log_event(name, "billing read", "failed", str(error))
        refused = str(_refused(export, error)).replace("nothing was stored", "nothing was changed")
        raise UserError(f"Billing source '{name}': {refused}") from None


def disconnect_billing_source(name: str, store: StateStore | None = None) -> bool:
    """Delete the source and its credential at once; True when no file of the state
    store keeps the old ciphertext (see `StateStore.scrub`)."""
    store = store or StateStore()
    if store.billing_source(name) is None:
        names = ", ".join(s["billing_source_id"] for s in store.billing_sources()) or "none"
        raise UserError(
            f"No billing source named '{name}' (billing sources: {names}).", ExitCode.NOT_FOUND
        )
    store.remove_billing_source(name)
    store.log_event(name, "billing disconnect", "ok", "credential deleted")
    from . import settings

    return store.scrub(timeout=settings.lock_timeout_seconds())
