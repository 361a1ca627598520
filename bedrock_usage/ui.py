"""`bedrock-usage ui`: the Dagster UI (webserver and daemon) on this home's state.

Runs `dagster dev -w workspace.yaml` from the project root with DAGSTER_HOME set as the
CLI sets it, so the CLI's runs are in the UI's history. After `make demo` (and with no
AWS_ENDPOINT_URL of your own) it also serves the demo's emulator, with the region the
demo withdrew still denied.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from .defs.local_runs import prepare_dagster_home
from .errors import UserError
from .settings import demo_state_path


def run_ui(port: int, workspace: Path) -> int:
    if not workspace.exists():
        raise UserError(f"No {workspace.name} here: run 'make ui' from the project's root.")
    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home())}
    emulator = None
    if demo_state_path().exists() and not os.environ.get("AWS_ENDPOINT_URL"):
        from .demo import demo_emulator_for_commands

        emulator = demo_emulator_for_commands()
        env["AWS_ENDPOINT_URL"] = emulator.endpoint_url
        click.echo(f"Demo emulator on {emulator.endpoint_url} (the demo's accounts and keys).")
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    command = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    # dagster dev stays in our process group: Ctrl-C in a terminal reaches it directly.
    click.echo(
        f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']}; "
        "Ctrl-C stops it)"
    )
    # dagster dev stops gracefully on SIGINT (it ignores SIGTERM); a shell that started us
    # in the background may have left SIGINT ignored, so restore it for the child.
    process = subprocess.Popen(command, env=env, preexec_fn=_default_sigint)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        # Wake every second: a signal may land on the emulator's thread, and Python runs
        # handlers only in the main thread once it is back in bytecode.
        while process.poll() is None:
            time.sleep(1)
        return process.returncode
    except KeyboardInterrupt:
        return _stop(process)
    finally:
        if emulator:
            emulator.stop()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> int:
    """Stop dagster dev and everything it started (its code server may linger), by pid."""
    family = _descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return code


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found
