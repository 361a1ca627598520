"""Moves the wall clock of every Python process the tests start — pytest and its
workers, the CLI, Dagster's daemon, webserver, code server and run workers — by
TEST_CLOCK_SHIFT_DAYS days (e.g. 1100 or -300), with time-machine, when this folder is
on PYTHONPATH (`make test-clock`). The clock keeps ticking; monotonic clocks, timed
waits and sleeps are left alone. Proves that no test, and nothing the tests run,
depends on the day it runs."""

import os

_days = os.environ.get("TEST_CLOCK_SHIFT_DAYS")
if _days:
    import time

    import time_machine

    time_machine.travel(time.time() + int(_days) * 86_400, tick=True).start()
