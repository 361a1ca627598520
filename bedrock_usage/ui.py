"""`bedrock-usage ui`: the Dagster UI (webserver and daemon) on this home's state.

Runs `dagster dev -w workspace.yaml` from the project root with DAGSTER_HOME set as the
CLI sets it, so the CLI's runs are in the UI's history. After `make demo` (and with no
AWS_ENDPOINT_URL of your own) it also serves the demo's emulator, with the region the
demo withdrew still denied.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click

from .connections.service import UserError
from .defs.local_runs import dagster_home
from .demo import demo_state_path, start_demo_emulator


def run_ui(port: int, workspace: Path) -> int:
    if not workspace.exists():
        raise UserError(f"No {workspace.name} here: run 'make ui' from the project's root.")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home())}
    emulator = None
    if demo_state_path().exists() and "AWS_ENDPOINT_URL" not in os.environ:
        denied = json.loads(demo_state_path().read_text())["denied"]
        emulator, _ = start_demo_emulator(denied)
        env["AWS_ENDPOINT_URL"] = emulator.endpoint_url
        click.echo(f"Demo emulator on {emulator.endpoint_url} (the demo's accounts and keys).")
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    command = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    click.echo(
        f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']}; "
        "Ctrl-C stops it)"
    )
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # dagster dev's code server and daemon are its children: stop the whole group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()
    finally:
        if emulator:
            emulator.stop()
