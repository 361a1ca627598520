"""Checks on what a user types, each failing with what is wrong and what to write."""

from __future__ import annotations

import difflib
import re
from functools import cache

import botocore.session

# A connection id becomes a Dagster dynamic partition key: `|`, `,`, `[` and `]` would
# break multi-partition keys and ranges, so only a short slug is allowed.
# Always matched whole (fullmatch): `$` would accept a trailing newline, and `\d`
# non-ASCII digits.
CONNECTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
ACCOUNT_ID = re.compile(r"[0-9]{12}")
ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA)[A-Z0-9]{12,124}")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}")


class InvalidInput(ValueError):
    """Input refused before anything was contacted or stored."""


def check_connection_id(name: str) -> str:
    if not CONNECTION_ID.fullmatch(name):
        raise InvalidInput(
            f"{name!r} cannot name a connection: use 1-63 letters, digits, '-' or '_', starting "
            "with a letter or digit (it becomes a Dagster partition key, where '|', ',', '[' "
            "and ']' break)."
        )
    return name


def check_account_id(account_id: str) -> str:
    if not ACCOUNT_ID.fullmatch(account_id):
        raise InvalidInput(
            f"{account_id!r} is not an AWS account id: it is 12 digits, as shown at the top "
            "right of the AWS console (e.g. 123456789012)."
        )
    return account_id


def check_access_key_id(access_key_id: str) -> str:
    if not ACCESS_KEY_ID.fullmatch(access_key_id):
        raise InvalidInput(
            "The access key id is malformed: it starts with AKIA (or ASIA for temporary "
            "keys) followed by upper-case letters and digits, 20 characters in all. Copy it "
            "from the IAM console's Security credentials tab."
        )
    return access_key_id


def check_role_arn(role_arn: str) -> str:
    if not ROLE_ARN.fullmatch(role_arn):
        raise InvalidInput(
            f"'{role_arn}' is not an IAM role ARN: write arn:aws:iam::123456789012:role/NAME."
        )
    return role_arn


@cache
def known_regions() -> frozenset[str]:
    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("cloudwatch", partition_name=partition))
    return frozenset(regions)


# A region's number typed as a look-alike letter: us-east-l, eu-west-I, ap-south-O.
_DIGIT_LOOK_ALIKES = str.maketrans({"l": "1", "I": "1", "i": "1", "O": "0", "o": "0"})


def _closest_region(region: str) -> str | None:
    stem, _, number = region.rpartition("-")
    retyped = f"{stem}-{number.translate(_DIGIT_LOOK_ALIKES)}"
    if retyped in known_regions():
        return retyped
    close = difflib.get_close_matches(region, sorted(known_regions()), n=1)
    return close[0] if close else None


def check_regions(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated regions, each one CloudWatch serves; duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    regions = [r.strip() for r in items if r.strip()]
    if not regions:
        raise InvalidInput("Name at least one region, e.g. --regions us-east-1,eu-west-1.")
    unknown = [r for r in regions if r not in known_regions()]
    if unknown:
        hints = []
        for region in unknown:
            close = _closest_region(region)
            hints.append(f"'{region}'" + (f" (did you mean {close}?)" if close else ""))
        raise InvalidInput(
            f"Unknown AWS region {', '.join(hints)}. Use region codes such as us-east-1, "
            "separated by commas."
        )
    return tuple(dict.fromkeys(regions))
