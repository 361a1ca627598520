"""Every setting bedrock_usage reads from the environment, in one place, validated.

Each reader refuses a bad value with `SettingsError`: one line that names the setting,
the value and what it should be, raised before anything is read or written. `check_all`
runs every check at once; the CLI calls it before any command and each Dagster run
before it touches AWS or DuckDB. The settings a run uses are also fields of the code
location's resources (`defs/resources.py`), so the UI shows them and a launch or a test
can set them; a value given there is checked by the same reader here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_HOME = ".bedrock_usage"
STATE_FILE_NAME = "state.sqlite3"
KEY_FILE_NAME = "secret.key"
DEFAULT_BACKFILL_DAYS = 30  # days of history a new connection's initial sync reads
RETRY_MODES = ("standard", "adaptive", "legacy")
# What a Dagster instance keeps in DAGSTER_HOME.
DAGSTER_OWN = {"dagster.yaml", "storage", "history", "schedules", "logs", ".telemetry", ".nux"}


class SettingsError(ValueError):
    """A setting in the environment has a value bedrock_usage cannot use."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is not usable: {expected}. Fix or unset it.")
        self.name = name


@dataclass(frozen=True)
class Setting:
    """One environment setting, declared once. The readers below, the resource fields
    (`field`: its default, range and description, and the variable it is read from) and
    the settings table in docs/operating.md (`markdown_table`) are all made from it."""

    name: str
    default: object  # the value when unset; None when it is computed or absent
    what: str
    shown: str | None = None  # how the default reads in the table, when not `default`
    low: float | None = None
    high: float | None = None
    kind: type = str

    def number(self, raw: str | int | float | None):
        """`raw` (None: the environment's) as a number in the declared range."""
        raw = _given_or_environment(self.name, raw)
        value = parse_number(self.name, raw, self.default, self.low, self.high, self.kind)
        return self.kind(value)

    def field(self, kind: type = str):
        """The resource field that carries this setting (`kind` as the resource's config
        types it), read from the variable when the environment sets it."""
        from pydantic import Field

        default = self.default if self.default is not None else ""
        bounds = f", {self.low:g}-{self.high:g}" if self.low is not None else ""
        return Field(
            default=kind(default),
            description=f"{_sentence(self.what)} ({self.name}{bounds}).",
            json_schema_extra={"variable": self.name},
        )

    def table_row(self) -> str:
        shown = self.shown or (f"{self.default:g}" if self.kind is not str else self.default)
        bounds = f" ({self.low:g}–{self.high:g})" if self.low is not None else ""
        return f"| `{self.name}` | {shown} | {self.what}{bounds} |"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


HOME = Setting(
    "BEDROCK_USAGE_HOME",
    DEFAULT_HOME,
    "a directory for the state store, key, Dagster home and warehouse (empty or a file is refused)",
    shown="`./.bedrock_usage`",
)
WAREHOUSE = Setting(
    "BEDROCK_USAGE_WAREHOUSE",
    None,
    "the DuckDB warehouse; a DuckDB file this pipeline did not make is refused, unchanged",
    shown="`$HOME/warehouse.duckdb`",
)
SNAPSHOT = Setting(
    "BEDROCK_USAGE_SNAPSHOT",
    None,
    "the analysts' copy; refused when it names the warehouse, the state store, the key, "
    "Dagster's files or any file that is not an analysts' copy (it is replaced on every sync)",
    shown="`<warehouse>.snapshot.duckdb`",
)
STATE_URL = Setting(
    "BEDROCK_USAGE_STATE_URL",
    None,
    "a `postgresql://` URL: the state store in PostgreSQL for a shared deployment (then "
    "`BEDROCK_USAGE_SECRET_KEY` is required); shown without its password",
    shown="— (SQLite in `$HOME`)",
)
LAKE_CATALOG = Setting(
    "BEDROCK_USAGE_LAKE_CATALOG",
    None,
    "a `postgresql://` URL: the warehouse as a DuckLake whose catalog is that database "
    "(needs `BEDROCK_USAGE_LAKE_DATA_PATH`)",
    shown="— (the DuckDB file)",
)
LAKE_DATA_PATH = Setting(
    "BEDROCK_USAGE_LAKE_DATA_PATH",
    None,
    "the lake's data files: `s3://bucket/prefix/` or an absolute folder",
    shown="—",
)
SECRET_KEY = Setting(
    "BEDROCK_USAGE_SECRET_KEY",
    None,
    "the Fernet key; a missing key file while secrets are stored is an error, never a new key",
    shown="key file `$HOME/secret.key`",
)
LOCK_TIMEOUT = Setting(
    "BEDROCK_USAGE_LOCK_TIMEOUT_SECONDS",
    120.0,
    "seconds a write waits for a busy warehouse file or write slot",
    low=0,
    high=86_400,
    kind=float,
)
LOOKBACK_DAYS = Setting(
    "BEDROCK_USAGE_LOOKBACK_DAYS",
    2,
    "days before yesterday the schedule and `sync` re-read for late data",
    low=0,
    high=60,
    kind=int,
)
FLEET_BATCH = Setting(
    "BEDROCK_USAGE_FLEET_BATCH",
    10,
    "connections the schedule and the sensor sync in one run (1: a run per connection)",
    low=1,
    high=500,
    kind=int,
)
RECONCILE_TOLERANCE = Setting(
    "BEDROCK_USAGE_RECONCILE_TOLERANCE",
    0.01,
    "share by which models and the region total may differ before the totals_reconcile check warns",
    low=0,
    high=1,
    kind=float,
)
BILL_TOLERANCE = Setting(
    "BEDROCK_USAGE_BILL_TOLERANCE",
    0.02,
    "share by which billed tokens or dollars may differ from CloudWatch's and the estimate "
    "before the bill_matches_estimate check warns",
    low=0,
    high=1,
    kind=float,
)
EXTRA_MODEL_IDS = Setting(
    "BEDROCK_USAGE_EXTRA_MODEL_IDS",
    "",
    "comma-separated model ids read in every region although no listing shows them "
    "(custom or provisioned model ARNs, application profile ids)",
    shown="—",
)
REGION_CONCURRENCY = Setting(
    "BEDROCK_USAGE_REGION_CONCURRENCY",
    4,
    "regions of a connection read at the same time, each with its own client",
    low=1,
    high=32,
    kind=int,
)
WAREHOUSE_MEMORY_LIMIT = Setting(
    "BEDROCK_USAGE_WAREHOUSE_MEMORY_LIMIT",
    # A sync's DuckDB: one thread and a bounded buffer pool keep a run's memory near what
    # it holds (a year of a connection is 600k data points); larger work spills to disk.
    "128MB",
    "DuckDB's `memory_limit` while a run writes (e.g. 512MB, 2GB); larger sorts and "
    "aggregates spill to a temp directory beside the file. A write that needs more fails "
    "with this setting named and rolls back (the warehouse keeps its rows); a 454-day "
    "backfill of 200 models in 4 regions (3.65 M data points) runs in 128MB and fails in "
    "32MB (measured)",
)
WAREHOUSE_THREADS = Setting(
    "BEDROCK_USAGE_WAREHOUSE_THREADS",
    1,
    "DuckDB's threads while a run writes; each thread adds buffers of its own",
    low=1,
    high=256,
    kind=int,
)
PRICE_LIST_URL = Setting(
    "BEDROCK_USAGE_PRICE_LIST_URL",
    "https://pricing.us-east-1.amazonaws.com",
    "where `prices refresh` reads AWS's Price List offer files (an http(s) URL; a mirror "
    "or proxy may stand in)",
    shown="`https://pricing.us-east-1.amazonaws.com`",
)
SCHEDULE_CRON = Setting(
    "BEDROCK_USAGE_SCHEDULE_CRON",
    "30 0 * * *",
    "when the daily schedule ticks (cron, UTC; read when the code location loads); more "
    "ticks a day still start one run per connection and day",
    shown="`30 0 * * *`",
)
START_DATE = Setting(
    "BEDROCK_USAGE_START_DATE",
    None,
    "first day of the Dagster date partitions (YYYY-MM-DD); unset, the oldest day "
    "CloudWatch could answer when the first connection was made, recorded once in the "
    "state store so the partition view never moves",
    shown="the first connection's day − 454",
)
SLACK_CHANNEL = Setting(
    "BEDROCK_USAGE_SLACK_CHANNEL",
    None,
    "the Slack channel the permission sensor posts to (with `SLACK_BOT_TOKEN`); unset, "
    "its log only",
    shown="—",
)
ALERT_WEBHOOK_URL = Setting(
    "BEDROCK_USAGE_ALERT_WEBHOOK_URL",
    None,
    "a URL the spend alert sensor POSTs each alert to as JSON (docs/operating.md, spend "
    "alerts); unset, Slack (when configured) and the event log only",
    shown="—",
)
ANOMALY_MIN_USD = Setting(
    "BEDROCK_USAGE_ANOMALY_MIN_USD",
    10.0,
    "the least a day's estimated spend of one model in one connection must exceed its "
    "baseline by, in USD, to be an anomaly (so small models page nobody)",
    low=0,
    high=1e9,
    kind=float,
)
CODE_SERVER_HOST = Setting(
    "BEDROCK_USAGE_CODE_SERVER_HOST",
    None,
    "a team deployment's code server host, read by `deploy/workspace.yaml`",
    shown="—",
)
CODE_SERVER_PORT = Setting(
    "BEDROCK_USAGE_CODE_SERVER_PORT",
    None,
    "a team deployment's code server port, read by `deploy/workspace.yaml`",
    shown="—",
)
DAGSTER_HOME_SETTING = Setting(
    "DAGSTER_HOME",
    None,
    "the Dagster instance the CLI and `make ui` share",
    shown="`$HOME/dagster`",
)
AWS_MAX_ATTEMPTS = Setting(
    "AWS_MAX_ATTEMPTS",
    None,
    "boto3's attempts per call, checked: a whole number from 1 to 20",
    shown="boto3's",
)
AWS_RETRY_MODE = Setting(
    "AWS_RETRY_MODE",
    "standard",
    "boto3's retry mode, checked: `standard` (retries throttling with backoff), "
    "`adaptive` or `legacy`",
    shown="`standard`",
)
AWS_ENDPOINT_URL = Setting(
    "AWS_ENDPOINT_URL",
    None,
    "boto3's endpoint (and `AWS_ENDPOINT_URL_CLOUDWATCH`, `AWS_ENDPOINT_URL_STS`), "
    "checked: an http(s) URL; the demo and tests point it at the emulator",
    shown="AWS's",
)
SETTINGS = (
    HOME, WAREHOUSE, SNAPSHOT, STATE_URL, LAKE_CATALOG, LAKE_DATA_PATH, SECRET_KEY,
    LOCK_TIMEOUT, LOOKBACK_DAYS, FLEET_BATCH, RECONCILE_TOLERANCE, BILL_TOLERANCE, EXTRA_MODEL_IDS,
    REGION_CONCURRENCY, WAREHOUSE_MEMORY_LIMIT, WAREHOUSE_THREADS, PRICE_LIST_URL,
    SCHEDULE_CRON, START_DATE,
    SLACK_CHANNEL, ALERT_WEBHOOK_URL, ANOMALY_MIN_USD, CODE_SERVER_HOST, CODE_SERVER_PORT,
    DAGSTER_HOME_SETTING,
    AWS_MAX_ATTEMPTS, AWS_RETRY_MODE, AWS_ENDPOINT_URL,
)  # fmt: skip

DEFAULT_LOCK_TIMEOUT_SECONDS = LOCK_TIMEOUT.default
DEFAULT_LOOKBACK_DAYS = LOOKBACK_DAYS.default
DEFAULT_RECONCILE_TOLERANCE = RECONCILE_TOLERANCE.default
DEFAULT_REGION_CONCURRENCY = REGION_CONCURRENCY.default
DEFAULT_WAREHOUSE_MEMORY_LIMIT = WAREHOUSE_MEMORY_LIMIT.default
DEFAULT_WAREHOUSE_THREADS = WAREHOUSE_THREADS.default
DEFAULT_PRICE_LIST_URL = PRICE_LIST_URL.default
DEFAULT_SCHEDULE_CRON = SCHEDULE_CRON.default


def markdown_table() -> str:
    """The settings table of docs/operating.md (a test keeps the two equal):
    `python -m bedrock_usage.settings` prints it."""
    rows = [setting.table_row() for setting in SETTINGS]
    return "\n".join(["| variable | default | what |", "|---|---|---|", *rows])


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _given_or_environment(name: str, given):
    """A value a resource's config gave, else the environment's."""
    return _raw(name) if given is None else given


def home() -> Path:
    """BEDROCK_USAGE_HOME, by default ./.bedrock_usage: a directory (created when missing)."""
    raw = _raw(HOME.name)
    if raw == "":
        raise SettingsError(HOME.name, "", "an empty value would write into the current directory")
    path = Path(raw or DEFAULT_HOME).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise SettingsError(HOME.name, str(path), "it is a file, not a directory")
    return path


def state_path() -> Path:
    return home() / STATE_FILE_NAME


def _postgres_url(name: str) -> str | None:
    """A postgresql:// URL from the environment, or None when unset."""
    raw = _raw(name)
    if not raw:
        return None
    if urlparse(raw).scheme not in ("postgresql", "postgres"):
        raise SettingsError(name, redacted_url(raw), "use a postgresql:// URL, or unset it")
    return raw


def state_url() -> str | None:
    """BEDROCK_USAGE_STATE_URL: the state store on PostgreSQL (postgresql://user@host/db),
    for a deployment whose processes share no disk. Unset: SQLite in home."""
    return _postgres_url(STATE_URL.name)


def lake_catalog() -> str | None:
    """BEDROCK_USAGE_LAKE_CATALOG: the warehouse as a DuckLake whose catalog is this
    PostgreSQL database (a postgresql:// URL). Unset: the local DuckDB file."""
    url = _postgres_url(LAKE_CATALOG.name)
    if url:
        lake_data_path()
    return url


def lake_data_path() -> str:
    """BEDROCK_USAGE_LAKE_DATA_PATH: where the lake's Parquet files go, s3://bucket/prefix/
    (any S3-compatible endpoint) or an absolute folder."""
    name = LAKE_DATA_PATH.name
    raw = _raw(name) or ""
    if raw.startswith("s3://") and len(raw) > len("s3://"):
        return raw if raw.endswith("/") else raw + "/"
    if raw.startswith("/"):
        return raw.rstrip("/") + "/"
    raise SettingsError(
        name, raw, "with BEDROCK_USAGE_LAKE_CATALOG set, name s3://bucket/prefix/ or a folder"
    )


def redacted_url(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlparse(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def key_file_path() -> Path:
    return home() / KEY_FILE_NAME


def demo_state_path() -> Path:
    """Present when `make demo` made this home: its emulator's withdrawn regions."""
    return home() / "demo.json"


def dagster_home() -> Path:
    raw = _raw(DAGSTER_HOME_SETTING.name)
    path = Path(raw).expanduser().resolve() if raw else home() / "dagster"
    if path.exists() and not path.is_dir():
        raise SettingsError(DAGSTER_HOME_SETTING.name, str(path), "it is a file, not a directory")
    return path


def warehouse_path() -> Path:
    """The DuckDB warehouse: BEDROCK_USAGE_WAREHOUSE, or warehouse.duckdb in home."""
    raw = _raw(WAREHOUSE.name)
    if raw == "":
        raise SettingsError(WAREHOUSE.name, "", "name a file, or unset it")
    path = Path(raw).expanduser().resolve() if raw else home() / "warehouse.duckdb"
    _refuse_own_files(WAREHOUSE.name, path)
    if path.is_dir():
        raise SettingsError(WAREHOUSE.name, str(path), "it is a directory, not a file")
    return path


def _is_analysts_copy(path: Path) -> bool:
    """A DuckDB file with the usage table and without a warehouse's raw data points: what
    a publish writes. Another home's state store, a warehouse or a text file is not."""
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as probe:
            tables = {name for (name,) in probe.execute("SHOW TABLES").fetchall()}
    except duckdb.Error:
        return False
    return "bedrock_usage_daily" in tables and "cloudwatch_daily_datapoints" not in tables


def snapshot_path(warehouse_file: Path | str | None = None) -> Path:
    """The analysts' copy of `warehouse`: BEDROCK_USAGE_SNAPSHOT, or
    <warehouse>.snapshot.duckdb. It is replaced after every sync, so it may be no file
    that holds anything else."""
    warehouse_file = Path(warehouse_file).resolve() if warehouse_file else warehouse_path()
    raw = _raw(SNAPSHOT.name)
    if raw == "":
        raise SettingsError(SNAPSHOT.name, "", "name a file, or unset it")
    if not raw:
        return warehouse_file.with_name(f"{warehouse_file.stem}.snapshot{warehouse_file.suffix}")
    path = Path(raw).expanduser().resolve()
    if path.is_dir():
        raise SettingsError(SNAPSHOT.name, str(path), "it is a directory, not a file")
    _refuse_own_files(SNAPSHOT.name, path)
    if path in (warehouse_file, Path(f"{warehouse_file}.wal")):
        raise SettingsError(
            SNAPSHOT.name,
            str(path),
            "it is the warehouse itself, which it would replace",
        )
    if path.exists() and not _is_analysts_copy(path):
        raise SettingsError(
            SNAPSHOT.name,
            str(path),
            "that file exists and is not an analysts' copy this pipeline wrote, so it is "
            "not replaced; name a new file, or move that one away",
        )
    return path


def _refuse_own_files(name: str, path: Path) -> None:
    """The state store, the key and DAGSTER_HOME belong to bedrock_usage alone."""
    own = {state_path(), key_file_path()}
    own |= {Path(f"{state_path()}{suffix}") for suffix in ("-wal", "-shm", "-journal")}
    if path in own:
        raise SettingsError(name, str(path), "it is one of bedrock_usage's own state files")
    dagster = dagster_home()
    if path.is_relative_to(dagster) and path.relative_to(dagster).parts[0] in DAGSTER_OWN:
        raise SettingsError(name, str(path), "it is one of the Dagster instance's own files")


def parse_number(
    name: str, raw: str | None, default: float, low: float, high: float, kind=float
) -> float:
    """`raw` (from the environment or a resource's config) as a number from low to high;
    None or empty gives `default`."""
    raw = None if raw is None else str(raw).strip()
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high or value != value:
        noun = "a whole number" if kind is int else "a number"
        raise SettingsError(name, raw, f"use {noun} from {low:g} to {high:g}")
    return value


def lock_timeout_seconds(raw: str | None = None) -> float:
    """How long a write waits for a busy warehouse file before giving up."""
    return LOCK_TIMEOUT.number(raw)


_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)


def warehouse_memory_limit(raw: str | None = None) -> str:
    """DuckDB's memory_limit for the warehouse's writers, e.g. 256MB or 2GB."""
    name = WAREHOUSE_MEMORY_LIMIT.name
    raw = _given_or_environment(name, raw)
    raw = None if raw is None else str(raw).strip()
    if not raw:
        return DEFAULT_WAREHOUSE_MEMORY_LIMIT
    if not _MEMORY_SIZE.match(raw):
        raise SettingsError(name, raw, "use a size such as 256MB or 2GB")
    return raw


def warehouse_threads(raw: str | int | None = None) -> int:
    """DuckDB's threads for the warehouse's writers."""
    return WAREHOUSE_THREADS.number(raw)


def lookback_days(raw: str | int | None = None) -> int:
    """Days before yesterday that the schedule and `sync` re-read, for late data."""
    return LOOKBACK_DAYS.number(raw)


def fleet_batch(raw: str | int | None = None) -> int:
    """How many connections one scheduled (or initial) sync run covers."""
    return FLEET_BATCH.number(raw)


def bill_tolerance(raw: str | None = None) -> float:
    """Share by which the bill and CloudWatch's figures may differ before a WARN."""
    return BILL_TOLERANCE.number(raw)


def reconcile_tolerance(raw: str | None = None) -> float:
    """Share by which models and the region total may differ before a WARN."""
    return RECONCILE_TOLERANCE.number(raw)


def start_date() -> date | None:
    """The first day of the date partitions when set; unset, the partitions start where
    the first connection's history could (see `defs/partitions.py`)."""
    raw = _raw(START_DATE.name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(START_DATE.name, raw, "use a date as YYYY-MM-DD") from None


def schedule_cron() -> str:
    """When the daily schedule runs (cron, UTC); read when the code location loads."""
    raw = _raw(SCHEDULE_CRON.name) or DEFAULT_SCHEDULE_CRON
    import dagster as dg

    try:  # Dagster's own check, through its public API
        dg.ScheduleDefinition(name="cron_check", cron_schedule=raw, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        raise SettingsError(
            SCHEDULE_CRON.name, raw, "use a cron expression, e.g. '30 0 * * *'"
        ) from None
    return raw


def region_concurrency(raw: str | int | None = None) -> int:
    """How many regions of a connection are read at the same time."""
    return REGION_CONCURRENCY.number(raw)


def extra_model_ids(raw: str | None = None) -> list[str]:
    """Model ids to read in every region although no listing shows them (comma-separated:
    custom or provisioned model ARNs, application profile ids)."""
    raw = _given_or_environment(EXTRA_MODEL_IDS.name, raw)
    return [m.strip() for m in raw.split(",") if m.strip()] if raw else []


def secret_key() -> str | None:
    return _raw(SECRET_KEY.name) or None


def alert_webhook_url(raw: str | None = None) -> str | None:
    """Where spend alerts are POSTed as JSON; None when unset."""
    raw = _given_or_environment(ALERT_WEBHOOK_URL.name, raw)
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(
            ALERT_WEBHOOK_URL.name, raw, "use a URL such as https://hooks.example.com/bedrock"
        )
    return raw


def anomaly_min_usd(raw: str | None = None) -> float:
    return ANOMALY_MIN_USD.number(raw)


def slack_channel() -> str | None:
    return _raw(SLACK_CHANNEL.name) or None


def aws_retry_mode() -> str:
    mode = _raw(AWS_RETRY_MODE.name) or "standard"
    if mode not in RETRY_MODES:
        raise SettingsError(AWS_RETRY_MODE.name, mode, f"use one of {', '.join(RETRY_MODES)}")
    return mode


def aws_max_attempts() -> int | None:
    if not _raw(AWS_MAX_ATTEMPTS.name):
        return None
    return int(parse_number(AWS_MAX_ATTEMPTS.name, _raw(AWS_MAX_ATTEMPTS.name), 3, 1, 20, int))


def price_list_url(raw: str | None = None) -> str:
    """Where AWS's Price List offer files are read (a mirror or proxy may stand in)."""
    raw = _given_or_environment(PRICE_LIST_URL.name, raw) or DEFAULT_PRICE_LIST_URL
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(
            PRICE_LIST_URL.name, raw, "use a URL such as https://pricing.example.com"
        )
    return raw.rstrip("/")


def check_aws_endpoints() -> None:
    """AWS_ENDPOINT_URL and its per-service variants must be http(s) URLs."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL_STS"):
        raw = _raw(name)
        if not raw:
            continue
        parsed = urlparse(raw)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(name, raw, "use a URL such as https://monitoring.example.com")
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise SettingsError(name, raw, "the port is not a number") from None


# Every BEDROCK_USAGE_* variable anything of ours reads (the deployment's workspace.yaml
# reads the code server's two); the test suite's own start with BEDROCK_USAGE_TEST_.
KNOWN_VARIABLES = frozenset(s.name for s in SETTINGS if s.name.startswith("BEDROCK_USAGE_"))


def unknown_variables() -> list[str]:
    """A line per BEDROCK_USAGE_* variable in the environment that nothing reads (a typo
    would otherwise be ignored in silence), with the closest known name."""
    import difflib

    lines = []
    for name in sorted(os.environ):
        if not name.startswith("BEDROCK_USAGE_") or name in KNOWN_VARIABLES:
            continue
        if name.startswith("BEDROCK_USAGE_TEST_"):
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        lines.append(f"Warning: {name} is not a bedrock_usage setting and is ignored.{hint}")
    return lines


def check_all(with_schedule: bool = True) -> None:
    """Every setting at once, before anything runs; `with_schedule=False` leaves out the
    schedule's cron, whose check imports Dagster (a second): a command that loads the code
    location checks it there."""
    home()
    dagster_home()
    state_url()
    lake_catalog()
    snapshot_path()
    lock_timeout_seconds()
    warehouse_memory_limit()
    warehouse_threads()
    lookback_days()
    fleet_batch()
    reconcile_tolerance()
    bill_tolerance()
    start_date()
    if with_schedule:
        schedule_cron()
    region_concurrency()
    aws_retry_mode()
    aws_max_attempts()
    check_aws_endpoints()
    price_list_url()


if __name__ == "__main__":
    print(markdown_table())
