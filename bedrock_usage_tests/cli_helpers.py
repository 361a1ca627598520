"""Running the real `bedrock-usage` console script as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import traceback
from pathlib import Path

from .waiting import patient

CLI = shutil.which("bedrock-usage") or str(Path(os.sys.executable).parent / "bedrock-usage")


def cli_env(home: Path, endpoint: str, extra_env: dict[str, str] | None = None) -> dict:
    """The environment of a user's shell: this home, the emulator, no ambient AWS."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BEDROCK_USAGE", "DAGSTER_HOME"))
    }
    env.update(
        {
            "BEDROCK_USAGE_HOME": str(home),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_MAX_ATTEMPTS": "2",
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            **(extra_env or {}),
        }
    )
    return env


def run_cli(
    args: list[str],
    home: Path,
    endpoint: str,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args],
        input=stdin if stdin is not None else "",
        env=cli_env(home, endpoint, extra_env),
        capture_output=True,
        text=True,
        timeout=patient(120),
    )


def run_cli_in_process(
    args: list[str],
    home: Path,
    endpoint: str,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The same command through Click's CliRunner in this process, with the same
    environment as `run_cli` (the variables it leaves out are unset for the call).
    For a test's setup steps, whose own behaviour real-process tests prove: it saves the
    ≈4 CPU-seconds a new interpreter spends importing Dagster, pandas and boto3. What the
    command changes in the process (umask, SIGTERM handler, DAGSTER_HOME) is put back."""
    from click.testing import CliRunner

    from bedrock_usage.cli import main

    wanted = cli_env(home, endpoint, extra_env)
    env = {key: None for key in os.environ if key not in wanted}
    env.update(wanted)
    umask = os.umask(0o022)
    os.umask(umask)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner(env=env).invoke(main, args, input=stdin or "", catch_exceptions=True)
    finally:
        os.umask(umask)
        signal.signal(signal.SIGTERM, sigterm)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess([CLI, *args], result.exit_code, result.stdout, stderr)
