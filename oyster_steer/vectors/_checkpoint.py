"""Resumable training state of a learned vector, as one safetensors file (never pickled).

The file holds the current and best vectors, Adam's moment estimates, and as metadata the step,
the validation history and a key of everything that shapes the run (settings, sites, data, model).
Resuming with a different key is refused: the run would not be the one that was checkpointed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core._errors import ArtifactError
from ..models._artifacts import load_artifact, save_artifact

__all__ = ["TrainState", "load_state", "save_state"]

_FORMAT, _VERSION = "oyster_steer.vector_checkpoint", 1


@dataclass
class TrainState:
    """Where a run stands: steps done, best validation loss so far and its vector."""

    step: int = 0
    best_val: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped: str = ""  # "", "early" or "time"
    best: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def save_state(
    path: str | Path,
    key: str,
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    state: TrainState,
) -> Path:
    """Write the run's state; ``key`` identifies the run's settings."""
    tensors: dict[str, torch.Tensor] = {}
    for name, p in params.items():
        tensors[f"param/{name}"] = p.detach()
        moments = opt.state.get(p, {})
        for k in ("exp_avg", "exp_avg_sq", "step"):
            if k in moments:
                tensors[f"adam/{name}/{k}"] = torch.as_tensor(moments[k]).reshape(-1).float()
        if state.best is not None:
            tensors[f"best/{name}"] = state.best[name]
    meta = {
        "key": key,
        "step": str(state.step),
        "best_val": json.dumps(state.best_val),
        "best_step": str(state.best_step),
        "bad_evals": str(state.bad_evals),
        "stopped": state.stopped,
        "history": json.dumps(state.history),
    }
    return save_artifact(path, tensors, meta, format=_FORMAT, version=_VERSION)


def load_state(
    path: str | Path, key: str, params: dict[str, torch.Tensor], opt: torch.optim.Optimizer
) -> TrainState:
    """Restore ``params`` and ``opt`` in place from ``path``; returns the saved progress."""
    tensors, meta = load_artifact(path, format=_FORMAT, max_version=_VERSION)
    if meta.get("key") != key:
        raise ArtifactError(
            f"checkpoint {str(path)!r} was written by a run with other settings, sites, data or model: "
            "pass resume=False (or delete the file) to start over"
        )
    best: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[f"param/{name}"].to(p.device))
            moments: dict[str, Any] = {}
            if f"adam/{name}/exp_avg" in tensors:
                moments = {
                    "exp_avg": tensors[f"adam/{name}/exp_avg"].to(p.device),
                    "exp_avg_sq": tensors[f"adam/{name}/exp_avg_sq"].to(p.device),
                    "step": tensors[f"adam/{name}/step"].reshape(()),
                }
                opt.state[p] = moments
            if f"best/{name}" in tensors:
                best[name] = tensors[f"best/{name}"].to(p.device)
    return TrainState(
        step=int(meta["step"]),
        best_val=json.loads(meta["best_val"]),
        best_step=int(meta["best_step"]),
        bad_evals=int(meta["bad_evals"]),
        stopped=meta.get("stopped", ""),
        best=best or None,
        history=json.loads(meta["history"]),
    )
