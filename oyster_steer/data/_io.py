"""Read CSV, JSON and JSONL files into rows, turning every failure into a one-sentence DataError."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._records import DataError, EmptyDataError

__all__ = ["read_csv_rows", "read_json", "read_jsonl_rows"]


def _columns(required: Sequence[str]) -> str:
    return ", ".join(required) if required else "(any)"


def _open_text(path: Path, kind: str, required: Sequence[str], fix: str) -> str:
    if not path.is_file():
        raise DataError(
            f"{path} not found; expected a {kind} file with columns {_columns(required)}; {fix}."
        )
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason}); re-save it as UTF-8.") from err


def read_csv_rows(
    path: Path, required: Sequence[str], fix: str, delimiter: str = ",", fold_case: bool = False
) -> list[dict[str, str]]:
    """Rows of a CSV as dicts; raises DataError if the file or a ``required`` column is missing.

    With ``fold_case`` the header names are lower-cased first (``required`` must be lower-case).
    """
    text = _open_text(path, "CSV", required, fix)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        if fold_case and reader.fieldnames:
            reader.fieldnames = [name.lower() for name in reader.fieldnames]
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                f"{path} has no column {missing[0]!r}; expected columns {_columns(required)}; "
                f"{fix}."
            )
        rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as err:
        raise DataError(f"{path} is not a readable CSV ({err}); {fix}.") from err
    return rows


def read_jsonl_rows(
    path: Path, required: Sequence[str], fix: str
) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; raises DataError on bad JSON or keys."""
    text = _open_text(path, "JSONL", required, fix)
    rows = []
    # Split on \n only: str.splitlines would also break inside strings holding U+0085 or U+2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path} line {number} is not valid JSON ({err.msg}); expected one object per "
                f"line with keys {_columns(required)}."
            ) from err
        if not isinstance(obj, dict):
            raise DataError(
                f"{path} line {number} is not a JSON object; expected one object per line with "
                f"keys {_columns(required)}."
            )
        missing = [k for k in required if k not in obj]
        if missing:
            raise DataError(
                f"{path} line {number} has no key {missing[0]!r}; expected keys "
                f"{_columns(required)}."
            )
        rows.append((number, obj))
    if not rows:
        raise EmptyDataError(
            f"{path} holds no JSON lines; expected one object per line with keys "
            f"{_columns(required)}."
        )
    return rows


def read_json(path: Path, required: Sequence[str], fix: str) -> list[dict[str, Any]]:
    """A JSON file holding a list of objects; raises DataError on bad JSON or missing keys."""
    text = _open_text(path, "JSON", required, fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err.msg}); {fix}.") from err
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise DataError(
            f"{path} is not a JSON list of objects; expected objects with keys "
            f"{_columns(required)}; {fix}."
        )
    for number, obj in enumerate(data):
        missing = [k for k in required if k not in obj]
        if missing:
            raise DataError(
                f"{path} item {number} has no key {missing[0]!r}; expected keys "
                f"{_columns(required)}; {fix}."
            )
    return data
