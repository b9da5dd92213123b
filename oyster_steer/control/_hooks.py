"""The hot path of a control plan: device buffers, one read hook, one fused write hook per site.

How a pass runs under a patched plan (every step is tensor code on the model's device):

1. :class:`~oyster_steer.control._positions.PositionTracker` (a pre-hook on the first block) knows each
   row's prompt end from its position ids; right after it, :meth:`ControlState.begin` marks the
   rows whose pass is a prompt pass (``starts``, (B,)), zeroes their gates (the decision for a
   new sequence does not exist before the read site) and computes the pass's write weights
   ``posw = schedule[min(decode step, L - 1)] * positions mask``, (B, T, 1). With a schedule per
   strategy, ``posw`` is the positions mask and ``sched = table[:, step]`` (B, T, S) scales the
   gates instead (step 3).
2. The read hook at the probe's site reads the last prompt token (``x[:, -1]``: correct under left
   padding), a masked window of them, the masked mean of the whole prompt pass, both the last
   token and that mean side by side (``read="last+mean"``, a (B, 2d) feature), or a running
   mean over generated tokens; the folded probe
   gives the posterior, the policy the expected utilities and gates. ``torch.where(starts, new,
   old)`` copies them into preallocated per-row buffers: the latch. Decode steps keep what the
   prompt pass decided (``read="running"`` re-decides every step instead).
3. Whenever gates change (pass start, read), ONE matmul ``gates (B, S) @ stacked (S, n * d)``
   gives every steered site's delta, split into (B, 1, d) views. ``stacked`` already sums every
   bound vector's strength-weighted direction per strategy and site. Each site's write hook is
   then one ``torch.addcmul(x, posw, delta)``: all its vectors, in one operation. With a schedule
   per strategy the scaled gates ``gates * sched`` (B, T, S) differ per token, so each write hook
   takes its own site's delta, ``(gates * sched) @ stacked[site]`` (B, T, d), still one matmul.

No ``.item()``, ``.tolist()``, ``.cpu()``, host copies or branches on tensor values. The only
python branches are on shapes (batch growth, trace bookkeeping) and on the plan's constants.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch

from ..backends import Hook
from ..core._sites import Site, resolve_site
from ._plan import ControlPlan, exec_order
from ._policy import decide
from ._positions import PositionTracker
from ._spans import SpanTracker, ThinkMarkers, uses_spans
from ._tensors import stacked_lowrank, widened_probe

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["ControlState", "build_hooks"]


class _Run:
    """The mutable per-row state of one thread's passes (buffers latched across decode steps)."""

    batch: int
    capacity: int
    mask: torch.Tensor | None  # (B, T) attention mask of the pass, window reads
    starts: torch.Tensor  # (B,) rows in a prompt pass
    last_gen: torch.Tensor  # (B,) decode index
    posw: torch.Tensor  # (B, T, 1) write weights
    sched: torch.Tensor  # (B, T, S) per-strategy schedule of the pass (else (1, 1, 1) ones)
    scaled: torch.Tensor  # (B, T', S) gates x per-strategy schedule (T' = 1 without one)
    deltas: torch.Tensor  # (B, 1, n, d) (plan-wide schedule only)
    coefs: torch.Tensor  # (B, T', K) gated strengths of the low-rank components
    custom_coefs: torch.Tensor  # (B, T', J) gated strengths of the custom operators
    posterior: torch.Tensor  # (B, C)
    eu: torch.Tensor  # (B, S)
    weights: torch.Tensor  # (B, S)
    gates: torch.Tensor  # (B, S)
    fault: torch.Tensor  # (B, 1) 1.0 where the posterior was not finite (fallback applied)
    acc: torch.Tensor  # (B, d) running-mean accumulator
    last_feat: (
        torch.Tensor
    )  # (B, d) the read site's last token of the previous pass (after_thinking)
    monitor_post: dict[str, torch.Tensor]
    records: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    span_records: list[torch.Tensor]  # (B, T) span codes per traced pass (with span tracking)


class ControlState:
    """Constants shared by the hooks of one patched plan, and per-thread buffers; all on device.

    The constants (folded probe, payoff, stacked deltas, schedule) are read-only and shared. The
    per-row buffers that latch a sequence's decision live in a :class:`_Run` kept per thread
    (``threading.local``): concurrent requests served from worker threads through one patched
    model never read or overwrite each other's decisions. The patching thread's run is made at
    patch time; another thread's on its first pass (eagerly, before any compiled replay).
    """

    def __init__(
        self,
        plan: ControlPlan,
        model: OysterModel,
        *,
        max_batch: int,
        trace: bool,
        positions: str,
        gain: float,
        markers: ThinkMarkers | None = None,
    ) -> None:
        dev, policy = model.device, plan.policy
        assert policy is not None, "ControlPlan.__post_init__ always sets a policy"
        self.tracker = PositionTracker()
        # reasoning spans (control._spans): only when the plan names a span, reads after the
        # thinking, or traces a model with think markers -- otherwise no hooks, no cost
        self.in_span = uses_spans(positions)  # schedules count steps within each token's span
        wants_spans = (
            self.in_span or plan.read == "after_thinking" or (trace and markers is not None)
        )
        self.spans = SpanTracker(markers, self.tracker) if wants_spans else None
        self.read_mode, self.window, self.positions = plan.read, plan.window, positions
        self.mode, self.temperature = policy.mode, float(policy.temperature)
        # (C, d), (C,); (C, 2d) for a read="last+mean" probe: [W_last, W_mean]
        self.w, self.b = (t.to(dev, torch.float32) for t in plan.probe.folded())
        both = plan.read == "last+mean"  # the feature is [last, mean]: every probe reads its part
        # a trace reads one token as both its last token and its mean: W_last + W_mean
        d = plan.probe.d_model
        self.w_token = self.w[:, :d] + self.w[:, d:] if self.w.shape[1] == 2 * d else self.w
        self.payoff = policy.payoff.to(dev, torch.float32)  # (S, C)
        self.fallback = policy.fallback_gates().to(dev)  # (S,) fail closed
        self.monitor_wb = {
            k: tuple(t.to(dev, torch.float32) for t in widened_probe(p, both))
            for k, p in plan.monitors.items()
        }
        table = plan.schedule_table().to(dev) * gain  # (S, L)
        self.per_strategy = plan.per_strategy_schedule  # a constant of the plan
        self.schedule = table[0]  # (L,): the plan-wide schedule
        self.schedule_t = table.T.contiguous()  # (L, S): row i = every strategy's i-th multiplier
        self.sites = plan.sites
        stacked = [plan.stacked(site) for site in self.sites] or [
            torch.zeros(len(plan.strategies), 0)
        ]
        self.stacked = torch.cat(stacked, dim=1).to(dev, torch.float32)  # (S, n_sites * d)
        # per site: its (S, d) block of stacked in the model's dtype (schedule per strategy; the
        # write hook's .to(x.dtype) is then a no-op), or None where no vector writes there
        self.site_stacked = [
            s.to(dev, model.dtype) if bool(s.any()) else None for s in stacked[: len(self.sites)]
        ]
        self.device, self.dtype, self.d_model, self.trace = (
            dev,
            model.dtype,
            plan.probe.d_model,
            trace,
        )
        # low-rank parts per site (None where a site has only vectors) and their gains (S, K)
        self.low, self.low_gain = stacked_lowrank(plan, dev, self.dtype)
        # custom operators per site: (fn, direction, column j of their (S, J) gains)
        self.custom: list[list[tuple[Any, torch.Tensor, int]]] = []
        custom_gains: list[torch.Tensor] = []
        for site in self.sites:
            ops = []
            for fn, direction, g in plan.custom(site):
                ops.append((fn, direction.to(dev, self.dtype), len(custom_gains)))
                custom_gains.append(g)
            self.custom.append(ops)
        self.custom_gain = (
            torch.stack(custom_gains, dim=1)
            if custom_gains
            else torch.zeros(len(plan.strategies), 0)
        ).to(dev, torch.float32)  # (S, J)
        self.max_batch = max_batch
        self._local = threading.local()
        self._local.run = self._new_run()

    @property
    def run(self) -> _Run:
        """This thread's buffers (made on its first pass)."""
        run = getattr(self._local, "run", None)
        if run is None:
            run = self._local.run = self._new_run()
        return run

    def _new_run(self) -> _Run:
        run = _Run()
        dev = self.device
        run.batch = 0
        run.mask = None
        run.starts = torch.zeros(0, dtype=torch.bool, device=dev)
        run.last_gen = torch.full((1,), -1, dtype=torch.long, device=dev)
        run.posw = torch.zeros(1, 1, 1, device=dev, dtype=self.dtype)
        run.sched = torch.ones(1, 1, 1, device=dev)
        run.scaled = torch.zeros(1, 1, self.payoff.shape[0], device=dev)
        run.deltas = torch.zeros(1, 1, len(self.sites), self.d_model, device=dev)
        run.coefs = torch.zeros(1, 1, self.low_gain.shape[1], device=dev, dtype=self.dtype)
        run.custom_coefs = torch.zeros(
            1, 1, self.custom_gain.shape[1], device=dev, dtype=self.dtype
        )
        run.records, run.span_records = [], []
        self._allocate(run, self.max_batch)
        return run

    def _allocate(self, run: _Run, rows: int) -> None:
        """Preallocate per-row buffers (at patch time, or when a batch outgrows them)."""
        c, s = self.w.shape[0], self.payoff.shape[0]

        def new(*shape: int) -> torch.Tensor:
            t = torch.zeros(*shape, device=self.device)
            if not torch.compiler.is_compiling():  # not allowed while tracing a growth
                torch._dynamo.mark_static_address(t)  # stable addresses for CUDA-graph replay
            return t

        run.capacity = rows
        run.posterior, run.eu, run.weights, run.gates = (
            new(rows, c),
            new(rows, s),
            new(rows, s),
            new(rows, s),
        )
        run.fault = new(rows, 1)
        run.acc = new(rows, self.d_model)
        run.last_feat = new(rows, self.d_model)
        run.monitor_post = {k: new(rows, w.shape[0]) for k, (w, _) in self.monitor_wb.items()}

    # -- start of a pass: pre-hook on the first block, right after the position tracker --------
    def begin(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run = self.run
        hidden = args[0] if args else kwargs["hidden_states"]
        rows, tokens = hidden.shape[0], hidden.shape[1]
        if rows > run.capacity:  # a shape, known on the host
            self._allocate(run, max(rows, 2 * run.capacity))
        run.batch = rows
        # (B, T, 1): position - prompt end, < 0 on prompt tokens (set by the tracker's pre-hook)
        gen = cast(torch.Tensor, self.tracker.gen_index)
        run.last_gen = gen[:, -1, 0]  # (B,)
        run.starts = run.last_gen < 0  # (B,) a prompt pass: this row starts a new sequence
        run.gates[:rows].mul_((~run.starts).unsqueeze(-1).float())  # undecided before the read
        spans = self.spans
        # (B, T, 1): 0 on prompt tokens; i for the i-th token of its span (span positions) or
        # the i-th generated token (otherwise)
        span_of = spans if spans is not None and self.in_span else None
        if span_of is not None:  # (B, T): set by the span tracker's pre-hook
            step = (cast(torch.Tensor, span_of.index) + 1).unsqueeze(-1)
        else:
            step = gen + 1
        step = step.clamp(0, self.schedule.shape[0] - 1)
        if self.per_strategy:  # (B, T, S) multipliers; the write weight keeps only positions
            run.sched = self.schedule_t[step[..., 0]]
            posw = torch.ones_like(step, dtype=torch.float32)
        else:
            posw = self.schedule[step]  # (B, T, 1)
        if span_of is not None:
            posw = posw * span_of.mask(self.positions)
        elif self.positions != "all":
            posw = posw * self.tracker.mask(self.positions)
        run.posw = posw.to(self.dtype)
        if spans is not None and self.read_mode == "after_thinking":
            # rows whose first answer token opens this pass decide now, from the read site's
            # activation of the token before it (the close marker), before any site writes
            now = cast(torch.Tensor, spans.first_answer)[:, 0] & ~run.starts  # (B,)
            self._latch(run, run.last_feat[:rows], now)
        self._refresh(run, rows)
        if self.trace and tokens > 1:
            run.records, run.span_records = [], []

    def _refresh(self, run: _Run, rows: int) -> None:
        """Every site's delta from the current gates: one (B, S) @ (S, n * d) matmul.

        With a schedule per strategy the gates are scaled per token, ``gates * sched``
        (B, T, S), and each write hook takes its own site's delta from them.
        """
        n = len(self.sites)
        gates = run.gates[:rows].unsqueeze(1)  # (B, 1, S)
        if self.per_strategy:  # a constant of the plan
            gates = gates * run.sched  # (B, T, S)
            run.scaled = gates.to(self.dtype)
        else:
            deltas = (gates @ self.stacked).view(rows, 1, n, self.d_model)  # (B, 1, n, d)
            run.deltas = deltas.to(self.dtype)
        if self.low_gain.shape[1]:  # a constant of the plan
            run.coefs = (gates @ self.low_gain).to(self.dtype)  # (B, T', K)
        if self.custom_gain.shape[1]:  # a constant of the plan
            run.custom_coefs = (gates @ self.custom_gain).to(self.dtype)  # (B, T', J)

    # -- the read hook ------------------------------------------------------------------------
    def read(self, x: torch.Tensor, gate: bool, monitors: tuple[str, ...]) -> None:
        """Decide from this pass's reading and latch it for rows in a prompt pass.

        ``gate``: the gating probe reads here; ``monitors``: the monitor probes that read here
        (they latch at the prompt pass; with ``read="running"`` the gate re-decides every step).
        """
        run = self.run
        rows, running = x.shape[0], gate and self.read_mode == "running"
        if gate and self.read_mode == "after_thinking":
            self._read_after_thinking(run, x, monitors)
            return
        feature = self._feature(run, x, running)  # (B, d)
        new = [(run.monitor_post[k], _posterior(feature, *self.monitor_wb[k])) for k in monitors]
        if gate:
            new += self._decide(run, feature)
        start = run.starts.unsqueeze(-1)  # (B, 1)
        for buf, value in new:
            rows_buf = buf[:rows]
            rows_buf.copy_(value if running else torch.where(start, value, rows_buf))
        if gate:
            self._refresh(run, rows)
            if self.trace:
                self._record(run, x, rows)

    def _decide(self, run: _Run, feature: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(buffer, new value) pairs of the gate's decision from ``feature`` (B, d)."""
        posterior = _posterior(feature, self.w, self.b)  # (B, C)
        eu, weights, gates = decide(
            posterior, self.payoff, self.mode, self.temperature, self.fallback
        )
        fault = (~torch.isfinite(posterior).all(-1, keepdim=True)).float()  # (B, 1)
        return [
            (run.fault, fault),
            (run.posterior, posterior),
            (run.eu, eu),
            (run.weights, weights),
            (run.gates, gates),
        ]

    def _latch(self, run: _Run, feature: torch.Tensor, rows_now: torch.Tensor) -> None:
        """Copy the decision from ``feature`` (B, d) into the buffers of rows ``rows_now`` (B,)."""
        rows, now = feature.shape[0], rows_now.unsqueeze(-1)
        for buf, value in self._decide(run, feature):
            buf[:rows].copy_(torch.where(now, value, buf[:rows]))

    def _read_after_thinking(self, run: _Run, x: torch.Tensor, monitors: tuple[str, ...]) -> None:
        """``read="after_thinking"``: decide at the token before each row's first answer token.

        A decode step's first answer token was latched in :meth:`begin` from ``last_feat``; a
        pass that holds the first answer token after its first token (KV cache off, a
        teacher-forced reply) latches here from the activation of the token before it.
        """
        rows = x.shape[0]
        start = run.starts.unsqueeze(-1)  # monitors latch at the prompt pass, as with "last"
        for k in monitors:
            buf = run.monitor_post[k][:rows]
            buf.copy_(torch.where(start, _posterior(x[:, -1].float(), *self.monitor_wb[k]), buf))
        assert self.spans is not None, "read='after_thinking' always tracks spans"
        first = cast(torch.Tensor, self.spans.first_answer)  # (B, T), set by the span pre-hook
        if x.shape[1] > 1:  # a shape: only passes of several tokens can hold it past index 0
            at = first.long().argmax(-1)  # (B,) 0 when absent
            before = (at - 1).clamp(min=0).view(rows, 1, 1).expand(rows, 1, x.shape[2])
            feature = x.gather(1, before)[:, 0].float()  # (B, d)
            self._latch(run, feature, first[:, 1:].any(-1))
        run.last_feat[:rows].copy_(x[:, -1].float())
        self._refresh(run, rows)
        if self.trace:
            self._record(run, x, rows)

    def _feature(self, run: _Run, x: torch.Tensor, running: bool) -> torch.Tensor:
        """(B, T, d) -> (B, d) what a probe reads in this pass."""
        last = x[:, -1].float()  # (B, d): the last prompt token under left padding
        if running:  # mean over the last prompt token and every generated token so far
            acc = run.acc[: x.shape[0]]
            acc.copy_(torch.where(run.starts.unsqueeze(-1), last, acc + last))
            return acc / (run.last_gen + 2).clamp(min=1).float().unsqueeze(-1)
        if self.read_mode not in ("window", "mean", "last+mean"):
            return last
        # a shape, not a value: "mean" reads every token of the pass (the whole prompt)
        k = min(self.window, x.shape[1]) if self.read_mode == "window" else x.shape[1]
        mask = run.mask
        if mask is not None and mask.shape == x.shape[:2]:
            real = mask[:, -k:].float()  # (B, k): left padding excluded
        else:
            real = x.new_ones(x.shape[0], k, dtype=torch.float32)
        total = torch.einsum("bkd,bk->bd", x[:, -k:].float(), real)  # (B, d)
        mean = total / real.sum(1, keepdim=True).clamp(min=1.0)
        # "last+mean": both side by side, (B, 2d), what capture(pool="last+mean") reads
        return torch.cat([last, mean], -1) if self.read_mode == "last+mean" else mean

    def _record(self, run: _Run, x: torch.Tensor, rows: int) -> None:
        posterior = (x.float() @ self.w_token.T + self.b).softmax(-1)  # (B, T, C)
        eu = posterior @ self.payoff.T  # (B, T, S)
        applied = run.gates[:rows].unsqueeze(1) * run.posw.float()  # (B, T, S)
        if self.per_strategy:  # a constant of the plan
            applied = applied * run.sched
        run.records.append((posterior.detach(), eu.detach(), applied.detach()))
        if self.spans is not None:
            run.span_records.append(cast(torch.Tensor, self.spans.span).detach())

    # -- the fused write hook of one site -----------------------------------------------------
    def write_fn(self, index: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The hook of steered site ``index``: all its vectors in one ``addcmul``.

        With low-rank parts at the site (interventions, and the ablate/clamp operators), the
        same ``addcmul`` also adds their input-dependent edit ``((x @ A.T + c) * coefs) @ R``
        (every binding's rank components at once), and each custom operator's gated
        ``fn(x, direction)``.
        """
        low, custom = self.low[index], self.custom[index]
        stacked = self.site_stacked[index] if self.per_strategy else None
        # no vector writes at this site: a zero delta, allocated once (not per call)
        zero = torch.zeros((), device=self.device, dtype=self.dtype)
        if low is not None or custom or self.per_strategy:  # constants of the plan

            def write_edit(x: torch.Tensor) -> torch.Tensor:
                run = self.run
                if self.per_strategy:  # this site's (B, T, d) delta from the scaled gates
                    delta = (
                        run.scaled.to(x.dtype) @ stacked.to(x.dtype)
                        if stacked is not None
                        else zero.to(x.dtype)
                    )
                else:
                    delta = run.deltas[:, :, index].to(x.dtype)  # (B, 1, d)
                if low is not None:
                    A, c, R, lo, hi = low
                    z = (x @ A.T.to(x.dtype) + c.to(x.dtype)) * run.coefs[:, :, lo:hi].to(x.dtype)
                    delta = delta + z @ R.to(x.dtype)  # (B, T, d)
                for fn, direction, j in custom:
                    gain = run.custom_coefs[:, :, j : j + 1].to(x.dtype)
                    delta = delta + gain * fn(x, direction.to(x.dtype))
                return torch.addcmul(x, run.posw.to(x.dtype), delta)

            return write_edit

        def write(x: torch.Tensor) -> torch.Tensor:
            run = self.run
            # .to(x.dtype): a no-op unless the model was cast after patch (then a device-side cast)
            return torch.addcmul(
                x, run.posw.to(x.dtype), run.deltas[:, :, index].to(x.dtype)
            )  # (B, T, d) + (B, T, 1) * (B, 1, d)

        return write

    def grab_mask(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Top-level pre-hook keeping a reference to the (B, T) attention mask (window, mean and
        last+mean reads)."""
        mask = kwargs.get("attention_mask")
        self.run.mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None


def build_hooks(plan: ControlPlan, model: OysterModel, state: ControlState) -> list[Hook]:
    """One read hook per probe site and one fused write hook per steered site, in forward order."""
    gate_site = resolve_site(plan.probe.site, model.n_layers)
    reads: dict[Site, list[str]] = {gate_site: []}
    for name, probe in plan.monitors.items():
        reads.setdefault(resolve_site(probe.site, model.n_layers), []).append(name)
    hooks = [
        Hook(site, _reader(state, site == gate_site, tuple(names))) for site, names in reads.items()
    ]
    for index, name in enumerate(state.sites):
        hooks.append(Hook(resolve_site(name, model.n_layers), state.write_fn(index), write=True))
    return sorted(hooks, key=lambda h: exec_order(h.site, h.write))


def _reader(
    state: ControlState, gate: bool, monitors: tuple[str, ...]
) -> Callable[[torch.Tensor], None]:
    def read(x: torch.Tensor) -> None:
        state.read(x, gate, monitors)

    return read


def _posterior(feature: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, d) -> (B, C) with a folded probe: ``softmax(feature @ W.T + b)``."""
    return torch.addmm(b, feature, w.T).softmax(-1)
