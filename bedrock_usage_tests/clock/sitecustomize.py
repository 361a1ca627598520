"""Moves the wall clock of every Python process the tests start — pytest and its
workers, the CLI, Dagster's daemon, webserver, code server and run workers — by
TEST_CLOCK_SHIFT_DAYS days (e.g. 1100 or -300), with time-machine, when this folder is
on PYTHONPATH (`make test-clock`). The clock keeps ticking; monotonic clocks, timed
waits and sleeps are left alone. Proves that no test, and nothing the tests run,
depends on the day it runs.

gRPC is the one exception: its Python layer turns a timeout into a deadline with
`time.time()` and hands it to its C core, which compares it with the real clock, so a
moved clock makes every call of Dagster's code server expire at once (clock moved
back) or never (moved ahead: its heartbeats stop). gRPC keeps the real clock."""

import os

_days = os.environ.get("TEST_CLOCK_SHIFT_DAYS")
if _days:
    import importlib.abc
    import sys
    import time
    import types

    import time_machine
    from time_machine import escape_hatch

    time_machine.travel(time.time() + int(_days) * 86_400, tick=True).start()

    _REAL_CLOCK = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("__")}
    )
    _REAL_CLOCK.time = escape_hatch.time.time
    _GRPC_MODULES = {
        "grpc._channel",
        "grpc._common",
        "grpc._server",
        "grpc._utilities",
        "grpc.aio._utils",
        "grpc._cython.cygrpc",
    }

    class _RealClockForGrpc(importlib.abc.MetaPathFinder):
        """Gives gRPC's modules the real `time.time` as they are imported."""

        def find_spec(self, name, path, target=None):
            if name not in _GRPC_MODULES:
                return None
            for finder in sys.meta_path:
                if finder is self:
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                module.time = _REAL_CLOCK

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _RealClockForGrpc())
