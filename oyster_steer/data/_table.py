"""``load_table``: bring your own benchmark (CSV, TSV, JSONL or JSON) with a column/label mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._categories import RISK_CATEGORIES
from ._io import read_csv_rows, read_json, read_jsonl_rows
from ._promptset import PromptSet
from ._records import (
    INTENTS,
    RISKS,
    UNKNOWN_CATEGORY,
    DataError,
    EmptyDataError,
    LabelError,
    PromptRecord,
)

__all__ = ["DEFAULT_RISK", "load_table"]

# Risk used when a table has intent labels only.
DEFAULT_RISK: dict[str, str] = {
    "benign": "safe",
    "borderline": "sensitive",
    "vulnerable": "sensitive",
    "malicious": "harmful",
}
_FORMATS = (".csv", ".tsv", ".jsonl", ".json")


def _read(path: Path, required: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    fix = "fix the file or pass the right column names to load_table"
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = read_csv_rows(path, required, fix, delimiter="\t" if suffix == ".tsv" else ",")
        return [(f"row {n}", r) for n, r in enumerate(rows, start=2)]
    if suffix == ".jsonl":
        return [(f"line {n}", r) for n, r in read_jsonl_rows(path, required, fix)]
    if suffix == ".json":
        return [(f"item {n}", r) for n, r in enumerate(read_json(path, required, fix))]
    raise DataError(
        f"{path} has extension {suffix!r}; load_table reads {', '.join(_FORMATS)}, so convert the "
        "file or rename it."
    )


def _cell(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


class _Label:
    """How one label is found: a constant, or a column whose values go through a map."""

    def __init__(
        self,
        name: str,
        spec: str | None,
        mapping: Mapping[str, str] | None,
        vocab: Sequence[str],
        default_column: str,
    ) -> None:
        self.name, self.vocab, self.mapping = name, vocab, dict(mapping or {})
        self.constant = spec if spec in vocab else None
        self.column = None if self.constant else (spec or default_column)

    def __call__(self, path: Path, where: str, row: Mapping[str, Any]) -> str:
        if self.constant is not None:
            return self.constant
        raw = _cell(row, self.column or "")
        value = self.mapping.get(raw, raw)
        if value not in self.vocab:
            raise DataError(
                f"{path} {where} has {self.column}={raw!r}, which is not a known {self.name}; add "
                f"it to {self.name}_map or use one of {', '.join(self.vocab)}."
            )
        return value


def load_table(
    path: str | os.PathLike[str],
    text_column: str,
    intent: str | None = None,
    intent_map: Mapping[str, str] | None = None,
    risk: str | None = None,
    risk_map: Mapping[str, str] | None = None,
    category: str | None = None,
    category_map: Mapping[str, str] | None = None,
    source: str | None = None,
    meta_columns: Sequence[str] = (),
) -> PromptSet:
    """Load any CSV/TSV/JSONL/JSON table of prompts as a :class:`PromptSet`.

    Each label argument is either a constant label (``intent="malicious"``) or a column name
    (a valid label wins over a column of the same name); a column's values, compared as strings,
    go through the matching ``*_map`` first.

    Args:
        path: the file; the format follows the extension.
        text_column: column holding the prompt.
        intent: an intent for every row, or a column (default column ``"intent"``).
        risk: a risk for every row, or a column; default column ``"risk"`` when the table has one,
            else ``DEFAULT_RISK[intent]``.
        category: an Oyster category for every row, or a column (default ``"category"`` when
            present, else ``"unknown"``); with ``category_map``, unmapped values become unknown.
        source: source name (default: the file name without extension).
        meta_columns: columns copied into ``meta``.

    Example:
        >>> ps = load_table("my_bench.csv", "prompt", intent="label",  # doctest: +SKIP
        ...                 intent_map={"1": "malicious", "0": "benign"})
    """
    p = Path(path)
    intent_label = _Label("intent", intent, intent_map, INTENTS, "intent")
    categories = (*RISK_CATEGORIES, UNKNOWN_CATEGORY)
    explicit = [intent_label.column, None if risk in RISKS else risk]
    explicit.append(None if category in categories else category)
    required = [text_column, *meta_columns, *(c for c in explicit if c)]
    rows = _read(p, list(dict.fromkeys(required)))
    header = set().union(*(r.keys() for _, r in rows)) if rows else set()
    # Optional default columns: used only when the table has them.
    risk_spec = risk if risk is not None else ("risk" if "risk" in header else None)
    risk_label = _Label("risk", risk_spec, risk_map, RISKS, "risk") if risk_spec else None
    category_column = None if category in categories else category
    if category is None and "category" in header:
        category_column = "category"
    records = []
    for where, row in rows:
        text = _cell(row, text_column)
        if not text:
            continue
        row_intent = intent_label(p, where, row)
        row_risk = risk_label(p, where, row) if risk_label else DEFAULT_RISK[row_intent]
        if category_column is None:
            row_category = category or UNKNOWN_CATEGORY
        elif category_map is not None:
            row_category = category_map.get(_cell(row, category_column), UNKNOWN_CATEGORY)
        else:
            row_category = _cell(row, category_column) or UNKNOWN_CATEGORY
        meta = {"row": where.split()[-1], **{c: _cell(row, c) for c in meta_columns}}
        try:
            records.append(
                PromptRecord(text, row_intent, row_risk, row_category, source or p.stem, meta=meta)
            )
        except LabelError as err:
            raise DataError(f"{p} {where}: {err}") from err
    if not records:
        raise EmptyDataError(
            f"{p} has no rows with text in column {text_column!r}; check text_column or the file."
        )
    return PromptSet(records)
