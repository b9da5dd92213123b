"""Seeded bootstrap confidence intervals for rates and means.

Example:
    >>> lo, hi = bootstrap_ci([1, 0, 1, 1, 0, 1], seed=0)
    >>> 0 <= lo <= 4 / 6 <= hi <= 1
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core._errors import EmptyInputError

__all__ = ["Estimate", "bootstrap_ci", "estimate"]


def bootstrap_ci(
    values: Sequence[float] | torch.Tensor,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Args:
        values: (N,) per-item values (0/1 for rates).
        n_boot: resamples; level: coverage in (0, 1); seed: fixes the resamples.

    Returns:
        ``(low, high)``; both equal the mean when every value is the same.
    """
    x = torch.as_tensor(values, dtype=torch.float64).flatten()  # (N,)
    if x.numel() == 0:
        raise EmptyInputError("bootstrap_ci got no values: pass at least one")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be between 0 and 1 (e.g. 0.95)")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x.numel(), (n_boot, x.numel()), generator=gen)  # (n_boot, N)
    means = x[idx].mean(1)  # (n_boot,)
    alpha = (1 - level) / 2
    q = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(q[0]), float(q[1])


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval and sample size."""

    value: float
    low: float
    high: float
    n: int

    def format(self, percent: bool = True, digits: int = 0) -> str:
        """``"62% [40, 81]"`` (or plain numbers with ``percent=False``)."""
        scale, unit = (100.0, "%") if percent else (1.0, "")
        v, lo, hi = (f"{s * scale:.{digits}f}" for s in (self.value, self.low, self.high))
        return f"{v}{unit} [{lo}, {hi}]"


def estimate(
    values: Sequence[float | None], *, seed: int = 0, n_boot: int = 2000
) -> Estimate | None:
    """Mean and bootstrap interval of ``values`` (None entries are left out); None when none remain."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    lo, hi = bootstrap_ci(vals, seed=seed, n_boot=n_boot)
    return Estimate(sum(vals) / len(vals), lo, hi, len(vals))
