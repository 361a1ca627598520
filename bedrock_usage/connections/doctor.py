"""The troubleshooting checks, run against AWS: whose key it is, what each region lets
it read, which models had usage lately, how old the newest data point is (CloudWatch's
delay), and the recent errors in the event log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3

from ..extraction.aws import cloudwatch_client, sts_client
from ..extraction.failures import RegionFailure, classify
from ..extraction.fetch import list_bedrock_models
from ..extraction.metrics import MANTLE, MANTLE_METRICS, RUNTIME, Series
from .credentials import session_for, stored_auth
from .service import get_connection, session_failure
from .store import Connection, Event, StateStore
from .verify import REGION_INVOCATIONS, check_region

MANTLE_REGION_INFERENCES = Series(
    next(m for m in MANTLE_METRICS if m.metric_name == "Inferences"), None
)
ENDPOINT_NAMES = {"runtime": RUNTIME.name, "mantle": MANTLE.name}


@dataclass
class RegionFinding:
    region: str
    failure: RegionFailure | None = None
    recent_models: set[str] = field(default_factory=set)
    # Per endpoint (bedrock-runtime, bedrock-mantle): the newest data point of its
    # region total in the last 24 hours.
    newest_datapoints: dict[str, datetime | None] = field(default_factory=dict)


@dataclass
class Diagnosis:
    connection: Connection
    key_account: str | None = None
    key_arn: str | None = None
    credentials_failure: RegionFailure | None = None
    regions: list[RegionFinding] = field(default_factory=list)
    recent_errors: list[Event] = field(default_factory=list)

    @property
    def key_matches_account(self) -> bool:
        return self.key_account == self.connection.account_id

    def as_dict(self) -> dict:
        """Everything found, for `doctor --json` (no secret: the connection's
        credentials are not included)."""
        return {
            "name": self.connection.connection_id,
            "account_id": self.connection.account_id,
            "ok": self.ok,
            "key_account": self.key_account,
            "key_arn": self.key_arn,
            "key_matches_account": self.key_matches_account,
            "credentials_failure": _failure_dict(self.credentials_failure),
            "regions": [
                {
                    "region": f.region,
                    "failure": _failure_dict(f.failure),
                    "recent_models": sorted(f.recent_models),
                    "newest_datapoints": {
                        endpoint: stamp.isoformat() if stamp else None
                        for endpoint, stamp in f.newest_datapoints.items()
                    },
                }
                for f in self.regions
            ],
            "recent_errors": [e.__dict__ for e in self.recent_errors],
        }

    @property
    def ok(self) -> bool:
        """Every check passed: the key is the account's and every region is readable."""
        return (
            self.credentials_failure is None
            and self.key_matches_account
            and all(finding.failure is None for finding in self.regions)
        )


def diagnose(name: str, store: StateStore | None = None) -> Diagnosis:
    store = store or StateStore()
    connection = get_connection(name, store)
    diagnosis = Diagnosis(connection)
    diagnosis.recent_errors = [e for e in store.events(name, limit=50) if e.outcome != "ok"][:5]
    auth = stored_auth(connection)
    try:
        session = session_for(auth)
        identity = sts_client(session, connection.regions[0]).get_caller_identity()
    except Exception as error:  # noqa: BLE001 - classified; programming errors re-raised
        diagnosis.credentials_failure = session_failure(auth, error)
        return diagnosis
    diagnosis.key_account, diagnosis.key_arn = identity["Account"], identity["Arn"]
    for region in connection.regions:
        finding = RegionFinding(region, failure=check_region(session, region))
        if finding.failure is None:
            try:
                finding.recent_models, finding.newest_datapoints = _recent_activity(session, region)
            except Exception as error:  # noqa: BLE001 - classified; programming errors re-raised
                finding.failure = classify(region, error)
        diagnosis.regions.append(finding)
    return diagnosis


def _recent_activity(
    session: boto3.Session, region: str
) -> tuple[set[str], dict[str, datetime | None]]:
    """Models ListMetrics shows in both namespaces (two weeks), and per endpoint the
    newest 5-minute slot with data (one GetMetricData call for both)."""
    client = cloudwatch_client(session, region)
    listed, _ = list_bedrock_models(client)
    # Buckets start at StartTime: align it to 5 minutes so each bucket is a clock slot.
    now = datetime.now(UTC)
    end = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    end += timedelta(minutes=5)
    totals = {"runtime": REGION_INVOCATIONS, "mantle": MANTLE_REGION_INFERENCES}
    response = client.get_metric_data(
        MetricDataQueries=[series.query(name, period=300) for name, series in totals.items()],
        StartTime=end - timedelta(hours=24),
        EndTime=end,
        ScanBy="TimestampDescending",
    )
    newest = {}
    for result in response["MetricDataResults"]:
        stamps = result["Timestamps"]
        newest[ENDPOINT_NAMES[result["Id"]]] = stamps[0] if stamps else None
    return listed.runtime | listed.mantle, newest


def _failure_dict(failure: RegionFailure | None) -> dict | None:
    if failure is None:
        return None
    return {
        "kind": str(failure.kind),
        "code": failure.code,
        "message": failure.message,
        "next_action": failure.next_action,
    }
