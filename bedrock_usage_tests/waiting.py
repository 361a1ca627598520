"""Waiting for what a real process does: on the event itself (a run's status, a row, a
marker file, an open port), never on a fixed sleep, with deadlines that scale with
BEDROCK_USAGE_TEST_PATIENCE (default 1; e.g. 3 on a machine busy with other work)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def patience() -> float:
    return float(os.environ.get("BEDROCK_USAGE_TEST_PATIENCE", "1"))


def patient(seconds: float) -> float:
    """A deadline of `seconds` on an idle machine, scaled by the patience setting."""
    return seconds * patience()


def deadline_in(seconds: float) -> float:
    """A time.monotonic() deadline `seconds` away on an idle machine, scaled."""
    return time.monotonic() + patient(seconds)


def wait_for(
    condition: Callable[[], T | None],
    seconds: float,
    what: str,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of `condition`, polled until the scaled deadline. On a
    timeout the error carries what `describe` says of the state it was waiting on."""
    deadline = deadline_in(seconds)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"\n{describe()}" if describe else ""
            raise AssertionError(
                f"timed out after {patient(seconds):.0f} s waiting for {what} "
                f"(a slow machine? set BEDROCK_USAGE_TEST_PATIENCE=3){seen}"
            )
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0
