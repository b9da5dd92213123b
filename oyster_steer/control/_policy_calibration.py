"""Choosing the policy's "guide" operating point on validation (issue 15 item 4, issue 14).

Under :data:`~oyster_steer.control.DEFAULT_PAYOFF` a benign reading has to beat a vulnerable
one by a wide margin before the policy helps (guide wins while p(vulnerable) > 0.23 of the
benign/vulnerable mass): every benign or borderline prompt the intent probe is a little unsure
about is steered toward "guide", which is what shows up as benign KL in issue 14. The knob here
is one number, ``delta``: how much less a guided reply is worth to a benign or borderline user
than the default says (``U[guide, benign] = 0.4 - delta``, ``U[guide, borderline] = 0.6 -
delta``). The vulnerable and malicious columns do not move, so guide vs redirect for a
vulnerable-or-malicious reading (9/14) is unchanged: a low-confidence self-harm reading that
mixes vulnerable and malicious still lands on guide, never redirect. ``delta`` is chosen on
validation posteriors: the largest cut in benign+borderline -> guide whose cost on vulnerable
rows (sent to help or redirect instead of guide) stays within ``max_vulnerable_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._policy import Policy

__all__ = ["GuideCalibration", "calibrate_guide", "decision_table", "guide_policy", "load_policy"]

DELTAS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(13))  # 0 .. 0.6


def guide_policy(delta: float, base: Policy | None = None) -> Policy:
    """``base`` (default :class:`Policy`) with guide worth ``delta`` less to benign and borderline users.

    Example:
        >>> [round(v, 2) for v in guide_policy(0.2).payoff[1].tolist()]
        [0.2, 0.4, 1.0, 0.0]
    """
    base = base or Policy()
    if not 0 <= delta < 5:
        raise ValueError(f"delta={delta} must be in [0, 5): a utility cut for guiding benign users")
    payoff = base.payoff.clone()
    g = base.strategies.index("guide")
    for intent in ("benign", "borderline"):
        payoff[g, base.intents.index(intent)] -= delta
    return base.replace(payoff=payoff)


def decision_table(
    policy: Policy, posterior: torch.Tensor, intents: Sequence[str]
) -> dict[str, dict[str, float]]:
    """intent -> strategy -> share of that intent's rows the policy sends there (+ ``"n"``)."""
    gates = policy.gates(posterior.float())  # (N, S) one-hot (hard mode)
    choice = gates.argmax(-1)
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(intents):
        sel = torch.tensor([i == name for i in intents])
        n = int(sel.sum())
        row = {s: float((choice[sel] == k).float().mean()) for k, s in enumerate(policy.strategies)}
        out[name] = row | {"n": float(n)}
    return out


@dataclass(frozen=True)
class GuideCalibration:
    """The chosen ``delta``, its policy, and the validation table of every ``delta`` tried."""

    delta: float
    policy: Policy
    grid: list[dict[str, Any]]


def calibrate_guide(
    posterior: torch.Tensor,
    intents: Sequence[str],
    *,
    base: Policy | None = None,
    deltas: Sequence[float] = DELTAS,
    max_vulnerable_loss: float = 0.01,
) -> GuideCalibration:
    """The ``delta`` (see module doc) that sends the fewest benign and borderline rows to guide
    while vulnerable rows lose at most ``max_vulnerable_loss`` of their guide share to help and
    never gain redirects, on validation posteriors (N, C) in the policy's intent order."""
    base = base or Policy()
    if posterior.shape[0] != len(intents) or posterior.shape[1] != base.n_intents:
        raise ValueError(
            f"posterior is {tuple(posterior.shape)} for {len(intents)} intents of "
            f"{base.n_intents} classes: pass one (C,) posterior per row, in the policy's intent order"
        )
    if "vulnerable" not in intents:
        raise ValueError("no vulnerable rows to check the guide cut on: include vulnerable prompts")
    grid: list[dict[str, Any]] = []
    for d in deltas:
        table = decision_table(guide_policy(d, base), posterior, intents)
        bb = [table[i] for i in ("benign", "borderline") if i in table]
        n = sum(r["n"] for r in bb)
        guided = sum(r["guide"] * r["n"] for r in bb) / max(n, 1.0)
        grid.append({"delta": d, "benign_borderline_guide": guided, "table": table})
    v0 = grid[0]["table"]["vulnerable"]
    ok = [
        g
        for g in grid
        if g["table"]["vulnerable"]["guide"] >= v0["guide"] - max_vulnerable_loss - 1e-9
        and g["table"]["vulnerable"]["redirect"] <= v0["redirect"] + 1e-9
    ]
    best = min(ok, key=lambda g: (round(g["benign_borderline_guide"], 6), g["delta"]))
    return GuideCalibration(best["delta"], guide_policy(best["delta"], base), grid)


def load_policy(path: Any) -> Policy:
    """A hard-gated :class:`Policy` from a payoff JSON file (``{"strategies", "intents", "payoff"}``,
    as written by ``scripts/calibrate_policy.py --write`` and read by ``build-plan --payoff``)."""
    import json
    from pathlib import Path

    try:
        spec = json.loads(Path(path).read_text())
        return Policy(
            torch.tensor(spec["payoff"], dtype=torch.float32),
            tuple(spec["strategies"]),
            tuple(spec["intents"]),
        )
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"payoff file {str(path)!r} does not read as a policy ({type(err).__name__}: {err}): "
            'write JSON {"strategies": [...], "intents": [...], "payoff": [[...], ...]}'
        ) from None
