"""Prompt vs generated tokens, known on the device during batched KV-cache generation.

Hooks see one (B, T, d) activation and nothing else, yet steering only generated tokens (or only
the prompt), or scheduling a strength over the reply, needs to know where each row's prompt ends.
A :class:`PositionTracker` learns it without ever synchronising with the host:

* it installs one forward pre-hook on the first decoder block (a plain torch hook on the shared
  Hugging Face module, so it fires under the HF, TransformerLens and nnsight backends alike) and
  reads the ``position_ids`` keyword every model family passes to its blocks: (B, T) or (1, T)
  positions that already ignore left padding;
* a pass that contains position 0 starts a sequence (a prefill); for those rows it latches
  ``prompt_end = max position + 1`` with ``torch.where`` -- decode steps never contain position 0,
  so they keep the latched value;
* every steering hook of the same pass then reads ready-made tensors: :attr:`generated` (B, T, 1)
  bool, :meth:`mask` ``(B, T, 1)`` in the activation's dtype, and :attr:`gen_index`
  (B, T, 1) = position - prompt_end (negative on prompt tokens, 0 on the first generated token).

Semantics: every token of the first pass (the prompt, including the last prompt token, whose
logits choose the first new token) is a prompt token; every token fed back by decoding is a
generated token. A teacher-forced forward over prompt + reply is one prefill, so all of it counts
as prompt. Chunked prefill (a prompt split over passes) is not detected.

Without a KV cache (``generate(use_cache=False)``) every step re-runs the whole sequence from
position 0. A second pre-hook, on the top-level module, keeps the pass's ``input_ids``; a pass
that is exactly the previous full pass plus one token (same ids, per row: a tensor compare,
no host sync) continues that sequence and keeps its latched prompt end, so its new tokens count
as generated, as they do with a cache.

Threads: what a tracker latches is kept per thread (a ``threading.local``), so concurrent
requests through one patched model (a web server's worker threads) each see their own prompt
ends; a thread that has run no pass yet sees none.

Example:
    >>> tracker = PositionTracker()
    >>> handle = tracker.attach(model)                       # doctest: +SKIP
    >>> hook = lambda h: torch.addcmul(h, tracker.mask("generated", h.dtype), delta)  # doctest: +SKIP
    >>> handle.remove()                                      # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch

from ..backends import HookHandle
from ._spans import parse_positions, uses_spans

if TYPE_CHECKING:
    from ..models._model import OysterModel
    from ._spans import SpanTracker

__all__ = ["WHICH", "PositionTracker", "TokenSelection", "token_selection"]

WHICH = ("all", "prompt", "generated")


def _static(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors``, marked as living at fixed addresses (CUDA-graph replay reuses them)."""
    if not torch.compiler.is_compiling():  # made inside a traced pass: a graph's own buffer
        for t in tensors:
            torch._dynamo.mark_static_address(t)
    return tensors


class PositionTracker:
    """Device-side record of where each row's prompt ends; read it from hooks of the same pass.

    Attributes (valid inside a forward pass, after the first block started):
        positions: (B, T) long, each token's position (left padding excluded).
        prompt_end: (B,) long, each row's prompt length, latched at its prefill.
        generated: (B, T, 1) bool, True on generated tokens.
        gen_index: (B, T, 1) long, position - prompt_end (0 = first generated token).
    """

    # Read by scoring from cached lower blocks (activations._scoring), which runs blocks
    # directly: a tracker's first-block hook never sees those passes, so that path refuses it.
    keys_on_first_block: ClassVar[bool] = True

    def __init__(self) -> None:
        self._local = threading.local()  # one latch per thread: concurrent requests stay apart

    @property
    def positions(self) -> torch.Tensor | None:
        return getattr(self._local, "positions", None)

    @property
    def prompt_end(self) -> torch.Tensor | None:
        buf = getattr(self._local, "end_buf", None)
        return None if buf is None else buf[: self._local.batch]

    @property
    def generated(self) -> torch.Tensor | None:
        return getattr(self._local, "generated", None)

    @property
    def gen_index(self) -> torch.Tensor | None:
        return getattr(self._local, "gen_index", None)

    def attach(self, model: OysterModel) -> HookHandle:
        """Start tracking ``model`` (any backend); the handle's ``remove()`` stops it."""
        block = model.hf.get_submodule(f"{model.spec.layers}.0")
        handle = block.register_forward_pre_hook(self._observe, with_kwargs=True)
        top = model.hf.register_forward_pre_hook(self._grab_ids, with_kwargs=True)
        return HookHandle([handle.remove, top.remove])

    def _grab_ids(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self._local.ids = ids if isinstance(ids, torch.Tensor) and ids.dim() == 2 else None

    def _observe(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        batch, width = hidden.shape[0], hidden.shape[1]
        pos = kwargs.get("position_ids")
        if pos is None:  # no positions given: treat the pass as a fresh prompt
            pos = torch.arange(width, device=hidden.device).unsqueeze(0)
        pos = pos.to(hidden.device).long().expand(batch, width)  # (B, T)
        local = self._local
        # what outlives the pass (each row's prompt end, whether the pass began at position 0)
        # lives in per-thread buffers updated in place, at stable addresses: a compiled,
        # CUDA-graph-replayed step never keeps one of its outputs as the next step's input
        # (cudagraph trees overwrite those on the next replay of any graph)
        if getattr(local, "end_buf", None) is None or local.end_buf.device != pos.device:
            local.end_buf = local.full_buf = None
            local.batch = -1
        if local.end_buf is None or local.end_buf.shape[0] < batch:  # a shape, known on the host
            local.end_buf, local.full_buf = _static(
                torch.zeros(batch, dtype=torch.long, device=pos.device),
                torch.zeros(batch, dtype=torch.bool, device=pos.device),
            )
        end, full = local.end_buf[:batch], local.full_buf[:batch]
        if local.batch != batch:  # another batch: no latched prompt end carries over
            end.zero_()
        from_zero = pos.amin(dim=-1) == 0  # (B,) this pass begins the row's sequence
        starts = from_zero
        cont = self._continues(local, batch, width)
        local.batch = batch
        if cont is not None:
            starts = starts & ~cont
        end.copy_(torch.where(starts, pos.amax(dim=-1) + 1, end))  # (B,)
        full.copy_(from_zero)  # (B,) a pass from position 0 (what continues)
        local.positions = pos
        local.gen_index = (pos - end.unsqueeze(-1)).unsqueeze(-1)  # (B, T, 1)
        local.generated = local.gen_index >= 0  # (B, T, 1)

    @staticmethod
    def _continues(local: threading.local, batch: int, width: int) -> torch.Tensor | None:
        """(B,) rows whose pass re-runs the previous full pass plus one token (no KV cache)."""
        ids = getattr(local, "ids", None)
        local.ids = None
        if width == 1:  # a pass of one token never re-runs a previous one (it would be empty)
            # and a decode step with a KV cache must not read the previous pass's ids: under
            # torch.compile that read guards on their shape, so the second decode step (previous
            # pass one token wide, not the prompt's width) would recompile
            local.prev_ids = ids
            return None
        prev = getattr(local, "prev_ids", None)
        local.prev_ids = ids
        cont = None
        if (
            ids is not None
            and prev is not None
            and ids.shape == (batch, width)
            and prev.shape == (batch, width - 1)
            and prev.device == ids.device
            and local.batch == batch
        ):  # shapes only: known on the host
            cont = (ids[:, :-1] == prev).all(dim=-1) & local.full_buf[:batch]  # (B,)
        return cont

    def mask(self, which: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, T, 1) ones where ``which`` (``"prompt"`` or ``"generated"``) tokens are, zeros elsewhere."""
        if self.generated is None:
            raise RuntimeError(
                "the PositionTracker has seen no forward pass: attach it to the model before running it"
            )
        if which == "generated":
            return self.generated.to(dtype)
        if which == "prompt":
            return (~self.generated).to(dtype)
        raise ValueError(
            f"which={which!r} is not a token selection with a mask: use 'prompt' or 'generated'"
        )

    def reset(self) -> None:
        """Forget the latched prompt ends (a new prefill sets them again anyway)."""
        self._local.__dict__.clear()


@dataclass(frozen=True)
class TokenSelection:
    """Which tokens a steering hook edits, by position (0 = a row's first real token).

    Built once at patch time by :func:`token_selection`; :meth:`weights` is tensor code on the
    tracker's positions, so it selects the same tokens with and without a KV cache (a decode step
    knows its absolute position) and never synchronises with the host.
    """

    which: str = "all"
    index: torch.Tensor | None = None  # (K,) long positions
    span: tuple[int, int | None, int] | None = None  # slice start, stop, step
    mask: torch.Tensor | None = None  # (B, W) bool, column j = position j
    min_index: int | None = None

    @property
    def trivial(self) -> bool:
        return (
            self.which == "all"
            and self.index is None
            and self.span is None
            and self.mask is None
            and self.min_index is None
        )

    def weights(self, tracker: PositionTracker | SpanTracker, dtype: torch.dtype) -> torch.Tensor:
        """(B, T, 1) ones on the selected tokens of this pass, zeros elsewhere."""
        pos = tracker.positions  # (B, T)
        if pos is None:
            raise RuntimeError(
                "the PositionTracker has seen no forward pass: attach it to the model before running it"
            )
        sel = torch.ones_like(pos, dtype=torch.bool)
        if self.which != "all" and uses_spans(self.which):  # tracker: a control._spans.SpanTracker
            sel = sel & tracker.mask(self.which, torch.bool)[..., 0]
        elif self.which != "all":
            # only span selections get a SpanTracker; a PositionTracker sets generated with positions
            gen = cast(torch.Tensor, cast(PositionTracker, tracker).generated)[..., 0]
            sel = sel & (gen if self.which == "generated" else ~gen)
        if self.index is not None:
            sel = sel & (pos.unsqueeze(-1) == self.index).any(-1)
        if self.span is not None:
            start, stop, step = self.span
            sel = sel & (pos >= start) & ((pos - start) % step == 0)
            if stop is not None:
                sel = sel & (pos < stop)
        if self.mask is not None:
            width = self.mask.shape[1]
            sel = sel & self.mask.gather(1, pos.clamp(max=width - 1)) & (pos < width)
        if self.min_index is not None:
            sel = sel & (pos >= self.min_index)
        return sel.unsqueeze(-1).to(dtype)


def _span_selection(positions: str) -> bool:
    """Whether ``positions`` is a valid reasoning-span selection (control._spans)."""
    try:
        parse_positions(positions)
    except ValueError:
        return False
    return uses_spans(positions)


def token_selection(
    positions: str | Sequence[int] | slice | torch.Tensor,
    min_token_index: int | None,
    device: torch.device,
) -> TokenSelection:
    """A :class:`TokenSelection` from ``positions`` and ``min_token_index`` (checked at patch time).

    Args:
        positions: ``"all"``, ``"prompt"``, ``"generated"``; a list of token positions; a slice
            of positions; or a (B, W) bool mask whose column j is position j of row b (positions
            count real tokens from 0, so left padding does not shift them). Positions are
            non-negative: the length of a sequence being generated is not known in advance.
        min_token_index: only positions >= this (steering-vectors' ``min_token_index``).

    Example:
        >>> token_selection(slice(2, None), None, torch.device("cpu")).span
        (2, None, 1)
    """
    if min_token_index is not None and (
        not isinstance(min_token_index, int) or min_token_index < 0
    ):
        raise ValueError(f"min_token_index={min_token_index!r} must be a non-negative int")
    if isinstance(positions, str):
        if positions not in WHICH and not _span_selection(positions):
            raise ValueError(
                f"positions={positions!r} is not supported: use one of {', '.join(WHICH)}, "
                "thinking, answer (or names joined by '+'), a list of positions, a slice or a "
                "(batch, tokens) bool mask"
            )
        return TokenSelection(which=positions, min_index=min_token_index)
    if isinstance(positions, slice):
        start, stop, step = positions.start or 0, positions.stop, positions.step or 1
        if start < 0 or (stop is not None and stop < 0) or step < 1:
            raise ValueError(
                f"positions={positions!r}: use a slice of non-negative positions with a positive step"
            )
        return TokenSelection(span=(start, stop, step), min_index=min_token_index)
    if isinstance(positions, torch.Tensor) and positions.dtype == torch.bool:
        if positions.dim() != 2:
            raise ValueError(
                f"a positions mask must be (batch, tokens) bool, got shape {tuple(positions.shape)}"
            )
        return TokenSelection(mask=positions.to(device), min_index=min_token_index)
    index = torch.as_tensor(positions).reshape(-1)
    if index.numel() == 0 or index.is_floating_point() or bool((index < 0).any()):
        raise ValueError(
            f"positions={positions!r}: pass a non-empty list of non-negative int token positions"
        )
    return TokenSelection(index=index.long().to(device), min_index=min_token_index)
