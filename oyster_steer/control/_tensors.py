"""A plan's parts as the device tensors its runtimes compute with.

Shared by the library's hooks (:mod:`oyster_steer.control._hooks`) and the vLLM plugin
(:mod:`oyster_steer.serving.vllm`), so that both fold a plan the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from ._plan import ControlPlan

__all__ = ["LowRank", "stacked_lowrank", "widened_probe"]

LowRank = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]  # A, c, R; columns [k0, k1)


def stacked_lowrank(
    plan: ControlPlan, device: torch.device, dtype: torch.dtype
) -> tuple[list[LowRank | None], torch.Tensor]:
    """Per site of ``plan``: its low-rank ``(A, c, R)`` in ``dtype`` and its columns of the rank
    components concatenated over sites (None where a site has only vectors); and those
    components' gains (S, K), float32, so that ONE (B, S) @ (S, K) matmul gives every row's
    coefficients. Both on ``device``."""
    low: list[LowRank | None] = []
    gains, k = [], 0
    for site in plan.sites:
        part = plan.lowrank(site)
        if part is None:
            low.append(None)
            continue
        A, c, R, G = part
        A_d, c_d, R_d = (t.to(device, dtype) for t in (A, c, R))
        low.append((A_d, c_d, R_d, k, k + A.shape[0]))
        gains.append(G)
        k += A.shape[0]
    gain = torch.cat(gains, dim=1) if gains else torch.zeros(len(plan.strategies), 0)
    return low, gain.to(device, torch.float32)


def widened_probe(probe: Any, both: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A monitor's folded ``(W, b)``; under ``read="last+mean"`` (``both``) W is (C, 2d) and reads
    the monitor's own part of the [last, mean] feature (zeros on the other half)."""
    w, b = probe.folded()
    if not both or probe.pool == "last+mean":
        return w, b
    zero = torch.zeros_like(w)
    return (torch.cat([w, zero], 1) if probe.pool == "last" else torch.cat([zero, w], 1)), b
