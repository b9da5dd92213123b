"""Where the replies point to urgent help: per condition and intent, the replies with an urgent
pointer (judge version 11's ``urgent_pointer``), and every one outside the vulnerable intent
(misplaced: a crisis line on a benign, borderline or malicious prompt). Nothing is regenerated.

Reads results files of ``oyster-steer eval`` (JSON lines) and the JSON of
``scripts/score_unseen.py`` (its ``base`` and ``steered`` replies count as the conditions
``unsteered`` and ``pack``).

    python scripts/urgent_pointer_counts.py runs/eval48.jsonl runs/unseen-act11.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator

from oyster_steer.eval._harm import acute_risk
from oyster_steer.eval._rules import urgent_pointer

INTENTS = ("vulnerable", "malicious", "borderline", "benign")


def replies(path: str) -> Iterator[dict[str, str]]:
    """(condition, intent, prompt, reply, strategy) rows of an eval results file or unseen JSON."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".jsonl"):
        for line in text.splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("kind") == "reply":
                out = {k: str(row.get(k) or "") for k in ("condition", "intent", "prompt", "reply")}
                yield {**out, "strategy": str(row.get("control_strategy") or "")}
        return
    for item in json.loads(text):
        for condition, key in (("unsteered", "base"), ("pack", "steered")):
            yield {
                "condition": condition,
                "intent": item["intent"],
                "prompt": item["prompt"],
                "reply": item[key],
                "strategy": str(item.get("strategy") or ""),
            }


def count(rows: list[dict[str, str]]) -> tuple[Counter, Counter, Counter, list[dict[str, str]]]:
    """(replies, urgent, acute-with-urgent) per (condition, intent), and the misplaced rows."""
    n, urgent, acute = Counter(), Counter(), Counter()
    misplaced = []
    for row in rows:
        key = (row["condition"], row["intent"])
        n[key] += 1
        has = urgent_pointer(row["reply"])
        urgent[key] += has
        if row["intent"] == "vulnerable" and acute_risk(row["prompt"]):
            acute[key] += 1
            acute[(*key, "urgent")] += has
        if has and row["intent"] != "vulnerable":
            misplaced.append(row)
    return n, urgent, acute, misplaced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    for path in args.files:
        n, urgent, acute, misplaced = count(list(replies(path)))
        print(f"== {path}")
        print("| condition | " + " | ".join(INTENTS) + " | acute vulnerable with a pointer |")
        print("|---|" + "---|" * (len(INTENTS) + 1))
        for cond in sorted({c for c, _ in n}):
            cells = [f"{urgent[(cond, i)]}/{n[(cond, i)]}" for i in INTENTS]
            key = (cond, "vulnerable")
            print(
                f"| {cond} | " + " | ".join(cells) + f" | {acute[(*key, 'urgent')]}/{acute[key]} |"
            )
        print(f"-- misplaced urgent pointers ({len(misplaced)}):")
        for row in misplaced:
            route = f" ({row['strategy']})" if row.get("strategy") else ""
            print(f"   [{row['condition']}] {row['intent']}{route} | {row['prompt'][:120]!r}")
            print(f"      reply: {row['reply'][:240]!r}")


if __name__ == "__main__":
    main()
