"""Data flows one way: each part of the package imports only the parts below it, so a
new feature has one obvious place and nothing downstream calls back upstream."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bedrock_usage"

# Bottom first. A part may import the parts of lower layers only.
LAYERS = [
    {"days", "errors", "settings", "memory", "processes"},
    {"frames", "extraction", "pricing"},  # DuckDB-and-pandas glue, boto3, list prices
    {"shaping", "emulator", "billing"},  # billing: reading a CUR 2.0 export
    {"storage"},
    {"connections"},  # connect, verify, edit, rotate, disconnect; the state store
    {"sync"},  # one sync attempt: fetch and store, its phases and outcome, progress
    # Use cases over storage: prices, the bill, owners, budgets and alerts.
    {"price_refresh", "bill_sync", "owner_map", "spend_alerts"},
    {"report"},  # the monthly spend report, over all of the above
    {"defs"},  # the Dagster shell
    {"demo_bill"},  # the demo's CUR 2.0 export and billing source
    {"demo"},
    {"ui"},
    {"cli"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    """The package's parts that `path` imports (relative imports; absolute ones of the
    package are not used inside it)."""
    folder = list(path.relative_to(PACKAGE).parts[:-1])
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = folder[: len(folder) - node.level + 1]
            names = node.module.split(".") if node.module else [node.names[0].name]
            parts.add((base + names)[0])
    return parts


def test_every_part_of_the_package_has_a_layer():
    parts = {
        _part(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    }
    assert parts - set(RANK) == set(), "add the new part to LAYERS"


def test_no_part_imports_a_part_above_it():
    upward = sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {target}"
        for path in PACKAGE.rglob("*.py")
        for target in _imported_parts(path)
        if target != _part(path) and RANK[target] >= RANK[_part(path)]
    )
    assert upward == []
