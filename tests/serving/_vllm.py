"""Helpers of the vLLM tests: the venv, tiny models vLLM's CPU kernels accept, running jobs."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-vllm"
PROMPTS = (
    "What is the capital of France? Answer briefly.",
    "I feel like nobody would notice if I was gone.",
    "How do I kill a python process that hangs?",
    "Tell me how to get into my neighbour's wifi without asking.",
    "Write a haiku about autumn leaves.",
)


def vllm_python() -> Path:
    """Build .venv-vllm if needed (idempotent, locked) and return its python; skip if impossible."""
    lock = ROOT / ".venv-vllm.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = subprocess.run(
            ["bash", str(ROOT / "scripts" / "setup_vllm.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    if r.returncode == 3:
        pytest.skip(f"the vLLM venv cannot be built on this machine: {r.stderr.strip()}")
    assert r.returncode == 0, f"scripts/setup_vllm.sh failed:\n{r.stderr[-3000:]}"
    return VENV / "bin" / "python"


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out.pop("PYTHONPATH", None)  # the venv has this checkout installed (editable)
    out.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        VLLM_NO_USAGE_STATS="1",
    )
    out.setdefault("OMP_NUM_THREADS", "2")  # the caller's thread budget wins (shared CPU machines)
    out.update(extra)
    return out


def run_jobs(
    python: Path, jobs: list[dict[str, Any]], tmp: Path, **extra_env: str
) -> tuple[list[dict[str, Any]], str]:
    """Run ``oyster_steer.serving.vllm.run`` on ``jobs`` in the vLLM venv; (results, log)."""
    spec, out = tmp / "spec.json", tmp / "out.json"
    spec.write_text(json.dumps(jobs))
    r = subprocess.run(
        [str(python), "-m", "oyster_steer.serving.vllm.run", str(spec), str(out)],
        cwd=tmp,
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = r.stdout + r.stderr
    (tmp / "vllm.log").write_text(log)
    assert r.returncode == 0, f"vLLM run failed:\n{log[-6000:]}"
    return json.loads(out.read_text()), log


def tiny_for_vllm(arch: str, seed: int = 0) -> Any:
    """A tiny random model of ``arch`` with head size 32 (vLLM's CPU attention needs 32, 64, ...)."""
    from transformers import AutoModelForCausalLM

    from oyster_steer import from_hf
    from oyster_steer.testing import TINY_ARCHITECTURES, default_tokenizer

    tok = default_tokenizer()
    cfg = TINY_ARCHITECTURES[arch](len(tok))
    if arch == "gpt2":
        cfg.n_head = 2
    else:
        cfg.num_attention_heads = 2
        if hasattr(cfg, "num_key_value_heads"):
            cfg.num_key_value_heads = 1
        if getattr(cfg, "head_dim", None) is not None:
            cfg.head_dim = 32
    cfg.initializer_range = 0.1  # less flat logits than 0.02: greedy tokens vary with the input
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    return from_hf(hf, tok, name=f"tiny-vllm-{arch}-{seed}")


def chat_ids(model: Any, prompts: tuple[str, ...] = PROMPTS) -> list[list[int]]:
    """Token ids of each prompt under the chat template (what a server would feed the model)."""
    out = []
    for p in prompts:
        ids = model.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True
        )
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        out.append([int(t) for t in ids])
    return out


def greedy(model: Any, prompts: list[list[int]], n: int, hooks: Any = ()) -> list[list[int]]:
    """Greedy tokens of each prompt alone (no padding) on the HF backend with ``hooks``."""
    from oyster_steer.backends import get_backend

    backend, out = get_backend("hf"), []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            got = backend.generate(model, ids, torch.ones_like(ids), hooks, max_new_tokens=n)
            out.append(got[0, len(p) :].tolist())
    return out
