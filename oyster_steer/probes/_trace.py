"""Token traces: what probes read at every token of a prompt and of the reply the model writes.

The readings come from read hooks installed through the model's backend, so the same code
traces Hugging Face, TransformerLens and nnsight models, and the reply is read *during*
generation (prompt pass, then one row per decode step), not by a second pass afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..backends import Hook, get_backend
from ..core._sites import resolve_site
from ..core._think import SPANS, ThinkMarkers, host_spans
from ..models._model import OysterModel
from ._probe import LinearProbe

__all__ = ["TokenTrace", "token_trace"]


@dataclass(frozen=True)
class TokenTrace:
    """Per-token probe probabilities of one prompt (chat-formatted) and its generated reply.

    Attributes:
        tokens: the decoded token strings, prompt then reply; token_ids: (T,).
        n_prompt: how many of them belong to the prompt.
        probs: probe name -> (T, C) probabilities. The reading at token t is the residual after
            reading token t; the last generated token is never fed back, so its row is NaN.
        labels: probe name -> class names.
        spans: the span of each token: ``"prompt"``, ``"thinking"`` (generated inside
            ``<think> ... </think>``, markers included) or ``"answer"`` (other generated tokens).
    """

    tokens: list[str]
    token_ids: torch.Tensor
    n_prompt: int
    probs: dict[str, torch.Tensor]
    labels: dict[str, tuple[str, ...]]
    spans: tuple[str, ...] = ()

    def span_probs(self, probe: str, span: str) -> torch.Tensor:
        """(N, C) readings of ``probe`` at the tokens of ``span`` (e.g. every thinking token)."""
        if span not in SPANS:
            raise ValueError(f"span={span!r} is not a span: use one of {', '.join(SPANS)}")
        keep = torch.tensor([s == span for s in self.spans], dtype=torch.bool)
        return self.probs[probe][keep]

    @property
    def reply(self) -> str:
        """The generated text (empty without generation)."""
        return "".join(self.tokens[self.n_prompt :])


def _named(
    probes: LinearProbe | Sequence[LinearProbe] | dict[str, LinearProbe],
) -> dict[str, LinearProbe]:
    if isinstance(probes, LinearProbe):
        probes = [probes]
    if isinstance(probes, dict):
        return dict(probes)
    return {p.meta.get("task", f"probe{i}"): p for i, p in enumerate(probes)}


def _reader(probe: LinearProbe, out: list[torch.Tensor]) -> Any:
    """A hook reading ``probe`` at every token. A probe fit on the prompt mean (``pool="mean"``)
    or on the last token and the mean side by side (``"last+mean"``) reads, at token ``t``, the
    mean of tokens ``0..t`` (and token ``t`` beside it): what it would read if the text ended
    there, so its reading at the last prompt token is the one a plan decides on."""
    pool = probe.pool
    state: dict[str, torch.Tensor] = {}

    def fn(x: torch.Tensor) -> None:  # (1, T, d) at the prompt pass, (1, 1, d) per decode step
        rows = x[0].to(probe.weight.dtype)  # (T, d)
        if pool in ("mean", "last+mean"):
            total = rows.cumsum(0)  # (T, d)
            count = torch.arange(1, rows.shape[0] + 1, device=rows.device, dtype=rows.dtype)
            if state:  # a decode step: continue the sums of the tokens before it
                total, count = total + state["sum"], count + state["n"]
            state["sum"], state["n"] = total[-1:], count[-1]
            mean = total / count.unsqueeze(-1)
            rows = torch.cat([rows, mean], -1) if pool == "last+mean" else mean
        out.append(probe.probs(rows))

    return fn


def token_trace(
    model: OysterModel,
    probes: LinearProbe | Sequence[LinearProbe] | dict[str, LinearProbe],
    prompt: str,
    *,
    generate: int = 0,
    chat: bool = True,
    think_markers: ThinkMarkers | None = None,
    **generate_kwargs: Any,
) -> TokenTrace:
    """Read probes at every token of ``prompt`` and, with ``generate=n``, of an n-token greedy reply.

    Args:
        model: any backend.
        probes: one probe, several (named by ``meta["task"]``), or a name -> probe dict.
        generate: new tokens to generate and trace (0: prompt only).
        think_markers: what opens and closes a reasoning block (default: the tokenizer's
            ``<think>``/``</think>``, if any); each token's span is in ``trace.spans``.
        generate_kwargs: passed to the backend's ``generate`` (e.g. ``logits_processor=``).

    Example:
        >>> trace = token_trace(model, [risk_probe, intent_probe], "How do I pick a lock?", generate=16)  # doctest: +SKIP
        >>> trace.probs["risk"].shape                                                                    # doctest: +SKIP
        torch.Size([52, 2])
    """
    named = {k: p.to(model.device) for k, p in _named(probes).items()}
    ids, mask = model.encode([prompt], chat=chat)
    reads: dict[str, list[torch.Tensor]] = {k: [] for k in named}
    hooks = [
        Hook(resolve_site(p.site, model.n_layers), _reader(p, reads[k])) for k, p in named.items()
    ]
    backend = get_backend(model.backend)
    with torch.inference_mode():
        if generate > 0:
            ids = backend.generate(
                model, ids, mask, hooks, max_new_tokens=generate, **generate_kwargs
            )
        else:
            backend.forward(model, ids, mask, hooks, logits=False)
    ids = ids[0].cpu()
    total = len(ids)
    probs = {k: _pad_rows(torch.cat(v).float().cpu(), total) for k, v in reads.items()}
    tokens = [model.tokenizer.decode([t]) for t in ids.tolist()]
    markers = think_markers or ThinkMarkers.from_tokenizer(model.tokenizer)
    n_prompt = int(mask.shape[1])
    spans = tuple(SPANS[c] for c in host_spans(ids.tolist(), n_prompt, markers))
    return TokenTrace(tokens, ids, n_prompt, probs, {k: p.labels for k, p in named.items()}, spans)


def _pad_rows(rows: torch.Tensor, total: int) -> torch.Tensor:
    """Trim or NaN-pad readings to one row per token. (R, C) -> (total, C)"""
    out = torch.full((total, rows.shape[1]), float("nan"))
    n = min(total, rows.shape[0])
    out[:n] = rows[:n]
    return out
