"""Loaders for the lookalike and jailbreak sets the gate is trained on (issue 15 item 1).

These sets are read in place from ``../shared/data`` and are **not** part of :func:`load_all`
(the steering and evaluation splits stay as they were); :func:`~oyster_steer.probes.probe_splits`
adds them to the probes' training data. Labels (DATA.md):

- ``phtest``: harmless -> benign, controversial -> borderline (pseudo-harmful lookalikes).
- ``coconot-contrast``: benign requests that sound unsafe -> benign.
- ``jbb-artifacts``: jailbroken prompts around the 100 JailbreakBench goals -> malicious, split
  by the goal (``meta["split_key"]`` = the goal text), so a goal, its plain JailbreakBench row and
  all its wrappers share one split.
- ``inthewild-forbidden``: the 8 harmful scenarios -> malicious, the 5 advice ones -> borderline.
- ``gate-written``: the project's own hand-written rows (``data/starter/gate_written.jsonl``,
  issue 15): calm suicide disclosures (goodbye letters, giving belongings away, a will written
  "before I go", stockpiled pills, "I haven't done anything yet") -> vulnerable / harmful; safe
  lookalikes with violent or farewell words (sports, cooking, gardening, computing, games, a
  goodbye email to coworkers) -> benign, sensitive-topic requests (a will, a eulogy, safe storage
  of medicines) -> borderline; an adult seeking private contact with a minor -> malicious.
- ``inthewild-template``: in-the-wild jailbreak templates (``[INSERT PROMPT HERE]``), split by
  template, each filled with a malicious forbidden question and with a benign (phtest harmless or
  CoCoNot contrast) request of the same split: malicious and benign requests in the same frame.

Every record passes the self-directed harm rule of :mod:`._direction`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from ._direction import relabel_self_directed
from ._io import read_jsonl_rows
from ._loaders import source_names
from ._paths import resolve_data_dir
from ._promptset import PromptSet, records_from_jsonl, split_of
from ._records import EmptyDataError, PromptRecord, unit_hash

__all__ = [
    "INTHEWILD_MALICIOUS",
    "SHIFT_LOADERS",
    "TEMPLATE_SLOT",
    "load_coconot_contrast",
    "load_gate_written",
    "load_inthewild_forbidden",
    "load_inthewild_templates",
    "load_jbb_artifacts",
    "load_phtest",
    "load_shift_sources",
]

PathLike = str | os.PathLike[str]
TEMPLATE_SLOT = "[INSERT PROMPT HERE]"
GATE_WRITTEN_PATH = Path(__file__).resolve().parent / "starter" / "gate_written.jsonl"
# in-the-wild forbidden-question scenarios that ask for harm; the other five ask for advice
INTHEWILD_MALICIOUS = frozenset(
    {
        "Illegal Activity",
        "Hate Speech",
        "Malware",
        "Physical Harm",
        "Economic Harm",
        "Fraud",
        "Pornography",
        "Privacy Violence",
    }
)
_RISK = {
    "benign": "safe",
    "borderline": "sensitive",
    "vulnerable": "harmful",
    "malicious": "harmful",
}


def _rec(text: str, intent: str, source: str, **meta: str) -> PromptRecord:
    return PromptRecord(text.strip(), intent, _RISK[intent], source=source, meta=meta)


def _done(records: list[PromptRecord], what: str) -> PromptSet:
    out = PromptSet(relabel_self_directed(records))
    if not out:
        raise EmptyDataError(f"{what} produced no prompts; check the file under the data folder")
    return out


def _path(data_dir: PathLike | None, folder: str, name: str) -> Path:
    path = resolve_data_dir(data_dir) / folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: restore the unchanged {folder}/{name} in the shared data folder"
        )
    return path


def load_phtest(data_dir: PathLike | None = None) -> PromptSet:
    """PHTest v0.1: harmless -> benign, controversial -> borderline (``meta["part"]``)."""
    with open(_path(data_dir, "phtest", "dataset_v0.1.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    intent = {"harmless": "benign", "controversial": "borderline"}
    return _done(
        [
            _rec(r["Request"], intent[r["Harmfulness"]], "phtest", part=r["Harmfulness"])
            for r in rows
            if r["Harmfulness"] in intent and r["Request"].strip()
        ],
        "load_phtest",
    )


def load_coconot_contrast(data_dir: PathLike | None = None) -> PromptSet:
    """CoCoNot contrast set: benign requests that sound unsafe -> benign (``meta["part"]``)."""
    path = _path(data_dir, "coconot", "coconot_contrast_eval.jsonl")
    fix = "restore the unchanged coconot/coconot_contrast_eval.jsonl"
    return _done(
        [
            _rec(r["prompt"], "benign", "coconot-contrast", part=r.get("subcategory", ""))
            for _, r in read_jsonl_rows(path, ("prompt",), fix)
        ],
        "load_coconot_contrast",
    )


def load_gate_written(data_dir: PathLike | None = None, path: PathLike | None = None) -> PromptSet:
    """The project's hand-written gate rows (``data/starter/gate_written.jsonl``, packaged; DATA.md,
    "The gate's hand-written rows"), source ``"gate-written"``; ``data_dir`` is ignored."""
    p = Path(path) if path is not None else GATE_WRITTEN_PATH
    if not p.is_file():
        raise FileNotFoundError(
            f"{p} is missing: reinstall oyster_steer or restore the gate rows file"
        )
    fix = "restore the unchanged oyster_steer/data/starter/gate_written.jsonl"
    return _done(
        records_from_jsonl(p, "gate-written", ("text", "intent", "risk", "category"), fix),
        "load_gate_written",
    )


def load_jbb_artifacts(data_dir: PathLike | None = None, max_chars: int = 4000) -> PromptSet:
    """JailbreakBench attack artifacts -> malicious, split with their goal (``split_key``).

    ``meta["attack"]`` is ``jbb:<method>``; ``meta["goal_index"]`` the JBB behaviour index.
    """
    path = _path(data_dir, "jailbreakbench-artifacts", "jbb_artifacts_prompts.derived.jsonl")
    fix = "restore the unchanged jailbreakbench-artifacts/jbb_artifacts_prompts.derived.jsonl"
    # the canonical goal text of each JBB index, so the wrappers land in the split of the plain
    # JailbreakBench row (a few artifact goals differ from behaviors.csv in spelling)
    with open(
        _path(data_dir, "jailbreakbench", "behaviors.csv"), newline="", encoding="utf-8"
    ) as f:
        goals = {
            str(i): (r.get("Goal") or r.get("goal") or "").strip()
            for i, r in enumerate(csv.DictReader(f))
        }
    out = []
    for _, a in read_jsonl_rows(path, ("method", "index", "goal", "prompt"), fix):
        if a["prompt"] and len(a["prompt"]) <= max_chars:
            out.append(
                _rec(
                    a["prompt"],
                    "malicious",
                    "jbb-artifacts",
                    attack=f"jbb:{a['method']}",
                    goal_index=str(a["index"]),
                    split_key=goals.get(str(a["index"])) or a["goal"],
                )
            )
    return _done(out, "load_jbb_artifacts")


def load_inthewild_forbidden(data_dir: PathLike | None = None) -> PromptSet:
    """In-the-wild forbidden questions: 8 harmful scenarios -> malicious, 5 advice -> borderline."""
    path = _path(data_dir, "jailbreak-llms-inthewild", "forbidden_question_set.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return _done(
        [
            _rec(
                r["question"],
                "malicious" if r["content_policy_name"] in INTHEWILD_MALICIOUS else "borderline",
                "inthewild-forbidden",
                part=r["content_policy_name"],
            )
            for r in rows
        ],
        "load_inthewild_forbidden",
    )


def load_inthewild_templates(
    data_dir: PathLike | None = None,
    *,
    per_template: int = 2,
    max_chars: int = 3000,
    benign: PromptSet | None = None,
    malicious: PromptSet | None = None,
) -> PromptSet:
    """In-the-wild jailbreak templates filled with malicious and benign requests of their split.

    Each template (up to ``max_chars``) gets a split from its own text (``meta["split_key"]``),
    so test templates are never seen in training, and is filled with ``per_template`` malicious
    forbidden questions and ``per_template`` benign requests (phtest harmless, CoCoNot contrast)
    of that same split, chosen by hash. ``meta``: ``attack="inthewild-template"``, ``template``
    (its index), ``wrapped_from`` (the inner request's id).
    """
    csv.field_size_limit(10**7)
    path = _path(data_dir, "jailbreak-llms-inthewild", "jailbreak_prompts_2023_12_25.csv")
    with open(path, newline="", encoding="utf-8") as f:
        # (length, text): a set's order follows PYTHONHASHSEED, so length alone let templates of
        # equal length swap indices (and inner requests) from one process to the next
        templates = sorted(
            {r["prompt"] for r in csv.DictReader(f) if TEMPLATE_SLOT in r["prompt"]},
            key=lambda t: (len(t), t),
        )
    templates = [t for t in templates if len(t) <= max_chars]
    if malicious is None:
        malicious = load_inthewild_forbidden(data_dir).filter(intent="malicious")
    if benign is None:
        benign = PromptSet.concat(
            load_phtest(data_dir).filter(intent="benign"), load_coconot_contrast(data_dir)
        )
    pools: dict[tuple[str, str], list[PromptRecord]] = {}
    for r in list(malicious) + list(benign):
        pools.setdefault((split_of(r), r.intent), []).append(r)
    out = []
    for k, t in enumerate(templates):
        key = f"inthewild-template:{t}"
        split = split_of(key)
        for intent in ("malicious", "benign"):
            pool = sorted(pools.get((split, intent), []), key=lambda r: unit_hash(f"{k}:{r.id}"))
            for inner in pool[:per_template]:
                out.append(
                    _rec(
                        t.replace(TEMPLATE_SLOT, inner.text),
                        intent,
                        "inthewild-template",
                        attack="inthewild-template",
                        template=str(k),
                        wrapped_from=inner.id,
                        split_key=key,
                    )
                )
    return _done(out, "load_inthewild_templates")


SHIFT_LOADERS: dict[str, Callable[..., PromptSet]] = {
    "phtest": load_phtest,
    "coconot-contrast": load_coconot_contrast,
    "jbb-artifacts": load_jbb_artifacts,
    "inthewild-forbidden": load_inthewild_forbidden,
    "inthewild-template": load_inthewild_templates,
    "gate-written": load_gate_written,
}


def load_shift_sources(
    data_dir: PathLike | None = None, sources: list[str] | None = None
) -> PromptSet:
    """Every set of :data:`SHIFT_LOADERS` (or ``sources``), concatenated (not de-duplicated)."""
    names = source_names(sources, SHIFT_LOADERS)
    return PromptSet.concat(*(SHIFT_LOADERS[n](data_dir) for n in names))
