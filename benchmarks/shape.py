"""The benchmark's shape and regions, shared by the client and the emulator process
without importing either (the client must not load moto: its memory is what we measure)."""

from __future__ import annotations

import argparse

REGIONS = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
]


def parse_shape(
    description: str, extra_flags: tuple[str, ...] = (), value_flags: tuple[str, ...] = ()
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    for flag in extra_flags:
        parser.add_argument(flag, action="store_true")
    for flag in value_flags:
        parser.add_argument(flag)
    for name, default in (("connections", 10), ("regions", 4), ("models", 40), ("days", 365)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--points-per-day", type=int, default=1)
    return parser.parse_args()
