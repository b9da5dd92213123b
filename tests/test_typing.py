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


def _mypy_file(path: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    """mypy with the pyproject configuration on one file, run from the repository root."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(CACHE),
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    proc = _mypy_file(tmp_path / "planted.py", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no-untyped-def" in proc.stdout, proc.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("mypy")
def test_patch_and_steer_return_the_handle_of_their_target(tmp_path):
    """The overloads: a plan gives a ControlHandle, a vector or {site: tensor} a HookHandle."""
    (tmp_path / "uses.py").write_text(
        "from typing import assert_type\n"
        "import torch\n"
        "from oyster_steer import ControlPlan, SteeringVector\n"
        "from oyster_steer.backends import HookHandle\n"
        "from oyster_steer.control._runtime import ControlHandle\n"
        "from oyster_steer.models._model import OysterModel\n"
        "from oyster_steer.steering._steer import patch, steer\n"
        "def f(m: OysterModel, p: ControlPlan, v: SteeringVector, d: dict[str, torch.Tensor]) -> None:\n"
        "    assert_type(patch(m, p), ControlHandle)\n"
        "    assert_type(patch(m, v, 2.0, 'generated'), HookHandle)\n"
        "    assert_type(patch(m, d, op='ablate'), HookHandle)\n"
        "    with steer(m, p) as h:\n"
        "        assert_type(h, ControlHandle)\n"
        "    with steer(m, v, 1.0) as g:\n"
        "        assert_type(g, HookHandle)\n"
    )
    proc = _mypy_file(tmp_path / "uses.py", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
