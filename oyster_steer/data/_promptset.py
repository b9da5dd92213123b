"""PromptSet: an immutable, labelled sequence of prompts with leak-free splits and de-duplication.

Splits are decided per record by hashing its *normalised* text, never by position, so:

* a prompt lands in the same split whatever the load order, sources or set it is in, and two
  sources sharing a prompt cannot leak it across splits;
* splits are stratified by construction: the hash is independent of the labels, so each class
  is split in the given fractions in expectation (binomial noise around them, small for big
  classes).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, overload

from ._dedupe import UnionFind, near_duplicate_pairs
from ._io import read_jsonl_rows
from ._records import (
    INTENTS,
    RISKS,
    UNKNOWN_CATEGORY,
    DataError,
    LabelError,
    PromptRecord,
    normalize_text,
    unit_hash,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_FRACTIONS",
    "SOURCE_PRIORITY",
    "SPLITS",
    "PromptSet",
    "records_from_jsonl",
    "split_of",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
# Which copy survives de-duplication: the project's own curated prompts first, then sources with
# richer labels (JBB twins and categories, HarmBench categories) before label-poor copies.
# Sources not listed rank after these, in order of first appearance.
SOURCE_PRIORITY: tuple[str, ...] = (
    "starter",
    "jailbreakbench",
    "harmbench",
    "strongreject",
    "simplesafetytests",
    "do-not-answer",
    "advbench",
    "counsel-chat",
    "reddit-cssrs",
    "alpaca",
)
_FIELDS = ("intent", "risk", "category", "source")
_VOCAB = {"intent": INTENTS, "risk": RISKS, "split": SPLITS}
_JSONL_KEYS = ("text", "intent", "risk")


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions={tuple(fractions)} must be three non-negative numbers (train, validation, "
            "test) that sum to 1, e.g. (0.7, 0.15, 0.15)."
        )


def split_of(record: PromptRecord | str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """``"train"``, ``"validation"`` or ``"test"`` for a record (or raw text), from its hash.

    A record with ``meta["split_key"]`` (a jailbreak around a known goal, a filled template) is
    placed by the hash of that key instead, so every prompt sharing the key shares a split.

    Example:
        >>> split_of("What are the three primary colors?") == split_of("what are the THREE primary colors")
        True
    """
    _check_fractions(fractions)
    if isinstance(record, PromptRecord):
        key = record.meta.get("split_key")
        norm = normalize_text(key) if key else record.normalized
    else:
        norm = normalize_text(record)
    u = unit_hash("oyster-split:" + norm)
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


def records_from_jsonl(
    path: Path, source: str, required: Sequence[str], fix: str
) -> list[PromptRecord]:
    """PromptRecords from a JSONL file; a bad line raises DataError naming the file and line."""
    records = []
    for number, obj in read_jsonl_rows(path, required, fix):
        try:
            records.append(
                PromptRecord(
                    text=obj["text"],
                    intent=obj["intent"],
                    risk=obj["risk"],
                    category=obj.get("category", UNKNOWN_CATEGORY),
                    source=obj.get("source", source),
                    id=obj.get("id", ""),
                    meta=obj.get("meta") or {},
                )
            )
        except LabelError as err:
            raise DataError(f"{path} line {number}: {err}") from err
    return records


def _as_choice(name: str, value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    chosen = frozenset([value] if isinstance(value, str) else value)
    allowed = _VOCAB.get(name)
    unknown = sorted(chosen - set(allowed)) if allowed else []
    if unknown:
        raise LabelError(
            f"{name}={unknown[0]!r} is not a known {name}; use one of {', '.join(allowed or ())}."
        )
    return chosen


@dataclass(frozen=True, init=False)
class PromptSet(Sequence[PromptRecord]):
    """Immutable sequence of :class:`PromptRecord` with filters, counts, splits and JSONL I/O.

    Example:
        >>> ps = PromptSet([PromptRecord("hi", "benign", "safe"), PromptRecord("help me", "vulnerable", "sensitive")])
        >>> ps.counts()["vulnerable"], len(ps.filter(intent="benign"))
        (1, 1)
    """

    records: tuple[PromptRecord, ...]

    def __init__(self, records: Iterable[PromptRecord] = ()) -> None:
        records = tuple(records)
        for i, r in enumerate(records):
            if not isinstance(r, PromptRecord):
                raise TypeError(f"records[{i}] is a {type(r).__name__}; pass PromptRecord items.")
        object.__setattr__(self, "records", records)

    # -- sequence protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PromptRecord]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> PromptRecord: ...
    @overload
    def __getitem__(self, index: slice) -> PromptSet: ...
    def __getitem__(self, index: int | slice) -> PromptRecord | PromptSet:
        if isinstance(index, slice):
            return PromptSet(self.records[index])
        return self.records[index]

    def __add__(self, other: PromptSet) -> PromptSet:
        if not isinstance(other, PromptSet):
            return NotImplemented
        return PromptSet(self.records + other.records)

    def __repr__(self) -> str:
        return f"PromptSet({len(self)} prompts, intent={self.counts('intent')})"

    @staticmethod
    def concat(*sets: PromptSet) -> PromptSet:
        """One set holding every record of ``sets`` in order (no de-duplication)."""
        return PromptSet(r for s in sets for r in s)

    # -- selection ---------------------------------------------------------------------------
    def filter(
        self,
        intent: str | Iterable[str] | None = None,
        risk: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        category: str | Iterable[str] | None = None,
        predicate: Callable[[PromptRecord], bool] | None = None,
    ) -> PromptSet:
        """Records matching every given condition; each may be one value or several.

        Example:
            >>> from oyster_steer.data import load_starter
            >>> risky = load_starter().filter(
            ...     intent=("vulnerable", "malicious"), predicate=lambda r: len(r.text) < 200
            ... )
            >>> sorted({r.intent for r in risky})
            ['malicious', 'vulnerable']
        """
        wanted = {
            "intent": _as_choice("intent", intent),
            "risk": _as_choice("risk", risk),
            "source": _as_choice("source", source),
            "category": _as_choice("category", category),
        }
        checks = [(k, v) for k, v in wanted.items() if v is not None]
        return PromptSet(
            r
            for r in self.records
            if all(getattr(r, k) in v for k, v in checks) and (predicate is None or predicate(r))
        )

    def sample(self, n_per_class: int, seed: int = 0, by: str = "intent") -> PromptSet:
        """At most ``n_per_class`` records of each ``by`` value, chosen by a seeded hash of the id.

        The choice depends only on the records and ``seed``, not on their order; the result keeps
        the original order. Classes with fewer records are kept whole.
        """
        if n_per_class < 0:
            raise ValueError(f"n_per_class={n_per_class} is negative; pass 0 or more.")
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            groups.setdefault(self._field(r, by), []).append(i)
        keep: set[int] = set()
        for idx in groups.values():
            idx.sort(
                key=lambda i: (unit_hash(f"{seed}:{self.records[i].id}"), self.records[i].text)
            )
            keep.update(idx[:n_per_class])
        return PromptSet(r for i, r in enumerate(self.records) if i in keep)

    # -- labels ------------------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        """The prompt texts, in order."""
        return [r.text for r in self.records]

    def labels(self, field: str = "intent") -> list[str]:
        """One label per record: ``intent``, ``risk``, ``category``, ``source`` or ``split``."""
        return [self._field(r, field) for r in self.records]

    def label_ids(self, field: str = "intent") -> torch.Tensor:
        """``(N,)`` int64 tensor of class ids in the order of ``INTENTS`` or ``RISKS``."""
        if field not in ("intent", "risk"):
            raise ValueError(f"field={field!r} has no fixed class order; use 'intent' or 'risk'.")
        import torch  # lazy: the data layer must not import torch at import time

        position = {name: i for i, name in enumerate(_VOCAB[field])}
        return torch.tensor([position[getattr(r, field)] for r in self.records], dtype=torch.long)

    def counts(self, by: str = "intent") -> dict[str, int]:
        """Records per value of ``by``; intent, risk and split list every class, zeros included."""
        counter = Counter(self.labels(by))
        if by in _VOCAB:
            return {k: counter.get(k, 0) for k in _VOCAB[by]}
        return dict(sorted(counter.items()))

    @staticmethod
    def _field(record: PromptRecord, field: str) -> str:
        if field == "split":
            return split_of(record)
        if field not in _FIELDS:
            raise ValueError(
                f"field={field!r} is not a label; use one of {', '.join(_FIELDS)}, split."
            )
        return str(getattr(record, field))

    # -- splits ------------------------------------------------------------------------------
    def split_of(self, record: PromptRecord, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
        """The split ``record`` belongs to; see :func:`split_of`."""
        return split_of(record, fractions)

    def split(self, name: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> PromptSet:
        """The records of split ``name`` (``train``, ``validation`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"split={name!r} is unknown; use one of {', '.join(SPLITS)}.")
        return self.splits(fractions)[name]

    def splits(self, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, PromptSet]:
        """``{"train": ..., "validation": ..., "test": ...}``, each in the original order."""
        _check_fractions(fractions)
        buckets: dict[str, list[PromptRecord]] = {name: [] for name in SPLITS}
        for r in self.records:
            buckets[split_of(r, fractions)].append(r)
        return {name: PromptSet(rs) for name, rs in buckets.items()}

    # -- de-duplication ----------------------------------------------------------------------
    def deduplicate(
        self,
        near_threshold: float | None = None,
        near_intents: Iterable[str] = ("malicious",),
        priority: Sequence[str] = SOURCE_PRIORITY,
    ) -> PromptSet:
        """Drop repeated prompts, keeping one copy per group.

        Exact duplicates (equal normalised text) are always merged. With ``near_threshold``, records
        whose intent is in ``near_intents`` are also merged when their token sets have Jaccard >=
        the threshold. The kept copy is the one whose source comes first in ``priority`` (then the
        earliest); its ``meta["also_in"]`` lists the other sources that held the prompt.

        Copies with conflicting labels resolve toward risk: the kept copy is the one of riskiest
        intent (``INTENTS`` is ordered benign < borderline < vulnerable < malicious) and gets the
        riskiest ``risk`` of the group (safe < sensitive < harmful); ``meta["conflict"]`` records
        the labels seen, and one warning gives the number of such prompts.
        """
        records = self.records
        groups = UnionFind(len(records))
        first_of: dict[str, int] = {}
        for i, r in enumerate(records):
            groups.union(first_of.setdefault(r.normalized, i), i)
        if near_threshold is not None:
            near = _as_choice("intent", near_intents) or frozenset()
            idx = [i for i in first_of.values() if records[i].intent in near]
            for a, b in near_duplicate_pairs([records[i].normalized for i in idx], near_threshold):
                groups.union(idx[a], idx[b])
        members: dict[int, list[int]] = {}
        for i in range(len(records)):
            members.setdefault(groups.find(i), []).append(i)
        rank = {s: k for k, s in enumerate(priority)}
        order = {s: k for k, s in enumerate(dict.fromkeys(r.source for r in records))}
        kept, conflicts = [], 0
        for group in members.values():
            intents = {records[i].intent for i in group}
            risks = {records[i].risk for i in group}
            best = min(
                group,
                key=lambda i: (
                    -INTENTS.index(records[i].intent),  # conflicting copies: the riskiest first
                    rank.get(records[i].source, len(rank)),
                    order[records[i].source],
                    i,
                ),
            )
            others = sorted({records[i].source for i in group} - {records[best].source})
            r = records[best]
            if len(intents) > 1 or len(risks) > 1:
                conflicts += 1
                seen = f"intent {'|'.join(sorted(intents, key=INTENTS.index))}; risk {'|'.join(sorted(risks, key=RISKS.index))}"
                r = replace(r, risk=max(risks, key=RISKS.index), meta={**r.meta, "conflict": seen})
            if others:
                also = sorted(set(r.meta.get("also_in", "").split(",")) - {""} | set(others))
                r = replace(r, meta={**r.meta, "also_in": ",".join(also)})
            kept.append((best, r))
        if conflicts:
            warnings.warn(
                f"deduplicate: {conflicts} duplicate prompts had conflicting labels; each kept the riskier "
                "label (meta['conflict'] lists what the copies said)",
                UserWarning,
                stacklevel=2,
            )
        return PromptSet(r for _, r in sorted(kept, key=lambda t: t[0]))

    # -- files and reports -------------------------------------------------------------------
    def save_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write one JSON object per record (every field); returns the path written."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for r in self.records:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load_jsonl(cls, path: str | os.PathLike[str], source: str = "custom") -> PromptSet:
        """Read a file written by :meth:`save_jsonl` (or any JSONL with text, intent and risk).

        Args:
            path: the file.
            source: the source of lines without a ``"source"`` key.
        """
        fix = "write it with PromptSet.save_jsonl or add the missing keys"
        return cls(records_from_jsonl(Path(path), source, _JSONL_KEYS, fix))

    def summary(self, rows: str = "source", cols: str = "intent") -> str:
        """A plain-text table of counts, ``rows`` x ``cols``, with totals."""
        row_keys = list(self.counts(rows))
        col_keys = list(self.counts(cols))
        cells = Counter((self._field(r, rows), self._field(r, cols)) for r in self.records)
        header = [rows, *col_keys, "total"]
        body = [
            [k, *(str(cells[k, c]) for c in col_keys), str(sum(cells[k, c] for c in col_keys))]
            for k in row_keys
        ]
        body.append(
            ["total", *(str(sum(cells[k, c] for k in row_keys)) for c in col_keys), str(len(self))]
        )
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

        def fmt(line: list[str]) -> str:
            return "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )

        rule = "  ".join("-" * w for w in widths)
        return "\n".join(
            [fmt(header), rule, *(fmt(line) for line in body[:-1]), rule, fmt(body[-1])]
        )
