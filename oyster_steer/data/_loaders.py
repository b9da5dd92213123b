"""One loader per public prompt set in ``../shared/data``, the packaged starter set, and ``load_all``.

Every loader takes ``data_dir`` (default: :func:`default_data_dir`), reads the unchanged upstream
file and returns a :class:`PromptSet` with intent and risk labels; DATA.md explains each mapping.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ._categories import map_category
from ._direction import relabel_self_directed
from ._io import read_csv_rows, read_json, read_jsonl_rows
from ._paths import DATA_ENV_VAR, resolve_data_dir
from ._promptset import PromptSet, records_from_jsonl
from ._records import (
    UNKNOWN_CATEGORY,
    DataError,
    EmptyDataError,
    PromptRecord,
    normalize_text,
    unit_hash,
)

__all__ = [
    "CSSRS_LABELS",
    "DNA_LABELS",
    "DNA_SPECIFIC_LABELS",
    "LOADERS",
    "STARTER_PATH",
    "CounselAnswer",
    "load_advbench",
    "load_all",
    "load_alpaca",
    "load_counsel_answers",
    "load_counsel_chat",
    "load_do_not_answer",
    "load_harmbench",
    "load_jailbreakbench",
    "load_reddit_cssrs",
    "load_simplesafetytests",
    "load_starter",
    "load_strongreject",
]

PathLike = str | os.PathLike[str]
STARTER_PATH = Path(__file__).resolve().parent / "starter" / "prompts.jsonl"

# do-not-answer types_of_harm -> (intent, risk). Privacy, stereotype, misinformation and
# expert-advice questions are mostly curious or loaded rather than attacks: a constructive reply
# engages and corrects, so they are borderline. Toxic and adult requests should be declined but
# endanger no one: malicious/sensitive.
DNA_LABELS: dict[str, tuple[str, str]] = {
    "Risks from leaking or inferring sensitive information (organization/gov)": (
        "borderline",
        "sensitive",
    ),
    "Assisting illegal activities": ("malicious", "harmful"),
    "Compromise privacy by leaking or inferring private information (person/individual)": (
        "borderline",
        "sensitive",
    ),
    "Social stereotypes and unfair discrimination": ("borderline", "sensitive"),
    "Disseminating false or misleading information": ("borderline", "sensitive"),
    "Nudging or advising users to perform unethical or unsafe actions": ("malicious", "harmful"),
    "Mental Health or Overreliance Crisis": ("vulnerable", "sensitive"),
    "Causing material harm by disseminating misinformation e.g. in medicine or law": (
        "borderline",
        "sensitive",
    ),
    "Toxic language (hate speech)": ("malicious", "sensitive"),
    "Treat Chatbot as a Human": ("vulnerable", "sensitive"),
    "Reducing the cost of disinformation campaigns": ("malicious", "harmful"),
    "Adult Content": ("malicious", "sensitive"),
}
# Finer overrides, matched against the start of specific_harms: self-directed danger is a
# vulnerable user, asking the bot for its own phone number is merely a benign misunderstanding.
DNA_SPECIFIC_LABELS: dict[str, tuple[str, str]] = {
    "Self-Harm": ("vulnerable", "harmful"),
    "Endorsement of Unsafe Health Practices": ("vulnerable", "harmful"),
    "places personal emotional reliance": ("vulnerable", "sensitive"),
    "Ask for personal information": ("borderline", "safe"),
}
# C-SSRS user label -> (intent, risk). Supportive users write *to* people at risk: on-topic but not
# at risk themselves, the hardest negatives for a distress probe. Labels are per user, not post.
CSSRS_LABELS: dict[str, tuple[str, str]] = {
    "Supportive": ("borderline", "sensitive"),
    "Indicator": ("vulnerable", "sensitive"),
    "Ideation": ("vulnerable", "sensitive"),
    "Behavior": ("vulnerable", "harmful"),
    "Attempt": ("vulnerable", "harmful"),
}


def _file(data_dir: PathLike | None, folder: str, name: str) -> tuple[Path, str]:
    path = resolve_data_dir(data_dir) / folder / name
    fix = f"restore the unchanged {folder}/{name} or set {DATA_ENV_VAR} to the folder holding it"
    return path, fix


def _done(records: Iterable[PromptRecord], what: str) -> PromptSet:
    # the self-directed harm rule (DATA.md): a harmful request whose only victim is the asker is
    # a vulnerable user, not a malicious one, whichever benchmark it comes from
    out = PromptSet(relabel_self_directed(records))
    if not out:
        raise EmptyDataError(
            f"{what} produced no prompts; check the file and the loader arguments."
        )
    return out


def load_advbench(data_dir: PathLike | None = None) -> PromptSet:
    """AdvBench harmful behaviours (520): malicious/harmful, no categories."""
    path, fix = _file(data_dir, "advbench", "harmful_behaviors.csv")
    rows = read_csv_rows(path, ("goal", "target"), fix)
    return _done(
        (
            PromptRecord(
                r["goal"].strip(),
                "malicious",
                "harmful",
                UNKNOWN_CATEGORY,
                "advbench",
                meta={"row": str(i)},
            )
            for i, r in enumerate(rows)
            if r["goal"].strip()
        ),
        str(path),
    )


def load_harmbench(data_dir: PathLike | None = None, include_contextual: bool = True) -> PromptSet:
    """HarmBench val + test without ``copyright`` rows: malicious/harmful.

    Contextual rows get their ContextString prepended in HarmBench's own format
    (``context + "\\n\\n---\\n\\n" + behavior``) and ``meta["contextual"] = "true"``.
    """
    columns = ("Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID")
    records = []
    for part in ("val", "test"):
        path, fix = _file(data_dir, "harmbench", f"harmbench_behaviors_text_{part}.csv")
        for r in read_csv_rows(path, columns, fix):
            kind = r["FunctionalCategory"].strip()
            if kind == "copyright" or (kind == "contextual" and not include_contextual):
                continue
            context = r["ContextString"].strip()
            text = (
                f"{context}\n\n---\n\n{r['Behavior'].strip()}" if context else r["Behavior"].strip()
            )
            meta = {
                "behavior_id": r["BehaviorID"],
                "semantic_category": r["SemanticCategory"],
                "functional_category": kind,
                "contextual": "true" if context else "false",
                "harmbench_split": part,
            }
            category = map_category("harmbench", r["SemanticCategory"])
            records.append(
                PromptRecord(text, "malicious", "harmful", category, "harmbench", meta=meta)
            )
    return _done(records, "load_harmbench")


def load_jailbreakbench(data_dir: PathLike | None = None, include_benign: bool = True) -> PromptSet:
    """JBB-Behaviors: 100 harmful (malicious/harmful) + 100 benign twins (borderline/sensitive).

    Both halves carry ``meta["twin"]``, the shared row index, so ``harmful[i]`` and ``benign[i]``
    pair up for risk-boundary (contrast) work.
    """
    parts = [("behaviors.csv", "malicious", "harmful")]
    if include_benign:
        parts.append(("benign-behaviors.csv", "borderline", "sensitive"))
    records = []
    for name, intent, risk in parts:
        path, fix = _file(data_dir, "jailbreakbench", name)
        # The harmful file's index column is unnamed and the HF benign copy capitalises its header.
        for i, r in enumerate(
            read_csv_rows(path, ("goal", "behavior", "category", "source"), fix, fold_case=True)
        ):
            twin = (r.get("index") or r.get("") or str(i)).strip()
            meta = {
                "twin": twin,
                "behavior": r["behavior"],
                "jbb_category": r["category"],
                "origin": r["source"],
            }
            category = map_category("jailbreakbench", r["category"])
            records.append(
                PromptRecord(r["goal"].strip(), intent, risk, category, "jailbreakbench", meta=meta)
            )
    return _done(records, "load_jailbreakbench")


def load_strongreject(data_dir: PathLike | None = None) -> PromptSet:
    """StrongREJECT forbidden prompts (313): malicious/harmful, 6 categories."""
    path, fix = _file(data_dir, "strongreject", "strongreject_dataset.csv")
    rows = read_csv_rows(path, ("category", "source", "forbidden_prompt"), fix)
    return _done(
        (
            PromptRecord(
                r["forbidden_prompt"].strip(),
                "malicious",
                "harmful",
                map_category("strongreject", r["category"]),
                "strongreject",
                meta={"strongreject_category": r["category"], "origin": r["source"]},
            )
            for r in rows
            if r["forbidden_prompt"].strip()
        ),
        str(path),
    )


def load_simplesafetytests(data_dir: PathLike | None = None) -> PromptSet:
    """SimpleSafetyTests (100): the 20 suicide/self-harm/eating-disorder prompts are first-person
    requests from users at risk (vulnerable/harmful); the other 80 are malicious/harmful."""
    path, fix = _file(data_dir, "simplesafetytests", "sst_test_cases.csv")
    rows = read_csv_rows(path, ("id", "harm_area", "category", "prompts_final"), fix)
    records = []
    for r in rows:
        self_harm = r["harm_area"].startswith("Suicide")
        meta = {"sst_id": r["id"], "harm_area": r["harm_area"], "sst_category": r["category"]}
        records.append(
            PromptRecord(
                r["prompts_final"].strip(),
                "vulnerable" if self_harm else "malicious",
                "harmful",
                map_category("simplesafetytests", r["harm_area"]),
                "simplesafetytests",
                meta=meta,
            )
        )
    return _done(records, str(path))


def _dna_labels(path: Path, number: int, harm_type: str, specific: str) -> tuple[str, str]:
    for prefix, labels in DNA_SPECIFIC_LABELS.items():
        if specific.startswith(prefix):
            return labels
    if harm_type not in DNA_LABELS:
        raise DataError(
            f"{path} line {number} has types_of_harm={harm_type!r}, which has no label mapping; "
            "add it to oyster_steer.data.DNA_LABELS."
        )
    return DNA_LABELS[harm_type]


def load_do_not_answer(data_dir: PathLike | None = None) -> PromptSet:
    """Do-Not-Answer (939 rows): labels by types_of_harm, see ``DNA_LABELS``.

    Mental-health and emotional-reliance prompts are vulnerable; self-harm and unsafe-health
    prompts vulnerable/harmful; illegal, unsafe-nudging and disinformation requests malicious.
    """
    path, fix = _file(data_dir, "do-not-answer", "DoNotAnswer.jsonl")
    columns = ("messages", "risk_area", "types_of_harm", "specific_harms")
    records = []
    for number, obj in read_jsonl_rows(path, columns, fix):
        users = [m.get("content", "") for m in obj["messages"] if m.get("role") == "user"]
        if not users or not str(users[-1]).strip():
            raise DataError(f"{path} line {number} has no user message; {fix}.")
        harm_type, specific = obj["types_of_harm"], obj["specific_harms"]
        intent, risk = _dna_labels(path, number, harm_type, specific)
        meta = {
            "risk_area": obj["risk_area"],
            "types_of_harm": harm_type,
            "specific_harm": specific.split(":")[0].strip(),
        }
        category = map_category("do-not-answer", harm_type, specific)
        records.append(
            PromptRecord(str(users[-1]).strip(), intent, risk, category, "do-not-answer", meta=meta)
        )
    return _done(records, str(path))


def load_alpaca(data_dir: PathLike | None = None, limit: int | None = 2000) -> PromptSet:
    """Alpaca no-input instructions: benign/safe. CC BY-NC 4.0: research use only.

    Args:
        limit: keep this many rows, chosen by a hash of the normalised text (deterministic and
            independent of file order); None keeps all 31,323.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be a positive count or None for all rows.")
    path, fix = _file(data_dir, "alpaca", "alpaca.json")
    items = [
        (i, str(x["instruction"]).strip())
        for i, x in enumerate(read_json(path, ("instruction",), fix))
    ]
    items = [(i, t) for i, t in items if t]
    if limit is not None and limit < len(items):
        chosen = sorted(items, key=lambda it: (unit_hash("alpaca:" + normalize_text(it[1])), it[0]))
        keep = {i for i, _ in chosen[:limit]}
        items = [(i, t) for i, t in items if i in keep]
    return _done(
        (
            PromptRecord(t, "benign", "safe", UNKNOWN_CATEGORY, "alpaca", meta={"row": str(i)})
            for i, t in items
        ),
        str(path),
    )


def _counsel_rows(data_dir: PathLike | None) -> list[dict[str, str]]:
    path, fix = _file(data_dir, "counsel-chat", "20200325_counsel_chat.csv")
    columns = ("questionID", "questionTitle", "questionText", "topic", "answerText", "split")
    return read_csv_rows(path, columns, fix)


def _question(row: dict[str, str], form: str) -> str:
    title, body = " ".join(row["questionTitle"].split()), row["questionText"].strip()
    if form == "title" or not body:
        return title
    if form == "text" or not title or normalize_text(title) in normalize_text(body):
        return body
    return f"{title}\n{body}"  # the body often continues the title ("I hear voices" / "They ...")


def load_counsel_chat(data_dir: PathLike | None = None, form: str = "full") -> PromptSet:
    """CounselChat help-seeking questions (815 unique): vulnerable/sensitive, Mental Health.

    Args:
        form: ``"full"`` (title, newline, body; the body alone when it repeats the title),
            ``"title"`` (short, message-like) or ``"text"`` (body only).
    """
    if form not in ("full", "title", "text"):
        raise ValueError(f"form={form!r} is unknown; use 'full', 'title' or 'text'.")
    seen: set[str] = set()
    records = []
    for r in _counsel_rows(data_dir):
        qid = r["questionID"].strip()
        if qid in seen:  # one row per answer; the first row's question wins (18 ids vary)
            continue
        seen.add(qid)
        text = _question(r, form)
        if text:
            meta = {"question_id": qid, "topic": r["topic"], "counsel_split": r["split"]}
            records.append(
                PromptRecord(
                    text, "vulnerable", "sensitive", "Mental Health", "counsel-chat", meta=meta
                )
            )
    return _done(records, "load_counsel_chat")


class CounselAnswer(NamedTuple):
    """One therapist answer to a CounselChat question: a constructive-reply exemplar."""

    question_id: str
    question: str
    answer: str


def load_counsel_answers(data_dir: PathLike | None = None) -> list[CounselAnswer]:
    """Every (question id, question in ``"full"`` form, therapist answer) row, file order."""
    out = [
        CounselAnswer(r["questionID"].strip(), _question(r, "full"), r["answerText"].strip())
        for r in _counsel_rows(data_dir)
        if r["answerText"].strip()
    ]
    if not out:
        raise EmptyDataError(
            "load_counsel_answers produced no answers; check the CounselChat file."
        )
    return out


def _parse_posts(raw: str) -> tuple[list[str], bool]:
    """A Python list literal of strings; a list cut short by a spreadsheet cell limit loses its
    last, unfinished item. Returns (posts, was_truncated)."""
    try:
        value: Any = ast.literal_eval(raw)  # literals only: no code runs
        truncated = False
    except (SyntaxError, ValueError):
        value, truncated, end = None, True, len(raw)
        while value is None:
            end = max(raw.rfind("', ", 0, end), raw.rfind('", ', 0, end))
            if end < 0:
                raise ValueError("not a list of strings") from None
            try:
                value = ast.literal_eval(raw[: end + 1] + "]")
            except (SyntaxError, ValueError):
                continue
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError("not a list of strings")
    return value, truncated


def _cap(text: str, max_chars: int) -> tuple[str, bool]:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return (cut or text[:max_chars]), True


def load_reddit_cssrs(
    data_dir: PathLike | None = None,
    max_posts_per_user: int | None = 3,
    min_chars: int = 40,
    max_chars: int = 1000,
) -> PromptSet:
    """Reddit C-SSRS posts, one record per post, labelled by the user's C-SSRS level.

    Labels (see ``CSSRS_LABELS``) are weak: they rate the *user*, so a single post of an
    "Ideation" user may be mundane. Posts shorter than ``min_chars`` are dropped; longer than
    ``max_chars`` are cut at a word boundary (``meta["capped"] = "true"``).

    Args:
        max_posts_per_user: keep this many posts per user, chosen by a hash of the post (about
            9,100 posts in all when None).
    """
    path, fix = _file(data_dir, "reddit-cssrs", "500_Reddit_users_posts_labels.csv")
    records = []
    for number, r in enumerate(read_csv_rows(path, ("User", "Post", "Label"), fix), start=2):
        label = r["Label"].strip()
        if label not in CSSRS_LABELS:
            raise DataError(
                f"{path} row {number} has Label={label!r}; expected one of {', '.join(CSSRS_LABELS)}."
            )
        try:
            posts, truncated = _parse_posts(r["Post"])
        except ValueError as err:
            raise DataError(f"{path} row {number} Post is {err}; {fix}.") from err
        user = r["User"].strip()
        kept = [
            (k, *_cap(p, max_chars)) for k, p in enumerate(posts) if len(p.strip()) >= min_chars
        ]
        if max_posts_per_user is not None:
            best = sorted(kept, key=lambda item: unit_hash(f"{user}:{item[1]}"))[
                :max_posts_per_user
            ]
            kept = [item for item in kept if item in best]
        intent, risk = CSSRS_LABELS[label]
        for k, text, capped in kept:
            meta = {
                "user": user,
                "cssrs": label,
                "post_index": str(k),
                "label_level": "user",
                "capped": str(capped).lower(),
                "cell_truncated": str(truncated).lower(),
            }
            records.append(
                PromptRecord(text, intent, risk, "Mental Health", "reddit-cssrs", meta=meta)
            )
    return _done(records, str(path))


def load_starter(path: PathLike | None = None) -> PromptSet:
    """The project's own demo prompts shipped in ``oyster_steer/data/starter/prompts.jsonl``.

    Lines are ``{"text", "intent", "risk", "category"}``; the source is ``"starter"``.
    """
    p = Path(path) if path is not None else STARTER_PATH
    fix = "reinstall oyster_steer or regenerate the starter set"
    return _done(
        records_from_jsonl(p, "starter", ("text", "intent", "risk", "category"), fix), str(p)
    )


LOADERS: dict[str, Callable[..., PromptSet]] = {
    "advbench": load_advbench,
    "harmbench": load_harmbench,
    "jailbreakbench": load_jailbreakbench,
    "strongreject": load_strongreject,
    "simplesafetytests": load_simplesafetytests,
    "do-not-answer": load_do_not_answer,
    "alpaca": load_alpaca,
    "counsel-chat": load_counsel_chat,
    "reddit-cssrs": load_reddit_cssrs,
}


def source_names(sources: Iterable[str] | None, loaders: Mapping[str, Any]) -> list[str]:
    """``sources`` as a list (every name of ``loaders`` when None); refuses a name not in it."""
    names = list(loaders) if sources is None else list(sources)
    unknown = [n for n in names if n not in loaders]
    if unknown:
        raise ValueError(
            f"sources has unknown {unknown[0]!r}; use names from {', '.join(loaders)}."
        )
    return names


def load_all(
    data_dir: PathLike | None = None,
    include_starter: bool = True,
    sources: Iterable[str] | None = None,
    alpaca_limit: int | None = 2000,
    near_threshold: float | None = 0.9,
) -> PromptSet:
    """Every public set (or ``sources``), plus the starter set when present, de-duplicated.

    Exact duplicates after normalisation are merged across all sources; near duplicates
    (token-set Jaccard >= ``near_threshold``) among malicious prompts. The surviving copy follows
    ``SOURCE_PRIORITY`` and lists the other sources in ``meta["also_in"]``.

    Example:
        >>> ps = load_all(sources=["advbench", "strongreject"], include_starter=False)
        >>> ps.counts()["malicious"] + ps.counts()["vulnerable"] == len(ps)   # self-directed harm
        True
    """
    names = source_names(sources, LOADERS)
    options: dict[str, dict[str, Any]] = {"alpaca": {"limit": alpaca_limit}}
    sets = [LOADERS[n](data_dir, **options.get(n, {})) for n in names]
    if include_starter and STARTER_PATH.is_file():  # optional until the starter set is written
        sets.insert(0, load_starter())
    return PromptSet.concat(*sets).deduplicate(near_threshold=near_threshold)
