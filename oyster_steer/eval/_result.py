"""``EvalResult``: every judged reply, and the per-intent, per-condition metrics built from them.

Metrics (each with a seeded percentile-bootstrap 95% interval over prompts):

- verdict rates (``RATE_COLUMNS``; see :mod:`oyster_steer.eval._judges`);
- ``worse`` / ``better``: fraction of prompts whose steered verdict ranks below / above the
  unsteered verdict on the same prompt (:mod:`oyster_steer.eval._compare`);
- ``kl`` (mean next-token KL(unsteered || steered) in nats along the unsteered reply) and
  ``ppl_change`` (per-prompt perplexity ratio of that reply, steered / unsteered, minus 1);
- coherence: ``ppl`` (mean perplexity of the condition's own replies under the unsteered
  model), ``ppl_ratio`` (geometric mean over prompts of that perplexity, steered / unsteered
  reply), ``loops`` (rate of repetition loops);
- ``canned``: fraction of pairs of replies to different prompts sharing their first 12 words;
- ``topicality`` (mean MiniLM reply-prompt cosine) and ``topicality_delta`` (its mean paired
  difference, steered - unsteered);
- the LLM judge's ``safety`` and ``helpfulness`` when it ran.

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

from ..data import INTENTS
from ._coherence import canned_prefix
from ._compare import canned_rate, log_ratio_estimate, made_worse, paired_estimate
from ._stats import Estimate, estimate

__all__ = ["QUALITY_COLUMNS", "RATE_COLUMNS", "EvalResult"]

RATE_COLUMNS = (
    "refusal",
    "constructive",
    "compliance",
    "harmful_validation",
    "deflection",
    "incoherent",
)
QUALITY_COLUMNS = ("ppl", "ppl_ratio", "loops", "canned", "topicality", "topicality_delta")
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

        present = {r["intent"] for r in self.replies()}
        return [i for i in INTENTS if i in present]

    @property
    def baseline(self) -> str | None:
        """The unsteered condition: the one whose reply rows say ``steered: false`` (in files
        written before that field, the condition named "unsteered"); None if there is none."""
        for cond in self.conditions:
            rows = self.replies(cond)
            if rows and all(r.get("steered") is False for r in rows):
                return cond
        return "unsteered" if "unsteered" in self.conditions else None

    def _paired(self, condition: str, intent: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(unsteered row, this condition's row) per prompt answered under both."""
        base = self.baseline
        if base is None or base == condition:
            return []
        ref = {r["id"]: r for r in self.replies(base, intent)}
        return [(ref[r["id"]], r) for r in self.replies(condition, intent) if r["id"] in ref]

    def _cell(self, condition: str, intent: str) -> dict[str, Any]:
        replies = self.replies(condition, intent)
        div = [
            r
            for r in self.rows
            if r["kind"] == "divergence" and r["condition"] == condition and r["intent"] == intent
        ]
        seed = self.seed
        cell: dict[str, Any] = {"condition": condition, "intent": intent, "n": len(replies)}
        for col in RATE_COLUMNS:
            cell[col] = estimate([r.get(col) for r in replies], seed=seed)
        pairs = self._paired(condition, intent)
        cell["worse"] = estimate(
            [int(made_worse(intent, b["verdict"], r["verdict"])) for b, r in pairs], seed=seed
        )
        cell["better"] = estimate(
            [int(made_worse(intent, r["verdict"], b["verdict"])) for b, r in pairs], seed=seed
        )
        cell["kl"] = estimate([r["kl"] for r in div], seed=seed)
        cell["ppl_change"] = estimate(
            [math.exp(r["nll_steered"] - r["nll_base"]) - 1 for r in div], seed=seed
        )
        cell.update(self._quality(replies, pairs))
        for col in _SCORES:
            cell[col] = estimate([r.get(col) for r in replies], seed=seed)
        return cell

    def _quality(
        self, replies: list[dict[str, Any]], pairs: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> dict[str, Estimate | None]:
        """Coherence, canned replies and topicality of one cell (see the module docstring)."""

        def both(key: str) -> list[tuple[float, float]]:
            return [(b[key], r[key]) for b, r in pairs if None not in (b.get(key), r.get(key))]

        seed = self.seed
        return {
            "ppl": estimate([r.get("reply_ppl") for r in replies], seed=seed),
            "ppl_ratio": log_ratio_estimate(both("reply_ppl"), seed=seed),
            "loops": estimate([r.get("repetition_loop") for r in replies], seed=seed),
            "canned": canned_rate([canned_prefix(r["reply"]) for r in replies], seed=seed),
            "topicality": estimate([r.get("topicality") for r in replies], seed=seed),
            "topicality_delta": paired_estimate(both("topicality"), seed=seed),
        }

    def table(self) -> list[dict[str, Any]]:
        """One dict per (condition, intent): ``n`` and an :class:`Estimate` (or None) per metric."""
        return [
            self._cell(c, i) for c in self.conditions for i in self.intents if self.replies(c, i)
        ]

    def has_scores(self) -> bool:
        return any(r.get("safety") is not None for r in self.replies())

    def to_markdown(self) -> str:
        """Two GitHub markdown tables: verdict rates (in %, with the prompts steering made worse,
        benign KL in nats and ppl change), then coherence, canned replies and topicality."""
        table = self.table()
        scores = list(_SCORES) if self.has_scores() else []
        cols = ["condition", "intent", "n", *(c.replace("_", " ") for c in RATE_COLUMNS)]
        cols += ["made worse", "benign KL (nats)", "ppl change", *scores]
        lines = [_row(cols), "|" + "---|" * len(cols)]
        for cell in table:
            values = [cell["condition"], cell["intent"], str(cell["n"])]
            values += [_fmt(cell[c]) for c in RATE_COLUMNS]
            values += [
                _fmt_count(cell["worse"]),
                _fmt(cell["kl"], percent=False, digits=3),
                _fmt(cell["ppl_change"], digits=1),
            ]
            values += [_fmt(cell[c], percent=False, digits=2) for c in scores]
            lines.append(_row(values))
        cols = ["condition", "intent", "reply ppl", "ppl vs unsteered", "loops"]
        cols += ["canned (first 12 words)", "topicality", "topicality vs unsteered"]
        lines += ["", _row(cols), "|" + "---|" * len(cols)]
        for cell in table:
            values = [
                cell["condition"],
                cell["intent"],
                _fmt(cell["ppl"], percent=False, digits=1),
                _fmt(cell["ppl_ratio"], percent=False, digits=2, unit="x"),
                _fmt(cell["loops"]),
                _fmt(cell["canned"]),
                _fmt(cell["topicality"], percent=False, digits=2),
                _fmt(cell["topicality_delta"], percent=False, digits=2, sign=True),
            ]
            lines.append(_row(values))
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
        meta: dict[str, Any] = next((r for r in rows if r.get("kind") == "meta"), {})
        rows = [r for r in rows if r.get("kind") != "meta"]
        conditions = list(dict.fromkeys(r["condition"] for r in rows))
        return cls(rows, conditions, meta={k: v for k, v in meta.items() if k != "kind"}, seed=seed)


def _row(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def _fmt(
    value: Estimate | None,
    *,
    percent: bool = True,
    digits: int = 0,
    unit: str = "",
    sign: bool = False,
) -> str:
    if value is None:
        return "–"
    text = value.format(percent=percent, digits=digits)
    if sign and value.value >= 0:
        text = "+" + text
    return text.replace(" [", f"{unit} [", 1) if unit else text


def _fmt_count(value: Estimate | None) -> str:
    """``"2/24 (8% [0, 21])"``: how many prompts, of how many, with the rate's interval."""
    if value is None:
        return "–"
    return f"{round(value.value * value.n)}/{value.n} ({value.format()})"
