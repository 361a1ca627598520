"""Is the process that started something still running? Used to tell a sync that is
still going from one whose process was killed (OOM killer, eviction, kill -9).

A process is named by host, pid and, where /proc shows it, its start time, so a pid
reused by a later process is not mistaken for the original. On another host the answer
is unknown (None): the Dagster run's status decides there.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessId:
    host: str
    pid: int
    started: str | None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; field 22 is the start time in ticks.
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> ProcessId:
    return ProcessId(socket.gethostname(), os.getpid(), _start_time(os.getpid()))


def is_alive(process: ProcessId) -> bool | None:
    """True or False on this host; None for a process on another host."""
    if process.host != socket.gethostname():
        return None
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if process.started is not None and _start_time(process.pid) not in (None, process.started):
        return False
    return not _is_zombie(process.pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
