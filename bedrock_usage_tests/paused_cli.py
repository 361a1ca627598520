"""The real `bedrock-usage` command, frozen at one point of a sync so a test can kill it
there with a real signal. Nothing is faked: the named step runs for real, then the
process writes a marker file and sleeps until it is killed.

    python -m bedrock_usage_tests.paused_cli POINT MARKER -- sync prod
    python -m bedrock_usage_tests.paused_cli POINT MARKER -- schedule-tick
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

from bedrock_usage import cli
from bedrock_usage.connections import store
from bedrock_usage.storage import warehouse
from bedrock_usage.sync import attempts


def _freeze(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def _after(owner, name: str, marker: Path, when=lambda *a, **k: True) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            _freeze(marker)
        return result

    setattr(owner, name, paused)


def _before(owner, name: str, marker: Path, when=lambda *a, **k: True) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def paused(*args, **kwargs):
        if when(*args, **kwargs):
            _freeze(marker)
        return original(*args, **kwargs)

    setattr(owner, name, paused)


def _after_phase(phase: str):
    return lambda self, connection_id, new_phase, *a, **k: new_phase == phase


def _nth_call(n: int):
    calls = []

    def when(*args, **kwargs) -> bool:
        calls.append(1)
        return len(calls) == n

    return when


POINTS = {
    # A fleet run: the first connection's data points are committed, the second's
    # reading has not begun.
    "second-connection": lambda m: _before(
        sys.modules["bedrock_usage.sync.steps"], "fetch_and_store", m, _nth_call(2)
    ),
    # After the first region's answer, before the others are read.
    "fetch": lambda m: _after(sys.modules["bedrock_usage.sync.regions"], "fetch_region", m),
    # Inside the write transaction, after the data points were inserted, before COMMIT.
    "raw-write": lambda m: _after(
        sys.modules["bedrock_usage.sync.regions"], "replace_datapoints", m
    ),
    # Inside the usage transaction, after the rows were inserted, before COMMIT.
    "usage-write": lambda m: _after(sys.modules["bedrock_usage.defs.assets"], "rebuild_usage", m),
    # The data points are committed; the usage asset has not begun.
    "between-assets": lambda m: _after(
        store.StateStore, "set_phase", m, _after_phase(attempts.REBUILDING)
    ),
    # The usage rows are committed; the analysts' copy is not yet refreshed.
    "before-publish": lambda m: _after(
        store.StateStore, "set_phase", m, _after_phase(attempts.PUBLISHING)
    ),
    # A purge's delete is committed; the analysts' copy is not yet refreshed.
    "purge-before-publish": lambda m: _before(warehouse, "publish_snapshot", m),
    # The analysts' copy is written to its staging file and swapped in.
    "publish": lambda m: _after(
        warehouse.os, "replace", m, lambda src, dst: ".snapshot" in str(dst)
    ),
}


def main() -> None:
    point, marker = sys.argv[1], Path(sys.argv[2])
    assert sys.argv[3] == "--"
    import bedrock_usage.defs.assets  # noqa: F401 - loaded so its names can be paused
    import bedrock_usage.sync.regions  # noqa: F401
    import bedrock_usage.sync.steps  # noqa: F401

    POINTS[point](marker)
    if sys.argv[4:] == ["schedule-tick"]:  # the daemon's tick instead of a command
        from bedrock_usage_tests import schedule_tick

        schedule_tick.main()
        return
    sys.argv = ["bedrock-usage", *sys.argv[4:]]
    cli.main()


if __name__ == "__main__":
    main()
