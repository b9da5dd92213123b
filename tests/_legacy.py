"""An overlay of transformers 4.57 (and steering-vectors 0.12.2) for the interop tests.

Built once with ``pip install --target`` into ``cache_dir()/envs/transformers-4.57.6`` (about 60 MB,
a minute) and reused; a subprocess with ``PYTHONPATH=<overlay>`` imports those packages ahead of
the main venv's (transformers 5). If PyPI cannot be reached the tests that need it skip, saying so.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oyster_steer.models._model import cache_dir

PINS = (
    "transformers==4.57.6",
    "tokenizers==0.22.2",
    "huggingface_hub==0.36.2",
    "steering-vectors==0.12.2",
    "scikit-learn==1.9.1",  # imported by steering_vectors.aggregators
    "scipy==1.17.1",
    "joblib==1.6.0",
    "threadpoolctl==3.8.0",
    "narwhals==2.29.0",
)


def legacy_overlay() -> Path:
    """The overlay directory, built if needed (idempotent, locked); skips the test if impossible."""
    root = cache_dir() / "envs" / "transformers-4.57.6"
    done = root / ".complete"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".transformers-4.57.6.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not done.exists():
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(root)]
            r = subprocess.run([*cmd, *PINS], capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                pytest.skip(
                    f"cannot build the transformers 4.57 overlay here: {r.stderr.strip()[-400:]}"
                )
            done.write_text(json.dumps(PINS))
    return root


def run_legacy(code: str, **args: Any) -> dict[str, Any]:
    """Run ``code`` under transformers 4.57 with ``ARGS`` (a dict) defined; returns its ``RESULT``."""
    overlay = legacy_overlay()
    env = {
        **os.environ,
        "PYTHONPATH": str(overlay),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    script = (
        "import json, sys\nARGS = json.loads(sys.argv[1])\n"
        + code
        + "\nimport transformers\nassert transformers.__version__ == '4.57.6', transformers.__version__\n"
        + "print('@@RESULT@@' + json.dumps(RESULT))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,  # steering-vectors trains with batch size 1: minutes on a shared CPU
    )
    assert r.returncode == 0, f"the transformers 4.57 subprocess failed:\n{r.stderr[-4000:]}"
    line = [x for x in r.stdout.splitlines() if x.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@") :])
