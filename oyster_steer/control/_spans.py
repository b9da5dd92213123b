"""Reasoning spans on the device: prompt, thinking (``<think> ... </think>``) and answer tokens.

Reasoning models (Qwen3, DeepSeek-R1 distills, SmolLM3) think inside a marked block before they
answer. A :class:`SpanTracker` follows each row's span from its token ids, without synchronising
with the host, so hooks can steer only the reasoning, only the answer, or decide at the end of the
thinking:

* an ``input_ids`` pre-hook on the token embedding keeps the pass's ids (B, T); a pre-hook on the
  first decoder block, after the :class:`~oyster_steer.control._positions.PositionTracker`, runs
  a small state machine over them with tensor ops (``cummax`` finds each token's last marker);
* every token of the first pass is a **prompt** token; a generated token is **thinking** when it
  is a marker or the last marker before it opened a block, else **answer** -- so a model that
  never thinks answers from its first generated token, a prompt that ends in ``<think>``
  (DeepSeek-R1's template) makes the first generated tokens thinking, and a closed block in the
  prompt (chat history, Qwen3's ``enable_thinking=False``) leaves the reply an answer;
* per row it carries across decode steps the marker state and how many thinking and answer
  tokens it has seen, so :attr:`index` counts tokens within their span (schedules use it), and
  :attr:`first_answer` marks the first answer token (``read="after_thinking"`` decides at the
  token just before it: the close marker, or the last prompt token of a model that did not think).

KV cache off (every step re-feeds the whole sequence from position 0): a pass that re-feeds the
previous pass's ids plus exactly one token continues that sequence, so its prompt end is kept and
the state machine reruns over the whole sequence. Markers are single token ids (see
:class:`ThinkMarkers`); an ``inputs_embeds`` pass without ids sees no markers.

Threads: like the position tracker, the state is kept per thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..backends import HookHandle
from ..core._think import ANSWER, PROMPT, SPANS, THINKING, ThinkMarkers, host_spans

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "ANSWER",
    "PROMPT",
    "SPANS",
    "THINKING",
    "SpanTracker",
    "ThinkMarkers",
    "ThinkingBudget",
    "host_spans",
    "parse_positions",
    "uses_spans",
]

_NAMED = {
    "all": frozenset(SPANS),
    "generated": frozenset({"thinking", "answer"}),
    "prompt": frozenset({"prompt"}),
    "thinking": frozenset({"thinking"}),
    "answer": frozenset({"answer"}),
}


def parse_positions(positions: str) -> frozenset[str]:
    """The spans a ``positions`` string selects: a name or names joined by ``+``.

    Names: ``all``, ``prompt``, ``generated`` (= ``thinking+answer``), ``thinking``, ``answer``.

    Example:
        >>> sorted(parse_positions("prompt+answer"))
        ['answer', 'prompt']
    """
    parts = [p.strip() for p in str(positions).split("+")]
    unknown = [p for p in parts if p not in _NAMED]
    if unknown or not parts:
        raise ValueError(
            f"positions={positions!r} is not a token selection: use one of {', '.join(_NAMED)} "
            "or several joined by '+' (e.g. 'prompt+answer')"
        )
    return frozenset().union(*(_NAMED[p] for p in parts))


def uses_spans(positions: str) -> bool:
    """Whether ``positions`` needs the span tracker: it names ``thinking`` or ``answer``, or combines names."""
    parts = [p.strip() for p in str(positions).split("+")]
    return len(parts) > 1 or any(p in ("thinking", "answer") for p in parts)


def resolve_markers(
    model: OysterModel, markers: ThinkMarkers | Sequence[Any] | None
) -> ThinkMarkers | None:
    """``markers`` as :class:`ThinkMarkers`; None: from the model's tokenizer (None if it has none)."""
    if markers is None:
        tok = getattr(model, "tokenizer", None)
        return ThinkMarkers.from_tokenizer(tok) if tok is not None else None
    if isinstance(markers, ThinkMarkers):
        return markers
    try:
        open_ids, close_ids = markers
    except (TypeError, ValueError):
        raise TypeError(
            f"think_markers={markers!r} is not a marker pair: pass ThinkMarkers or (open_ids, close_ids)"
        ) from None
    return ThinkMarkers(open_ids, close_ids)


class SpanTracker:
    """Device-side span of every token, per row; read it from hooks of the same pass.

    Attributes (valid inside a forward pass, after the first block started):
        span: (B, T) long, :data:`PROMPT`, :data:`THINKING` or :data:`ANSWER` per token.
        index: (B, T) long, the token's index within its span over the whole generated
            sequence (0 = first thinking / first answer token; -1 on prompt tokens).
        first_answer: (B, T) bool, the row's first answer token.
    """

    def __init__(self, markers: ThinkMarkers | None, positions: Any) -> None:  # a PositionTracker
        self.markers, self.tracker = markers, positions
        self._open: torch.Tensor | None = None
        self._close: torch.Tensor | None = None
        self._local = threading.local()

    @property
    def positions(self) -> torch.Tensor | None:
        """(B, T) positions of the pass, from the position tracker (what token selections read)."""
        return self.tracker.positions

    @property
    def span(self) -> torch.Tensor | None:
        return getattr(self._local, "span", None)

    @property
    def index(self) -> torch.Tensor | None:
        return getattr(self._local, "index", None)

    @property
    def first_answer(self) -> torch.Tensor | None:
        return getattr(self._local, "first_answer", None)

    def attach(self, model: OysterModel) -> HookHandle:
        """Start tracking ``model`` (any backend); attach the position tracker first."""
        if self.markers is not None:
            self._open = torch.tensor(self.markers.open, dtype=torch.long, device=model.device)
            self._close = torch.tensor(self.markers.close, dtype=torch.long, device=model.device)
        embed = model.hf.get_submodule(model.spec.embed)
        block = model.hf.get_submodule(f"{model.spec.layers}.0")
        handles = [
            embed.register_forward_pre_hook(self._grab_ids),
            block.register_forward_pre_hook(self._observe, with_kwargs=True),
        ]
        return HookHandle([h.remove for h in handles])

    def _grab_ids(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        ids = args[0] if args else None
        self._local.ids = ids if isinstance(ids, torch.Tensor) and ids.dim() == 2 else None

    def _observe(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        local = self._local
        pos = self.tracker.positions  # (B, T), set by the position tracker's pre-hook
        batch, width = pos.shape
        dev = pos.device
        ids = getattr(local, "ids", None)
        if ids is not None and tuple(ids.shape) != (batch, width):
            ids = None  # a pass embedded elsewhere (inputs_embeds): no markers seen
        local.ids = None
        starts = pos.amin(dim=-1) == 0  # (B,) the pass runs from the sequence's start
        begins = starts  # (B,) rows whose prompt starts in this pass
        if width > 1:  # a one-token pass re-runs no previous pass, and must not read its ids:
            # under torch.compile the read guards on their shape, and the second decode step
            # would recompile (the previous pass was prompt-wide before, one token wide now)
            prev = getattr(local, "prev_ids", None)
            if ids is not None and prev is not None and tuple(prev.shape) == (batch, width - 1):
                cont = (ids[:, : width - 1] == prev).all(-1)  # (B,) cache-off step: same sequence
                begins = starts & ~cont
        local.prev_ids = ids
        # what outlives the pass (each row's prompt end, its marker state and span counts) lives
        # in one per-thread (4, capacity) buffer updated in place at a stable address: under
        # CUDA-graph replay a graph's outputs are overwritten by the next replay of any graph, so
        # the next pass must never read one (the position tracker does the same)
        buf = getattr(local, "carry", None)
        if buf is None or buf.device != dev or buf.shape[1] < batch:  # shapes, known on the host
            buf = local.carry = torch.zeros(4, batch, dtype=torch.long, device=dev)
            if not torch.compiler.is_compiling():
                torch._dynamo.mark_static_address(buf)
            local.batch = -1
        carry = buf[:, :batch]
        if local.batch != batch:  # another batch: nothing carries over
            carry.zero_()
        local.batch = batch
        end, state, n_think, n_answer = carry.unbind(0)
        end = torch.where(begins, pos.amax(dim=-1) + 1, end)  # (B,)
        # a pass from position 0 re-reads the whole sequence: its carried state starts afresh
        state, n_think, n_answer = (t.masked_fill(starts, 0) for t in (state, n_think, n_answer))
        gen = pos >= end.unsqueeze(-1)  # (B, T)
        if ids is None or self._open is None or self._close is None:
            thinking = gen & (state == THINKING).unsqueeze(-1)
            after_last = state
        else:
            code = torch.where(
                (ids.unsqueeze(-1) == self._open).any(-1),
                THINKING,
                torch.where((ids.unsqueeze(-1) == self._close).any(-1), ANSWER, PROMPT),
            )  # (B, T): 1 opens a block, 2 closes it, 0 no marker
            ar = torch.arange(width, device=dev).expand(batch, width)
            last = torch.where(code > 0, ar, -1).cummax(dim=-1).values  # (B, T) last marker <= t
            after = torch.where(
                last >= 0, code.gather(-1, last.clamp(min=0)), state.unsqueeze(-1)
            )  # (B, T) the marker state after token t
            before = torch.cat([state.unsqueeze(-1), after[:, :-1]], dim=-1)
            thinking = gen & ((before == THINKING) | (code > 0))
            after_last = after[:, -1]
        answer = gen & ~thinking
        c_think, c_answer = thinking.long().cumsum(-1), answer.long().cumsum(-1)  # (B, T)
        local.span = torch.where(thinking, THINKING, torch.where(answer, ANSWER, PROMPT))
        local.index = torch.where(
            thinking,
            n_think.unsqueeze(-1) + c_think - 1,
            torch.where(answer, n_answer.unsqueeze(-1) + c_answer - 1, -1),
        )
        local.first_answer = answer & (local.index == 0)
        carry.copy_(
            torch.stack([end, after_last, n_think + c_think[:, -1], n_answer + c_answer[:, -1]])
        )

    def mask(self, positions: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, T, 1) ones on the tokens ``positions`` selects (see :func:`parse_positions`)."""
        if self.span is None:
            raise RuntimeError(
                "the SpanTracker has seen no forward pass: attach it to the model before running it"
            )
        chosen = parse_positions(positions)
        if chosen == frozenset(SPANS):
            return torch.ones_like(self.span, dtype=dtype).unsqueeze(-1)
        keep = torch.zeros_like(self.span, dtype=torch.bool)
        for name in sorted(chosen):
            keep = keep | (self.span == SPANS.index(name))
        return keep.unsqueeze(-1).to(dtype)

    def reset(self) -> None:
        """Forget every row's state (a new prefill sets it again anyway)."""
        self._local.__dict__.clear()


class ThinkingBudget:
    """A ``transformers`` logits processor: a row that has thought ``budget`` tokens closes its block.

    Budget forcing: once a row is inside ``<think>`` and has generated ``budget`` thinking tokens,
    its next token is forced to the close marker, so the answer (and an ``after_thinking``
    decision) comes in bounded time. Tensor ops over the ids, no host synchronisation.

    Example:
        >>> budget = ThinkingBudget(ThinkMarkers.from_tokenizer(model.tokenizer), 64, ids.shape[1])  # doctest: +SKIP
        >>> model.hf.generate(ids, attention_mask=mask, logits_processor=[budget])  # doctest: +SKIP
    """

    def __init__(self, markers: ThinkMarkers, budget: int, n_prompt: int) -> None:
        if budget < 0:
            raise ValueError(f"budget={budget} must be >= 0 thinking tokens")
        self.markers, self.budget, self.n_prompt = markers, int(budget), int(n_prompt)
        self._ids: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _marker_ids(self, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The open and close marker ids on ``dev``, copied there once (not on every step)."""
        if dev not in self._ids:
            self._ids[dev] = (
                torch.tensor(self.markers.open, device=dev),
                torch.tensor(self.markers.close, device=dev),
            )
        return self._ids[dev]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        batch, width = input_ids.shape
        dev = input_ids.device
        opens, closes = self._marker_ids(dev)
        code = torch.where(
            (input_ids.unsqueeze(-1) == opens).any(-1),
            THINKING,
            torch.where((input_ids.unsqueeze(-1) == closes).any(-1), ANSWER, PROMPT),
        )  # (B, T)
        ar = torch.arange(width, device=dev).expand(batch, width)
        last = torch.where(code > 0, ar, -1).cummax(-1).values
        after = torch.where(last >= 0, code.gather(-1, last.clamp(min=0)), PROMPT)  # (B, T)
        before = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], -1)
        generated = ar >= self.n_prompt
        thought = (generated & ((before == THINKING) | (code == THINKING))).sum(-1)  # (B,)
        force = (after[:, -1] == THINKING) & (thought >= self.budget)  # (B,)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.markers.close[0]] = 0.0
        return torch.where(force.unsqueeze(-1), forced, scores)
