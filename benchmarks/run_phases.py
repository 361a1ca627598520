"""A run process that names its phases: `dagster api execute_run` (its arguments in
DAGSTER_EXECUTE_RUN_ARGS, as a run launcher passes them) with this process's resident
memory sampled every 20 ms, and the peak of each phase written as JSON to the file
named by the first argument when the process exits. `fleet.py --phases` runs it.

    DAGSTER_EXECUTE_RUN_ARGS=... .venv/bin/python benchmarks/run_phases.py peaks.json
"""

from __future__ import annotations

import atexit
import json
import sys

from memory_phases import PhaseSampler, resident_mb  # noqa: I001 - beside this script


def main() -> None:
    out = sys.argv.pop(1)
    sampler = PhaseSampler()  # its first phase: "imports"
    from dagster._cli import main as dagster

    import bedrock_usage.defs.assets as assets_module
    import bedrock_usage.defs.cost_assets as costs_module
    import bedrock_usage.storage.warehouse as warehouse_module
    import bedrock_usage.sync.regions as sync_module

    sampler.peaks["imports"] = max(sampler.peaks.get("imports", 0.0), resident_mb())
    sampler.enter("run start")
    for module, name, phase in (
        (sync_module, "fetch_region", "read CloudWatch"),
        (sync_module, "replace_datapoints", "store data points"),
        (assets_module, "rebuild_usage", "rebuild usage"),
        (assets_module, "publish_snapshot", "publish: attach"),
        (warehouse_module, "_replace_window", "publish: usage rows"),
        (warehouse_module, "_price_window", "publish: estimates"),
        (warehouse_module, "create_cost_views", "publish: views, commit"),
        (assets_module, "usage_check_results", "checks"),
        (costs_module, "cost_by_partition", "cost asset"),
    ):
        sampler.around(module, name, phase)

    def write() -> None:
        sampler.enter("exit")
        with open(out, "w") as file:
            json.dump({"peaks": sampler.peaks, "starts": sampler.starts}, file)

    atexit.register(write)
    sys.argv = ["dagster", "api", "execute_run"]
    dagster()


if __name__ == "__main__":
    main()
