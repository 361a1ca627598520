"""Dagster's private internals stay behind one door (bedrock_usage/defs/dagster_internals.py),
written against one Dagster release."""

from __future__ import annotations

import ast
from pathlib import Path

from bedrock_usage.defs import dagster_internals

PACKAGE = Path(dagster_internals.__file__).resolve().parents[1]


def test_the_installed_dagster_is_the_one_the_internals_were_written_against():
    assert dagster_internals.version_mismatch() is None, dagster_internals.version_mismatch()


def test_a_different_dagster_is_named_with_what_to_do(monkeypatch):
    monkeypatch.setattr(dagster_internals.dg, "__version__", "1.14.0")
    message = dagster_internals.version_mismatch()
    assert message.startswith("Dagster 1.14.0 is installed;") and "1.13.27" in message
    assert "Upgrading Dagster" in message


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [
            f"{path.relative_to(PACKAGE.parent)}: {n}"
            for n in names
            if "._" in n and n.startswith("dagster")
        ]
    return found


def test_no_other_module_imports_dagsters_private_modules():
    offenders = [
        found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "dagster_internals.py"
        for found in _private_imports(path)
    ]
    assert offenders == [], "import these through bedrock_usage/defs/dagster_internals.py"
    assert _private_imports(Path(dagster_internals.__file__))  # the walk does see them
