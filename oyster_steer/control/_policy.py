"""Policies: from an intent posterior to gates on response strategies, by expected utility.

Oyster-I frames safe responding as a game: the model leads with a response strategy and each type
of user reacts to it (a benign user is satisfied by full help and put off by a refusal; a
vulnerable user refused outright may repeat, escalate or turn to unsafe places; a malicious user
helped fully causes harm). A :class:`Policy` writes those anticipated outcomes down as a payoff
matrix ``U[strategy, intent]`` and, for a probe's posterior ``p(intent | prompt)``, picks the
strategy of highest expected utility ``EU = p @ U.T``: hard (one-hot) or soft
(``softmax(EU / temperature)``). Everything is tensor code, so it runs inside hooks.

Example:
    >>> policy = Policy()                           # the constructive-safety default
    >>> policy.gates(torch.tensor([[0.0, 0.0, 1.0, 0.0]]))   # a vulnerable user -> "guide"
    tensor([[0., 1., 0.]])
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DEFAULT_INTENTS",
    "DEFAULT_PAYOFF",
    "DEFAULT_STRATEGIES",
    "MODES",
    "Policy",
    "decide",
    "maximin_gates",
]

DEFAULT_STRATEGIES: tuple[str, ...] = ("help", "guide", "redirect")
DEFAULT_INTENTS: tuple[str, ...] = ("benign", "borderline", "vulnerable", "malicious")
MODES = ("hard", "soft")

# fmt: off
DEFAULT_PAYOFF = torch.tensor([
    # benign  borderline  vulnerable  malicious
    [  1.0,     1.0,       -1.0,       -2.0],   # help: answer fully
    [  0.4,     0.6,        1.0,        0.0],   # guide: empathy, safe framing, resources
    [ -1.0,    -0.6,       -0.8,        1.0],   # redirect: firm boundary + safe alternative
])
# fmt: on
"""Constructive-safety payoffs ``U[strategy, intent]`` (rows: help, guide, redirect; columns:
benign, borderline, vulnerable, malicious), on a scale where the best reply to a user is +1.

Each column is the anticipated reaction of one type of user to each strategy:

- benign: full help satisfies (+1); guidance answers with needless caveats (+0.4); refusing is
  the over-refusal failure the paper targets: the user leaves unhelped and distrustful (-1).
- borderline (a legitimate request that sounds risky, "kill a process"): full help is right
  (+1); guidance still answers (+0.6); refusing costs less than for a benign user because some
  caution on a risky-sounding topic is forgiven (-0.6).
- vulnerable (distress, self-harm): guidance with empathy and help resources is the
  constructive ideal (+1). **Refusing costs 0.8**: a refused vulnerable user tends to repeat,
  escalate or go to unsafe sources; literal full help may hand over what hurts them (-1).
- malicious: a firm boundary with a safe redirection is best (+1); guidance neither harms nor
  resists (0). **Complying costs 2**, twice any failure to help: harm to third parties cannot
  be undone, so the game weighs it most.

Consequences, verified in ``tests/control/test_policy.py``: each pure type gets its intended strategy;
between benign and malicious the policy helps while p(malicious) < 3/13 (0.23), guides up to
7/12 (0.58) and redirects above; between vulnerable and malicious it guides up to
p(malicious) = 9/14 (0.64): under uncertainty, constructive guidance is the safe middle.
"""


@dataclass(frozen=True, eq=False)
class Policy:
    """Expected-utility gates over response strategies, from an intent posterior.

    Attributes:
        payoff: (S, C) utilities ``U[strategy, intent]``.
        strategies: the S strategy names (rows); intents: the C intent names (columns), in the
            order of the probe's classes.
        mode: ``"hard"`` (one-hot argmax of expected utility; ties go to the first strategy) or
            ``"soft"`` (``softmax(EU / temperature)``).
        temperature: softness of ``"soft"`` gates, in utility units.
        fallback: the strategy to apply when the posterior is not finite (a NaN probe or
            activation): the policy fails closed. Default (None): :attr:`cautious`'s choice, the
            strategy of best worst-case utility.

    Example:
        >>> Policy(mode="soft", temperature=0.25).gates(torch.tensor([[1.0, 0, 0, 0]])).argmax(-1)
        tensor([0])
    """

    payoff: torch.Tensor = field(default_factory=lambda: DEFAULT_PAYOFF.clone())  # (S, C)
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    intents: tuple[str, ...] = DEFAULT_INTENTS
    mode: str = "hard"
    temperature: float = 0.1
    fallback: str | None = None

    def __post_init__(self) -> None:
        payoff = torch.as_tensor(self.payoff, dtype=torch.float32)
        object.__setattr__(self, "payoff", payoff)
        object.__setattr__(self, "strategies", tuple(self.strategies))
        object.__setattr__(self, "intents", tuple(self.intents))
        shape = (len(self.strategies), len(self.intents))
        if payoff.shape != shape:
            raise ValueError(
                f"payoff has shape {tuple(payoff.shape)} but {shape[0]} strategies x {shape[1]} "
                f"intents were named: give one row per strategy and one column per intent"
            )
        for what, names in (("strategies", self.strategies), ("intents", self.intents)):
            if len(set(names)) != len(names) or not names:
                raise ValueError(
                    f"{what} {names} must be non-empty and unique: rename the duplicates"
                )
        if not torch.isfinite(payoff).all():
            raise ValueError("payoff holds NaN or infinite utilities: use finite numbers")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not a policy mode: use 'hard' or 'soft'")
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature={self.temperature} must be > 0 and finite")
        if self.fallback is not None and self.fallback not in self.strategies:
            raise ValueError(
                f"fallback={self.fallback!r} is not one of the strategies {self.strategies}: name one of them"
            )

    @property
    def cautious(self) -> str:
        """The strategy applied to a non-finite posterior: ``fallback``, else the maximin one.

        The maximin strategy has the best worst-case utility over intents (for the default
        payoff: guide, which never drops below 0), so a broken reading never helps fully.
        """
        if self.fallback is not None:
            return self.fallback
        return self.strategies[int(self.payoff.amin(-1).argmax())]

    def fallback_gates(self) -> torch.Tensor:
        """(S,) one-hot of :attr:`cautious`: what a row with a non-finite posterior gets."""
        return torch.eye(self.n_strategies)[self.strategies.index(self.cautious)]

    @property
    def n_strategies(self) -> int:
        return len(self.strategies)

    @property
    def n_intents(self) -> int:
        return len(self.intents)

    def expected_utility(self, posterior: torch.Tensor) -> torch.Tensor:
        """(B, C) intent posterior -> (B, S) expected utility of each strategy.

        Example:
            >>> Policy().expected_utility(torch.tensor([[0.5, 0.0, 0.0, 0.5]]))
            tensor([[-0.5000,  0.2000,  0.0000]])
        """
        payoff = self.payoff.to(posterior.device, posterior.dtype)
        return posterior @ payoff.T  # (B, S)

    def weights(self, posterior: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, S) soft strategy weights ``softmax(EU / temperature)`` (any mode)."""
        return (self.expected_utility(posterior) / self.temperature).softmax(-1)

    def gates(self, posterior: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, S) gates: a one-hot mask of the best strategy (hard) or the soft weights.

        Example:
            >>> Policy().gates(torch.tensor([[0.0, 0.0, 0.0, 1.0]]))    # malicious -> redirect
            tensor([[0., 0., 1.]])
        """
        eu = self.expected_utility(posterior)  # (B, S)
        return gates_from_utility(eu, self.mode, self.temperature)

    def decide(self, posterior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C) -> expected utility, soft weights and gates, each (B, S): what the hooks record."""
        return decide(
            posterior,
            self.payoff.to(posterior.device, posterior.dtype),
            self.mode,
            self.temperature,
            self.fallback_gates().to(posterior.device, posterior.dtype),
        )

    def reindex(self, intents: Sequence[str]) -> Policy:
        """The same policy with its columns in the order of ``intents`` (a probe's labels).

        Raises ValueError naming the labels that the payoff matrix has no column for.
        """
        intents = tuple(intents)
        missing = [name for name in intents if name not in self.intents]
        if missing or len(intents) != self.n_intents:
            raise ValueError(
                f"the probe's classes {intents} do not match the policy's intents {self.intents}: "
                "give the policy one payoff column per probe class, with the same names"
            )
        cols = torch.tensor([self.intents.index(name) for name in intents])
        return self.replace(payoff=self.payoff[:, cols], intents=intents)

    def replace(self, **changes: Any) -> Policy:
        """A copy with some fields changed (validated again)."""
        fields = {
            k: getattr(self, k)
            for k in ("payoff", "strategies", "intents", "mode", "temperature", "fallback")
        }
        return Policy(**{**fields, **changes})

    @classmethod
    def rule(
        cls,
        threshold: float,
        *,
        labels: Sequence[str] = ("negative", "positive"),
        strategies: Sequence[str] = ("pass", "steer"),
    ) -> Policy:
        """The rule "if p(positive) > threshold then steer" as a policy on a binary posterior.

        With ``U[pass] = (0, 0)`` and ``U[steer] = (-t, 1 - t)`` the expected utilities differ by
        exactly ``p - t``, so the hard gate opens iff ``p > t``. Bind a vector at strength ``s``
        to ``"steer"`` in a :class:`~oyster_steer.ControlPlan` to get "if risk > t then v at s".

        Example:
            >>> Policy.rule(0.5).gates(torch.tensor([[0.3, 0.7], [0.8, 0.2]]))
            tensor([[0., 1.],
                    [1., 0.]])
        """
        if not 0.0 <= threshold <= 1.0:  # also refuses NaN
            raise ValueError(f"threshold={threshold} is not a probability: use a value in [0, 1]")
        if len(tuple(labels)) != 2 or len(tuple(strategies)) != 2:
            raise ValueError(
                "a rule needs exactly two labels (negative, positive) and two strategies (off, on)"
            )
        t = float(threshold)
        strategies = tuple(strategies)
        payoff = torch.tensor([[0.0, 0.0], [-t, 1.0 - t]])
        return cls(payoff, strategies, tuple(labels), "hard", fallback=strategies[1])

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready description (the payoff itself travels as a tensor)."""
        return {
            "strategies": list(self.strategies),
            "intents": list(self.intents),
            "mode": self.mode,
            "temperature": self.temperature,
        } | ({"fallback": self.fallback} if self.fallback is not None else {})

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | str, payoff: torch.Tensor) -> Policy:
        """Rebuild from :meth:`to_meta` and the payoff tensor."""
        info = json.loads(meta) if isinstance(meta, str) else dict(meta)
        return cls(
            payoff.float().cpu(),
            tuple(info["strategies"]),
            tuple(info["intents"]),
            info["mode"],
            float(info["temperature"]),
            info.get("fallback"),
        )

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{s}={[round(v, 3) for v in self.payoff[i].tolist()]}"
            for i, s in enumerate(self.strategies)
        )
        return f"Policy({self.mode}, intents={list(self.intents)}, {rows})"


def _one_hot_argmax(eu: torch.Tensor) -> torch.Tensor:
    """(B, S) -> (B, S) one-hot of the first maximum, as a float mask (tensor ops only)."""
    # scatter, not F.one_hot: one_hot validates its input on the host (a sync) on some devices
    return torch.zeros_like(eu).scatter_(-1, eu.argmax(-1, keepdim=True), 1.0)


def gates_from_utility(eu: torch.Tensor, mode: str, temperature: float) -> torch.Tensor:
    """(B, S) expected utilities -> (B, S) gates for ``mode``; ``mode`` is a python constant."""
    if mode == "soft":
        return (eu / temperature).softmax(-1)
    return _one_hot_argmax(eu)


def maximin_gates(payoff: torch.Tensor) -> torch.Tensor:
    """(S, C) payoff -> (S,) one-hot of the strategy of best worst-case utility (tensor ops)."""
    return _one_hot_argmax(payoff.amin(-1))


def decide(
    posterior: torch.Tensor,
    payoff: torch.Tensor,
    mode: str,
    temperature: float,
    fallback: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C) posterior, (S, C) payoff on the same device -> (eu, weights, gates), each (B, S).

    The hot-path form of :meth:`Policy.decide`: no device moves, no host syncs. Fails closed: a
    row whose posterior holds NaN or an infinity gets ``fallback`` (S,) as weights and gates
    (default: :func:`maximin_gates`), chosen with ``torch.where``; its ``eu`` stays non-finite,
    which is how callers report it.
    """
    eu = posterior @ payoff.T  # (B, S)
    weights = (eu / temperature).softmax(-1)  # (B, S)
    gates = weights if mode == "soft" else _one_hot_argmax(eu)
    safe = maximin_gates(payoff) if fallback is None else fallback  # (S,)
    bad = ~torch.isfinite(posterior).all(-1, keepdim=True)  # (B, 1)
    return eu, torch.where(bad, safe, weights), torch.where(bad, safe, gates)
