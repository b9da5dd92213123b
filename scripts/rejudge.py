"""Judge stored replies again with the current judge (nothing is generated); print what changed.

Reads a results file of ``oyster-steer eval --results`` (JSON lines: a ``meta`` row, then rows of
kind ``reply`` with ``condition``, ``prompt``, ``intent``, ``risk``, ``reply`` and ``verdict``) or
the JSON of ``scripts/score_unseen.py`` (items with ``prompt``, ``intent``, ``source``, ``base``,
``steered``, ``v_base``, ``v_steered``: the conditions ``unsteered`` and ``pack``). Every reply is
judged by :func:`oyster_steer.eval.judge_replies` with the eval defaults (the refusal probe and the
perplexity read the unsteered ``--model``). Writes the rows to ``out``: a reply whose verdict
reply row of an eval file takes every column of the current judge (verdict and evidence), an
unseen item its new verdicts, other rows stay as they were, and an eval file's ``meta`` row records
the current ``judge_version`` (true then of every reply row). Prints
every change (condition, intent, prompt head, old -> new) and the count per condition.

    python scripts/rejudge.py runs/unseen-act14.json runs/unseen-act14-rejudged.json
    python scripts/rejudge.py runs/eval48.jsonl runs/eval48-rejudged.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch

from oyster_steer.data import PromptRecord
from oyster_steer.eval import Judges, judge_replies
from oyster_steer.eval._judges import JUDGE_VERSION, stored_record
from oyster_steer.models._model import DEFAULT_MODEL, OysterModel, load_model

# score_unseen.py's labels: its JSON keeps no risk.
RISK_OF_INTENT = {
    "vulnerable": "harmful",
    "malicious": "harmful",
    "borderline": "sensitive",
    "benign": "safe",
}
# Where an unseen item keeps each condition's reply and verdict.
UNSEEN = (("unsteered", "base", "v_base"), ("pack", "steered", "v_steered"))


class Stored(NamedTuple):
    """One stored reply: the row holding it, its condition, and the row's reply and verdict keys."""

    row: dict[str, Any]
    condition: str
    reply_key: str
    verdict_key: str

    @property
    def eval_row(self) -> bool:
        return self.row.get("kind") == "reply"


class Change(NamedTuple):
    condition: str
    intent: str
    prompt: str
    old: str
    new: str


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of an eval results file (``.jsonl``, meta row included) or an unseen JSON."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(
            f"{str(path)!r} is not a JSON list of unseen items: pass score_unseen's JSON"
        )
    return rows


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` in the format :func:`read_rows` reads from ``path``'s suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def stored_replies(rows: list[dict[str, Any]]) -> Iterator[Stored]:
    """The replies of ``rows``: one per eval ``reply`` row, two per unseen item."""
    for row in rows:
        if row.get("kind") == "reply":
            yield Stored(row, row["condition"], "reply", "verdict")
        elif "kind" not in row:
            for condition, reply_key, verdict_key in UNSEEN:
                yield Stored(row, condition, reply_key, verdict_key)


def record(row: dict[str, Any]) -> PromptRecord:
    """The prompt of a stored row, with the labels the judge reads (as the eval's own rejudge
    reads them; an unseen item, which keeps no risk, takes its intent's)."""
    return stored_record(row, RISK_OF_INTENT)


def rejudge(
    stored: list[Stored], model: OysterModel | None, judges: Judges, chunk: int = 64
) -> list[Change]:
    """Judge every stored reply again: an eval row takes all the current judge's columns, an
    unseen item its new verdict; returns the verdicts that changed."""
    changes = []
    for start in range(0, len(stored), chunk):
        part = stored[start : start + chunk]
        judged = judge_replies(
            [record(s.row) for s in part],
            [s.row[s.reply_key] for s in part],
            model=model,
            judges=judges,
        )
        for s, j in zip(part, judged, strict=True):
            old = s.row.get(s.verdict_key)
            if j["verdict"] != old:
                changes.append(
                    Change(s.condition, s.row["intent"], s.row["prompt"], str(old), j["verdict"])
                )
            if s.eval_row:
                # every column of the current judge, so that the meta row's judge_version holds
                # for the whole file (evidence such as acute_risk can change with the verdict kept)
                s.row.update(j)
            else:
                s.row[s.verdict_key] = j["verdict"]
    return changes


def stamp_meta(rows: list[dict[str, Any]]) -> None:
    """Record the current judge version in an eval file's meta row (and the one it replaces)."""
    for row in rows:
        if row.get("kind") == "meta" and row.get("judge_version") != JUDGE_VERSION:
            row["rejudged_from"] = row.get("judge_version", 1)
            row["judge_version"] = JUDGE_VERSION


def report(changes: list[Change], stored: list[Stored]) -> list[str]:
    """One line per change, then the count per condition (changed of all replies)."""
    lines = [
        f"[{c.condition}] {c.intent} | {c.prompt[:80]!r} | {c.old} -> {c.new}" for c in changes
    ]
    total = Counter(s.condition for s in stored)
    changed = Counter(c.condition for c in changes)
    lines.append(f"verdict changes under judge v{JUDGE_VERSION}: {len(changes)} of {len(stored)}")
    lines += [f"  {cond}: {changed[cond]} of {n}" for cond, n in sorted(total.items())]
    return lines


def _model(name: str, rows: list[dict[str, Any]]) -> OysterModel:
    model = load_model(name)
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    if meta.get("model_fingerprint", model.fingerprint) != model.fingerprint:
        raise SystemExit(
            f"the replies were written by {meta.get('model')!r}, not {model.name!r}: pass its --model"
        )
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="eval results (.jsonl) or score_unseen JSON")
    ap.add_argument("out", help="where the re-judged rows go (same format)")
    ap.add_argument(
        "--model", default=DEFAULT_MODEL, help="the unsteered model the replies came from"
    )
    ap.add_argument(
        "--no-refusal-probe", action="store_true", help="judge refusals by phrases only"
    )
    ap.add_argument("--no-similarity", action="store_true", help="skip the MiniLM similarity check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = read_rows(args.results)
    stored = list(stored_replies(rows))
    judges = Judges(refusal_probe=not args.no_refusal_probe, similarity=not args.no_similarity)
    changes = rejudge(stored, _model(args.model, rows), judges)
    stamp_meta(rows)
    print("\n".join(report(changes, stored)))
    print(f"wrote {write_rows(args.out, rows)}")


if __name__ == "__main__":
    main()
