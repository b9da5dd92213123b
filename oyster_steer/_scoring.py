"""Teacher-forced scoring: log-probabilities of reply tokens after a chat-formatted prompt.

Shared by the learned-vector trainer and strength calibration. Sequences are token-exact
(prompt ids from the chat template, reply ids appended), left-padded into one batch, and the LM
head runs only at the positions that predict reply tokens, never over the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ._models import left_pad
from .backends import position_ids

if TYPE_CHECKING:
    from ._models import OysterModel

__all__ = [
    "Packed",
    "Pair",
    "chat_ids",
    "greedy_continuations",
    "kl_from",
    "pack",
    "pair_means",
    "reply_ids",
    "reply_logprobs",
    "score_pairs",
]


@dataclass(frozen=True)
class Pair:
    """A prompt and a reply, as token ids (the prompt already chat-formatted)."""

    prompt: tuple[int, ...]
    reply: tuple[int, ...]


@dataclass(frozen=True)
class Packed:
    """A left-padded batch of prompt + reply rows and where each reply token is predicted.

    ``rows``/``cols`` (N,) index the positions whose next-token distribution predicts reply token
    ``targets`` (N,); ``owner`` (N,) says which pair each belongs to.
    """

    ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    rows: torch.Tensor  # (N,)
    cols: torch.Tensor  # (N,)
    targets: torch.Tensor  # (N,)
    owner: torch.Tensor  # (N,)
    n_pairs: int


def chat_ids(model: OysterModel, prompt: str) -> tuple[int, ...]:
    """The token ids of ``prompt`` in the model's chat template, ending with the assistant header."""
    ids, _ = model.encode([prompt])
    return tuple(ids[0].tolist())


def reply_ids(model: OysterModel, reply: str, max_tokens: int | None = None) -> tuple[int, ...]:
    """The token ids of a reply (no special tokens), cut to its first ``max_tokens``."""
    ids = model.tokenizer(reply, add_special_tokens=False)["input_ids"]
    return tuple(ids[:max_tokens] if max_tokens else ids)


def pack(pairs: Sequence[Pair], pad_id: int, device: torch.device | str) -> Packed:
    """Left-pad prompt + reply rows; every reply token must be non-empty."""
    rows = [list(p.prompt) + list(p.reply) for p in pairs]
    ids, mask = left_pad(rows, pad_id, device)
    width = ids.shape[1]
    r, c, t, o = [], [], [], []
    for i, (pair, row) in enumerate(zip(pairs, rows, strict=True)):
        start = width - len(row) + len(pair.prompt)  # column of the first reply token
        for k, token in enumerate(pair.reply):
            r.append(i)
            c.append(start + k - 1)  # the position that predicts it
            t.append(token)
            o.append(i)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)  # noqa: E731
    return Packed(ids, mask, as_long(r), as_long(c), as_long(t), as_long(o), len(pairs))


def _head(model: OysterModel, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (N, V) from final hidden states (N, d), with the family's logit soft-capping."""
    logits = model.hf.get_output_embeddings()(hidden)
    cap = getattr(model.hf.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def reply_logprobs(model: OysterModel, packed: Packed, *, full: bool = False) -> torch.Tensor:
    """Log-probabilities at reply positions: (N,) of the reply tokens, or (N, V) when ``full``.

    Runs ``model.hf`` directly (hooks installed on it, e.g. by :func:`oyster_steer.patch` on the
    hf backend, apply); differentiable when a hook adds a tensor that requires grad.
    """
    out = model.hf.base_model(
        input_ids=packed.ids,
        attention_mask=packed.mask,
        position_ids=position_ids(packed.mask),
        use_cache=False,
    )
    hidden = out.last_hidden_state[packed.rows, packed.cols]  # (N, d)
    logp = torch.log_softmax(_head(model, hidden).float(), dim=-1)  # (N, V)
    if full:
        return logp
    return logp.gather(-1, packed.targets.unsqueeze(-1)).squeeze(-1)  # (N,)


def pair_means(values: torch.Tensor, packed: Packed) -> torch.Tensor:
    """Mean of per-token ``values`` (N,) over each pair's reply tokens: (n_pairs,)."""
    sums = torch.zeros(packed.n_pairs, dtype=values.dtype, device=values.device).index_add(
        0, packed.owner, values
    )
    counts = torch.bincount(packed.owner, minlength=packed.n_pairs).clamp(min=1)
    return sums / counts.to(values.dtype)


@torch.no_grad()
def greedy_continuations(
    model: OysterModel, prompts: Sequence[tuple[int, ...]], n_tokens: int, batch_size: int = 16
) -> list[tuple[int, ...]]:
    """The model's own greedy first ``n_tokens`` after each prompt (cut after an end token)."""
    from .backends import get_backend

    stops = {model.tokenizer.eos_token_id, model.pad_id}
    out: list[tuple[int, ...]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        ids, mask = left_pad([list(p) for p in chunk], model.pad_id, model.device)
        new = get_backend("hf").generate(model, ids, mask, max_new_tokens=n_tokens)[
            :, ids.shape[1] :
        ]
        for row in new.tolist():
            cut = next((k + 1 for k, tok in enumerate(row) if tok in stops), len(row))
            out.append(tuple(row[:cut]))
    return out


def _length_batches(pairs: Sequence[Pair], batch_size: int) -> list[list[int]]:
    """Index batches of similar total length (little padding)."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i].prompt) + len(pairs[i].reply))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def score_pairs(
    model: OysterModel, pairs: Sequence[Pair], *, full: bool = False, batch_size: int = 16
) -> list[torch.Tensor]:
    """Per pair (hooks on ``model.hf`` apply): the mean reply-token log-prob (0-dim), or its
    (reply_len, V) log-probabilities when ``full``; on the CPU."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(pairs)
    for chunk in _length_batches(pairs, batch_size):
        packed = pack([pairs[i] for i in chunk], model.pad_id, model.device)
        lp = reply_logprobs(model, packed, full=full)
        if full:
            for j, i in enumerate(chunk):
                out[i] = lp[packed.owner == j].cpu()
        else:
            for i, value in zip(chunk, pair_means(lp, packed), strict=True):
                out[i] = value.cpu()
    return out


@torch.no_grad()
def kl_from(
    model: OysterModel,
    pairs: Sequence[Pair],
    reference: Sequence[torch.Tensor],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """Per pair, the mean over reply positions of KL(reference || model): (n_pairs,) on the CPU.

    ``reference[i]`` holds (reply_len, V) log-probabilities, e.g. from :func:`score_pairs` run
    without steering.
    """
    out = torch.zeros(len(pairs))
    for chunk in _length_batches(pairs, batch_size):
        packed = pack([pairs[i] for i in chunk], model.pad_id, model.device)
        lp = reply_logprobs(model, packed, full=True)  # (N, V)
        ref = torch.cat([reference[i] for i in chunk]).to(lp.device, torch.float32)  # (N, V)
        kl = (ref.exp() * (ref - lp)).sum(-1)  # (N,)
        out[chunk] = pair_means(kl, packed).cpu()
    return out
