"""One forward of the unsteered model over prompt + reply for the judges that read the model.

The coherence judge's reply NLL (:func:`~oyster_steer.eval._coherence.reply_nll`) and the
refusal probe's reply activations (:func:`~oyster_steer.eval._reply_probe.reply_activations`)
each ran the unsteered model over the chat-formatted prompt and the reply: the NLL as two passes
(prompt prefill, then the reply on its KV cache) with the LM head at every position, the probe
up to its block. :func:`judge_reads` runs one pass over prompt + reply and reads both: the probe
site's mean over the reply's tokens, and the LM head only at the positions that predict a reply
token. Same tokens, same positions, same causal attention: the values are those of the two
passes up to float rounding (``tests/test_eval_judge_pass.py``). hf backend.

Example:
    >>> nlls, feats = judge_reads(model, ["Hi!"], ["Hello!"], probe.site)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from ..activations._scoring import head_logits
from ..backends import Hook, StopForward, get_backend, position_ids
from ..core._sites import Site, resolve_site
from ..models._model import carries_hooks, left_pad, shared_prefix_length, sliding_window
from ._reply_probe import check_reply_pairs

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["judge_reads"]

NLL_MAX_TOKENS = 256
"""The coherence judge scores at most this many reply tokens (as ``reply_nll`` does)."""


def _rows(
    model: OysterModel, prompts: Sequence[str], replies: Sequence[str]
) -> list[tuple[list[int], list[int], int]]:
    """Per row: prompt ids in the chat template, the reply's ids as the refusal probe reads
    them (``" "`` for an empty reply, at least one token), and how many of them the NLL scores
    (0 for a blank reply, else up to ``NLL_MAX_TOKENS``: the tokens ``reply_nll`` scores)."""
    out = []
    for prompt, reply in zip(prompts, replies, strict=True):
        head = model.encode([prompt])[0][0].tolist()
        tail = model.tokenizer(reply or " ", add_special_tokens=False)["input_ids"] or [
            model.pad_id
        ]
        scored = min(len(tail), NLL_MAX_TOKENS) if reply.strip() else 0
        out.append((head, tail, scored))
    return out


@torch.inference_mode()
def judge_reads(
    model: OysterModel,
    prompts: Sequence[str],
    replies: Sequence[str],
    site: str | Site | None,
    *,
    nll: bool = True,
    batch_size: int = 8,
) -> tuple[list[float | None], torch.Tensor | None]:
    """Reply NLL and refusal-probe features of each reply, from one pass of ``model`` as it is.

    Args:
        model: an hf-backend model, read with no steering active.
        prompts, replies: parallel lists (prompts are chat-formatted here).
        site: where the refusal probe reads (its mean over the reply's tokens), or None.
        nll: also score each reply's mean negative log-likelihood per token (nats).
        batch_size: rows per forward pass (rows are sorted by length: little padding).

    Returns:
        (per reply its NLL, or None for a blank reply or when ``nll`` is off;
        (N, d) probe features on the CPU, or None when ``site`` is None).
    """
    check_reply_pairs(prompts, replies)
    if model.backend != "hf":
        raise ValueError(
            f"judge_reads runs on the hf backend, not {model.backend!r}: pass model.with_backend('hf')"
        )
    site = resolve_site(site, model.n_layers) if site is not None else None
    rows = _rows(model, prompts, replies)
    nlls: list[float | None] = [None] * len(rows)
    feats = torch.zeros(len(rows), model.d_model) if site is not None else None
    if site is None and not nll:
        return nlls, feats
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    prefix, shared = _shared_head(model, [h for h, _, _ in rows])
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [rows[i] for i in idx]
        ids, mask = left_pad([h[shared:] + t for h, t, _ in batch], model.pad_id, model.device)
        width = ids.shape[1]
        found: dict[str, torch.Tensor] = {}
        hooks = []
        if site is not None:
            reply_mask = torch.zeros(ids.shape, dtype=torch.float32, device=model.device)
            for i, (_, tail, _) in enumerate(batch):
                reply_mask[i, width - len(tail) :] = 1.0  # (B, T): 1 on reply tokens

            def read(
                x: torch.Tensor,
                found: dict[str, torch.Tensor] = found,
                m: torch.Tensor = reply_mask,
            ) -> None:
                found["x"] = (x.float() * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)

            hooks.append(Hook(site, read))
        want_nll = nll and any(k for _, _, k in batch)
        if not want_nll and site is None:
            continue
        # the probe alone stops after its block, as reply_activations does
        stop = _stop_after(model, site) if not want_nll else contextlib.nullcontext()
        kwargs: dict[str, Any] = dict(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False
        )  # (B, T) each row's prompt after the shared head, then its reply
        if prefix is not None:  # every row attends to the head's KV; positions continue from it
            kwargs.update(
                attention_mask=torch.cat([mask.new_ones(len(batch), shared), mask], dim=1),
                position_ids=position_ids(mask) + shared,
                past_key_values=prefix.expanded(len(batch)),
                use_cache=True,
            )
        with get_backend("hf").add_hooks(model, hooks), stop:
            out = model.hf.base_model(**kwargs)
        if feats is not None:
            feats[idx] = found["x"].cpu()
        if want_nll:
            for row, value in zip(idx, _nll(model, out.last_hidden_state, batch), strict=True):
                nlls[row] = value
    return nlls, feats


_MIN_SHARED = 8  # a shorter shared head is not worth a pass of its own


def _shared_head(model: OysterModel, heads: Sequence[Sequence[int]]) -> tuple[Any, int]:
    """The KV cache of the token prefix every prompt shares (the chat template's system head),
    run once at batch 1, and its length; (None, 0) when it is short, there is one row, the
    model carries hooks (a patch would steer or read the head's tokens per row), or it has
    sliding-window attention (its window counts cache slots, and the left padding between the
    head and a short row's tokens would push the head out of the row's window)."""
    if len(heads) < 2 or sliding_window(model) is not None or carries_hooks(model):
        return None, 0
    n = shared_prefix_length(heads)  # each row keeps at least one prompt token of its own
    if n < _MIN_SHARED:
        return None, 0
    prefix = cast(Any, get_backend("hf")).prefix_kv(
        model, torch.tensor([list(heads[0][:n])], device=model.device)
    )
    return prefix, n


def _nll(
    model: OysterModel, hidden: torch.Tensor, batch: Sequence[tuple[list[int], list[int], int]]
) -> list[float | None]:
    """Mean NLL of each row's first ``k`` reply tokens from the final hidden states (B, T, d) of
    its left-padded prompt + reply: the LM head runs only where a reply token is predicted."""
    width = hidden.shape[1]
    picks, targets = [], []
    for i, (_, tail, k) in enumerate(batch):
        first = width - len(tail) - 1  # the last prompt position predicts reply token 0
        picks.append(hidden[i, first : first + k])
        targets.extend(tail[:k])
    logp = torch.log_softmax(head_logits(model, torch.cat(picks)).float(), dim=-1)  # (N, V)
    tok = torch.tensor(targets, device=logp.device)[:, None]  # (N, 1)
    picked = logp.gather(-1, tok).squeeze(-1).split([k for _, _, k in batch])
    return [float(-p.mean()) if k else None for p, (_, _, k) in zip(picked, batch, strict=True)]


@contextlib.contextmanager
def _stop_after(model: OysterModel, site: Site | None) -> Iterator[None]:
    """Stop a forward pass after the block of ``site`` (nothing above it is needed)."""
    blocks = model.hf.get_submodule(model.spec.layers)
    after = resolve_site(site, model.n_layers).layer + 1 if site is not None else len(blocks)
    if after >= len(blocks):
        yield
        return

    def stop(*_: object) -> None:
        raise StopForward

    handle = blocks[after].register_forward_pre_hook(stop)
    try:
        with contextlib.suppress(StopForward):
            yield
    finally:
        handle.remove()
