"""Shared fixtures: one AWS-faithful emulator per test process, reset for every test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import numpy as np
import pytest

from bedrock_usage.days import utc_today
from bedrock_usage.emulator.server import AccessKeyPair, Emulator
from bedrock_usage.extraction.aws import AwsKeys, make_session

from .cli_helpers import run_cli, run_cli_in_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
NAMESPACE = "AWS/Bedrock"


@contextmanager
def chromium_page():
    """A page of Debian's chromium, driven by Playwright (whose own browser download is
    never used); the test is skipped where chromium is not installed."""
    if CHROMIUM is None:
        pytest.skip("No chromium here: 'apt-get install -y chromium' (Debian) to run this test.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


# The longest tests (about 1-2 min each) go first, so the workers share them and finish
# with short tests rather than one worker ending alone on a long one.
LONGEST_FIRST = ("test_e2e_deployment.py", "test_e2e_dagster_dev.py", "test_demo.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that runs the real `bedrock-usage` process (the `cli` fixture) is e2e."""
    for item in items:
        if "cli" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def aws(emulator_server: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    emulator_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator_server.endpoint_url)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    return emulator_server


@pytest.fixture
def reader(aws: Emulator) -> AccessKeyPair:
    return aws.create_reader(ACCOUNT)


def session_for(key: AccessKeyPair) -> boto3.Session:
    return make_session(AwsKeys(key.access_key_id, key.secret_access_key))


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def days_ago(n: int) -> date:
    return utc_today() - timedelta(days=n)


def seed_daily(
    aws: Emulator,
    metric_name: str,
    model_id: str | None,
    per_day: dict[date, float],
    region: str = "us-east-1",
    account: str = ACCOUNT,
    namespace: str = NAMESPACE,
    extra_dimensions: dict[str, str] | None = None,
    hours: int = 4,
) -> None:
    """Spread each day's total over `hours` data points inside that UTC day (the last at
    23:59:59, so a day-boundary mistake shows)."""
    dimensions = dict(extra_dimensions or {})
    if model_id is not None:
        dimensions["ModelId"] = model_id
    timestamps, values = [], []
    for day, total in per_day.items():
        start = int(midnight(day).timestamp())
        offsets = [h * 3600 for h in range(hours - 1)] + [86_399]
        share = total / hours
        for i, offset in enumerate(offsets):
            timestamps.append(start + offset)
            values.append(share if i < hours - 1 else total - share * (hours - 1))
    aws.seed(account, region, namespace, metric_name, dimensions, np.array(timestamps), values)


@pytest.fixture
def bedrock_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BEDROCK_USAGE_HOME and DAGSTER_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("BEDROCK_USAGE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("BEDROCK_USAGE_WAREHOUSE", raising=False)
    return home


def hold_warehouse(path: Path, seconds: float = 60) -> subprocess.Popen:
    """Another process holding the DuckDB file open, as an analyst's shell would."""
    code = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
        "time.sleep(float(sys.argv[2]))"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@contextmanager
def warehouse_held(path: Path) -> Iterator[subprocess.Popen]:
    holder = hold_warehouse(path)
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """BEDROCK_USAGE_HOME of the real CLI run as a subprocess (see `cli`)."""
    return tmp_path / "home"


@pytest.fixture
def cli(aws, home):
    """The real `bedrock-usage` command against the emulator; `secret` is typed on stdin."""

    def run(*args: str, secret: str | None = None, env: dict | None = None):
        return run_cli(
            list(args), home, aws.endpoint_url, None if secret is None else secret + "\n", env
        )

    return run


@pytest.fixture
def cli_in_process(aws, home):
    """`cli` in this process (Click's CliRunner): for the steps that prepare a test (a
    connect, a first sync) whose own behaviour real-process tests prove elsewhere, and for
    tests of argument parsing and messages. Keep `cli` where the process is the point
    (signals, locks, crashes, what a separate process leaves in files and output)."""

    def run(*args: str, secret: str | None = None, env: dict | None = None):
        return run_cli_in_process(
            list(args), home, aws.endpoint_url, None if secret is None else secret + "\n", env
        )

    return run


class OfferFiles(SimpleHTTPRequestHandler):
    """AWS's layout: /offers/v1.0/aws/<offer>/current/region_index.json and
    /offers/v1.0/aws/<offer>/<version>/<region>/index.json, from <folder>/<offer>/; an
    offer without a folder answers 404, as an unpublished one does."""

    def translate_path(self, path):
        parts = path.split("?")[0].strip("/").split("/")
        offer = Path(self.directory) / parts[3]
        if parts[-1] == "region_index.json":
            return str(offer / "region_index.json")
        return str(offer / parts[-2] / parts[-1])

    def log_message(self, *args):
        pass


@pytest.fixture
def price_list(tmp_path):
    """A local HTTP server over a copy of trimmed Bedrock offer files in AWS's format
    (bedrock_usage_tests/price_list: AmazonBedrock, and AmazonBedrockFoundationModels with
    Marketplace rows; a test may edit its copy): (folder, URL)."""
    root = tmp_path / "offers"
    shutil.copytree(Path(__file__).parent / "price_list", root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(OfferFiles, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A throwaway PostgreSQL server (pgserver: PostgreSQL packaged as a wheel) in a
    short temporary folder (its Unix socket path must stay under ~100 characters)."""
    import pgserver

    folder = tempfile.mkdtemp(prefix="pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the throwaway server, as a URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    return postgres_server.get_uri(name)


def postgres_sessions(url: str) -> tuple[int, list[int]]:
    """Sessions ever opened on `url`'s database (ended ones report as they end) and the
    server processes of those open now, as seen from a session of another database."""
    import time as clock
    from contextlib import closing

    import psycopg2

    params = psycopg2.extensions.parse_dsn(url)
    name = params.pop("dbname")
    clock.sleep(1.2)  # a session's counts reach the statistics within a second of its end
    with closing(psycopg2.connect(**params, dbname="postgres")) as db, db.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [name])
        opened = cursor.fetchone()[0]
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])
        return opened, [pid for (pid,) in cursor.fetchall()]
