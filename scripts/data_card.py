"""Regenerate the count tables in DATA.md from the data the loaders actually return.

Usage (from the repository root):
    .venv/bin/python scripts/data_card.py            # rewrite the generated blocks of DATA.md
    .venv/bin/python scripts/data_card.py --check    # exit 1 if DATA.md is out of date

Only the text between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``
is replaced; the prose around it is edited by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package

from oyster_steer.data import (  # noqa: E402
    INTENTS,
    LOADERS,
    RISKS,
    SPLITS,
    STARTER_PATH,
    PromptSet,
    default_data_dir,
    load_all,
    load_starter,
)

_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (\w+) -->\n)(.*?)(<!-- END GENERATED: \2 -->)", re.S)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cross(ps: PromptSet, rows: str, cols: str, row_keys: Sequence[str] | None = None) -> str:
    cells = Counter(zip(ps.labels(rows), ps.labels(cols), strict=True))
    col_keys = list(ps.counts(cols))
    keys = list(row_keys) if row_keys is not None else list(ps.counts(rows))
    body = [[k, *(cells[k, c] for c in col_keys), sum(cells[k, c] for c in col_keys)] for k in keys]
    body.append(["**total**", *(sum(cells[k, c] for k in keys) for c in col_keys), len(ps)])
    return _table([rows, *col_keys, "total"], body)


def _raw_sets(data_dir: Path) -> dict[str, PromptSet]:
    sets = {name: loader(data_dir) for name, loader in LOADERS.items()}
    if STARTER_PATH.is_file():
        sets = {"starter": load_starter(), **sets}
    return sets


def block_sources(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    kept = ps.counts("source")
    rows = [
        [name, len(s), kept.get(name, 0), len(s) - kept.get(name, 0)] for name, s in raw.items()
    ]
    rows.append(["**total**", sum(len(s) for s in raw.values()), len(ps), ""])
    return _table(["source", "loaded", "kept after de-dup", "dropped as duplicates"], rows)


def block_intent(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    return _cross(ps, "source", "intent") + "\n" + _cross(ps, "source", "risk")


def block_splits(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    header = ["source", "split", *INTENTS, *RISKS, "total"]
    rows = []
    for source in ps.counts("source"):
        parts = ps.filter(source=source).splits()
        for name in SPLITS:
            part = parts[name]
            rows.append(
                [source, name, *part.counts().values(), *part.counts("risk").values(), len(part)]
            )
    for name in SPLITS:
        part = ps.split(name)
        rows.append(
            ["**all**", name, *part.counts().values(), *part.counts("risk").values(), len(part)]
        )
    return _table(header, rows)


def block_overlaps(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    pairs: Counter[tuple[str, str]] = Counter()
    for r in ps:
        held = sorted({r.source, *filter(None, r.meta.get("also_in", "").split(","))})
        pairs.update((a, b) for i, a in enumerate(held) for b in held[i + 1 :])
    rows = [[a, b, n] for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]
    return _table(["source A", "source B", "prompts shared (kept once)"], rows)


def block_vulnerable(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    def detail(r: object) -> str:
        meta = getattr(r, "meta", {})
        for key in ("specific_harm", "cssrs", "harm_area", "topic"):
            if key in meta:
                return f"{key}: {meta[key][:60]}"
        return "-"

    vulnerable = ps.filter(intent="vulnerable")
    counts = Counter((r.source, detail(r), r.risk) for r in vulnerable)
    rows = [
        [s, d, k, n] for (s, d, k), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1]))
    ]
    if len(rows) > 40:  # counsel-chat has 31 topics: fold them into one row
        folded: Counter[tuple[str, str, str]] = Counter()
        for (s, d, k), n in counts.items():
            folded[s, d if s != "counsel-chat" else "31 topics", k] += n
        rows = [
            [s, d, k, n]
            for (s, d, k), n in sorted(folded.items(), key=lambda kv: (kv[0][0], -kv[1]))
        ]
    return _table(["source", "sub-label", "risk", "prompts"], rows)


def block_categories(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    return _cross(ps, "category", "intent")


def block_self_directed(ps: PromptSet, raw: dict[str, PromptSet]) -> str:
    """Harmful requests the self-directed harm rule moved from malicious to vulnerable."""
    rows = []
    for name, rs in raw.items():
        moved = sum("label_rule" in r.meta for r in rs)
        kept = sum("label_rule" in r.meta for r in ps if r.source == name)
        if moved:
            rows.append((name, moved, kept))
    if not rows:
        return "No source prompt was relabelled by the rule.\n"
    total = sum(r[1] for r in rows)
    return _table(
        ("source", "relabelled malicious -> vulnerable", "after de-duplication"),
        [*rows, ("total", total, sum(r[2] for r in rows))],
    )


BLOCKS: dict[str, Callable[[PromptSet, dict[str, PromptSet]], str]] = {
    "sources": block_sources,
    "intent": block_intent,
    "splits": block_splits,
    "overlaps": block_overlaps,
    "vulnerable": block_vulnerable,
    "categories": block_categories,
    "self_directed": block_self_directed,
}


def render(text: str, data_dir: Path) -> str:
    ps = load_all(data_dir)
    raw = _raw_sets(data_dir)
    unknown = [name for _, name, _, _ in _BLOCK.findall(text) if name not in BLOCKS]
    if unknown:
        raise SystemExit(
            f"DATA.md names an unknown block {unknown[0]!r}; use one of {', '.join(BLOCKS)}."
        )
    return _BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group(2)](ps, raw) + m.group(4), text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data")
    parser.add_argument("--doc", type=Path, default=ROOT / "DATA.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is out of date")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    if data_dir is None:
        raise SystemExit("no data folder found; set OYSTER_STEER_DATA or pass --data-dir.")
    old = args.doc.read_text(encoding="utf-8")
    new = render(old, data_dir)
    if args.check:
        print(
            "DATA.md is up to date"
            if new == old
            else "DATA.md is out of date: run scripts/data_card.py"
        )
        return int(new != old)
    args.doc.write_text(new, encoding="utf-8")
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
