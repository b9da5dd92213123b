"""Teacher-forced scoring: log-probabilities of reply tokens after a chat-formatted prompt.

Shared by the learned-vector trainer and strength calibration. A :class:`Group` is one prompt
with several replies (e.g. constructive, refusal, compliance). Each prompt runs once, with a KV
cache that is then gathered for its replies, so a group of three replies costs about one prompt
plus three replies instead of three full sequences; hooks (steering) apply to both passes, as in
a single forward over prompt + reply. The LM head runs only where reply tokens are predicted.

Loops that score the same groups many times under different steering (vector training,
strength calibration, intervention training) can skip the blocks below the first steered one:
:func:`frozen_inputs` runs them once, unsteered, and keeps each group's ``resid_pre`` of block
``layer``; ``pack(..., hidden=...)`` carries those activations and :func:`reply_logprobs` then
runs only blocks ``layer..n-1`` (:func:`oyster_steer.models.forward_from`), with the same result.
Not under steering that selects prompt or generated tokens (its position tracker sits on the
first block): that path refuses it, and the full forward scores it (the reply pass counts as
generated tokens, as decoding does).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ..backends import get_backend, position_ids
from ..models._forward import forward_from, supports_forward_from
from ..models._model import left_pad, shared_prefix_length, sliding_window

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "FrozenInputs",
    "Group",
    "Packed",
    "chat_ids",
    "frozen_inputs",
    "greedy_continuations",
    "head_logits",
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
    layer: int = 0  # with the hidden states below: the first block still to run
    prompt_hidden: torch.Tensor | None = None  # (P, Tp, d) resid_pre of block ``layer``
    reply_hidden: torch.Tensor | None = None  # (R, Tr, d)
    # reply rows of similar length, each run as its own reply pass at its own width (the
    # frozen-inputs path): (row indices, width) per bucket, and ``unbucket`` (N,) the position
    # of each row-major reply token in the buckets' concatenated tokens
    buckets: tuple[tuple[torch.Tensor, int], ...] = ()
    unbucket: torch.Tensor | None = None
    # the first ``head`` prompt tokens are the same in every row (the chat template's system
    # head): with ``share_head``, the frozen-inputs path runs them once, as a KV prefix
    head: int = 0
    head_hidden: torch.Tensor | None = None  # (1, head, d) its resid_pre of block ``layer``

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


@dataclass(frozen=True)
class FrozenInputs:
    """One group's unsteered ``resid_pre`` of block ``layer``: its prompt tokens (Tp, d) and each
    reply's tokens (Tr_j, d). What every block below ``layer`` computes, done once."""

    layer: int
    prompt: torch.Tensor
    replies: tuple[torch.Tensor, ...]


def pack(
    groups: Sequence[Group],
    pad_id: int,
    device: torch.device | str,
    hidden: Sequence[FrozenInputs] | None = None,
    *,
    share_head: bool = False,
) -> Packed:
    """Pad prompts (left) and replies (right) of ``groups`` into one :class:`Packed` batch.

    With ``hidden`` (one :class:`FrozenInputs` per group, from :func:`frozen_inputs`), the
    batch also carries them, and :func:`reply_logprobs` starts at their block. With
    ``share_head`` too, the prompts' common first tokens (a chat template's system head) run
    once, at batch 1, and every row attends to them as a KV prefix: only for hooks that edit
    each row alike (a steering vector or a learned vector at every position), since the head's
    pass has one row.
    """
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
    extra: dict[str, object] = {}
    if hidden is not None:
        if len(hidden) != len(groups) or len({h.layer for h in hidden}) != 1:
            raise ValueError(
                f"pack got {len(hidden)} frozen inputs for {len(groups)} groups: pass one per "
                "group, all from the same frozen_inputs layer"
            )
        # only the frozen-inputs path runs the replies in length buckets, and only on a CPU:
        # there a pass costs its FLOPs and padding is waste; on a GPU passes of these sizes are
        # bound by kernel launches, and one padded reply pass with whole prompts was faster
        # (H200, random Llama-1B: learned training 1.9 s bucketed with the shared head vs 0.9 s
        # one pass; BENCHMARKS.md, "GPU")
        cpu = torch.device(device).type == "cpu"
        buckets, unbucket = _reply_buckets(
            [len(r) for r in replies], cost=None if cpu else _ONE_PASS
        )
        head = shared_prefix_length([g.prompt for g in groups]) if share_head and cpu else 0
        extra = dict(
            buckets=tuple((to(rows), w) for rows, w in buckets),
            unbucket=to(unbucket),
            head=head,
            head_hidden=hidden[0].prompt[:head].unsqueeze(0) if head else None,
            layer=hidden[0].layer,
            prompt_hidden=_pad_hidden([h.prompt for h in hidden], prompt_ids.shape[1], "left"),
            reply_hidden=_pad_hidden([r for h in hidden for r in h.replies], width, "right"),
        )
        extra = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in extra.items()}
    return Packed(
        prompt_ids,
        prompt_mask,
        to(reply_ids),
        to(reply_mask),
        to(owner),
        to(rows),
        to(targets),
        **extra,  # type: ignore[arg-type]
    )


# One more reply pass costs about as much as this many padded tokens (python and kernel launches
# of every block); replies are split into length buckets only where that saves more.
_BUCKET_COST = 16
_ONE_PASS = 10**9  # a bucket cost that keeps every reply in one padded pass


def _reply_buckets(
    lengths: Sequence[int], cost: float | None = None
) -> tuple[list[tuple[torch.Tensor, int]], torch.Tensor]:
    """Reply rows in buckets of similar length that minimise padded tokens + passes.

    Replies of one prompt are often of very different lengths (a 48-token constructive reply, a
    10-token refusal): right-padded together, half of what the reply pass computes is padding.
    Buckets are contiguous runs of the rows sorted by length (an exact dynamic programme).
    Returns ``[(rows, width), ...]`` and the (N,) index that puts the buckets' concatenated
    real tokens back into row-major order. ``cost``: what one more pass costs in padded tokens
    (default ``_BUCKET_COST``).
    """
    cost = _BUCKET_COST if cost is None else cost
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[k]: cost of the first k sorted rows
    cut = [0] * (n + 1)
    for k in range(1, n + 1):
        for j in range(k):  # rows order[j:k] form the last bucket, width lengths[order[k-1]]
            total = best[j] + (k - j) * lengths[order[k - 1]] + cost
            if total < best[k]:
                best[k], cut[k] = total, j
    spans = []
    k = n
    while k > 0:
        spans.append((cut[k], k))
        k = cut[k]
    spans.reverse()
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    where = [0] * offsets[-1]
    buckets, pos = [], 0
    for j, k in spans:
        rows = order[j:k]
        for r in rows:
            for t in range(lengths[r]):
                where[offsets[r] + t] = pos
                pos += 1
        buckets.append((torch.tensor(rows, dtype=torch.long), lengths[order[k - 1]]))
    return buckets, torch.tensor(where, dtype=torch.long)


def _pad_hidden(rows: Sequence[torch.Tensor], width: int, side: str) -> torch.Tensor:
    """(n, width, d) from (T_i, d) rows, zero-padded on ``side`` (padding is masked out)."""
    out = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])
    for i, row in enumerate(rows):
        if side == "left":
            out[i, width - len(row) :] = row
        else:
            out[i, : len(row)] = row
    return out


def head_logits(model: OysterModel, hidden: torch.Tensor) -> torch.Tensor:
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
    pmask = packed.prompt_mask
    mask = torch.cat([pmask[packed.owner], packed.reply_mask], dim=1)  # (R, Tp + Tr)
    start = pmask.sum(1)[packed.owner].unsqueeze(1)  # (R, 1) each reply's first position
    pos = start + torch.arange(packed.reply_ids.shape[1], device=start.device)  # (R, Tr)
    if packed.prompt_hidden is None:
        if packed.n_replies != pmask.shape[0] and _position_tracked(model):
            # a tracker keeps one state per batch row from the prompt pass (its decision, the
            # prompt's end): the reply pass must see the same rows, so each reply gets its own
            # copy of its prompt instead of a gathered cache row
            packed = replace(
                packed,
                prompt_ids=packed.prompt_ids[packed.owner],
                prompt_mask=pmask[packed.owner],
                owner=torch.arange(packed.n_replies, device=packed.owner.device),
            )
        first_h, second_h = _two_passes(model, packed, mask, pos)
        hidden = torch.cat(
            [first_h[packed.owner, -1:], second_h[:, :-1]], dim=1
        )  # (R, Tr, d): position k predicts reply token k
        tokens = hidden[packed.reply_mask.bool()]  # (N, d)
    else:
        _refuse_position_trackers(model)
        tokens = _two_passes_from(model, packed, mask, pos)
    logp = torch.log_softmax(head_logits(model, tokens).float(), dim=-1)  # (N, V)
    if full:
        return logp
    return logp.gather(-1, packed.targets.unsqueeze(-1)).squeeze(-1)  # (N,)


def _position_tracked(model: OysterModel) -> bool:
    """Whether a position tracker (``positions="prompt"``/``"generated"`` steering, a
    ControlPlan) is attached: it learns each row's prompt end (and a plan its decision) from a
    hook on the first block and keeps that state per batch row."""
    block = model.hf.get_submodule(f"{model.spec.layers}.0")
    return any(
        getattr(getattr(hook, "__self__", None), "keys_on_first_block", False)
        for hook in block._forward_pre_hooks.values()
    )


def _refuse_position_trackers(model: OysterModel) -> None:
    """Raise if a position tracker is attached (:func:`_position_tracked`): the frozen-inputs
    passes skip the first block, so its masks there would be stale or another row's."""
    if _position_tracked(model):
        raise ValueError(
            "scoring from frozen inputs cannot run under steering that selects prompt or "
            "generated tokens (or a ControlPlan): score with the full forward (pack without hidden=)"
        )


def _two_passes(
    model: OysterModel, packed: Packed, mask: torch.Tensor, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states of the prompt pass (P, Tp, d) and of the reply pass on its cache."""
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
    second = base(
        input_ids=packed.reply_ids,
        attention_mask=mask,
        position_ids=pos,
        past_key_values=cache,
        use_cache=True,
    )
    return first.last_hidden_state, second.last_hidden_state


def _two_passes_from(
    model: OysterModel, packed: Packed, mask: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """Final hidden states (N, d) that predict each reply token, row-major, from the packed
    frozen inputs: only blocks ``packed.layer`` and up run. The prompts run once; the replies
    run on their prompts' cache, one pass per length bucket (no pass computes much padding)."""
    from transformers import DynamicCache

    assert packed.prompt_hidden is not None and packed.reply_hidden is not None
    assert packed.unbucket is not None
    cache = DynamicCache(config=model.hf.config)  # blocks below the layer never write to it
    pmask, head, hidden = packed.prompt_mask, packed.head, packed.prompt_hidden.to(model.dtype)
    tp = pmask.shape[1]
    window = sliding_window(model)
    if window is not None and tp + packed.reply_mask.shape[1] >= window:
        head = 0  # the padding after a cached head could push it out of a row's sliding window
    if head:
        # the shared head: once, at batch 1 (row 0's copy: every row's is the same), then its
        # KV is every row's prefix; the prompts' own tokens follow, left-padded after it
        ones = pmask.new_ones(1, head)
        own = pmask.sum(1, keepdim=True) - head  # (P, 1) each prompt's tokens after the head
        width = tp - head
        own_mask = (torch.arange(width, device=pmask.device) >= width - own).long()  # (P, W)
        assert packed.head_hidden is not None
        forward_from(
            model,
            packed.layer,
            packed.head_hidden.to(model.dtype),
            ones,
            position_ids(ones),
            past_key_values=cache,
        )
        cache.batch_select_indices(pmask.new_zeros(pmask.shape[0]))
        pmask = torch.cat([ones.expand(pmask.shape[0], -1), own_mask], dim=1)  # (P, Tp)
        mask = torch.cat([pmask[packed.owner], packed.reply_mask], dim=1)
        first = forward_from(
            model,
            packed.layer,
            hidden[:, head:],
            pmask,
            position_ids(pmask)[:, head:],
            past_key_values=cache,
        )
    else:
        first = forward_from(
            model, packed.layer, hidden, pmask, position_ids(pmask), past_key_values=cache
        )
    parts = []
    for rows, width in packed.buckets:
        owner = packed.owner[rows]
        second = forward_from(
            model,
            packed.layer,
            packed.reply_hidden[rows, :width].to(model.dtype),
            mask[rows, : tp + width],
            pos[rows, :width],
            past_key_values=_cache_rows(cache, owner),
        )
        hidden = torch.cat([first[owner, -1:], second[:, :-1]], dim=1)  # (n, width, d)
        parts.append(hidden[packed.reply_mask[rows, :width].bool()])
    return torch.cat(parts)[packed.unbucket]


def _cache_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding batch rows ``rows`` of ``cache`` (which is left as it is).

    Layers are copied shallowly: ``batch_select_indices`` and the next pass's ``update`` rebind
    the copies' tensors, so several reply passes can each extend their own rows of one prompt
    pass's cache, gradients included."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.batch_select_indices(rows)
    return out


class _Reached(Exception):
    """Raised by the read hook of :func:`frozen_inputs` once block ``layer`` is reached."""


@torch.no_grad()
def frozen_inputs(
    model: OysterModel, groups: Sequence[Group], layer: int, *, batch_size: int = 16
) -> list[FrozenInputs]:
    """Per group, ``resid_pre`` of block ``layer`` at its prompt and reply tokens, computed once.

    Run it with no steering installed below ``layer`` (what it keeps must be what the unsteered
    lower blocks compute); then ``pack(groups, ..., hidden=...)`` scores the groups under any
    steering at ``layer`` or above with only the upper blocks. Same device as the model.
    """
    from transformers import DynamicCache

    if not supports_forward_from(model):
        raise ValueError(
            f"frozen_inputs needs a family that forward_from runs; {model.model_type!r} is not one: "
            "score with the full forward (pack without hidden=)"
        )
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer={layer} is out of range: pass 0 <= layer < {model.n_layers}")
    block = model.hf.get_submodule(model.spec.layers)[layer]
    seen: list[torch.Tensor] = []

    def read(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(args[0] if args else kwargs["hidden_states"])
        raise _Reached

    out: list[FrozenInputs | None] = [None] * len(groups)
    base = model.hf.base_model
    handle = block.register_forward_pre_hook(read, with_kwargs=True)
    try:
        for chunk, packed in _packed_batches(model, groups, batch_size):
            pmask = packed.prompt_mask
            cache = DynamicCache(config=model.hf.config)  # blocks below ``layer`` fill it
            with contextlib.suppress(_Reached):
                base(
                    input_ids=packed.prompt_ids,
                    attention_mask=pmask,
                    position_ids=position_ids(pmask),
                    past_key_values=cache,
                    use_cache=True,
                )
            prompt_h = seen.pop()
            cache.batch_select_indices(packed.owner)
            mask = torch.cat([pmask[packed.owner], packed.reply_mask], dim=1)
            start = pmask.sum(1)[packed.owner].unsqueeze(1)
            pos = start + torch.arange(packed.reply_ids.shape[1], device=start.device)
            with contextlib.suppress(_Reached):
                base(  # at layer 0 nothing is cached: the reply's embeddings need no prompt
                    input_ids=packed.reply_ids,
                    attention_mask=mask if layer else packed.reply_mask,
                    position_ids=pos,
                    past_key_values=cache if layer else None,
                    use_cache=bool(layer),
                )
            reply_h = seen.pop()
            rows = iter(range(packed.n_replies))
            for j, i in enumerate(chunk):
                n_prompt = len(groups[i].prompt)
                out[i] = FrozenInputs(
                    layer,
                    prompt_h[j, prompt_h.shape[1] - n_prompt :].clone(),
                    tuple(reply_h[next(rows), : len(r)].clone() for r in groups[i].replies),
                )
    finally:
        handle.remove()
    return out  # type: ignore[return-value]


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


def _packed_batches(
    model: OysterModel,
    groups: Sequence[Group],
    batch_size: int,
    hidden: Sequence[FrozenInputs] | None = None,
    *,
    share_head: bool = False,
) -> Iterator[tuple[list[int], Packed]]:
    """Each of :func:`_length_batches`' index batches with its groups :func:`pack`-ed on the
    model's device (``hidden`` and ``share_head`` as in :func:`pack`)."""
    for chunk in _length_batches(groups, batch_size):
        batch = [groups[i] for i in chunk]
        part = None if hidden is None else [hidden[i] for i in chunk]
        yield chunk, pack(batch, model.pad_id, model.device, part, share_head=share_head)


@torch.no_grad()
def score_groups(
    model: OysterModel,
    groups: Sequence[Group],
    *,
    full: bool = False,
    batch_size: int = 16,
    hidden: Sequence[FrozenInputs] | None = None,
    share_head: bool = False,
) -> list[torch.Tensor]:
    """Per group, on the CPU: its replies' mean token log-probs (n_replies,), or when ``full``
    the (total reply tokens, V) log-probabilities, replies concatenated in order.

    ``hidden``: the groups' :func:`frozen_inputs`, to run only the blocks above them;
    ``share_head``: with ``hidden``, run the prompts' common head once (see :func:`pack`)."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(groups)
    for chunk, packed in _packed_batches(model, groups, batch_size, hidden, share_head=share_head):
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
    hidden: Sequence[FrozenInputs] | None = None,
    share_head: bool = False,
) -> torch.Tensor:
    """Per group, the mean over its reply tokens of KL(reference || model): (n_groups,), CPU.

    ``reference[i]`` holds group i's (tokens, V) log-probabilities from :func:`score_groups`
    with ``full=True``, e.g. computed without steering; ``hidden`` and ``share_head`` as in
    :func:`score_groups`.
    """
    out = torch.zeros(len(groups))
    for chunk, packed in _packed_batches(model, groups, batch_size, hidden, share_head=share_head):
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
