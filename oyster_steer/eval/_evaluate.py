"""``evaluate``: answer a prompt set under several conditions, judge every reply, keep going after a stop.

Results stream to a JSONL file (one row per reply, one per divergence measurement) so that an
interrupted run resumes where it stopped: rows already in the file are never recomputed.

Example:
    >>> from oyster_steer.data import load_starter
    >>> result = evaluate(model, load_starter().split("test").sample(4),
    ...                   [Condition("unsteered"), Condition("constructive", "vector", vec, 4.0)],
    ...                   results_path="runs/eval.jsonl")                      # doctest: +SKIP
    >>> print(result.to_markdown())                                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..control._runtime import ControlHandle, DecisionLog
from ..core._errors import EmptyInputError, ModelMismatchError
from ..core._sites import Site, resolve_site
from ..data import PromptRecord
from ..models._model import carries_hooks
from ._conditions import Condition
from ._generate import _generate, divergence, generate_replies, prompt_pass
from ._judges import JUDGE_VERSION, Judges, _judge, judge_replies, stored_record
from ._result import EvalResult

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["evaluate"]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file; a last line cut short by an interrupted write is dropped."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for n, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines) - 1:
                raise ValueError(
                    f"results file {str(path)!r} line {n + 1} is not JSON: delete the file or that line"
                ) from None
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            path.write_text(text, encoding="utf-8")  # appended rows then start on a fresh line
    return rows


class _Results:
    """The resumable JSONL store: a header row naming the model, then result rows."""

    def __init__(self, path: str | Path | None, model: OysterModel, max_new_tokens: int) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, Any]] = []
        self.stale = False
        self.header = header = {
            "kind": "meta",
            "model": model.name,
            "model_fingerprint": model.fingerprint,
            "max_new_tokens": max_new_tokens,
            "judge_version": JUDGE_VERSION,
        }
        if self.path is not None and self.path.is_file():
            self.rows = _read_rows(self.path)
            found = next((r for r in self.rows if r.get("kind") == "meta"), None)
            if found and found.get("model_fingerprint") != model.fingerprint:
                raise ModelMismatchError(
                    f"results file {str(self.path)!r} was written for model {found.get('model')!r}, not {model.name!r}: "
                    "pass another results path or delete the file"
                )
            if found and found.get("max_new_tokens", max_new_tokens) != max_new_tokens:
                raise ValueError(
                    f"results file {str(self.path)!r} holds replies of up to {found['max_new_tokens']} tokens, not "
                    f"{max_new_tokens}: pass another results path or the same max_new_tokens"
                )
            # replies judged by another judge version are kept and judged again (rejudge)
            self.stale = found is not None and found.get("judge_version", 1) != JUDGE_VERSION
            self.rows = [r for r in self.rows if r.get("kind") != "meta"]
        if self.path is not None and not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write([header])
        self.done = {(r["kind"], r["condition"], r["id"]) for r in self.rows}

    def rejudge(self, model: OysterModel, judges: Judges, chunk: int = 64) -> None:
        """Judge the stored replies again with this judge version (nothing is regenerated) and
        rewrite the file atomically; for a results file written by an older judge."""
        replies = [r for r in self.rows if r.get("kind") == "reply"]
        for start in range(0, len(replies), chunk):
            rows = replies[start : start + chunk]
            records = [stored_record(r) for r in rows]
            judged = judge_replies(records, [r["reply"] for r in rows], model=model, judges=judges)
            for row, j in zip(rows, judged, strict=True):
                row.update(j)
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for row in (self.header, *self.rows):
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            tmp.replace(self.path)
        self.stale = False

    def _write(self, rows: Iterable[dict[str, Any]]) -> None:
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        self.done.update((r["kind"], r["condition"], r["id"]) for r in rows)
        self._write(rows)

    def replies(self, condition: str) -> dict[str, str]:
        return {
            r["id"]: r["reply"]
            for r in self.rows
            if r["kind"] == "reply" and r["condition"] == condition
        }


def _records(prompts: Any) -> list[PromptRecord]:

    records = list(prompts)
    if not records:
        raise EmptyInputError("the prompt set is empty: pass at least one labelled prompt")
    if not all(isinstance(r, PromptRecord) for r in records):
        raise TypeError(
            "prompts must be a PromptSet or PromptRecords (intent labels are needed to judge replies)"
        )
    unique = {r.id: r for r in records}
    return list(unique.values())


def _record_row(rec: PromptRecord, cond: Condition) -> dict[str, Any]:
    return {
        "kind": "reply",
        "condition": cond.name,
        "steered": cond.steered,
        "id": rec.id,
        "prompt": rec.text,
        "intent": rec.intent,
        "risk": rec.risk,
        "category": rec.category,
        "source": rec.source,
    }


def _decided(log: DecisionLog | None, n: int) -> list[dict[str, Any]]:
    """Per row, a control plan's decision (strategy, probe's intent); nothing for other conditions."""
    if log is None:
        return [{}] * n
    dec = log.result()
    return [
        {"control_strategy": s, "control_intent": i}
        for s, i in zip(dec.strategy, dec.intent, strict=True)
    ]


def _by_length(model: OysterModel, records: list[PromptRecord]) -> list[PromptRecord]:
    """``records`` in order of chat-formatted token length (stable): batches of similar lengths
    pad little and finish together (rows are stored by id, so the order is not visible)."""
    if len(records) < 2:
        return records
    rows = model.token_rows([r.text for r in records])
    order = sorted(range(len(records)), key=lambda i: len(rows[i]))
    return [records[i] for i in order]


# fields of a reply row that are not the judges' (the row's identity, its condition, its
# generation): what a reused unsteered row does not hand to the plan's row
_NOT_JUDGED = frozenset(
    {
        "kind",
        "condition",
        "steered",
        "id",
        "prompt",
        "intent",
        "risk",
        "category",
        "source",
        "gen_seconds",
        "control_strategy",
        "control_intent",
    }
)


def _unsteered_rows(
    model: OysterModel,
    store: _Results,
    cond: Condition,
    todo: list[PromptRecord],
    base: str | None,
    step: int,
) -> dict[str, dict[str, Any]]:
    """Replies of a control plan's rows that the plan leaves unsteered, without generating them.

    Per batch (the batches the unsteered condition was answered in), one prompt pass up to the
    plan's probes latches the decisions; a row whose gates switch on no action
    (:meth:`~oyster_steer.control.ControlHandle.inert_rows`) computes exactly what the
    unpatched model computes in that batch, so its reply is the unsteered condition's, and so
    are its judgments (the judges see the same prompt and reply, on the unpatched model).
    Returns id -> its row fields (reply, judgments, decision); empty unless ``cond`` is a plan,
    ``base`` (the unsteered condition) is answered, and the model runs on the hf backend.
    """
    if cond.kind != "plan" or base is None or model.backend != "hf":
        return {}
    have = {r["id"]: r for r in store.rows if r["kind"] == "reply" and r["condition"] == base}
    if not todo or any(r.id not in have for r in todo):
        return {}  # another batching than the unsteered run's: generate them all
    out: dict[str, dict[str, Any]] = {}
    with cond.applied(model) as handle:
        plan = handle.plan
        stop = 1 + max(
            resolve_site(p.site, model.n_layers).layer
            for p in (plan.probe, *plan.monitors.values())
        )
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            t0 = time.perf_counter()
            prompt_pass(model, [r.text for r in chunk], stop)
            dec, inert = handle.decisions(), handle.inert_rows()
            seconds = (time.perf_counter() - t0) / len(chunk)
            for row, r in enumerate(chunk):
                if bool(inert[row]):
                    out[r.id] = {k: v for k, v in have[r.id].items() if k not in _NOT_JUDGED} | {
                        "gen_seconds": seconds,
                        "control_strategy": dec.strategy[row],
                        "control_intent": dec.intent[row],
                    }
    return out


def _generation_reads(
    model: OysterModel, cond: Condition, judges: Judges
) -> tuple[Site | None, bool]:
    """What the judges read from the unpatched model that an unsteered generation can hand
    them (the refusal probe's site, the reply NLL): only for the unsteered condition on an hf
    model that carries no hooks of its own."""
    if cond.steered or model.backend != "hf" or carries_hooks(model):
        return None, False
    probe = judges.probe_for(model)
    return (probe.site if probe is not None else None), judges.coherence


def _answer(
    model: OysterModel,
    store: _Results,
    cond: Condition,
    records: list[PromptRecord],
    judges: Judges,
    opts: dict[str, Any],
    bar: Any,
) -> None:
    todo = _by_length(model, [r for r in records if ("reply", cond.name, r.id) not in store.done])
    step = opts["batch_size"]
    known = _unsteered_rows(model, store, cond, todo, opts.get("base"), step)
    reused = [r for r in todo if r.id in known]
    if reused:
        store.add([_record_row(r, cond) | known[r.id] for r in reused])
        bar.update(len(reused))
    todo = [r for r in todo if r.id not in known]
    for start in range(0, len(todo), step):
        chunk = todo[start : start + step]
        t0 = time.perf_counter()
        site, nll = _generation_reads(model, cond, judges)
        with cond.applied(model) as handle:
            log = DecisionLog(handle) if isinstance(handle, ControlHandle) else None
            if log is not None:
                log.start(model, len(chunk))  # checks the plan is patched on this model
            replies, reads = _generate(
                model,
                [r.text for r in chunk],
                max_new_tokens=opts["max_new_tokens"],
                batch_size=step,
                after_batch=log,
                read_site=site,
                read_nll=nll,
            )
        seconds = time.perf_counter() - t0
        judged = _judge(chunk, replies, model, judges, reads)
        rows = [
            _record_row(r, cond) | {"reply": text, "gen_seconds": seconds / len(chunk)} | d | j
            for r, text, d, j in zip(chunk, replies, _decided(log, len(chunk)), judged, strict=True)
        ]
        store.add(rows)
        bar.update(len(chunk))


def _references(
    model: OysterModel,
    store: _Results,
    records: list[PromptRecord],
    base: str | None,
    opts: dict[str, Any],
) -> dict[str, str]:
    """Reference replies for divergence: a record's ``meta["reference"]``, else its unsteered reply."""
    have = store.replies(base) if base else {}
    refs = {r.id: r.meta.get("reference") or have.get(r.id) for r in records}
    missing = [r for r in records if not refs[r.id]]
    if missing:
        texts = generate_replies(
            model,
            [r.text for r in missing],
            max_new_tokens=opts["max_new_tokens"],
            batch_size=opts["batch_size"],
        )
        refs.update({r.id: t for r, t in zip(missing, texts, strict=True)})
    return {k: v or "" for k, v in refs.items()}


def _diverge(
    model: OysterModel,
    store: _Results,
    cond: Condition,
    records: list[PromptRecord],
    refs: dict[str, str],
    opts: dict[str, Any],
) -> None:
    todo = [r for r in records if ("divergence", cond.name, r.id) not in store.done]
    if not todo:
        return
    todo = _by_length(model, todo)
    scores = divergence(
        model,
        [r.text for r in todo],
        [refs[r.id] for r in todo],
        cond,
        batch_size=opts["batch_size"],
    )
    store.add(
        [
            {"kind": "divergence", "condition": cond.name, "id": r.id, "intent": r.intent, **s}
            for r, s in zip(todo, scores, strict=True)
        ]
    )


def evaluate(
    model: OysterModel,
    prompts: Any,
    conditions: Sequence[Condition],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    results_path: str | Path | None = None,
    judges: Judges | None = None,
    divergence_intents: Sequence[str] = ("benign", "borderline"),
    progress: bool = True,
    seed: int = 0,
) -> EvalResult:
    """Answer every prompt under every condition, judge the replies, and measure divergence.

    Args:
        model: any backend; steering is applied per condition and removed afterwards.
        prompts: a :class:`~oyster_steer.data.PromptSet` (or PromptRecords): intents are needed.
        conditions: e.g. unsteered, a constructive vector, a control plan; names must be unique.
        max_new_tokens, batch_size: greedy generation budget and batch (left-padded).
        results_path: JSONL file; rows already there are reused (resume after an interruption);
            replies judged by an older judge version are judged again, not regenerated.
            Rows are keyed by condition name and prompt id: change a condition's settings
            (strength, vector) under a new name or in a new file.
        judges: which judges run (default: phrases + refusal probe + MiniLM similarity).
        divergence_intents: prompts whose next-token KL and reference perplexity are compared,
            steered vs unsteered, for every steered condition.
        seed: for the bootstrap intervals of the returned result.

    Returns:
        An :class:`EvalResult` with every row and per-intent, per-condition metrics.
    """
    from tqdm.auto import tqdm

    names = [c.name for c in conditions]
    if not conditions or len(set(names)) != len(names):
        raise ValueError(
            f"conditions must be non-empty with unique names, got {names}: rename the duplicates"
        )
    records = _records(prompts)
    judges = judges or Judges()
    opts: dict[str, Any] = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    store = _Results(results_path, model, max_new_tokens)
    if store.stale:
        store.rejudge(model, judges)
    resolved = [c.resolve(model) for c in conditions]
    with tqdm(
        total=len(records) * len(resolved),
        desc="eval",
        unit="reply",
        disable=not progress,
        leave=False,
    ) as bar:
        for cond in resolved:
            _answer(model, store, cond, records, judges, opts, bar)
            if not cond.steered:
                opts["base"] = cond.name
    base = next((c.name for c in resolved if not c.steered), None)
    near = [r for r in records if r.intent in divergence_intents]
    steered = [c for c in resolved if c.steered]
    if near and steered:
        refs = _references(model, store, near, base, opts)
        for cond in steered:
            _diverge(model, store, cond, near, refs, opts)
    ids = {r.id for r in records}
    rows = [r for r in store.rows if r["id"] in ids and r["condition"] in names]
    meta = {
        "model": model.name,
        "model_fingerprint": model.fingerprint,
        "max_new_tokens": max_new_tokens,
    }
    return EvalResult(rows, names, {c.name: c.describe() for c in conditions}, meta, seed=seed)
