"""Bindings that cannot backfire: no anti-refusal vector on the strategy chosen for malicious users.

A vector trained toward constructive guidance (its negatives include bare refusal) moves replies
*away from refusing*. Bound to "guide" it helps vulnerable users; bound to the strategy the
policy picks for a malicious user ("redirect" under the default payoffs) it steers an attacker
toward compliance. :func:`check_bindings` refuses such a plan unless the researcher says so.

A binding's *role* comes from its vector's metadata: ``meta["role"]`` if set, else its training
``target`` looked up in :data:`TARGET_ROLES` (else the binding's name, e.g. for raw tensors
bound as ``bind(..., name="constructive")``):

=================================================  ===============
target                                             role
=================================================  ===============
constructive, guide, anti_refusal, helpful,        anti_refusal
compliance
refusal, redirect, boundary                        boundary
=================================================  ===============

A binding pushes toward compliance on a strategy when it is ``anti_refusal`` with a positive
strength there, or ``boundary`` with a negative one (a refusal direction subtracted). Vectors of
unknown role are not judged. The malicious strategy is the one of highest payoff for a pure
"malicious" posterior (all tied ones); a policy without a "malicious" intent is not checked.

Example:
    >>> import torch
    >>> from oyster_steer.control import bind
    >>> b = bind({"blocks.1.hook_resid_post": torch.ones(4)}, {"redirect": 1.0}, name="constructive")
    >>> pushes_toward_compliance(b, "redirect")
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ..core._errors import UnsafeBindingError

if TYPE_CHECKING:
    from ._policy import Policy


class Binding(Protocol):
    """What the check reads of a :class:`~oyster_steer.control._plan.Binding` (no import cycle)."""

    @property
    def name(self) -> str: ...
    @property
    def strengths(self) -> Mapping[str, float]: ...
    @property
    def meta(self) -> Mapping[str, str]: ...


__all__ = [
    "MALICIOUS",
    "TARGET_ROLES",
    "UnsafeBindingError",
    "binding_role",
    "check_bindings",
    "malicious_strategies",
    "pushes_toward_compliance",
]

MALICIOUS = "malicious"

TARGET_ROLES: dict[str, str] = {
    "constructive": "anti_refusal",
    "guide": "anti_refusal",
    "anti_refusal": "anti_refusal",
    "helpful": "anti_refusal",
    "compliance": "anti_refusal",
    "refusal": "boundary",
    "redirect": "boundary",
    "boundary": "boundary",
}


def binding_role(binding: Binding) -> str | None:
    """``"anti_refusal"``, ``"boundary"`` or None (unknown) for a binding (module docstring)."""
    if binding.meta.get("role"):
        return binding.meta["role"]
    target = binding.meta.get("target") or binding.name
    return TARGET_ROLES.get(target)


def pushes_toward_compliance(binding: Binding, strategy: str) -> bool:
    """Whether ``binding`` moves replies away from refusal when ``strategy`` is chosen."""
    gain = binding.strengths.get(strategy, 0.0)
    role = binding_role(binding)
    return (role == "anti_refusal" and gain > 0) or (role == "boundary" and gain < 0)


def malicious_strategies(policy: Policy) -> tuple[str, ...]:
    """The strategies of highest payoff for a purely malicious user (empty without that intent)."""
    if MALICIOUS not in policy.intents:
        return ()
    column = policy.payoff[:, policy.intents.index(MALICIOUS)].tolist()  # (S,), build time only
    best = max(column)
    return tuple(s for s, u in zip(policy.strategies, column, strict=True) if u == best)


def check_bindings(bindings: Sequence[Binding], policy: Policy) -> None:
    """Raise :class:`UnsafeBindingError` if a binding pushes the malicious strategy toward compliance."""
    for strategy in malicious_strategies(policy):
        for b in bindings:
            if pushes_toward_compliance(b, strategy):
                role = binding_role(b)
                what = "an anti-refusal" if role == "anti_refusal" else "a negated boundary"
                raise UnsafeBindingError(
                    f"binding {b.name!r} is {what} vector bound to {strategy!r} (strength "
                    f"{b.strengths[strategy]:g}), the strategy the policy picks for malicious users, "
                    f"so it would steer them toward compliance: bind it to 'guide' only and bind a "
                    f"refusal/redirect vector to {strategy!r}, or pass allow_compliance_steering=True "
                    f"(build-plan: --allow-compliance-steering) if this is a deliberate experiment"
                )
