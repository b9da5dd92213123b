"""Greedy replies in left-padded batches, and teacher-forced divergence on reference replies.

Example:
    >>> replies = generate_replies(model, ["Hi!", "How do I bake bread?"], max_new_tokens=16)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from ..backends import Hook, StopForward, get_backend, position_ids
from ..core._errors import EmptyInputError
from ..core._sites import Site, resolve_site
from ..models._model import left_pad

if TYPE_CHECKING:
    from ..control._runtime import DecisionLog
    from ..models._model import OysterModel

__all__ = ["divergence", "generate_replies", "prompt_pass"]


Read = tuple[float | None, "torch.Tensor | None"]
"""What the judges read from the unsteered model for one reply: its mean NLL per token and the
refusal probe's features (the probe site's mean over the reply's tokens)."""


@torch.inference_mode()
def generate_replies(
    model: OysterModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    after_batch: Callable[[list[int]], None] | None = None,
    generate_kwargs: dict[str, Any] | None = None,
    decisions: DecisionLog | None = None,
) -> list[str]:
    """Greedy replies to ``prompts`` (chat-formatted), with whatever hooks are installed on ``model``.

    Prompts are batched in length order (little padding) and replies returned in input order.
    ``decisions``: a :class:`~oyster_steer.control.DecisionLog` of the control plan patched on
    ``model``; afterwards ``decisions.result()`` holds every prompt's decisions in input order
    (``handle.decisions()`` alone is the last batch's, in batch order).
    ``after_batch(indices)`` runs after each batch with the prompts' indices in batch-row order.
    ``generate_kwargs`` go to the backend's ``generate`` (e.g. ``cache_implementation="static"``
    on the hf backend).
    """
    if decisions is not None:
        decisions.start(model, len(prompts))
        after_batch = _both(decisions, after_batch)
    return _generate(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        after_batch=after_batch,
        generate_kwargs=generate_kwargs,
    )[0]


def _both(
    first: Callable[[list[int]], None], then: Callable[[list[int]], None] | None
) -> Callable[[list[int]], None]:
    """An ``after_batch`` that calls ``first`` and then ``then`` (when given)."""

    def call(batch: list[int]) -> None:
        first(batch)
        if then is not None:
            then(batch)

    return call


@torch.inference_mode()
def _generate(
    model: OysterModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    after_batch: Callable[[list[int]], None] | None = None,
    generate_kwargs: dict[str, Any] | None = None,
    read_site: Site | None = None,
    read_nll: bool = False,
) -> tuple[list[str], list[Read | None]]:
    """:func:`generate_replies`, and with ``read_site`` / ``read_nll`` (hf backend, no hooks
    installed: the unsteered model) also what the judges read, taken from the generation itself.

    Greedy decoding computes, for every reply token, the logits that predict it (its NLL) and,
    on the step that feeds it, its activation at ``read_site``: the teacher-forced judge pass
    over prompt + reply computes the same values (up to float rounding of another batch). The
    judges re-tokenize the decoded reply, so a row's reads are kept only where that gives back
    exactly the generated tokens (else None: the judges run their own pass for it). One extra
    decode step reads the last token of a reply cut at ``max_new_tokens``.
    """
    if not prompts:
        raise EmptyInputError("no prompts to answer: pass at least one prompt")
    reading = read_site is not None or read_nll
    rows = [model.encode([p])[0][0].tolist() for p in prompts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    backend = get_backend(model.backend)
    replies: list[str] = [""] * len(rows)
    reads: list[Read | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids, mask = left_pad([rows[i] for i in batch], model.pad_id, model.device)  # (B, T)
        steps: list[torch.Tensor] = []  # (B, d) per pass: the prompt pass, then each step
        logits: tuple[torch.Tensor, ...] = ()  # (B, V) per generated token
        if not reading:
            out = backend.generate(
                model, ids, mask, max_new_tokens=max_new_tokens, **(generate_kwargs or {})
            )  # (B, T + new)
            new_ids = out[:, ids.shape[1] :]
        else:
            hooks = [] if read_site is None else [Hook(read_site, _keep_last(steps))]
            out = cast(Any, backend).generate(
                model,
                ids,
                mask,
                hooks,
                max_new_tokens=max_new_tokens + (read_site is not None),
                output_logits=True,
                return_dict_in_generate=True,
                **(generate_kwargs or {}),
            )
            new_ids = out.sequences[:, ids.shape[1] : ids.shape[1] + max_new_tokens]
            logits = out.logits
        for row, (i, new) in enumerate(zip(batch, new_ids, strict=True)):
            replies[i] = _decode(model, new)
            if reading:
                reads[i] = _row_reads(model, new, replies[i], logits, steps, row, read_nll)
        if after_batch is not None:
            after_batch(batch)
    return replies, reads


def _keep_last(steps: list[torch.Tensor]) -> Callable[[torch.Tensor], None]:
    """A read hook that keeps each pass's last position (B, d) (a view: nothing is copied)."""

    def keep(x: torch.Tensor) -> None:
        steps.append(x[:, -1])

    return keep


def _row_reads(
    model: OysterModel,
    new: torch.Tensor,
    reply: str,
    logits: Sequence[torch.Tensor],
    steps: Sequence[torch.Tensor],
    row: int,
    nll: bool,
) -> Read | None:
    """One row's judge reads from its generation (see :func:`_generate`); None when the judges
    would tokenize the reply into other tokens than the generated ones."""
    ids = new.tolist()
    eos = model.tokenizer.eos_token_id
    n = ids.index(eos) if eos is not None and eos in ids else len(ids)
    if (
        not reply.strip()
        or model.tokenizer(reply, add_special_tokens=False)["input_ids"] != ids[:n]
    ):
        return None
    value = None
    if nll:
        step_logits = torch.stack(
            [logits[j][row] for j in range(n)]
        )  # (n, V): logits j predict token j
        logp = step_logits.float().log_softmax(-1)
        value = float(-logp.gather(-1, torch.tensor(ids[:n], device=logp.device)[:, None]).mean())
    feats = None
    if steps:
        # pass 0 is the prompt; pass j + 1 fed reply token j
        feats = torch.stack([steps[j + 1][row] for j in range(n)]).float().mean(0).cpu()
    return value, feats


@torch.inference_mode()
def prompt_pass(model: OysterModel, prompts: Sequence[str], stop_layer: int | None = None) -> None:
    """Run ``prompts`` (chat-formatted, left-padded in this order) as ``generate`` runs its
    prompt pass, with whatever hooks are installed, up to block ``stop_layer`` (exclusive).

    For reading what hooks latch on a prompt pass (a control plan's per-row decisions) without
    generating: the blocks above the probes and the LM head are not run. hf backend only.
    """
    if not prompts:
        raise EmptyInputError("no prompts to run: pass at least one prompt")
    _prompt_pass_ids(model, [model.encode([p])[0][0].tolist() for p in prompts], stop_layer)


def _prompt_pass_ids(
    model: OysterModel, rows: Sequence[Sequence[int]], stop_layer: int | None
) -> None:
    """:func:`prompt_pass` on chat-formatted token ids."""
    ids, mask = left_pad(rows, model.pad_id, model.device)
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as generate's prompt pass
    handle = None
    if stop_layer is not None and stop_layer < model.n_layers:

        def stop(*_: Any) -> None:
            raise StopForward

        block = model.hf.get_submodule(model.spec.layers)[stop_layer]
        handle = block.register_forward_pre_hook(stop)
    try:
        model.hf(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    except StopForward:
        pass
    finally:
        if handle is not None:
            handle.remove()


def _decode(model: OysterModel, new: torch.Tensor) -> str:
    """Text of generated ids up to the first end-of-sequence token."""
    ids = new.tolist()
    eos = model.tokenizer.eos_token_id
    if eos is not None and eos in ids:
        ids = ids[: ids.index(eos)]
    return model.tokenizer.decode(ids, skip_special_tokens=True).strip()


def _reference_rows(
    model: OysterModel, prompts: Sequence[str], references: Sequence[str]
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids in the chat template, reference ids + end of turn) per prompt."""
    out = []
    eos = model.tokenizer.eos_token_id
    for prompt, ref in zip(prompts, references, strict=True):
        head = model.encode([prompt])[0][0].tolist()
        tail = model.tokenizer(ref, add_special_tokens=False)["input_ids"] if ref.strip() else []
        tail = (tail + ([eos] if eos is not None else []))[:256] or [model.pad_id]
        out.append((head, tail))
    return out


def _last_logits_only(model: OysterModel) -> dict[str, int]:
    """Forward kwargs that compute the LM head at the last position only, where supported."""
    return {"logits_to_keep": 1} if model.hf._supports_logits_to_keep() else {}


def _reply_logprobs(
    model: OysterModel, batch: Sequence[tuple[list[int], list[int]]]
) -> list[torch.Tensor]:
    """Per row, (n_i, vocab) log-probabilities of the reply tokens, read like decoding reads them.

    The prompt runs as one prefill pass and the reply as a second pass on its KV cache, so that
    steering limited to generated tokens (``positions="generated"``) acts on the reply exactly
    as it does while generating.
    """
    ids, mask = left_pad([p for p, _ in batch], model.pad_id, model.device)  # (B, Tp)
    first = model.hf(  # only the last prompt position's logits are read
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        use_cache=True,
        **_last_logits_only(model),
    )
    n = [len(r) for _, r in batch]
    reply = torch.full((len(batch), max(n)), model.pad_id, dtype=torch.long, device=model.device)
    reply_mask = torch.zeros_like(reply)  # (B, W) right-padded
    for i, (_, r) in enumerate(batch):
        reply[i, : len(r)] = torch.tensor(r, device=model.device)
        reply_mask[i, : len(r)] = 1
    pos = mask.sum(1, keepdim=True) + torch.arange(reply.shape[1], device=model.device)  # (B, W)
    second = model.hf(
        input_ids=reply,
        attention_mask=torch.cat([mask, reply_mask], 1),
        position_ids=pos,
        past_key_values=first.past_key_values,
        use_cache=True,
    )
    logits = torch.cat([first.logits[:, -1:], second.logits[:, :-1]], 1)  # (B, W, V)
    return [logits[i, :k].float().log_softmax(-1) for i, k in enumerate(n)]


def _steered_rows(model: OysterModel, handle: Any, prompts: list[list[int]]) -> list[int]:
    """Rows of a batch that a control plan steers: one prompt pass up to its probes latches the
    decisions, and rows whose gates switch on no action
    (:meth:`~oyster_steer.control.ControlHandle.inert_rows`) compute what the unpatched model
    computes, so their steered log-probs are the unsteered ones. Every row for any other
    condition (no ``inert_rows``) or when none is inert."""
    every = list(range(len(prompts)))
    if not hasattr(handle, "inert_rows"):
        return every
    plan = handle.plan
    stop = 1 + max(
        resolve_site(p.site, model.n_layers).layer for p in (plan.probe, *plan.monitors.values())
    )
    _prompt_pass_ids(model, prompts, stop)
    inert = handle.inert_rows()
    return [i for i in every if not bool(inert[i])]


@torch.inference_mode()
def divergence(
    model: OysterModel,
    prompts: Sequence[str],
    references: Sequence[str],
    condition: Any,
    *,
    batch_size: int = 8,
) -> list[dict[str, float]]:
    """How a condition moves next-token distributions along reference replies.

    Runs on the Hugging Face view of ``model`` (same weights; backends agree to ~1e-7).

    Args:
        prompts, references: prompts and reference replies (e.g. the unsteered replies).
        condition: anything with ``applied(model)`` (a :class:`~oyster_steer.eval.Condition`).

    Returns:
        Per prompt: ``kl`` = mean over reply positions of KL(unsteered || steered) in nats, and
        ``nll_base``/``nll_steered`` = mean negative log-likelihood of the reference tokens.
    """
    hf = model.with_backend("hf")
    rows = _reference_rows(hf, prompts, references)
    out: list[dict[str, float]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        base = _reply_logprobs(hf, batch)
        with condition.applied(hf) as handle:
            steered = _steered_rows(hf, handle, [p for p, _ in batch])
            moved = list(base)  # a row the plan leaves unsteered computes the unsteered values
            if steered:
                found = _reply_logprobs(hf, [batch[i] for i in steered])
                for i, q in zip(steered, found, strict=True):
                    moved[i] = q
        for (_, reply), p, q in zip(batch, base, moved, strict=True):
            target = torch.tensor(reply, device=p.device)[:, None]  # (k, 1)
            kl = (p.exp() * (p - q)).sum(-1).mean()  # mean over reply positions
            out.append(
                {
                    "kl": float(kl),
                    "nll_base": float(-p.gather(-1, target).mean()),
                    "nll_steered": float(-q.gather(-1, target).mean()),
                }
            )
    return out
