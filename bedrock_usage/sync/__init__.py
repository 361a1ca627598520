"""One sync, in one place. The Dagster assets (`defs/assets.py`) run it — for the CLI,
the schedule, the sensor, the demo and the benchmark alike — through these phases:

- `steps.fetch_and_store`: begin the attempt, read every region (`regions.fetch_regions`,
  regions at the same time), replace their stored data points, record each region's
  outcome and health;
- the usage asset rebuilds the daily rows (`storage.warehouse.rebuild_usage`) and
  publishes the analysts' copy;
- `attempts`: the attempt's phases and its one `sync` event (ok, partial, failed, busy,
  interrupted, configuration, killed), and reaping attempts whose process died;
- `progress`: what a caller in the same process (the CLI, the demo) is told as regions
  finish and calls are made.

`connections/` keeps what a platform owner does to a connection: connect, verify, edit,
rotate, disconnect.
"""
