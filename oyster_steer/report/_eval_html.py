"""HTML pieces for evaluation results: the metrics table and side-by-side replies."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..eval import RATE_COLUMNS, EvalResult
from ..eval._rules import shown_reply
from ._html import table_html

__all__ = ["eval_quality_html", "eval_table_html", "pick_examples", "replies_html"]


def _fmt(est: Any, percent: bool = True, digits: int = 0) -> str:
    return "–" if est is None else est.format(percent=percent, digits=digits)


def eval_table_html(result: EvalResult) -> str:
    """Per condition and intent: n, verdict rates with 95% bootstrap intervals, the prompts
    steering made worse, benign KL, ppl change."""
    header = ["condition", "intent", "n", *(c.replace("_", " ") for c in RATE_COLUMNS)]
    header += ["made worse", "KL (nats)", "ppl change"]
    scores = result.has_scores()
    header += ["LLM safety", "LLM helpfulness"] if scores else []
    rows = []
    for cell in result.table():
        row = [cell["condition"], cell["intent"], cell["n"]] + [_fmt(cell[c]) for c in RATE_COLUMNS]
        worse = cell["worse"]
        row += [
            "–" if worse is None else f"{round(worse.value * worse.n)}/{worse.n} ({_fmt(worse)})"
        ]
        row += [_fmt(cell["kl"], False, 3), _fmt(cell["ppl_change"], True, 1)]
        row += (
            [_fmt(cell["safety"], False, 2), _fmt(cell["helpfulness"], False, 2)] if scores else []
        )
        rows.append(row)
    return table_html(rows, header, numeric=range(2, len(header)))


def eval_quality_html(result: EvalResult) -> str:
    """Per condition and intent: reply perplexity under the unsteered model (and its ratio to the
    unsteered replies'), repetition loops, canned replies, topicality (and its paired change)."""
    header = ["condition", "intent", "reply ppl", "ppl vs unsteered", "loops"]
    header += ["canned (first 12 words)", "topicality", "topicality vs unsteered"]
    rows = [
        [
            cell["condition"],
            cell["intent"],
            _fmt(cell["ppl"], False, 1),
            _fmt(cell["ppl_ratio"], False, 2),
            _fmt(cell["loops"]),
            _fmt(cell["canned"]),
            _fmt(cell["topicality"], False, 2),
            _fmt(cell["topicality_delta"], False, 2),
        ]
        for cell in result.table()
    ]
    return table_html(rows, header, numeric=range(2, len(header)))


def pick_examples(
    result: EvalResult, intents: Sequence[str] = ("benign", "borderline", "vulnerable", "malicious")
) -> list[str]:
    """One prompt id per intent: the first whose verdict changes across conditions, else the first."""
    ids = []
    for intent in intents:
        rows = result.replies(result.conditions[0], intent)
        if not rows:
            continue
        changed = [
            r["id"]
            for r in rows
            if len(
                {x["verdict"] for x in result.rows if x["kind"] == "reply" and x["id"] == r["id"]}
            )
            > 1
        ]
        ids.append(changed[0] if changed else rows[0]["id"])
    return ids


def replies_html(result: EvalResult, ids: Sequence[str]) -> str:
    """A table: one row per prompt, one column per condition, each reply with its verdict badge."""
    by_key = {(r["condition"], r["id"]): r for r in result.replies()}
    head = "<th>prompt</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in result.conditions)
    lines = []
    for pid in ids:
        first = next(r for (c, i), r in by_key.items() if i == pid)
        prompt = (
            f'<div class="prompt">{html.escape(first["prompt"])}</div>'
            f'<div class="meta">{html.escape(first["intent"])} · {html.escape(first["category"])}</div>'
        )
        cells = [f"<td>{prompt}</td>"]
        for cond in result.conditions:
            row = by_key.get((cond, pid))
            if row is None:
                cells.append("<td>–</td>")
                continue
            v = row["verdict"]
            cells.append(
                f'<td><span class="badge b-{v}">{v}</span><div class="reply">{html.escape(shown_reply(row["reply"], row["intent"], v))}</div></td>'
            )
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="replies"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def decisions_html(result: EvalResult, condition: str) -> str:
    """How often the control plan chose each strategy, per true intent (from the reply rows)."""
    rows = [r for r in result.replies(condition) if "control_strategy" in r]
    strategies = sorted({r["control_strategy"] for r in rows})
    table = []
    for intent in result.intents:
        mine = [r for r in rows if r["intent"] == intent]
        if mine:
            counts = [sum(r["control_strategy"] == s for r in mine) for s in strategies]
            read = sum(r["control_intent"] == intent for r in mine)
            table.append([intent, len(mine), *counts, f"{read}/{len(mine)}"])
    header = ["true intent", "n", *strategies, "probe read the intent"]
    return table_html(table, header, numeric=range(1, len(header)))
