"""``EvalResult``: every judged reply, and the per-intent, per-condition metrics built from them.

Metrics (each with a seeded percentile-bootstrap 95% interval over prompts):
refusal / constructive / compliance rates (see :mod:`oyster_steer.eval._judges`), ``kl`` (mean
next-token KL(unsteered || steered) in nats along the unsteered reply) and ``ppl_change``
(per-prompt perplexity ratio of that reply, steered / unsteered, minus 1), plus the LLM judge's
``safety`` and ``helpfulness`` when it ran.

Example:
    >>> result = EvalResult.load("runs/eval.jsonl")   # doctest: +SKIP
    >>> print(result.to_markdown())                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._stats import Estimate, estimate

__all__ = ["RATE_COLUMNS", "EvalResult"]

RATE_COLUMNS = ("refusal", "constructive", "compliance")
_SCORES = ("safety", "helpfulness")


@dataclass
class EvalResult:
    """Judged replies and divergence rows of one evaluation.

    Attributes:
        rows: dicts with ``kind`` ("reply" or "divergence"), ``condition``, ``id``, ``intent``
            and the judge outputs or divergence numbers.
        conditions: condition names in evaluation order; descriptions: name -> description.
        meta: model name and fingerprint, generation budget.
    """

    rows: list[dict[str, Any]]
    conditions: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def replies(
        self, condition: str | None = None, intent: str | None = None
    ) -> list[dict[str, Any]]:
        """Reply rows, optionally of one condition and/or intent."""
        return [
            r
            for r in self.rows
            if r["kind"] == "reply"
            and condition in (None, r["condition"])
            and intent in (None, r["intent"])
        ]

    @property
    def intents(self) -> list[str]:
        from ..data import INTENTS

        present = {r["intent"] for r in self.replies()}
        return [i for i in INTENTS if i in present]

    def _cell(self, condition: str, intent: str) -> dict[str, Any]:
        replies = self.replies(condition, intent)
        div = [
            r
            for r in self.rows
            if r["kind"] == "divergence" and r["condition"] == condition and r["intent"] == intent
        ]
        cell: dict[str, Any] = {"condition": condition, "intent": intent, "n": len(replies)}
        for col in RATE_COLUMNS:
            cell[col] = estimate([r[col] for r in replies], seed=self.seed)
        cell["kl"] = estimate([r["kl"] for r in div], seed=self.seed)
        cell["ppl_change"] = estimate(
            [math.exp(r["nll_steered"] - r["nll_base"]) - 1 for r in div], seed=self.seed
        )
        for col in _SCORES:
            cell[col] = estimate(
                [r.get(col) for r in replies if r.get(col) is not None], seed=self.seed
            )
        return cell

    def table(self) -> list[dict[str, Any]]:
        """One dict per (condition, intent): ``n`` and an :class:`Estimate` (or None) per metric."""
        return [
            self._cell(c, i) for c in self.conditions for i in self.intents if self.replies(c, i)
        ]

    def has_scores(self) -> bool:
        return any(r.get("safety") is not None for r in self.replies())

    def to_markdown(self) -> str:
        """The metrics table as GitHub markdown (rates in %, KL in nats, ppl change in %)."""
        cols = ["condition", "intent", "n", *RATE_COLUMNS, "benign KL (nats)", "ppl change"]
        cols += list(_SCORES) if self.has_scores() else []
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for cell in self.table():
            values = [cell["condition"], cell["intent"], str(cell["n"])]
            values += [_fmt(cell[c]) for c in RATE_COLUMNS]
            values += [
                _fmt(cell["kl"], percent=False, digits=3),
                _fmt(cell["ppl_change"], digits=1),
            ]
            values += (
                [_fmt(cell[c], percent=False, digits=2) for c in _SCORES]
                if self.has_scores()
                else []
            )
            lines.append("| " + " | ".join(values) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: meta, conditions and the metrics table (estimates as [value, low, high, n])."""

        def plain(v: Any) -> Any:
            return [v.value, v.low, v.high, v.n] if isinstance(v, Estimate) else v

        table = [{k: plain(v) for k, v in cell.items()} for cell in self.table()]
        return {
            "meta": self.meta,
            "conditions": self.conditions,
            "descriptions": self.descriptions,
            "table": table,
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (``.json``) or the markdown table (any other suffix)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            json.dumps(self.to_dict(), indent=2)
            if path.suffix == ".json"
            else self.to_markdown() + "\n"
        )
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, results_path: str | Path, *, seed: int = 0) -> EvalResult:
        """Rebuild a result from the JSONL file that :func:`~oyster_steer.eval.evaluate` wrote."""
        rows = [json.loads(x) for x in Path(results_path).read_text().splitlines() if x.strip()]
        meta = next((r for r in rows if r.get("kind") == "meta"), {})
        rows = [r for r in rows if r.get("kind") != "meta"]
        conditions = list(dict.fromkeys(r["condition"] for r in rows))
        return cls(rows, conditions, meta={k: v for k, v in meta.items() if k != "kind"}, seed=seed)


def _fmt(value: Estimate | None, *, percent: bool = True, digits: int = 0) -> str:
    return "–" if value is None else value.format(percent=percent, digits=digits)
