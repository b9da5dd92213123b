"""The package type-checks: ``mypy oyster_steer`` with the pyproject configuration passes.

The configuration (``[tool.mypy]`` in pyproject.toml) sets ``disallow_untyped_defs``: every
function annotates its arguments and return value. ``make lint`` runs the same command. Marked
``slow``: a cold run (no ``.mypy_cache``) takes about a minute on two shared CPU cores.
The second test checks that the configuration is in effect: it flags a planted untyped function.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".mypy_cache"  # gitignored; warm after the first run (one xdist group: one writer)


@pytest.mark.slow
@pytest.mark.xdist_group("mypy")
def test_mypy_is_clean_on_the_package():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "oyster_steer", "--cache-dir", str(CACHE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"mypy oyster_steer failed (exit {proc.returncode}): annotate or fix these\n"
        f"{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
    )
    assert "Success" in proc.stdout, proc.stdout


@pytest.mark.xdist_group("mypy")
def test_the_configuration_rejects_an_unannotated_function(tmp_path):
    """The pyproject configuration is the one in effect, and it flags a function without types."""
    (tmp_path / "planted.py").write_text("def f(x):\n    return x\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(CACHE),
            str(tmp_path / "planted.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no-untyped-def" in proc.stdout, proc.stdout
