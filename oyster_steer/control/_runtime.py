"""Inspecting and removing a patched control plan: :class:`ControlHandle` and what it reports.

:func:`patch_plan` validates a plan against the model and registers, all or nothing, the position
tracker, the pass-start hook, the read hook and one fused write hook per steered site (the hot
path lives in ``control._hooks``). The handle reads the latched decisions back to the CPU only
when asked, outside the forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from ..backends import HookHandle, get_backend, guard_hooks_in_compiled_code
from ..core._errors import WidthMismatchError
from ..models._artifacts import check_model, check_not_baked
from ._hooks import ControlState, build_hooks
from ._plan import ControlPlan
from ._spans import SPANS, ThinkMarkers, parse_positions, resolve_markers

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["ControlHandle", "ControlTrace", "DecisionLog", "Decisions", "install", "patch_plan"]


@dataclass(frozen=True)
class Decisions:
    """Per-row decisions of the last sequence, as small CPU tensors (read outside the hot path);
    of every prompt of a batched generation, in input order, from :meth:`DecisionLog.result`.

    Attributes:
        posterior: (B, C) probe posterior over ``intents``; expected_utility, weights, gates:
            (B, S) over ``strategies`` (weights are the soft policy; gates are what was applied).
        monitors: monitor name -> (B, C_m) posterior; monitor_labels: their class names.
        step: decode steps taken since the prompt pass.
        fault: (B,) bool, rows whose posterior held NaN or an infinity; the policy failed closed
            and applied its cautious strategy (``plan.policy.cautious``) to them.
    """

    posterior: torch.Tensor
    expected_utility: torch.Tensor
    weights: torch.Tensor
    gates: torch.Tensor
    intents: tuple[str, ...]
    strategies: tuple[str, ...]
    monitors: dict[str, torch.Tensor] = field(default_factory=dict)
    monitor_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    step: int = 0
    fault: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.posterior.shape[0])

    @property
    def intent(self) -> list[str]:
        """The most probable intent of each row."""
        return [self.intents[i] for i in self.posterior.argmax(-1).tolist()]

    @property
    def strategy(self) -> list[str]:
        """The strategy of highest gate for each row."""
        return [self.strategies[i] for i in self.gates.argmax(-1).tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per row (intent, strategy, posterior and gates by name) for tables."""
        return [
            {"intent": self.intent[i], "strategy": self.strategy[i]}
            | ({"fault": True} if self.fault is not None and bool(self.fault[i]) else {})
            | {
                f"p_{n}": round(float(v), 4)
                for n, v in zip(self.intents, self.posterior[i], strict=True)
            }
            | {
                f"gate_{n}": round(float(v), 4)
                for n, v in zip(self.strategies, self.gates[i], strict=True)
            }
            for i in range(len(self))
        ]


@dataclass(frozen=True)
class ControlTrace:
    """Per-token record of a traced sequence (``patch_plan(..., trace=True)``), on CPU.

    Attributes:
        posterior: (B, N, C) what the probe reads at each of the N tokens (prompt then generated);
        expected_utility: (B, N, S) the policy's utilities for those readings;
        applied: (B, N, S) gate x position weight x schedule actually applied at each token
            (at sites after the read site).
        spans: (B, N) span code of each token (0 prompt, 1 thinking, 2 answer; names in
            ``span_names``) when the plan tracked reasoning spans, else None.
    """

    posterior: torch.Tensor
    expected_utility: torch.Tensor
    applied: torch.Tensor
    intents: tuple[str, ...]
    strategies: tuple[str, ...]
    spans: torch.Tensor | None = None
    span_names: tuple[str, ...] = SPANS


class ControlHandle(HookHandle):
    """A patched control plan: ``remove()`` undoes it; ``decisions()`` and ``trace()`` inspect it.

    Example:
        >>> with patch_plan(model, plan) as handle:  # doctest: +SKIP
        ...     model.hf.generate(ids, attention_mask=mask, max_new_tokens=16)
        ...     print(handle.decisions().strategy)
    """

    def __init__(
        self,
        plan: ControlPlan,
        model: OysterModel,
        state: ControlState,
        removers: list[Callable[[], None]],
    ) -> None:
        super().__init__(removers)
        self.plan, self.model, self._state = plan, model, state

    def __enter__(self) -> ControlHandle:
        return self

    def decisions(self) -> Decisions:
        """The latched per-row decisions of the calling thread's last pass (copies to the CPU).

        Per request: each thread keeps its own decisions, so a server worker that ran
        ``generate`` reads its own request's rows here (call it in that same thread, after the
        pass); a thread that ran no pass gets zero rows. For a generation in several batches
        (:func:`~oyster_steer.eval.generate_replies`), a :class:`DecisionLog` collects every
        prompt's rows in input order.
        """
        s = self._state.run
        rows = s.batch
        steps = s.last_gen[:rows] + 1

        def host(t: torch.Tensor) -> torch.Tensor:
            # a copy even on a CPU model, where ``.cpu()`` would return a view of the live
            # buffers: decisions kept across batches would change under the next pass
            return t[:rows].to("cpu", copy=True)

        return Decisions(
            posterior=host(s.posterior),
            expected_utility=host(s.eu),
            weights=host(s.weights),
            gates=host(s.gates),
            intents=tuple(self.plan.probe.labels),
            strategies=tuple(self.plan.strategies),
            monitors={k: host(v) for k, v in s.monitor_post.items()},
            monitor_labels={k: tuple(p.labels) for k, p in self.plan.monitors.items()},
            step=int(steps.max()) if rows else 0,
            fault=s.fault[:rows, 0].cpu() > 0,
        )

    def inert_rows(self) -> torch.Tensor:
        """(B,) bool on the CPU: rows of the calling thread's last sequence that the plan leaves
        exactly as the unpatched model computes them (read outside the hot path, like
        :meth:`decisions`).

        A row is inert when every strategy its latched gates switch on has no action (no
        vector, no low-rank part): each site's edit is then ``x + w * 0``, bitwise ``x``, and
        decode steps keep the latch. Plans whose decision can change after the prompt pass
        (``read="running"`` or ``"after_thinking"``) or that hold custom operators (whose
        gated-off output is ``0 * fn(x)``) have no inert rows.
        """
        st = self._state
        gates = st.run.gates[: st.run.batch].cpu()  # (B, S)
        if st.read_mode not in ("last", "window", "mean", "last+mean") or st.custom_gain.shape[1]:
            return torch.zeros(gates.shape[0], dtype=torch.bool)
        acts = (st.stacked != 0).any(1) | (st.low_gain != 0).any(1)  # (S,) strategies that edit
        return ~((gates != 0) & acts.cpu()).any(1)

    def trace(self) -> ControlTrace:
        """Per-token readings and applied gates of the last sequence (needs ``trace=True``)."""
        s = self._state.run
        if not self._state.trace:
            raise ValueError(
                "this plan was patched without tracing: patch it with trace=True to record tokens"
            )
        if not s.records:
            raise ValueError("nothing traced yet: run a forward pass or generate first")
        posterior, eu, applied = (
            torch.cat([r[i] for r in s.records], dim=1).cpu() for i in range(3)
        )
        spans = torch.cat(s.span_records, dim=1).cpu() if s.span_records else None
        return ControlTrace(
            posterior,
            eu,
            applied,
            tuple(self.plan.probe.labels),
            tuple(self.plan.strategies),
            spans=spans,
        )


class DecisionLog:
    """Per-row decisions of a whole batched generation, in the prompts' input order.

    ``handle.decisions()`` holds only the last pass: after a generation in several batches (which
    :func:`~oyster_steer.eval.generate_replies` also sorts by length) it is the last batch's rows
    in batch order. Pass a log as ``generate_replies(..., decisions=log)`` (or call it with each
    batch's prompt indices in batch-row order, as ``after_batch``): it copies each batch's
    decisions back to their prompts, and :meth:`result` is one :class:`Decisions` whose row ``i``
    is prompt ``i``'s. Decisions are read after each batch, outside the hot path.

    Example:
        >>> import torch
        >>> from oyster_steer import LinearProbe
        >>> from oyster_steer.control import ControlPlan
        >>> from oyster_steer.eval import generate_replies
        >>> from oyster_steer.testing import tiny_model
        >>> model = tiny_model()  # random weights: a random probe and no vectors will do
        >>> d, intents = model.d_model, ("benign", "borderline", "vulnerable", "malicious")
        >>> probe = LinearProbe("blocks.0.hook_resid_post", intents, torch.randn(4, d),
        ...                     torch.zeros(4), torch.zeros(d), torch.ones(d))
        >>> prompts = ["Hi!", "How do I bake bread at home?", "I feel alone", "What is 2 + 2?"]
        >>> with patch_plan(model, ControlPlan(probe, [])) as handle:
        ...     log = DecisionLog(handle)
        ...     replies = generate_replies(model, prompts, max_new_tokens=2, batch_size=3,
        ...                                decisions=log)
        >>> len(handle.decisions()), len(log.result())  # the last batch's rows; every prompt's
        (1, 4)
        >>> log.result().rows()[2]["intent"] in intents  # prompt 2's decision
        True
    """

    def __init__(self, handle: ControlHandle) -> None:
        if not isinstance(handle, ControlHandle):
            raise TypeError(
                f"DecisionLog reads a control plan's handle (patch_plan / oyster_steer.steer "
                f"with a ControlPlan), not {type(handle).__name__}"
            )
        self.handle = handle
        self._size: int | None = None
        self._batches: list[Decisions] = []
        self._where: dict[int, tuple[int, int]] = {}  # prompt index -> (batch, row)

    def start(self, model: OysterModel, n: int) -> None:
        """Forget what was logged and expect ``n`` prompts generated by ``model`` (what
        ``generate_replies(..., decisions=log)`` calls first)."""
        self._check_active()
        if model.hf is not self.handle.model.hf:
            raise ValueError(
                f"this DecisionLog's handle is patched on model {self.handle.model.name!r}, not "
                f"on the model that generates ({model.name!r}): its decisions would not be this "
                "generation's. Patch the plan on the model you generate with"
            )
        self._size, self._batches, self._where = n, [], {}

    def __call__(self, indices: Sequence[int]) -> None:
        """Log the handle's decisions of the pass just run: row ``r`` is prompt ``indices[r]``."""
        self._check_active()
        dec = self.handle.decisions()
        if len(dec) != len(indices):
            raise ValueError(
                f"the control handle holds {len(dec)} decision rows but the batch had "
                f"{len(indices)} prompts: call the log after each batch, in the thread that ran "
                "it, with the handle patched on the model that generated (and not removed)"
            )
        for row, i in enumerate(indices):
            if self._size is not None and not 0 <= i < self._size:
                raise IndexError(f"prompt index {i} is outside the {self._size} prompts expected")
            self._where[int(i)] = (len(self._batches), row)
        self._batches.append(dec)

    def _check_active(self) -> None:
        if not self.handle.active:
            raise ValueError(
                "this DecisionLog's control handle was removed: generate inside the handle's "
                "`with` block (its decisions would be a past pass's)"
            )

    def result(self) -> Decisions:
        """One :class:`Decisions` with a row per prompt, in input order (``step``: the most
        decode steps any batch took)."""
        if not self._batches:
            raise ValueError("nothing logged yet: generate with decisions=log first")
        n = self._size if self._size is not None else max(self._where) + 1
        missing = [i for i in range(n) if i not in self._where]
        if missing:
            raise ValueError(
                f"no decisions for prompts {missing[:8]}{' ...' if len(missing) > 8 else ''} "
                f"of {n}: every prompt must run in a logged batch"
            )
        starts = [0]
        for dec in self._batches:
            starts.append(starts[-1] + len(dec))
        take = torch.tensor([starts[b] + r for b, r in (self._where[i] for i in range(n))])

        def gather(name: str, key: str | None = None) -> torch.Tensor:
            parts = [getattr(dec, name) for dec in self._batches]
            return torch.cat([p[key] for p in parts] if key is not None else parts)[take]

        first = self._batches[0]
        return replace(
            first,
            posterior=gather("posterior"),
            expected_utility=gather("expected_utility"),
            weights=gather("weights"),
            gates=gather("gates"),
            monitors={k: gather("monitors", k) for k in first.monitors},
            step=max(dec.step for dec in self._batches),
            fault=None if any(d.fault is None for d in self._batches) else gather("fault"),
        )


def _validate(model: OysterModel, plan: ControlPlan, max_batch: int, positions: str | None) -> None:
    for binding in plan.bindings:
        check_not_baked(binding.directions, model, f"plan's vector {binding.name!r}")
    check_model(plan.identity, model, what="control plan")
    if plan.probe.d_model != model.d_model:
        raise WidthMismatchError(
            f"the plan's probe has width {plan.probe.d_model} but model {model.name!r} has d_model={model.d_model}: "
            "use a plan made for this model"
        )
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch} must be >= 1")
    if positions is not None:
        parse_positions(positions)  # raises for an unknown selection


def patch_plan(
    model: OysterModel,
    plan: ControlPlan,
    *,
    trace: bool = False,
    max_batch: int = 64,
    positions: str | None = None,
    strength: float | None = None,
    think_markers: ThinkMarkers | tuple[Any, Any] | None = None,
) -> ControlHandle:
    """Install ``plan`` on ``model`` as fused hooks; returns a handle (``remove()``, ``decisions()``).

    The plan is validated against the model first; its hooks register all or nothing. One read
    hook decides at the prompt pass and latches per row; one hook per steered site adds
    ``gates (B, S) @ stacked (S, d)`` to the residual. Nothing in the hooks syncs with the host,
    so a patched model compiles with ``torch.compile(fullgraph=True)``. Reached as
    ``oyster_steer.patch(model, plan)`` and ``oyster_steer.steer(model, plan)``.

    Args:
        model: any backend; the plan must be made for it (fingerprint, width, depth).
        trace: also record per-token probe readings and applied gates (``handle.trace()``).
        max_batch: rows preallocated for decisions (grown at a pass with a larger batch).
        positions: override the plan's ``positions``; strength: multiply every binding's
            strength (e.g. from :func:`oyster_steer.steer`'s ``strength``).

    Example:
        >>> handle = patch_plan(model, plan)  # doctest: +SKIP
        >>> model.hf.generate(ids, attention_mask=mask, max_new_tokens=32)  # doctest: +SKIP
        >>> handle.decisions().strategy, handle.remove()  # doctest: +SKIP
    """
    _validate(model, plan, max_batch, positions)
    state = ControlState(
        plan,
        model,
        max_batch=max_batch,
        trace=trace,
        positions=positions or plan.positions,
        gain=1.0 if strength is None else float(strength),
        markers=resolve_markers(model, think_markers),
    )
    handle = ControlHandle(plan, model, state, [])
    try:
        # compiled code recompiles when hooks change, instead of running without (or with) them
        handle.add(guard_hooks_in_compiled_code())
        handle.add(state.tracker.attach(model).remove)
        if state.spans is not None:  # after the position tracker, before the pass start
            handle.add(state.spans.attach(model).remove)
        block = model.hf.get_submodule(f"{model.spec.layers}.0")
        handle.add(block.register_forward_pre_hook(state.begin, with_kwargs=True).remove)
        handle.add(
            get_backend(model.backend).add_hooks(model, build_hooks(plan, model, state)).remove
        )
        if plan.read in ("window", "mean", "last+mean"):
            handle.add(model.hf.register_forward_pre_hook(state.grab_mask, with_kwargs=True).remove)
    except BaseException:
        handle.remove()
        raise
    return handle


# the internal name (reproduce/_plan_training imports it): the same function
install = patch_plan
