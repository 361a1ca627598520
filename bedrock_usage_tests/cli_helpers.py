"""Running the real `bedrock-usage` console script as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
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
