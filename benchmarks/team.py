"""Benchmark: one connection's daily sync (3 days), and its year backfill, in the three
layouts bedrock_usage runs in, side by side in one invocation, each run executed by
`dagster api execute_run` in a process of its own as a run launcher does:

- local: the DuckDB file, Dagster's and the state store's SQLite files;
- lake-folder: the same, but the warehouse is a DuckLake (catalog on PostgreSQL, data in
  a folder);
- team: everything a team deployment shares (deploy/dagster.yaml): Dagster's storage and
  the state store on PostgreSQL, the DuckLake's catalog on PostgreSQL and its data on S3
  (the emulator's).

The daily syncs alternate between the layouts, round after round, after one untimed run
each. For every run it measures the run process's CPU-seconds (user + system, with its
children), the PostgreSQL server's CPU-seconds (the postmaster and every backend, live or
ended), the PostgreSQL sessions opened and the transactions committed or rolled back
(pg_stat_database). Prints medians, and each layout's ratio to the local run of the same
round (median and range); asserts only that every run succeeded.

    .venv/bin/python benchmarks/team.py --rounds 5 --regions 4 --models 40 --days 365
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import timedelta
from pathlib import Path

from fleet import execute  # noqa: I001 - beside this script
from ingestion import EmulatorProcess, connect_all, measured_source
from shape import parse_shape

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("local", "lake-folder", "team")
ROLES = ("dagster", "state", "lake")
TICKS = os.sysconf("SC_CLK_TCK")


class Postgres:
    """A throwaway PostgreSQL server (pgserver), its CPU and its session counts."""

    def __init__(self, folder: str) -> None:
        import pgserver
        import psycopg2

        self.server = pgserver.get_server(folder, cleanup_mode="stop")
        self.pid = int((Path(folder) / "postmaster.pid").read_text().split()[0])
        self.watch = psycopg2.connect(self.server.get_uri("postgres"))
        self.watch.autocommit = True
        self.roles: dict[str, str] = {}  # database name: what it holds

    def database(self, role: str) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        self.server.psql(f"CREATE DATABASE {name};")
        self.roles[name] = role
        return self.server.get_uri(name)

    def cpu(self) -> float:
        """The server's CPU-seconds so far: the postmaster, its ended children (reaped
        into its cutime/cstime) and its live ones."""
        total = _ticks(self.pid, children=True)
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return (total + sum(_ticks(int(child)) for child in children)) / TICKS

    def counts(self) -> dict[str, tuple[int, int]]:
        """Sessions opened and transactions ended so far in the databases of each role
        (dagster, state, lake)."""
        time.sleep(1.2)  # backends report their counts at most once a second, and at exit
        with self.watch.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT datname, sessions, xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname IS NOT NULL"
            )
            rows = cursor.fetchall()
        counts = {role: (0, 0) for role in ROLES}
        for name, sessions, transactions in rows:
            if name in self.roles:
                before = counts[self.roles[name]]
                counts[self.roles[name]] = (before[0] + sessions, before[1] + transactions)
        return counts

    def stop(self) -> None:
        self.watch.close()
        self.server.cleanup()


def _ticks(pid: int, children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0  # ended between listing and reading: its time is in the parent's now
    # After the ")" field 1 is the state; utime, stime, cutime, cstime are 12 to 15.
    return sum(int(f) for f in fields[11 : 15 if children else 13])


def layout_env(name: str, home: Path, postgres: Postgres, aws: EmulatorProcess) -> dict:
    """The environment of a layout's every process (this one's included)."""
    env = {
        "BEDROCK_USAGE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "AWS_ENDPOINT_URL": aws.info["endpoint"],
        # Unset unless the layout sets it (another layout's must not leak into this one).
        **{k: "" for k in ("BEDROCK_USAGE_LAKE_CATALOG", "BEDROCK_USAGE_LAKE_DATA_PATH",
                           "BEDROCK_USAGE_STATE_URL", "BEDROCK_USAGE_SECRET_KEY",
                           "DAGSTER_POSTGRES_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                           "AWS_DEFAULT_REGION")},
    }  # fmt: skip
    if name == "lake-folder":
        env.update(
            BEDROCK_USAGE_LAKE_CATALOG=postgres.database("lake"),
            BEDROCK_USAGE_LAKE_DATA_PATH=str(home / "lake-data") + "/",
        )
    elif name == "team":
        from cryptography.fernet import Fernet

        key_id, secret = aws.info["runtime"]
        env.update(
            DAGSTER_POSTGRES_URL=postgres.database("dagster"),
            BEDROCK_USAGE_STATE_URL=postgres.database("state"),
            BEDROCK_USAGE_SECRET_KEY=Fernet.generate_key().decode(),
            BEDROCK_USAGE_LAKE_CATALOG=postgres.database("lake"),
            BEDROCK_USAGE_LAKE_DATA_PATH=f"s3://{aws.bucket}/bedrock-usage/",
            AWS_ACCESS_KEY_ID=key_id,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION="us-east-1",
        )
        (home / "dagster").mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return env


def use(env: dict) -> None:
    for key, value in env.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def measured_run(tags: dict, postgres: Postgres) -> dict:
    before_cpu, before = postgres.cpu(), postgres.counts()
    try:
        cpu, wall, peak = execute(tags)
    except AssertionError:
        print("failed in", os.environ["BEDROCK_USAGE_HOME"], _failures(), file=sys.stderr)
        raise
    after = postgres.counts()
    measured = {"cpu": cpu, "wall": wall, "peak": peak, "pg_cpu": postgres.cpu() - before_cpu}
    for role in ROLES:
        measured[f"{role} sessions"] = after[role][0] - before[role][0]
        measured[f"{role} xacts"] = after[role][1] - before[role][1]
    return measured


def _total(measured: dict) -> float:
    return measured["cpu"] + measured["pg_cpu"]


def _failures() -> list[str]:
    """The last run's failure messages, for a run that did not succeed."""
    import dagster as dg

    from bedrock_usage.defs.local_runs import instance

    dagster = instance()
    run = dagster.get_runs(limit=1)[0]
    return [
        str(event.dagster_event.message or event.dagster_event.event_specific_data)
        for event in dagster.all_logs(run.run_id)
        if event.dagster_event
        and event.dagster_event.event_type
        in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE)
    ]


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0], value_flags=("--rounds",))
    args.connections = 1
    rounds = int(args.rounds or 5)
    warnings.filterwarnings("ignore")  # Dagster's beta notices are not figures
    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import instance, register_connection
    from bedrock_usage.defs.partitions import range_tags
    from bedrock_usage.defs.tags import CONNECTION_TAG

    commit = measured_source()
    today = utc_today()
    daily = readable_range(today - timedelta(days=3), today - timedelta(days=1))
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    aws = EmulatorProcess(args, f"--lake-bucket={bucket}")
    aws.bucket = bucket
    folder = tempfile.mkdtemp(prefix="pg-")
    postgres = Postgres(folder)
    homes = {name: Path(tempfile.mkdtemp(prefix=f"team-{name}-")) for name in LAYOUTS}
    envs = {name: layout_env(name, homes[name], postgres, aws) for name in LAYOUTS}

    try:
        for name in LAYOUTS:  # connected, then one untimed daily sync each
            use(envs[name])
            connection = connect_all(aws.info["readers"], args.regions)[0]
            dagster = instance()
            register_connection(dagster, connection)
            envs[name]["connection"] = connection
            execute({**range_tags(connection, daily), CONNECTION_TAG: connection})
        daily_runs = {name: [] for name in LAYOUTS}
        for _ in range(rounds):
            for name in LAYOUTS:
                use(envs[name])
                connection = envs[name]["connection"]
                tags = {**range_tags(connection, daily), CONNECTION_TAG: connection}
                daily_runs[name].append(measured_run(tags, postgres))
        backfills = {}
        for name in LAYOUTS:
            use(envs[name])
            connection = envs[name]["connection"]
            tags = {**range_tags(connection, year), CONNECTION_TAG: connection}
            backfills[name] = measured_run(tags, postgres)
    finally:
        aws.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)

    print(f"bedrock_usage at {commit}: one connection x {args.regions} regions x "
          f"{args.models} models; each run by `dagster api execute_run`; medians of "
          f"{rounds} alternating daily syncs", flush=True)  # fmt: skip
    print("layout       run           client CPU-s  PostgreSQL CPU-s  total  vs local  "
          "(rounds)   wall s  peak MB  PG sessions (dagster/state/lake)  "
          "PG transactions (same)")  # fmt: skip
    backfill_runs = {name: [run] for name, run in backfills.items()}
    for kind, runs in (("daily 3 d", daily_runs), (f"backfill {year.days} d", backfill_runs)):
        for name in LAYOUTS:
            measured = runs[name]
            median = {k: statistics.median(m[k] for m in measured) for k in measured[0]}
            # Each run against the local run of its own round: the machine's drift between
            # rounds moves both alike.
            pairs = zip(measured, runs["local"], strict=True)
            ratios = sorted(_total(m) / _total(here) for m, here in pairs)
            sessions = "/".join(f"{median[f'{role} sessions']:.0f}" for role in ROLES)
            xacts = "/".join(f"{median[f'{role} xacts']:.0f}" for role in ROLES)
            print(f"{name:<12} {kind:<13} {median['cpu']:>12.2f}  {median['pg_cpu']:>16.2f}  "
                  f"{_total(median):>5.2f}  "
                  f"{statistics.median(ratios):>7.2f}x  {ratios[0]:.2f}-{ratios[-1]:.2f}  "
                  f"{median['wall']:>6.1f}  {median['peak']:>7.0f}  {sessions:>32}  "
                  f"{xacts:>22}")  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
