"""Greedy replies in left-padded batches, and teacher-forced divergence on reference replies.

Example:
    >>> replies = generate_replies(model, ["Hi!", "How do I bake bread?"], max_new_tokens=16)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .._errors import EmptyInputError
from .._models import left_pad
from ..backends import get_backend

if TYPE_CHECKING:
    from .._models import OysterModel

__all__ = ["divergence", "generate_replies"]


@torch.inference_mode()
def generate_replies(
    model: OysterModel, prompts: Sequence[str], *, max_new_tokens: int = 48, batch_size: int = 8
) -> list[str]:
    """Greedy replies to ``prompts`` (chat-formatted), with whatever hooks are installed on ``model``.

    Prompts are batched in length order (little padding) and replies returned in input order.
    """
    if not prompts:
        raise EmptyInputError("no prompts to answer: pass at least one prompt")
    rows = [model.encode([p])[0][0].tolist() for p in prompts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    backend = get_backend(model.backend)
    replies: list[str] = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids, mask = left_pad([rows[i] for i in batch], model.pad_id, model.device)  # (B, T)
        out = backend.generate(model, ids, mask, max_new_tokens=max_new_tokens)  # (B, T + new)
        for i, new in zip(batch, out[:, ids.shape[1] :], strict=True):
            replies[i] = _decode(model, new)
    return replies


def _decode(model: OysterModel, new: torch.Tensor) -> str:
    """Text of generated ids up to the first end-of-sequence token."""
    ids = new.tolist()
    eos = model.tokenizer.eos_token_id
    if eos is not None and eos in ids:
        ids = ids[: ids.index(eos)]
    return model.tokenizer.decode(ids, skip_special_tokens=True).strip()


def _reference_rows(
    model: OysterModel, prompts: Sequence[str], references: Sequence[str]
) -> list[tuple[list[int], int]]:
    out = []
    for prompt, ref in zip(prompts, references, strict=True):
        head = model.encode([prompt])[0][0].tolist()
        tail = model.tokenizer(ref, add_special_tokens=False)["input_ids"] if ref.strip() else []
        eos = model.tokenizer.eos_token_id
        tail = (tail + ([eos] if eos is not None else []))[:256] or [model.pad_id]
        out.append((head + tail, len(tail)))
    return out


def _reply_logprobs(
    model: OysterModel, ids: torch.Tensor, mask: torch.Tensor, n: Sequence[int]
) -> list[torch.Tensor]:
    """Per row, (n_i, vocab) log-probabilities of the positions that predict the reply tokens."""
    logits = get_backend(model.backend).forward(model, ids, mask)  # (B, T, V)
    width = ids.shape[1]
    return [logits[i, width - k - 1 : width - 1].float().log_softmax(-1) for i, k in enumerate(n)]


@torch.inference_mode()
def divergence(
    model: OysterModel,
    prompts: Sequence[str],
    references: Sequence[str],
    steered: object,
    *,
    batch_size: int = 8,
) -> list[dict[str, float]]:
    """How a condition moves next-token distributions along reference replies.

    Args:
        prompts, references: prompts and reference replies (e.g. the unsteered replies).
        steered: a context manager factory, ``steered()`` applies the condition (e.g.
            ``lambda: cond.applied(model)``).

    Returns:
        Per prompt: ``kl`` = mean over reply positions of KL(unsteered || steered) in nats, and
        ``nll_base``/``nll_steered`` = mean negative log-likelihood of the reference tokens.
    """
    rows = _reference_rows(model, prompts, references)
    out: list[dict[str, float]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        ids, mask = left_pad([r for r, _ in batch], model.pad_id, model.device)  # (B, T)
        n = [k for _, k in batch]
        base = _reply_logprobs(model, ids, mask, n)
        with steered():  # type: ignore[operator]
            moved = _reply_logprobs(model, ids, mask, n)
        for (row, k), p, q in zip(batch, base, moved, strict=True):
            target = torch.tensor(row[-k:], device=p.device)  # (k,)
            kl = (p.exp() * (p - q)).sum(-1).mean()  # mean over reply positions
            out.append(
                {
                    "kl": float(kl),
                    "nll_base": float(-p.gather(-1, target[:, None]).mean()),
                    "nll_steered": float(-q.gather(-1, target[:, None]).mean()),
                }
            )
    return out
