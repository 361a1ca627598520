"""The ownership map, kept by the platform owner: rules set, ended and imported in the
warehouse (so they version with the data), each change in one transaction, then the
analysts' copy refreshed. The rules and the views by owner: storage/owners.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from .days import utc_today
from .errors import ExitCode, UserError
from .storage.owners import (
    Match,
    Owner,
    OwnerRuleError,
    list_rules,
    read_rules_csv,
    set_rule,
    set_tag_keys,
    tag_keys,
    unset_rule,
)
from .storage.warehouse import atomically, open_warehouse, publish_snapshot, warehouse_target


def set_owner(match: Match, owner: Owner, effective_from: date | None = None) -> date:
    """Give what `match` names to `owner`; returns the day it takes effect."""
    return _change(lambda db: set_rule(db, match, owner, effective_from, utc_today()))


def unset_owner(match: Match, effective_from: date | None = None) -> int:
    return _change(lambda db: unset_rule(db, match, effective_from, utc_today()))


def import_owners(path: Path) -> int:
    """Every rule of a CSV file, or none if any row is wrong; returns how many."""
    try:
        rules = read_rules_csv(path)
    except OwnerRuleError as error:
        raise UserError(str(error), ExitCode.USAGE) from None

    def change(db) -> int:
        for match, owner, start in rules:
            set_rule(db, match, owner, start, utc_today())
        return len(rules)

    return _change(change)


def owner_tag_keys(changes: dict[str, str]) -> dict[str, str]:
    """Change the tag keys owners are read from (none given: only read them); returns
    them as they are now."""
    if changes:
        _change(lambda db: set_tag_keys(db, changes))
    target = warehouse_target()
    if isinstance(target, Path) and not target.exists():
        with open_warehouse(target):  # a new warehouse, with its default keys
            pass
    with open_warehouse(target, read_only=isinstance(target, Path)) as db:
        return tag_keys(db)


def owner_rules() -> list[dict]:
    target = warehouse_target()
    if isinstance(target, Path) and not target.exists():
        return []
    with open_warehouse(target, read_only=isinstance(target, Path)) as db:
        return list_rules(db)


def _change(change: Callable):
    """Run `change(db)` in one transaction, then refresh the analysts' copy; a refused
    rule stores nothing."""
    target = warehouse_target()
    try:
        with open_warehouse(target) as db:
            result = atomically(db, lambda: change(db))
            publish_snapshot(db, target, {})
    except OwnerRuleError as error:
        raise UserError(str(error), ExitCode.USAGE) from None
    return result
