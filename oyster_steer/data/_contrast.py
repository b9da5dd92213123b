"""Contrast sets: for each prompt, the reply to move toward and the replies to move away from.

A *target* names the behaviour a vector writes. Replies come from
:func:`oyster_steer.data._exemplars.exemplar_for`, so they are deterministic and carry no
operational harmful content (compliance replies are redacted placeholders).

==============  ===============================  ======================  ===========================
target          prompts (intents)                 positive reply          negative replies
==============  ===============================  ======================  ===========================
constructive    vulnerable, malicious             constructive guidance   bare refusal, compliance
refusal         vulnerable, malicious             bare refusal            compliance
refusal         benign, borderline                bare refusal            helpful opening
==============  ===============================  ======================  ===========================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core._errors import EmptyInputError
from ._exemplars import exemplar_for

__all__ = [
    "BENIGN_INTENTS",
    "RISKY_INTENTS",
    "TARGETS",
    "Contrast",
    "contrast_triples",
    "contrasts_for",
    "keep_short",
    "records_of",
    "sample_records",
]

RISKY_INTENTS = ("vulnerable", "malicious")
BENIGN_INTENTS = ("benign", "borderline")


@dataclass(frozen=True)
class Contrast:
    """One prompt with the reply to prefer and the replies to prefer it over."""

    prompt: str
    intent: str
    positive: str
    negatives: tuple[str, ...]


def _constructive(ex: Any) -> tuple[str, tuple[str, ...]] | None:
    if ex.intent not in RISKY_INTENTS:
        return None
    return ex.constructive, (ex.refusal, ex.compliance)


def _refusal(ex: Any) -> tuple[str, tuple[str, ...]] | None:
    if ex.intent in RISKY_INTENTS:
        return ex.refusal, (ex.compliance,)
    return ex.refusal, (ex.helpful,)


# target -> (intents it uses by default, exemplar -> (positive, negatives))
TARGETS: dict[str, tuple[tuple[str, ...], Callable[[Any], tuple[str, tuple[str, ...]] | None]]] = {
    "constructive": (RISKY_INTENTS, _constructive),
    "refusal": (RISKY_INTENTS + BENIGN_INTENTS, _refusal),
}


def records_of(data: Any) -> list[Any]:
    """Records (objects with ``.text``, ``.intent``, ``.category``) from a PromptSet or an iterable."""
    records = list(data)
    bad = [r for r in records[:1] if not all(hasattr(r, a) for a in ("text", "intent", "category"))]
    if bad:
        raise TypeError(
            f"training data must be a PromptSet or records with .text/.intent/.category, got {type(bad[0]).__name__}"
        )
    return records


def _rank(text: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{text}".encode()).digest()[:8], "big")


def sample_records(
    records: Iterable[Any],
    intents: Sequence[str],
    n_per_intent: int | None,
    seed: int = 0,
    keep: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """Up to ``n_per_intent`` records of each intent, chosen by a seeded hash (order-independent)."""
    if n_per_intent is not None and n_per_intent < 0:
        raise ValueError(f"n_per_intent={n_per_intent} is negative: pass 0 or more (None for all)")
    out: list[Any] = []
    pool = [r for r in records if keep is None or keep(r)]
    for intent in intents:
        chosen = sorted((r for r in pool if r.intent == intent), key=lambda r: _rank(r.text, seed))
        out.extend(chosen[:n_per_intent] if n_per_intent is not None else chosen)
    return out


def keep_short(tokenizer: Any, max_tokens: int) -> Callable[[Any], bool]:
    """A ``keep`` for :func:`sample_records`: records whose text is at most ``max_tokens`` tokens
    (without special tokens)."""

    def keep(record: Any) -> bool:
        return len(tokenizer(record.text, add_special_tokens=False)["input_ids"]) <= max_tokens

    return keep


def contrasts_for(
    records: Iterable[Any], target: str, intents: Sequence[str] | None = None
) -> list[Contrast]:
    """The contrast set of ``target`` over ``records`` (restricted to ``intents`` when given).

    Example:
        >>> from oyster_steer.data import load_starter
        >>> cs = contrasts_for(load_starter(), "constructive")
        >>> cs[0].negatives[1].endswith("[details withheld]")
        True
    """

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    default_intents, build = TARGETS[target]
    wanted = set(intents or default_intents)
    out = []
    for r in records:
        if r.intent not in wanted:
            continue
        ex = exemplar_for(r.text, r.intent, r.category, getattr(r, "risk", None))
        made = build(ex)
        if made is not None and all(made[1]):
            out.append(Contrast(r.text, r.intent, made[0], made[1]))
    if not out:
        raise EmptyInputError(
            f"no prompts for target {target!r} among intents {sorted(wanted)}: pass data with such prompts"
        )
    return out


def contrast_triples(
    records: Iterable[Any], target: str, intents: Sequence[str] | None = None
) -> list[tuple[str, str, str]]:
    """The contrast set of ``target`` as ``(prompt, positive, negative)`` triples (one per negative).

    What :func:`oyster_steer.train_vector` makes of a PromptSet: the Oyster contrasts are one
    input of the generic trainer, not its only one.

    Example:
        >>> from oyster_steer.data import load_starter
        >>> prompt, positive, negative = contrast_triples(load_starter(), "refusal")[0]
    """
    return [
        (c.prompt, c.positive, n)
        for c in contrasts_for(records, target, intents)
        for n in c.negatives
    ]
