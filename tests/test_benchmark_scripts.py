"""The benchmark scripts still run: each one on a tiny random-init model, in a subprocess, exits 0
and prints its table (``benchmarks/training.py`` was broken for a session by a refactor of the
function it patches, and nothing noticed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "row"),
    [
        (
            "training.py",
            ["--model", "tiny", "--n", "2", "--steps", "2"],
            "| calibrate_strength | cached lower blocks |",
        ),
        ("calibration_batch.py", ["--model", "tiny", "--n", "2"], "| margins: 5 strengths stacked"),
        # the GPU run's code paths (random-init Llama shapes, benchmarks/gpu.sh) on a CPU
        (
            "capture.py",
            ["--model", "llama-tiny", "--prompts", "8"],
            "| (h) oyster_steer.capture, nnsight |",
        ),
        (
            "overhead.py",
            ["--model", "llama-tiny", "--batch", "2", "--skip-compiled-step", "--gen-repeats", "1"],
            '"decode step, eager, batch 2"',
        ),
    ],
)
def test_benchmark_script_runs_on_a_tiny_model(script: str, args: list[str], row: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    done = subprocess.run(
        [*cmd, "--repeats", "1", "--threads", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert row in done.stdout
