"""The probe-gated plan on vLLM's flattened, continuously batched tokens: buffers and hook math.

vLLM runs one forward pass per engine step over the tokens of every scheduled request, flattened
to ``(N, d)``: prompt chunks of new requests next to single decode tokens of running ones. The
library's hooks (``oyster_steer.control``) see ``(B, T, d)`` rows instead, so this module keeps the
same decisions per *request slot* rather than per row:

* the host fills three per-token buffers before each step (:meth:`PlanState.prepare`, from the
  model runner's own host-side batch: request order, query start offsets, prompt lengths): the
  request slot of each token, its request's prompt length, and whether it is a real token (1) or
  padding (0). A slot is allocated when a request first appears and freed when vLLM drops it, so
  a request keeps its slot while other requests join and leave the batch;
* on the device, per token: ``gen = position - prompt_len`` (negative on prompt tokens),
  ``is_last = position == prompt_len - 1`` (this step holds the request's last prompt token),
  and the write weight ``schedule[clamp(gen + 1)] x positions mask`` (with a schedule per
  strategy, ``schedule[:, clamp(gen + 1)]`` scales each strategy's gate instead);
* the read hook computes the folded probe's posterior and the policy's gates for every token and
  latches them into the slot buffers only where ``is_last`` (``index_copy_`` into the token's
  slot, other tokens into a scratch row): the decision is made once per request, from its last
  prompt token, whether the prompt came in one step or in several chunks;
* ``read="mean"`` and ``read="last+mean"`` (the probe reads the mean of the prompt tokens'
  residuals, or the last prompt token and that mean side by side, as the library's hooks do):
  each read site keeps a per-slot running sum of its residual over the request's prompt tokens
  (``index_add_`` of every token with ``gen < 0`` into its slot, every other token into the
  scratch row). A step that holds a request's position 0 first zeroes its slot's sum
  (``index_fill_``), so a request that is preempted and recomputes its prompt from the start
  does not count it twice. When the step holds the last prompt token, every prompt token has
  been added (this step's after the earlier chunks'), and ``sum / prompt_len`` at that token is
  the mean over all the prompt's tokens -- what the library's mean read takes over the prompt
  pass (every real token: chat template and BOS included, left padding excluded). Prefix caching
  skips the cached prompt tokens' forward pass, so these reads need it off (checked at load);
* every steered site adds ``weight x gates[slot] @ stacked[site]``: before the read site only
  generated tokens are written (the decision does not exist for prompt tokens yet, as in the
  library), after it every token of the step is written with the gates just latched.

Nothing here reads a device value on the host: the per-step inputs are host data that vLLM
already holds, copied into persistent buffers (fixed addresses, so captured graphs stay valid).
The only device-to-host copy is the decision log, taken after the forward pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...control._policy import decide
from ...control._tensors import stacked_lowrank, widened_probe
from ...core import resolve_site

__all__ = ["LOGGER", "POOLED_READS", "PlanState", "SUPPORTED_READS"]

LOGGER = "vllm.oyster_steer"  # under vLLM's "vllm" logger: its handler and level apply

SUPPORTED_READS = ("last", "mean", "last+mean")
POOLED_READS = ("mean", "last+mean")  # need every prompt token: a per-slot running sum


@dataclass
class Pending:
    """Decisions latched in one step, copied off the device for the log."""

    request_ids: list[str]
    resumed: list[bool]  # re-read after preemption: checked against the logged decision
    posterior: torch.Tensor
    expected_utility: torch.Tensor
    gates: torch.Tensor
    monitors: dict[str, torch.Tensor]


class PlanState:
    """Device buffers of one served plan, and the hook bodies that read and write them.

    Args:
        plan: a :class:`oyster_steer.ControlPlan` (``read`` one of :data:`SUPPORTED_READS`).
        n_layers, d_model: of the served model (checked against the plan).
        device, dtype: of the served model's activations.
        max_tokens: most tokens in one step (vLLM's ``max_num_batched_tokens``, padded).
        max_slots: most requests alive at once (vLLM's ``max_num_seqs`` is enough; grows).
    """

    def __init__(
        self,
        plan: Any,
        *,
        n_layers: int,
        d_model: int,
        device: torch.device,
        dtype: torch.dtype,
        max_tokens: int,
        max_slots: int,
    ) -> None:

        if plan.read not in SUPPORTED_READS:
            raise ValueError(
                f"the plan reads with read={plan.read!r}, which the vLLM plugin does not support: "
                "rebuild the plan with read='last', 'mean' or 'last+mean' (a probe fit on the last "
                "prompt token, the prompt's mean, or both) or serve it with transformers "
                "(oyster_steer.patch)"
            )
        if plan.probe.d_model != d_model:
            raise ValueError(
                f"the plan's probe has width {plan.probe.d_model} but the served model has "
                f"hidden_size={d_model}: serve the plan with the model it was exported with"
            )
        self.decide = decide
        self.plan, self.device, self.dtype = plan, device, dtype
        self.d_model, self.n_layers = d_model, n_layers
        policy = plan.policy
        self.mode, self.temperature = policy.mode, float(policy.temperature)
        self.fallback = policy.fallback_gates().to(device, torch.float32)  # (S,) fail closed
        self.intents, self.strategies = tuple(plan.probe.labels), tuple(plan.strategies)
        # (C, d); (C, 2d) for read="last+mean": [W_last, W_mean]
        self.w, self.b = (t.to(device, torch.float32) for t in plan.probe.folded())
        self.payoff = policy.payoff.to(device, torch.float32)  # (S, C)
        self.read_site = resolve_site(plan.probe.site, n_layers)
        self.read_mode = plan.read
        self.pooled = plan.read in POOLED_READS  # a constant of the plan
        both = plan.read == "last+mean"  # every probe reads its own part of [last, mean]
        self.monitors: dict[str, tuple[Any, torch.Tensor, torch.Tensor]] = {}
        for name, p in plan.monitors.items():
            mw, mb = widened_probe(p, both)
            self.monitors[name] = (
                resolve_site(p.site, n_layers),
                mw.to(device, torch.float32),
                mb.to(device, torch.float32),
            )
        # the read points, one per site: (gate reads here, monitors that read here)
        groups: dict[Any, list[str]] = {self.read_site: []}
        for name, (site, _, _) in self.monitors.items():
            groups.setdefault(site, []).append(name)
        self.reads = {
            site: (site == self.read_site, tuple(names)) for site, names in groups.items()
        }
        self.monitor_labels = {name: tuple(p.labels) for name, p in plan.monitors.items()}
        self.sites = [resolve_site(s, n_layers) for s in plan.sites]
        stacked = [plan.stacked(s) for s in plan.sites] or [torch.zeros(len(self.strategies), 0)]
        self.stacked = torch.cat(stacked, dim=1).to(device, torch.float32)  # (S, n * d)
        # low-rank parts per site, as in the library: the hook adds ((x @ A.T + c) * coefs) @ R,
        # coefs = gates @ G; rank components of all sites concatenated (one matmul for all)
        self.low, self.low_gain = stacked_lowrank(plan, device, dtype)  # (S, K) gains
        table = plan.schedule_table().to(device)  # (S, L)
        self.per_strategy = plan.per_strategy_schedule  # a constant of the plan
        self.schedule, self.schedule_t = table[0], table.T.contiguous()  # (L,), (L, S)
        self.tok_sched = torch.ones(max_tokens, len(self.strategies), device=device)
        self.positions_mode = plan.positions
        self.max_tokens = max_tokens
        # per-token inputs, filled by the host before each step (persistent addresses)
        self.tok_slot = torch.zeros(max_tokens, dtype=torch.long, device=device)
        self.tok_plen = torch.zeros(max_tokens, dtype=torch.long, device=device)
        self.tok_live = torch.zeros(max_tokens, dtype=torch.float32, device=device)
        pin = device.type == "cuda"
        self.host_slot = torch.zeros(max_tokens, dtype=torch.long, pin_memory=pin)
        self.host_plen = torch.zeros(max_tokens, dtype=torch.long, pin_memory=pin)
        self.host_live = torch.zeros(max_tokens, dtype=torch.float32, pin_memory=pin)
        self.slots: dict[str, int] = {}
        self.free: list[int] = []
        self.logged: set[str] = set()
        self.first: dict[str, tuple[int, torch.Tensor]] = {}  # the logged (strategy, posterior)
        self._allocate(max_slots)
        self.neutral()
        # per-step values derived on the device by begin() (rebound each step)
        self.is_last = torch.zeros(max_tokens, dtype=torch.bool, device=device)
        self.sum_target = torch.zeros(max_tokens, dtype=torch.long, device=device)
        self.reset_target = torch.zeros(max_tokens, dtype=torch.long, device=device)
        self.count = torch.ones(max_tokens, 1, device=device)
        self.weight = torch.zeros(max_tokens, 1, dtype=dtype, device=device)
        self.contrib = torch.zeros(max_tokens, len(self.sites), d_model, dtype=dtype, device=device)
        self.tok_weight = torch.zeros(max_tokens, 1, dtype=dtype, device=device)
        self.coefs = torch.zeros(max_tokens, self.low_gain.shape[1], dtype=dtype, device=device)

    # -- slots ---------------------------------------------------------------------------------
    def _allocate(self, slots: int) -> None:
        """(Re)allocate the per-slot buffers; row ``slots`` is the scratch row."""
        c, s = self.w.shape[0], self.payoff.shape[0]
        old = getattr(self, "gates", None)

        def grow(name: str, width: int) -> torch.Tensor:
            new = torch.zeros(slots + 1, width, device=self.device)
            prev = getattr(self, name, None) if old is not None else None
            if prev is not None:
                new[: prev.shape[0] - 1] = prev[:-1]
            return new

        self.posterior, self.eu, self.weights, self.gates = (
            grow("posterior", c),
            grow("eu", s),
            grow("weights", s),
            grow("gates", s),
        )
        prev_mon = getattr(self, "monitor_post", {}) if old is not None else {}
        self.monitor_post = {}
        for name, (_, w, _) in self.monitors.items():
            new = torch.zeros(slots + 1, w.shape[0], device=self.device)
            if name in prev_mon:
                new[: prev_mon[name].shape[0] - 1] = prev_mon[name][:-1]
            self.monitor_post[name] = new
        # pooled reads: per read point, the running sum of its residual over each slot's prompt
        prev_sums = getattr(self, "sums", {}) if old is not None else {}
        self.sums = {}
        for key in self.reads.values() if self.pooled else ():
            new = torch.zeros(slots + 1, self.d_model, device=self.device)
            if key in prev_sums:
                new[: prev_sums[key].shape[0] - 1] = prev_sums[key][:-1]
            self.sums[key] = new
        start = getattr(self, "capacity", 0)
        self.free.extend(range(slots - 1, start - 1, -1))
        self.capacity = slots
        self.scratch = slots

    def slot_of(self, request_id: str, fresh: list[int]) -> int:
        slot = self.slots.get(request_id)
        if slot is None:
            if not self.free:
                self._allocate(2 * self.capacity)
                # the scratch row moved: tokens already mapped to it are rewritten by prepare()
            slot = self.free.pop()
            self.slots[request_id] = slot
            fresh.append(slot)
        return slot

    def release(self, request_id: str) -> None:
        """vLLM dropped the request: its slot is free again."""
        slot = self.slots.pop(request_id, None)
        if slot is not None:
            self.free.append(slot)
        self.logged.discard(request_id)
        self.first.pop(request_id, None)

    # -- host side, before a step --------------------------------------------------------------
    def neutral(self) -> None:
        """Per-token inputs for a dummy run (profiling, warm-up, graph capture): no request."""
        self.host_slot.fill_(self.scratch)
        self.host_plen.fill_(1 << 40)
        self.host_live.zero_()
        self._upload()

    def prepare(
        self,
        request_ids: list[str],
        query_start: np.ndarray,
        prompt_lens: np.ndarray,
        computed: np.ndarray,
    ) -> list[tuple[str, int]]:
        """Fill the per-token inputs of one step; returns the requests that decide in it.

        Args:
            request_ids: the batch's requests in token order; query_start: (R + 1,) offsets of
                each request's tokens; prompt_lens: (R,) prompt lengths; computed: (R,) tokens
                already in the KV cache before this step.
        """
        n = len(request_ids)
        counts = np.diff(query_start[: n + 1]).astype(np.int64)
        total = int(query_start[n])
        if total > self.max_tokens:
            raise ValueError(
                f"a step of {total} tokens exceeds the plan's buffers ({self.max_tokens}): "
                "raise max_num_batched_tokens consistently"
            )
        fresh: list[int] = []
        slots = np.array([self.slot_of(r, fresh) for r in request_ids], dtype=np.int64)
        self.host_slot.fill_(self.scratch)
        self.host_plen.fill_(1 << 40)
        self.host_live.zero_()
        if total:
            self.host_slot.numpy()[:total] = np.repeat(slots, counts)
            self.host_plen.numpy()[:total] = np.repeat(prompt_lens[:n].astype(np.int64), counts)
            self.host_live.numpy()[:total] = 1.0
        if fresh:  # a new request: nothing decided yet (the slot may hold an old request's gates)
            rows = torch.tensor(fresh, dtype=torch.long).to(self.device, non_blocking=True)
            for buf in (
                self.posterior,
                self.eu,
                self.weights,
                self.gates,
                *self.monitor_post.values(),
                *self.sums.values(),
            ):
                buf.index_fill_(0, rows, 0.0)
        self._upload()
        end = computed[:n] + counts
        deciding = (computed[:n] < prompt_lens[:n]) & (end >= prompt_lens[:n])
        if self.pooled and fresh:
            skipped = [
                request_ids[i]
                for i in range(n)
                if slots[i] in fresh and 0 < computed[i] < prompt_lens[i]
            ]
            if skipped:  # host data: a new request whose first prompt tokens were not run here
                logging.getLogger(LOGGER).warning(
                    "oyster_steer: %s started at a cached prefix; its read=%r misses those tokens",
                    ", ".join(skipped),
                    self.read_mode,
                )
        restarted = [
            request_ids[i] for i in np.flatnonzero(deciding) if request_ids[i] in self.logged
        ]
        if restarted:  # only a preempted request prefills its prompt a second time
            logging.getLogger(LOGGER).info(
                "oyster_steer: %s resumed after preemption; re-read (checked against its logged "
                "decision after the step)",
                ", ".join(restarted),
            )
        return [(request_ids[i], int(slots[i])) for i in np.flatnonzero(deciding)]

    def _upload(self) -> None:
        self.tok_slot.copy_(self.host_slot, non_blocking=True)
        self.tok_plen.copy_(self.host_plen, non_blocking=True)
        self.tok_live.copy_(self.host_live, non_blocking=True)

    # -- device side: hook bodies --------------------------------------------------------------
    def begin(self, positions: torch.Tensor, tokens: int) -> None:
        """Start of a pass (pre-hook of the first layer): per-token weights and deltas."""
        slot, plen = self.tok_slot[:tokens], self.tok_plen[:tokens]
        gen = positions[:tokens].long() - plen  # (N,) < 0 on prompt tokens
        step = (gen + 1).clamp(0, self.schedule.shape[0] - 1)
        if self.per_strategy:  # (N, S) multipliers scale the gates; the weight keeps the rest
            self.tok_sched = self.schedule_t[step]
            weight = self.tok_live[:tokens]
        else:
            weight = self.schedule[step] * self.tok_live[:tokens]
        if self.positions_mode == "prompt":
            weight = weight * (gen < 0)
        elif self.positions_mode == "generated":
            weight = weight * (gen >= 0)
        self.is_last = gen == -1
        self.slot_now = slot
        if self.pooled:  # a constant of the plan
            scratch = torch.full_like(slot, self.scratch)
            self.sum_target = torch.where(gen < 0, slot, scratch)  # prompt tokens -> their slot
            # a step from a request's position 0 starts its sum afresh (a preempted request
            # recomputes its prompt: not counted twice); every other token zeroes the scratch row
            self.reset_target = torch.where(positions[:tokens] == 0, slot, scratch)
            self.count = plen.clamp(min=1).float().unsqueeze(-1)  # (N, 1): prompt tokens
        self.weight = weight.unsqueeze(-1)  # (N, 1)
        # before the read, only generated tokens carry the (latched) decision
        self._refresh(self.weight * (gen >= 0).unsqueeze(-1))

    def _refresh(self, weight: torch.Tensor) -> None:
        n, tokens = len(self.sites), weight.shape[0]
        gates = self.gates[self.slot_now]  # (N, S)
        if self.per_strategy:  # a constant of the plan
            gates = gates * self.tok_sched  # (N, S): each strategy's schedule at each token
        delta = gates @ self.stacked  # (N, n * d)
        self.contrib = (weight * delta).view(tokens, n, self.d_model).to(self.dtype)
        if self.low_gain.shape[1]:  # a constant of the plan
            self.tok_weight = weight.to(self.dtype)
            self.coefs = (gates @ self.low_gain).to(self.dtype)  # (N, K)

    def read(self, x: torch.Tensor, gate: bool, monitors: tuple[str, ...]) -> None:
        """Read (N, d) residuals: latch the probe's decision where a request's prompt ends."""
        feature = x.float()
        if self.pooled:  # a constant of the plan
            feature = self._pooled(feature, (gate, monitors))
        target = torch.where(
            self.is_last, self.slot_now, torch.full_like(self.slot_now, self.scratch)
        )
        for name in monitors:
            _, w, b = self.monitors[name]
            self.monitor_post[name].index_copy_(0, target, torch.addmm(b, feature, w.T).softmax(-1))
        if gate:
            posterior = torch.addmm(self.b, feature, self.w.T).softmax(-1)  # (N, C)
            eu, weights, gates = self.decide(
                posterior, self.payoff, self.mode, self.temperature, self.fallback
            )
            for buf, value in (
                (self.posterior, posterior),
                (self.eu, eu),
                (self.weights, weights),
                (self.gates, gates),
            ):
                buf.index_copy_(0, target, value)
            self._refresh(self.weight)

    def _pooled(self, x: torch.Tensor, key: tuple[bool, tuple[str, ...]]) -> torch.Tensor:
        """(N, d) float residuals -> (N, d) mean, or (N, 2d) [last, mean] for ``"last+mean"``.

        Exact at each request's last prompt token (the only rows latched): by then its slot's
        sum holds every prompt token of the request, from this step and the earlier chunks.
        """
        sums = self.sums[key]
        sums.index_fill_(0, self.reset_target, 0.0)
        sums.index_add_(0, self.sum_target, x)
        mean = sums.index_select(0, self.slot_now) / self.count  # (N, d)
        return torch.cat([x, mean], -1) if self.read_mode == "last+mean" else mean

    def write(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Steered site ``index``: ``x + weight * gates[slot] @ stacked[site]`` (one add), plus
        the site's low-rank edit ``weight * ((x @ A.T + c) * coefs) @ R`` where it has one."""
        return x + self.delta(x, index)

    def delta(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """What site ``index`` adds to the residual-stream value ``x`` (N, d) at that site."""
        low = self.low[index]
        if low is None:  # a constant of the plan
            return self.contrib[:, index]
        a, c, r, lo, hi = low
        z = (x @ a.T + c) * self.coefs[:, lo:hi]  # (N, K): input-dependent, so x is the full value
        return torch.addcmul(self.contrib[:, index], self.tok_weight, z @ r)

    # -- after a step: the decision log --------------------------------------------------------
    def collect(self, deciding: list[tuple[str, int]]) -> Pending | None:
        """Copy the decisions latched in this step off the device (outside the forward pass):
        new ones for the log, and re-reads of preempted requests for the check in :meth:`records`."""
        if not deciding:
            return None
        rows = torch.tensor([s for _, s in deciding], dtype=torch.long).to(self.device)

        def take(buf: torch.Tensor) -> torch.Tensor:
            return buf.index_select(0, rows).to("cpu", non_blocking=True)

        resumed = [r in self.logged for r, _ in deciding]
        self.logged.update(r for r, _ in deciding)
        return Pending(
            [r for r, _ in deciding],
            resumed,
            take(self.posterior),
            take(self.eu),
            take(self.gates),
            {k: take(v) for k, v in self.monitor_post.items()},
        )

    def records(self, pending: Pending) -> list[dict[str, Any]]:
        """One JSON-able record per newly decided request. A preempted request's re-read is not
        logged again: it is checked against its logged decision (a warning if they differ)."""
        out = []
        for i, rid in enumerate(pending.request_ids):
            post, gates = pending.posterior[i], pending.gates[i]
            if pending.resumed[i]:
                self._check_reread(rid, int(gates.argmax()), post)
                continue
            self.first[rid] = (int(gates.argmax()), post)
            out.append(
                {
                    "request_id": rid,
                    "intent": self.intents[int(post.argmax())],
                    "strategy": self.strategies[int(gates.argmax())],
                    "posterior": {
                        k: round(float(v), 6) for k, v in zip(self.intents, post, strict=True)
                    },
                    "gates": {
                        k: round(float(v), 6) for k, v in zip(self.strategies, gates, strict=True)
                    },
                    "expected_utility": {
                        k: round(float(v), 6)
                        for k, v in zip(self.strategies, pending.expected_utility[i], strict=True)
                    },
                    "monitors": {
                        name: {
                            k: round(float(v), 6)
                            for k, v in zip(self.monitor_labels[name], t[i], strict=True)
                        }
                        for name, t in pending.monitors.items()
                    },
                }
            )
        return out

    def _check_reread(self, request_id: str, strategy: int, posterior: torch.Tensor) -> None:
        logged = self.first.get(request_id)
        if logged is None:  # decided and re-read before the first log was written
            return
        if logged[0] != strategy or not torch.allclose(logged[1], posterior, atol=1e-3):
            logging.getLogger(LOGGER).warning(
                "oyster_steer: %s re-read after preemption gave a different decision "
                "(strategy %s, posterior %s; logged %s, %s); it is steered with the new one",
                request_id,
                self.strategies[strategy],
                [round(float(v), 4) for v in posterior],
                self.strategies[logged[0]],
                [round(float(v), 4) for v in logged[1]],
            )
