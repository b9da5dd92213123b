"""Control plans: probes that read and vectors that write, composed by a policy, bound to a model
as fused, host-sync-free hooks.
"""

from __future__ import annotations

from ._pack import load_plan, save_plan
from ._plan import ControlPlan, bind
from ._policy import DEFAULT_PAYOFF, Policy
from ._runtime import DecisionLog, Decisions, patch_plan
from ._spans import SPANS, ThinkingBudget, ThinkMarkers

__all__ = [
    "DEFAULT_PAYOFF",
    "ControlPlan",
    "DecisionLog",
    "Decisions",
    "Policy",
    "SPANS",
    "ThinkMarkers",
    "ThinkingBudget",
    "bind",
    "load_plan",
    "patch_plan",
    "save_plan",
]
