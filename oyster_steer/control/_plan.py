"""Control plans: a probe reads intent, a policy picks a response strategy, vectors write it.

A :class:`ControlPlan` bundles everything one steered generation needs: the gating probe (and
optional monitor probes, only recorded), a :class:`~oyster_steer.Policy` over the probe's
classes, steering vectors bound to strategies with a strength each (:func:`bind`), where the
probe reads (last prompt token, a window, or running over generated tokens), where the vectors
write (prompt, generated or all tokens) and a strength schedule over decode steps.
:func:`patch_plan` installs it as fused, host-sync-free hooks (see ``control._runtime``);
:func:`save_plan` / :func:`load_plan` keep it as ONE safetensors "control pack".

Example:
    >>> probe = load_probe("probes/smollm2-135m-instruct/intent.safetensors", model)  # doctest: +SKIP
    >>> vec = load_vector("vectors/smollm2-135m-instruct/constructive.safetensors", model)  # doctest: +SKIP
    >>> plan = ControlPlan(probe, [bind(vec, {"guide": 4.0, "redirect": 6.0})])  # doctest: +SKIP
    >>> with oyster_steer.patch(model, plan) as handle:  # doctest: +SKIP
    ...     out = model.hf.generate(**inputs)
    ...     handle.decisions().strategy
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import torch

from ..core._errors import ModelMismatchError, SiteError, WidthMismatchError, require_finite
from ..core._sites import Site, parse_site, resolve_site
from ..vectors._intervention import check_lowrank
from ._operators import CustomFn, Operator, as_operator
from ._plan_check import check_bindings
from ._policy import Policy
from ._spans import parse_positions

if TYPE_CHECKING:
    from ..probes._probe import LinearProbe
    from ..vectors._intervention import LowRankIntervention
    from ..vectors._vector import SteeringVector

__all__ = ["POSITIONS", "READS", "Binding", "ControlPlan", "Read", "bind", "exec_order"]

Bindable: TypeAlias = "SteeringVector | LowRankIntervention | Mapping[str, torch.Tensor]"
"""What :func:`bind` takes: a steering vector, a low-rank intervention, or ``{site: (d,) tensor}``."""

Read = Literal["last", "window", "mean", "last+mean", "running", "after_thinking"]
"""Where the gating probe reads (see :class:`ControlPlan`)."""
READS: tuple[Read, ...] = ("last", "window", "mean", "last+mean", "running", "after_thinking")
POSITIONS = ("all", "prompt", "generated", "thinking", "answer")  # or several joined by "+"
_IDENTITY = ("model_name", "model_fingerprint", "model_weights", "d_model", "n_layers")
_VECTOR_KEYS = ("method", "strength", *_IDENTITY)


@dataclass(frozen=True, eq=False)
class Binding:
    """A steering vector or low-rank intervention bound to response strategies, one strength each.

    Attributes:
        name: a label for plots and the pack ("constructive").
        directions: canonical site name -> (d,) direction, added ``strength`` times.
        strengths: strategy name -> strength; strategies not named get 0 (no steering).
        meta: provenance strings of the vector (method, model fingerprint, ...).
        lowrank: canonical site name -> (R (r, d), W (r, d), b (r,)) of a low-rank,
            input-dependent edit ``h + strength * R^T (W h + b - R h)`` (see
            :class:`~oyster_steer.vectors.LowRankIntervention`); gated like a vector, never baked.
            Runtime operators (``meta["op"]`` = ``ablate``, ``ablate_add``, ``clamp``) are such
            edits with ``R`` the unit direction, ``W = 0`` and ``b`` the target projection; their
            gain is 1 on every strategy with a non-zero strength (exact ablation or clamp when
            the row's gate is 1), see :mod:`oyster_steer.control._operators`.
        custom: canonical site name -> (fn, (d,) direction) of a custom operator: the hook adds
            ``strength * gate * fn(h, direction)``; python code, so never saved or baked.
    """

    name: str
    directions: Mapping[str, torch.Tensor]
    strengths: Mapping[str, float]
    meta: Mapping[str, str] = field(default_factory=dict)
    lowrank: Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )
    custom: Mapping[str, tuple[CustomFn, torch.Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "custom",
            {
                parse_site(site).name: (fn, torch.as_tensor(v).detach().float().reshape(-1))
                for site, (fn, v) in self.custom.items()
            },
        )
        if not self.directions and not self.lowrank and not self.custom:
            raise ValueError(
                f"binding {self.name!r} has no directions: bind a vector or intervention with at least one site"
            )
        dirs = {
            parse_site(site).name: torch.as_tensor(v).detach().float().reshape(-1)
            for site, v in self.directions.items()
        }
        object.__setattr__(self, "directions", dirs)
        object.__setattr__(self, "strengths", {str(k): float(v) for k, v in self.strengths.items()})
        for site, v in dirs.items():
            require_finite(v, f"binding {self.name!r}'s direction at {site!r}")
        for strategy, g in self.strengths.items():
            require_finite(g, f"binding {self.name!r}'s strength for {strategy!r} ({g})")
        object.__setattr__(self, "meta", {str(k): str(v) for k, v in self.meta.items()})
        widths = {v.numel() for v in dirs.values()} | {v.numel() for _, v in self.custom.values()}
        low = {}
        for site, part in self.lowrank.items():
            canonical = parse_site(site).name
            low[canonical] = check_lowrank(part, f"binding {self.name!r}'s low-rank", canonical)
            widths.add(low[canonical][0].shape[1])
        object.__setattr__(self, "lowrank", low)
        if len(widths) != 1:
            raise WidthMismatchError(
                f"binding {self.name!r} has directions of widths {sorted(widths)}: use one width"
            )

    @property
    def d_model(self) -> int:
        if self.directions:
            return next(iter(self.directions.values())).numel()
        if self.custom:
            return next(iter(self.custom.values()))[1].numel()
        return next(iter(self.lowrank.values()))[0].shape[1]

    @property
    def sites(self) -> list[str]:
        """Every site it writes to (vector directions, low-rank parts, custom operators)."""
        names = set(self.directions) | set(self.lowrank) | set(self.custom)
        return sorted(names, key=lambda s: parse_site(s).order)

    @property
    def op(self) -> str:
        """The runtime operator of its vector (``add`` unless bound with another ``op``)."""
        return self.meta.get("op", "add")

    def gains(self, strategies: Sequence[str], projection: bool = False) -> torch.Tensor:
        """(S,) gain per strategy: its strength, or for an operator's projection edit 1 where bound."""
        g = torch.tensor([self.strengths.get(s, 0.0) for s in strategies])
        if projection and self.op in ("ablate", "ablate_add", "clamp"):
            return (g != 0).float()
        return g


def bind(
    vector: Bindable,
    strengths: Mapping[str, float] | Sequence[str],
    *,
    name: str | None = None,
    sites: Sequence[str] | None = None,
    op: str | Operator | CustomFn = "add",
    value: float | None = None,
) -> Binding:
    """Bind a steering vector to strategies: ``{"guide": 4.0, "redirect": 6.0}``.

    Args:
        vector: a :class:`~oyster_steer.SteeringVector`, a mapping site name -> (d,) tensor, or a
            :class:`~oyster_steer.vectors.LowRankIntervention` (gated per row like a vector).
        strengths: strategy -> strength (a multiple of the stored direction), or a list of
            strategies that each get the vector's own calibrated ``strength`` (1.0 if it has none).
        name: label (default: the vector's ``meta["name"]`` or ``method``, else "vector").
        sites: only these of the vector's sites (default: all).
        op: the runtime operator of a vector: ``"add"`` (default), ``"ablate"``, ``"ablate_add"``,
            ``"clamp"`` (with ``value``) or a callable ``(h, direction) -> delta``; gated per row
            in the same fused hook as every other binding (:mod:`oyster_steer.control._operators`).
        value: the projection ``op="clamp"`` sets.

    Example:
        >>> b = bind({"blocks.1.hook_resid_post": torch.ones(8)}, {"guide": 2.0}, name="demo")
        >>> b.strengths
        {'guide': 2.0}
    """
    lowrank = dict(getattr(vector, "parts", {}) or {})  # a LowRankIntervention
    directions: dict[str, torch.Tensor] = (
        {}
        if lowrank
        else dict(cast("Mapping[str, torch.Tensor]", getattr(vector, "directions", vector)))
    )
    if sites is not None:
        wanted = {parse_site(s).name for s in sites}
        have = {parse_site(s).name for s in (*directions, *lowrank)}
        unknown = sorted(wanted - have)
        if unknown:
            raise SiteError(
                f"sites {unknown} are not among the vector's sites {sorted(have)}: pick from those"
            )
        directions = {k: v for k, v in directions.items() if parse_site(k).name in wanted}
        lowrank = {k: v for k, v in lowrank.items() if parse_site(k).name in wanted}
    if not isinstance(strengths, Mapping):
        default = float(getattr(vector, "strength", None) or 1.0)
        strengths = {s: default for s in strengths}
    meta = dict(getattr(vector, "meta", {}) or {})
    meta.update({k: v for k, v in dict(getattr(vector, "identity", {}) or {}).items()})
    for key in _VECTOR_KEYS:
        if getattr(vector, key, None) is not None:
            meta.setdefault(key, str(getattr(vector, key)))
    label = name or meta.get("name") or meta.get("method") or "vector"
    operator = as_operator(op, value)
    if operator.kind == "add":
        return Binding(label, directions, strengths, meta, lowrank)
    if lowrank:
        raise ValueError(
            f"op={operator.kind!r} applies to a steering vector, not a low-rank intervention: bind it with op='add'"
        )
    meta["op"] = operator.kind
    custom: dict[str, tuple[CustomFn, torch.Tensor]] = {}
    if operator.projects:
        meta["value"] = repr(operator.value)
        for site, v in directions.items():
            v = torch.as_tensor(v).float().reshape(-1)
            if float(v.norm()) == 0.0:
                raise ValueError(f"op={operator.kind!r} needs a non-zero direction at {site!r}")
            lowrank[site] = (
                (v / v.norm())[None],
                torch.zeros(1, v.numel()),
                torch.tensor([operator.value]),
            )
    if operator.kind == "custom":
        assert operator.fn is not None
        custom = {site: (operator.fn, v) for site, v in directions.items()}
    added = directions if operator.adds else {}
    return Binding(label, added, strengths, meta, lowrank, custom)


@dataclass(frozen=True, eq=False)
class ControlPlan:
    """Probe-gated composition of steering vectors under a constructive-safety policy.

    Attributes:
        probe: the gating probe; its class posterior feeds the policy.
        bindings: vectors bound to strategies (:func:`bind`).
        policy: payoffs over the probe's classes (default: :data:`~oyster_steer.DEFAULT_PAYOFF`,
            columns reordered to the probe's labels).
        read: where the probe reads: ``"last"`` prompt token (default), ``"window"`` (mean over
            the last ``window`` real prompt tokens), ``"mean"`` (mean over every real token of the
            prompt pass: the chat-formatted prompt, what ``capture(pool="mean")`` and
            ``train-probe --pool mean`` read), ``"last+mean"`` (the last prompt token and that
            mean side by side, a (2d,) feature for a probe fit with ``train-probe --pool
            last+mean``; a monitor fit on one of them reads its own half), or ``"running"`` (mean over the last prompt
            token and every generated token so far; the decision is re-made each step), or
            ``"after_thinking"`` (at the end of a reasoning model's thinking: the token before
            each row's first answer token -- its ``</think>``, or the last prompt token of a row
            that did not think; gates are zero until then, so the answer is what is steered).
        window: tokens of a ``"window"`` read.
        positions: where vectors write: ``"all"`` tokens (default), only ``"prompt"`` tokens
            (the first pass), or only ``"generated"`` tokens (fed back while decoding); the same
            token sets as :func:`oyster_steer.patch`'s ``positions``. Reasoning spans:
            ``"thinking"`` (generated tokens inside ``<think> ... </think>``, markers included)
            and ``"answer"`` (the other generated tokens); names combine with ``+``
            (``"prompt+answer"``); see ``oyster_steer.control._spans``. During the prompt pass,
            sites before the probe's site write nothing: the decision does not exist yet.
        schedule: strength multiplier per token: index 0 for prompt tokens, index i for the
            i-th generated token fed back; the last value holds for later tokens. With span
            positions the count restarts in each span (index i: the i-th thinking or answer token).
            Plan-wide (one sequence), or per strategy: ``{"guide": (1.0,) * 17 + (0.5,),
            "redirect": (1.0,)}`` (strategies not named keep a constant 1); a row's write is
            then ``sum_s gate_s * schedule_s[i] * strength_s`` (:meth:`schedule_table`).
        monitors: extra probes (name -> probe, at any site), read like the gating probe and
            latched at the prompt pass; only recorded in decisions (e.g. the risk probe).
        identity: model_name / model_fingerprint / d_model / n_layers of the model it is for
            (inferred from the probe's and vectors' metadata when not given).
        allow_compliance_steering: permit an anti-refusal (constructive) vector on the strategy
            the policy picks for malicious users (refused by default: it steers attackers toward
            compliance; see :mod:`oyster_steer.control._plan_check`). For deliberate experiments.
    """

    probe: LinearProbe
    bindings: Sequence[Binding]
    policy: Policy | None = None
    read: Read = "last"
    window: int = 4
    positions: str = "all"
    schedule: Sequence[float] | Mapping[str, Sequence[float]] = (1.0,)
    monitors: Mapping[str, LinearProbe] = field(default_factory=dict)
    identity: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    allow_compliance_steering: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "bindings", tuple(self.bindings))
        if isinstance(self.schedule, Mapping):
            per = {str(k): tuple(float(x) for x in v) for k, v in self.schedule.items()}
            object.__setattr__(self, "schedule", per)
        else:
            object.__setattr__(self, "schedule", tuple(float(s) for s in self.schedule))
        object.__setattr__(self, "monitors", dict(self.monitors))
        policy = self.policy or Policy()
        if policy.intents != tuple(self.probe.labels):
            policy = policy.reindex(self.probe.labels)
        object.__setattr__(self, "policy", policy)
        self._check_config()
        self._check_widths()
        if not self.allow_compliance_steering:
            check_bindings(self.bindings, policy)
        object.__setattr__(self, "identity", _infer_identity(self))

    def _check_config(self) -> None:
        if self.read not in READS:
            raise ValueError(
                f"read={self.read!r} is not a read mode: use one of {', '.join(READS)}"
            )
        probes = {"the gating probe": self.probe} | {
            f"monitor {k!r}": p for k, p in self.monitors.items()
        }
        for name, p in probes.items():  # every probe reads the features it was fit on
            if p.pool == "mean" and self.read not in ("mean", "last+mean"):
                raise ValueError(
                    f"{name} was fit on the mean over the prompt (meta pool='mean') but the plan "
                    f"reads read={self.read!r}: pass read='mean'"
                )
            if p.pool == "last+mean" and self.read != "last+mean":
                raise ValueError(
                    f"{name} was fit on the last prompt token and the prompt mean side by side "
                    f"(meta pool='last+mean') but the plan reads read={self.read!r}: pass "
                    "read='last+mean'"
                )
        parse_positions(self.positions)  # raises for an unknown selection
        if self.window < 1:
            raise ValueError(f"window={self.window} must be >= 1 token")
        per = dict(self.schedule) if isinstance(self.schedule, Mapping) else None
        rows = list(per.values()) if per is not None else [self.schedule]
        if not rows or not all(r and all(torch.isfinite(torch.tensor(r))) for r in rows):
            raise ValueError(
                f"schedule={self.schedule} must be a non-empty list of finite multipliers "
                "(or a mapping strategy -> such a list)"
            )
        extra = sorted(set(per or ()) - set(self.strategies))
        if extra:
            raise ValueError(
                f"schedule names strategies {extra} that the policy lacks: use some of {list(self.strategies)}"
            )
        names = [b.name for b in self.bindings]
        if len(set(names)) != len(names):
            raise ValueError(f"binding names {names} repeat: give each bound vector its own name")
        for b in self.bindings:
            unknown = sorted(set(b.strengths) - set(self.strategies))
            if unknown:
                raise ValueError(
                    f"binding {b.name!r} names strategies {unknown} that the policy lacks: use some of {list(self.strategies)}"
                )

    def _check_widths(self) -> None:
        d = self.probe.d_model
        for what, width in [(f"binding {b.name!r}", b.d_model) for b in self.bindings] + [
            (f"monitor {k!r}", p.d_model) for k, p in self.monitors.items()
        ]:
            if width != d:
                raise WidthMismatchError(
                    f"{what} has width {width} but the probe has {d}: use parts made for the same model"
                )

    @property
    def strategies(self) -> tuple[str, ...]:
        assert self.policy is not None, "__post_init__ always sets a policy"
        return self.policy.strategies

    @property
    def per_strategy_schedule(self) -> bool:
        """Whether :attr:`schedule` is a mapping strategy -> schedule (else one for the plan)."""
        return isinstance(self.schedule, Mapping)

    def schedule_table(self) -> torch.Tensor:
        """(S, L) multiplier per strategy (rows in :attr:`strategies` order) and decode step.

        Each row is padded with its last value (which holds for later tokens); a plan-wide
        schedule gives S equal rows, and strategies a per-strategy one does not name get 1.
        """
        sched = cast("Mapping[str, Sequence[float]]", self.schedule)
        rows = (
            [tuple(sched.get(s, (1.0,))) for s in self.strategies]
            if self.per_strategy_schedule
            else [tuple(cast("Sequence[float]", self.schedule))] * len(self.strategies)
        )
        n = max(len(r) for r in rows)
        return torch.tensor([list(r) + [r[-1]] * (n - len(r)) for r in rows], dtype=torch.float32)

    @property
    def constant_schedule(self) -> bool:
        """Whether every strategy's schedule is 1 at every step (a static binding can be baked)."""
        return bool((self.schedule_table() == 1.0).all())

    @property
    def sites(self) -> list[str]:
        """Canonical names of every site a vector writes to, sorted in forward order."""
        names = {s for b in self.bindings for s in b.sites}
        return sorted(names, key=lambda s: parse_site(s).order)

    def lowrank(self, site: str) -> tuple[torch.Tensor, ...] | None:
        """The low-rank parts of every binding at ``site``, concatenated along the rank, or None.

        Returns ``(A (K, d), c (K,), R (K, d), G (S, K))`` with ``A = W - R`` and ``c = b`` of each
        binding stacked, and ``G[s, k]`` the strength for strategy ``s`` of the binding that owns
        rank component ``k``: a hook adds ``((h @ A.T + c) * (gates @ G)) @ R``.
        """
        parts = [(b, b.lowrank[site]) for b in self.bindings if site in b.lowrank]
        if not parts:
            return None
        A = torch.cat([W - R for _, (R, W, _) in parts])
        c = torch.cat([b_ for _, (_, _, b_) in parts])
        R = torch.cat([R for _, (R, _, _) in parts])
        G = torch.cat(
            [
                b.gains(self.strategies, projection=True)[:, None].expand(-1, part[0].shape[0])
                for b, part in parts
            ],
            dim=1,
        )
        return A, c, R, G

    def custom(self, site: str) -> list[tuple[CustomFn, torch.Tensor, torch.Tensor]]:
        """The custom operators at ``site``: ``(fn, (d,) direction, (S,) gains)`` per binding."""
        return [
            (b.custom[site][0], b.custom[site][1], b.gains(self.strategies))
            for b in self.bindings
            if site in b.custom
        ]

    def stacked(self, site: str) -> torch.Tensor:
        """(S, d) per-strategy sum ``sum_v strength[v, s] * direction_v[site]``: one matmul per hook."""
        out = torch.zeros(len(self.strategies), self.probe.d_model)
        for b in self.bindings:
            if site in b.directions:
                gains = torch.tensor([b.strengths.get(s, 0.0) for s in self.strategies])  # (S,)
                out += gains[:, None] * b.directions[site][None, :]
        return out

    def replace(self, **changes: Any) -> ControlPlan:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def rule(
        cls,
        probe: LinearProbe,
        vector: Any,
        strength: float,
        *,
        threshold: float | None = None,
        **kwargs: Any,
    ) -> ControlPlan:
        """The rule "if p(positive) > threshold then add ``vector`` at ``strength``" as a plan.

        ``threshold`` defaults to the probe's calibrated one. Other keywords go to the plan.

        Example:
            >>> plan = ControlPlan.rule(risk_probe, refusal_vector, 4.0)  # doctest: +SKIP
        """
        t = probe.threshold if threshold is None else threshold
        if t is None or probe.n_classes != 2:
            raise ValueError(
                "a rule needs a binary probe and a threshold: pass threshold= or calibrate the probe"
            )
        policy = Policy.rule(float(t), labels=probe.labels)
        return cls(probe, [bind(vector, {"steer": float(strength)})], policy, **kwargs)

    def conditional_parts(self) -> ControlPlan | None:
        """The probe-gated part (for export): this plan without its unconditional bindings."""
        gated = [b for b in self.bindings if not self._is_static(b)]
        return self.replace(bindings=gated) if gated else None

    def static_vectors(self) -> dict[str, torch.Tensor]:
        """``{site: (d,) tensor}`` of bindings that apply whatever the decision (export bakes these).

        A binding is unconditional when it has the same strength for every strategy (gates sum
        to one), writes at all positions, the schedule is constant, and every site it writes
        comes after the probe's read (earlier sites write nothing during the prompt pass, before
        the decision exists, so such a binding is conditional on being past that pass).
        """
        out: dict[str, torch.Tensor] = {}
        for b in (b for b in self.bindings if self._is_static(b)):
            gain = b.strengths.get(self.strategies[0], 0.0)
            for site, v in b.directions.items():
                out[site] = out.get(site, torch.zeros_like(v)) + gain * v
        return out

    def _is_static(self, b: Binding) -> bool:
        gains = {b.strengths.get(s, 0.0) for s in self.strategies}
        return (
            not b.lowrank  # input-dependent: never a constant bias
            and not b.custom
            and len(gains) == 1
            and self.positions == "all"
            and self.constant_schedule
            and all(self._writes_after_read(site) for site in b.directions)
        )

    def _writes_after_read(self, site: str) -> bool:
        """Whether a write at ``site`` fires after the gating probe's read in a forward pass."""
        n = int(self.identity.get("n_layers", 0) or 0)

        def resolved(name: str | Site) -> Site:
            parsed = parse_site(name)
            return resolve_site(parsed, n) if n and parsed.layer < 0 else parsed

        return exec_order(resolved(site), True) > exec_order(resolved(self.probe.site), False)


def _infer_identity(plan: ControlPlan) -> dict[str, str]:
    """The model identity of a plan, from ``identity`` or its parts; parts must agree."""
    found: dict[str, str] = {k: str(v) for k, v in plan.identity.items() if k in _IDENTITY}
    sources = [("the probe", plan.probe.meta)] + [
        (f"binding {b.name!r}", b.meta) for b in plan.bindings
    ]
    sources += [(f"monitor {k!r}", p.meta) for k, p in plan.monitors.items()]
    for what, meta in sources:
        fp = meta.get("model_fingerprint")
        if fp is None:
            continue
        if "model_fingerprint" in found and found["model_fingerprint"] != fp:
            raise ModelMismatchError(
                f"{what} was made for model fingerprint {fp}, but the plan's other parts for {found['model_fingerprint']}: "
                "build a plan from parts of one model"
            )
        for key in _IDENTITY:
            if key in meta:
                found.setdefault(key, str(meta[key]))
    return found


def exec_order(site: Site, write: bool) -> tuple[int, int, int]:
    """When a hook fires; a write to resid_mid goes through attention's output. Reads go first."""
    layer, kind = site.order
    if write and site.kind == "resid_mid":
        kind = 1
    return (layer, kind, int(write))
