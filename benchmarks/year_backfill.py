"""Benchmark: the year backfill alone, through the production path (connect, then
`local_runs.run_sync`, as the CLI does) of whichever `bedrock_usage` Python imports, against
this checkout's emulator in a process of its own. The same script therefore times an older
commit and this one in one run, on the same emulator and shape:

    git worktree add --detach /tmp/before 0c4dff7
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/year_backfill.py --connections 10
    .venv/bin/python benchmarks/year_backfill.py --connections 10

Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

from ingestion import EmulatorProcess, connect_all, use_home  # noqa: I001 - beside this script
from shape import parse_shape


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore")
    import bedrock_usage
    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import run_sync

    source = Path(bedrock_usage.__file__).parents[1]
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    today = utc_today()
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    aws = EmulatorProcess(args)
    os.environ["AWS_ENDPOINT_URL"] = aws.info["endpoint"]
    with tempfile.TemporaryDirectory() as home:
        use_home(Path(home))
        names = connect_all(aws.info["readers"], args.regions)
        started = time.perf_counter()
        for name in names:
            assert run_sync(name, year).success
        seconds = time.perf_counter() - started
    aws.stop()
    print(f"bedrock_usage at {commit or source}: year backfill of {len(names)} connection(s) "
          f"x {args.regions} regions x {args.models} models: {seconds:.1f} s "
          f"({seconds / len(names):.2f} s per connection); client peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
