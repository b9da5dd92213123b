"""The labelled prompt splits the shipped probes are trained and scored on.

Start from :func:`oyster_steer.data.load_all` (starter set + ``../shared/data``), keep its
leak-free hash splits, cap the three largest, longest sources so a full capture stays within
minutes on a laptop CPU, and add jailbreak-wrapped copies of short prompts of **every** intent
(harmful and benign requests in the same frames) so that a probe has to read the request, not
the template. A wrapped copy stays in the split of its original request, so nothing leaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data import (
    WRAPPER_TEMPLATES,
    PromptRecord,
    PromptSet,
    augment_attacks,
    load_all,
    wrap_prompt,
)
from ..data._records import unit_hash
from ..data._shift import load_shift_sources

__all__ = ["DEFAULT_ATTACK_FRACTIONS", "DEFAULT_CAPS", "ProbeData", "is_wrapped", "probe_splits"]

# Per split, the most prompts kept from each large source (chosen by a hash of the record id).
DEFAULT_CAPS: dict[str, dict[str, int]] = {
    "train": {
        "alpaca": 600,
        "reddit-cssrs": 250,
        "counsel-chat": 200,
        "phtest": 700,
        "jbb-artifacts": 300,
    },
    "validation": {
        "alpaca": 150,
        "reddit-cssrs": 80,
        "counsel-chat": 60,
        "phtest": 200,
        "jbb-artifacts": 100,
    },
    "test": {
        "alpaca": 150,
        "reddit-cssrs": 100,
        "counsel-chat": 80,
        "phtest": 300,
        "jbb-artifacts": 150,
    },
}
# Share of short prompts per split that also appear in one seeded attack transform
# (data._wrappers.ATTACK_TRANSFORMS), every intent alike; validation and test get fewer.
DEFAULT_ATTACK_FRACTIONS: dict[str, float] = {"train": 0.2, "validation": 0.12, "test": 0.12}
# already jailbreaks: never wrapped again
_JAILBREAK_SOURCES = frozenset({"jbb-artifacts", "inthewild-template"})


@dataclass(frozen=True)
class ProbeData:
    """Train/validation/test prompt sets plus how they were made (for artifact metadata)."""

    train: PromptSet
    validation: PromptSet
    test: PromptSet
    description: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> PromptSet:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def is_wrapped(record: PromptRecord) -> bool:
    """Whether ``record`` is a jailbreak-wrapped copy made by :func:`probe_splits`."""
    return "wrapper" in record.meta


def _plain(record: PromptRecord) -> bool:
    """Neither from a jailbreak set nor already template-wrapped: a prompt an extra attack or
    wrap may go around."""
    return record.source not in _JAILBREAK_SOURCES and not is_wrapped(record)


def _attacked(records: PromptSet, fraction: float, max_chars: int, seed: int) -> PromptSet:
    """One seeded attack transform around a hash-chosen ``fraction`` of the short plain prompts."""
    chosen = [
        r
        for r in records
        if len(r.text) <= max_chars and _plain(r) and unit_hash(f"attack:{seed}:{r.id}") < fraction
    ]
    return augment_attacks(chosen, seed=seed) if chosen else PromptSet([])


def _extra_attacked(
    records: PromptSet, fractions: Mapping[str, float], max_chars: int, seed: int
) -> PromptSet:
    """A second seeded attack copy of a hash-chosen share of each intent's short plain prompts
    (``fractions``: intent -> share), drawn independently of :func:`_attacked`'s choice."""
    chosen = [
        r
        for r in records
        if len(r.text) <= max_chars
        and _plain(r)
        and unit_hash(f"extra-attack:{seed}:{r.id}") < fractions.get(r.intent, 0.0)
    ]
    return augment_attacks(chosen, seed=seed + 1) if chosen else PromptSet([])


def _extra_wrapped(
    records: PromptSet, fractions: Mapping[str, float], max_chars: int, seed: int
) -> PromptSet:
    """A second template-wrapped copy (another template draw) of a hash-chosen share of each
    intent's short plain prompts, drawn independently of :func:`_wrapped`'s choice."""
    chosen = PromptSet(
        [
            r
            for r in records
            if _plain(r) and unit_hash(f"extra-wrap:{seed}:{r.id}") < fractions.get(r.intent, 0.0)
        ]
    )
    return _wrapped(chosen, 1.0, max_chars, seed + 1)


def _cap(records: PromptSet, caps: Mapping[str, int], seed: int) -> PromptSet:

    kept: list[PromptRecord] = []
    by_source: dict[str, list[PromptRecord]] = {}
    for r in records:
        by_source.setdefault(r.source, []).append(r)
    chosen: set[Any] = set()
    for source, rs in by_source.items():
        limit = caps.get(source, len(rs))
        rs = sorted(rs, key=lambda r: unit_hash(f"cap:{seed}:{r.id}"))
        chosen.update(r.id for r in rs[:limit])
    kept = [r for r in records if r.id in chosen]
    return PromptSet(kept)


def _wrapped(records: PromptSet, fraction: float, max_chars: int, seed: int) -> PromptSet:

    out = []
    for r in records:
        if len(r.text) > max_chars or unit_hash(f"wrap:{seed}:{r.id}") >= fraction:
            continue
        k = int(unit_hash(f"template:{seed}:{r.id}") * len(WRAPPER_TEMPLATES))
        meta = {**r.meta, "wrapper": str(k), "wrapped_from": r.id}
        out.append(
            PromptRecord(wrap_prompt(r.text, k), r.intent, r.risk, r.category, r.source, meta=meta)
        )
    return PromptSet(out)


def probe_splits(
    prompts: PromptSet | None = None,
    *,
    caps: Mapping[str, Mapping[str, int]] | None = None,
    wrap_fraction: float = 0.25,
    wrap_max_chars: int = 600,
    shift_data: bool | None = None,
    data_dir: Any = None,
    attack_fractions: Mapping[str, float] | None = None,
    train_attacks: Mapping[str, float] | None = None,
    train_wraps: Mapping[str, float] | None = None,
    seed: int = 0,
) -> ProbeData:
    """Capped splits of ``prompts`` (default: ``load_all()``) with wrapped copies added.

    Args:
        prompts: the labelled pool; its hash splits are kept.
        caps: split -> source -> most prompts kept (default :data:`DEFAULT_CAPS`; ``{}`` for none).
        wrap_fraction: share of prompts up to ``wrap_max_chars`` long that also appear wrapped in
            one of ``WRAPPER_TEMPLATES`` (hash-chosen), whatever their intent.
        shift_data: (default: when ``prompts`` is None) add the lookalike and jailbreak sets of :mod:`oyster_steer.data._shift`
            (phtest, CoCoNot contrast, JailbreakBench artifacts, in-the-wild questions and
            templates), by the same hash splits (jailbreaks split with their goal or template),
            read from ``data_dir`` (default: the shared data folder).
        attack_fractions: split -> share of short plain prompts also added in one seeded attack
            transform (default :data:`DEFAULT_ATTACK_FRACTIONS`; ``{}`` for none).
        train_attacks: intent -> share of that intent's short plain *train* prompts added once
            more in a second seeded attack transform (default None: none), so that a probe sees
            the attack frames around more requests of that intent; validation and test are
            unchanged.
        train_wraps: the same for a second copy in one of ``WRAPPER_TEMPLATES`` (another
            template draw; a copy identical to a row already in train is dropped).

    Example:
        >>> data = probe_splits()                            # doctest: +SKIP
        >>> sum(is_wrapped(r) for r in data.test) > 0        # doctest: +SKIP
        True
    """

    pool = load_all() if prompts is None else prompts
    if shift_data or (shift_data is None and prompts is None):
        pool = PromptSet.concat(pool, load_shift_sources(data_dir)).deduplicate()
    caps = DEFAULT_CAPS if caps is None else caps
    attacks = DEFAULT_ATTACK_FRACTIONS if attack_fractions is None else attack_fractions
    extra = dict(train_attacks or {})
    wraps = dict(train_wraps or {})
    for what, shares in (("train_attacks", extra), ("train_wraps", wraps)):
        unknown = sorted(set(shares) - {"benign", "borderline", "vulnerable", "malicious"})
        if unknown or not all(0.0 <= v <= 1.0 for v in shares.values()):
            raise ValueError(
                f"{what}={shares} must map intents (benign, borderline, vulnerable, malicious) "
                "to shares in [0, 1]: fix the names or the shares"
            )
    parts = {}
    for name, records in pool.splits().items():
        base = _cap(records, caps.get(name, {}), seed)
        parts[name] = (
            base
            + _wrapped(base, wrap_fraction, wrap_max_chars, seed)
            + _attacked(base, attacks.get(name, 0.0), wrap_max_chars, seed)
        )
        if name == "train" and extra:
            parts[name] = parts[name] + _extra_attacked(base, extra, wrap_max_chars, seed)
        if name == "train" and wraps:
            seen = {r.text for r in parts[name]}
            more = _extra_wrapped(base, wraps, wrap_max_chars, seed)
            parts[name] = parts[name] + PromptSet([r for r in more if r.text not in seen])
    description = {
        "pool": f"{len(pool)} prompts ({', '.join(sorted({r.source for r in pool}))})",
        "caps": str({k: dict(v) for k, v in caps.items()}),
        "wrapped": f"fraction {wrap_fraction} of prompts <= {wrap_max_chars} chars, all intents, seed {seed}",
        "attacks": f"fractions {dict(attacks)} of plain prompts <= {wrap_max_chars} chars, one attack transform each, all intents, seed {seed}",
        "sizes": str({k: len(v) for k, v in parts.items()}),
    }
    if wraps:
        description["train_wraps"] = (
            f"train only: a second template wrap around shares {wraps} of each intent's plain "
            f"prompts <= {wrap_max_chars} chars, seed {seed + 1}"
        )
    if extra:
        description["train_attacks"] = (
            f"train only: a second attack transform around shares {extra} of each intent's "
            f"plain prompts <= {wrap_max_chars} chars, seed {seed + 1}"
        )
    return ProbeData(parts["train"], parts["validation"], parts["test"], description)
