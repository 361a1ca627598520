"""Run a command while every core is kept busy, as on a loaded CI machine:

    python -m bedrock_usage_tests.busy_machine -- pytest -m e2e

One CPU burner per core (plain Python loops in processes of their own) starts before
the command and stops after it, whatever its outcome; the command's exit code is
returned. The tests' deadlines scale with BEDROCK_USAGE_TEST_PATIENCE (set it to 3
here unless the caller chose)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys


def _burn() -> None:
    while True:
        pass


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    burners = [
        multiprocessing.Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 2)
    ]
    for burner in burners:
        burner.start()
    try:
        env = {"BEDROCK_USAGE_TEST_PATIENCE": "3", **os.environ}
        return subprocess.call(command, env=env)
    finally:
        for burner in burners:
            burner.kill()
            burner.join()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
