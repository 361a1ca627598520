"""Benchmark: where the client's memory goes during one connection's year backfill.

Runs the production path (connect, then a run of `bedrock_usage_sync`, as the CLI does)
against the emulator in a process of its own, samples this process's resident memory
every 20 ms, and prints the peak of each phase: imports, reading CloudWatch (the
regions in parallel), storing the data points, rebuilding the usage rows, publishing
the analysts' copy, the checks, and the cost asset — and the seconds from each phase's
start to the next one's (so Dagster's writing of a step's materializations counts to
the phase that ran last in that step). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/memory_phases.py --regions 4 --models 40 --days 365
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path

from ingestion import EmulatorProcess, status_mb, use_home  # noqa: I001 - beside this script
from shape import REGIONS, parse_shape


def resident_mb() -> float:
    return status_mb("VmRSS")


class PhaseSampler:
    """The peak resident memory seen while each named phase was current."""

    def __init__(self) -> None:
        self.phase = "imports"
        self.peaks: dict[str, float] = {}
        self.starts: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), resident_mb())
            time.sleep(0.02)

    def enter(self, phase: str) -> None:
        """Make `phase` current; the time since the last change goes to the one before."""
        now = time.perf_counter()
        self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + now - self._since
        self._since = now
        self.phase = phase

    def around(self, module, name: str, phase: str) -> None:
        """Name the phase while `module.name` runs."""
        original = getattr(module, name)

        def wrapped(*args, **kwargs):
            self.starts.setdefault(phase, resident_mb())
            self.enter(phase)
            return original(*args, **kwargs)

        setattr(module, name, wrapped)


def main() -> None:
    args = parse_shape(__doc__.splitlines()[0])
    args.connections = 1
    warnings.filterwarnings("ignore")
    sampler = PhaseSampler()
    emulator = EmulatorProcess(args)
    os.environ["AWS_ENDPOINT_URL"] = emulator.info["endpoint"]
    use_home(Path(tempfile.mkdtemp(prefix="bedrock-usage-memory-")))
    import bedrock_usage.defs.assets as assets_module
    import bedrock_usage.defs.cost_assets as costs_module
    import bedrock_usage.sync.regions as sync_module
    from bedrock_usage.connections import service
    from bedrock_usage.connections.credentials import AuthSpec
    from bedrock_usage.days import readable_range, utc_today
    from bedrock_usage.defs.local_runs import run_sync

    sampler.enter("connect")
    account, key_id, secret = emulator.info["readers"][0]
    regions = ",".join(REGIONS[: args.regions])
    service.connect("bench", account, regions, AuthSpec(key_id, secret), sync_later=True)
    sampler.around(sync_module, "fetch_region", "read CloudWatch")
    sampler.around(sync_module, "replace_datapoints", "store data points")
    sampler.around(assets_module, "rebuild_usage", "rebuild usage")
    sampler.around(assets_module, "publish_snapshot", "publish analysts' copy")
    sampler.around(assets_module, "usage_check_results", "checks")
    sampler.around(costs_module, "cost_by_partition", "cost asset")
    today = utc_today()
    year = readable_range(today - timedelta(days=args.days), today - timedelta(days=1))
    assert run_sync("bench", year).success
    sampler.enter("after the run")
    time.sleep(0.1)
    emulator.stop()
    print(f"shape: 1 connection x {args.regions} regions x {args.models} models x {args.days} days")
    for phase, peak in sampler.peaks.items():
        start = sampler.starts.get(phase)
        began = f"   (at its start {start:4.0f} MB)" if start else ""
        took = sampler.seconds.get(phase)
        spent = f"   {took:6.2f} s" if took is not None else ""
        print(f"peak RSS during {phase + ':':<24} {peak:6.0f} MB{began}{spent}")


if __name__ == "__main__":
    main()
