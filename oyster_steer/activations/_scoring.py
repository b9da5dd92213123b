"""Teacher-forced scoring: log-probabilities of reply tokens after a chat-formatted prompt.

Shared by the learned-vector trainer and strength calibration. A :class:`Group` is one prompt
with several replies (e.g. constructive, refusal, compliance). Each prompt runs once, with a KV
cache that is then gathered for its replies, so a group of three replies costs about one prompt
plus three replies instead of three full sequences; hooks (steering) apply to both passes, as in
a single forward over prompt + reply. The LM head runs only where reply tokens are predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..backends import position_ids
from ..models._model import left_pad

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "Group",
    "Packed",
    "chat_ids",
    "greedy_continuations",
    "kl_from",
    "pack",
    "reply_ids",
    "reply_logprobs",
    "reply_means",
    "score_groups",
]

Ids = tuple[int, ...]


@dataclass(frozen=True)
class Group:
    """A chat-formatted prompt and the replies to score after it, as token ids (replies non-empty)."""

    prompt: Ids
    replies: tuple[Ids, ...]


@dataclass(frozen=True)
class Packed:
    """Groups as two padded batches: prompts (left-padded) and replies (right-padded).

    ``owner`` (R,) is each reply row's prompt row; ``reply_of`` (N,) is each reply token's row,
    and ``targets`` (N,) the tokens, in row-major order of the real reply tokens.
    """

    prompt_ids: torch.Tensor  # (P, Tp)
    prompt_mask: torch.Tensor  # (P, Tp)
    reply_ids: torch.Tensor  # (R, Tr)
    reply_mask: torch.Tensor  # (R, Tr)
    owner: torch.Tensor  # (R,)
    reply_of: torch.Tensor  # (N,)
    targets: torch.Tensor  # (N,)

    @property
    def n_replies(self) -> int:
        return self.reply_ids.shape[0]


def chat_ids(model: OysterModel, prompt: str) -> Ids:
    """The token ids of ``prompt`` in the model's chat template, ending with the assistant header."""
    ids, _ = model.encode([prompt])
    return tuple(ids[0].tolist())


def reply_ids(model: OysterModel, reply: str, max_tokens: int | None = None) -> Ids:
    """The token ids of a reply (no special tokens), cut to its first ``max_tokens``."""
    ids = model.tokenizer(reply, add_special_tokens=False)["input_ids"]
    return tuple(ids[:max_tokens] if max_tokens else ids)


def pack(groups: Sequence[Group], pad_id: int, device: torch.device | str) -> Packed:
    """Pad prompts (left) and replies (right) of ``groups`` into one :class:`Packed` batch."""
    prompt_ids, prompt_mask = left_pad([list(g.prompt) for g in groups], pad_id, device)
    replies = [r for g in groups for r in g.replies]
    width = max(len(r) for r in replies)
    reply_ids = torch.full((len(replies), width), pad_id, dtype=torch.long)
    reply_mask = torch.zeros((len(replies), width), dtype=torch.long)
    for i, r in enumerate(replies):
        reply_ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        reply_mask[i, : len(r)] = 1
    owner = torch.tensor([i for i, g in enumerate(groups) for _ in g.replies], dtype=torch.long)
    rows = torch.arange(len(replies)).unsqueeze(1).expand(-1, width)[reply_mask.bool()]  # (N,)
    targets = reply_ids[reply_mask.bool()]  # (N,)
    to = lambda t: t.to(device)  # noqa: E731
    return Packed(
        prompt_ids, prompt_mask, to(reply_ids), to(reply_mask), to(owner), to(rows), to(targets)
    )


def _head(model: OysterModel, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (N, V) from final hidden states (N, d), with the family's logit soft-capping."""
    logits = model.hf.get_output_embeddings()(hidden)
    cap = getattr(model.hf.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def reply_logprobs(model: OysterModel, packed: Packed, *, full: bool = False) -> torch.Tensor:
    """Log-probabilities at reply tokens: (N,) of the tokens, or (N, V) when ``full``.

    Runs ``model.hf`` directly, so hooks installed on it apply (e.g. :func:`oyster_steer.patch`
    on the hf backend); differentiable when a hook adds a tensor that requires grad.
    """
    base = model.hf.base_model
    pmask = packed.prompt_mask
    first = base(
        input_ids=packed.prompt_ids,
        attention_mask=pmask,
        position_ids=position_ids(pmask),
        use_cache=True,
    )
    cache = first.past_key_values
    cache.batch_select_indices(packed.owner)  # one cache row per reply
    mask = torch.cat([pmask[packed.owner], packed.reply_mask], dim=1)  # (R, Tp + Tr)
    start = pmask.sum(1)[packed.owner].unsqueeze(1)  # (R, 1) each reply's first position
    pos = start + torch.arange(packed.reply_ids.shape[1], device=start.device)  # (R, Tr)
    second = base(
        input_ids=packed.reply_ids,
        attention_mask=mask,
        position_ids=pos,
        past_key_values=cache,
        use_cache=True,
    )
    hidden = torch.cat(
        [first.last_hidden_state[packed.owner, -1:], second.last_hidden_state[:, :-1]], dim=1
    )  # (R, Tr, d): position k predicts reply token k
    logp = torch.log_softmax(
        _head(model, hidden[packed.reply_mask.bool()]).float(), dim=-1
    )  # (N, V)
    if full:
        return logp
    return logp.gather(-1, packed.targets.unsqueeze(-1)).squeeze(-1)  # (N,)


def reply_means(values: torch.Tensor, packed: Packed) -> torch.Tensor:
    """Mean of per-token ``values`` (N,) over each reply's tokens: (R,)."""
    sums = torch.zeros(packed.n_replies, dtype=values.dtype, device=values.device).index_add(
        0, packed.reply_of, values
    )
    return sums / packed.reply_mask.sum(1).clamp(min=1).to(values.dtype)


def _length_batches(groups: Sequence[Group], batch_size: int) -> list[list[int]]:
    """Index batches of groups with similar prompt lengths, about ``batch_size`` replies each."""
    order = sorted(range(len(groups)), key=lambda i: len(groups[i].prompt))
    per = max(1, batch_size // max(len(groups[0].replies), 1))
    return [order[i : i + per] for i in range(0, len(order), per)]


@torch.no_grad()
def score_groups(
    model: OysterModel, groups: Sequence[Group], *, full: bool = False, batch_size: int = 16
) -> list[torch.Tensor]:
    """Per group, on the CPU: its replies' mean token log-probs (n_replies,), or when ``full``
    the (total reply tokens, V) log-probabilities, replies concatenated in order."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(groups)
    for chunk in _length_batches(groups, batch_size):
        packed = pack([groups[i] for i in chunk], model.pad_id, model.device)
        lp = reply_logprobs(model, packed, full=full)
        if full:
            tokens_of_group = packed.owner[packed.reply_of]  # (N,)
            for j, i in enumerate(chunk):
                out[i] = lp[tokens_of_group == j].cpu()
        else:
            means = reply_means(lp, packed)
            for j, i in enumerate(chunk):
                out[i] = means[packed.owner == j].cpu()
    return out


@torch.no_grad()
def kl_from(
    model: OysterModel,
    groups: Sequence[Group],
    reference: Sequence[torch.Tensor],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """Per group, the mean over its reply tokens of KL(reference || model): (n_groups,), CPU.

    ``reference[i]`` holds group i's (tokens, V) log-probabilities from :func:`score_groups`
    with ``full=True``, e.g. computed without steering.
    """
    out = torch.zeros(len(groups))
    for chunk in _length_batches(groups, batch_size):
        packed = pack([groups[i] for i in chunk], model.pad_id, model.device)
        lp = reply_logprobs(model, packed, full=True)  # (N, V)
        ref = torch.cat([reference[i] for i in chunk]).to(lp.device, torch.float32)  # (N, V)
        kl = (ref.exp() * (ref - lp)).sum(-1)  # (N,)
        group_of = packed.owner[packed.reply_of]  # (N,)
        sums = torch.zeros(len(chunk), device=kl.device).index_add(0, group_of, kl)
        counts = torch.bincount(group_of, minlength=len(chunk)).clamp(min=1)
        out[chunk] = (sums / counts).cpu()
    return out


@torch.no_grad()
def greedy_continuations(
    model: OysterModel, prompts: Sequence[Ids], n_tokens: int, batch_size: int = 16
) -> list[Ids]:
    """The model's own greedy first ``n_tokens`` after each prompt (cut after an end token)."""
    from ..backends import get_backend

    stops = {model.tokenizer.eos_token_id, model.pad_id}
    out: list[Ids] = []
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
