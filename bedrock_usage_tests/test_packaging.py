"""The package as a user installs it, and the definitions as Dagster's tools load them."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# The real CLI or Dagster's own processes, as a user runs them (make test-fast skips them).
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_definitions_validate_from_the_workspace(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path),
           "BEDROCK_USAGE_HOME": str(tmp_path / "home")}  # fmt: skip
    result = _run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                  ROOT, env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Validation successful for code location bedrock_usage" in result.stdout + result.stderr


def test_dg_check_defs_loads_the_project(tmp_path):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "VIRTUAL_ENV": str(BIN.parent),
           "DAGSTER_HOME": str(tmp_path), "BEDROCK_USAGE_HOME": str(tmp_path / "home")}  # fmt: skip
    result = _run([str(BIN / "dg"), "check", "defs"], ROOT, env)
    assert result.returncode == 0, result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_wheel_installs_outside_the_repo_and_runs_without_moto(tmp_path):
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", str(tmp_path / "dist"), str(ROOT)], tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("bedrock_usage-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                     tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    # The dependencies come from this environment (no network here); the package itself
    # only from the wheel.
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                tmp_path).stdout.strip()  # fmt: skip
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "BEDROCK_USAGE_HOME": str(tmp_path / "home"),
           "DAGSTER_HOME": str(tmp_path / "dh")}  # fmt: skip
    loaded = _run([str(python), "-c",
                   "import sys, bedrock_usage.defs.definitions as d, bedrock_usage.cli;"
                   "assert 'moto' not in sys.modules, 'moto imported';"
                   "assert d.__file__.startswith(sys.prefix), d.__file__;"
                   "from bedrock_usage.defs.local_runs import prepare_dagster_home;"
                   "print((prepare_dagster_home() / 'dagster.yaml').read_text())"],
                  tmp_path, env)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert "pools" in loaded.stdout and "run_monitoring" in loaded.stdout
    helped = _run([str(venv / "bin" / "bedrock-usage"), "--help"], tmp_path, env)
    assert helped.returncode == 0, helped.stderr
    assert "Amazon Bedrock usage from CloudWatch" in helped.stdout
    version = _run([str(venv / "bin" / "bedrock-usage"), "--version"], tmp_path, env)
    assert "0.1.0" in version.stdout
