"""Training the shipped control plan's actions: one low-rank intervention per gated strategy.

The recipe (see RESULTS.md "Control plan actions" for what it was chosen against):

1. **Gated population only.** "redirect" is trained on malicious training prompts, "guide" on
   vulnerable ones: the plan only ever applies each of them there.
2. **Targets that speak to the prompt.** For each prompt the model itself writes the opening
   sentence of its reply, sampled under a constructive-safety system prompt and a short
   prefilled opening ("I can't help with", "I'm really sorry you're") -- context distillation,
   so the sentence names the user's own situation in the model's own words. Sentences with
   method detail, steps or "here is" are dropped. The rest of the target is the prompt's
   constructive exemplar after its first sentence (a boundary plus a safe alternative for its
   category, or empathy plus resources and a safe next step; redacted, no methods), picked per
   prompt from varied templates. Two samples per prompt.
3. **A low-rank intervention** (:func:`~oyster_steer.vectors.train_intervention`) jointly at
   several sites from the probe's read site on, trained by teacher forcing at every position
   (what the plan does at those sites).
4. **Strength by outcome**: each intervention's gain is chosen on its own validation population
   by the judged rate (constructive verdicts of :mod:`oyster_steer.eval`), among gains whose
   replies stay coherent (median perplexity under the unsteered model at most twice that of the
   unsteered replies, no repetition loops).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..activations._scoring import Group, chat_ids, reply_ids, score_groups
from ..backends import Hook, get_backend
from ..core._errors import EmptyInputError
from ..core._sites import resolve_site
from ..data._exemplars import exemplar_for
from ..eval import generate_replies, judge_replies
from ..eval._rules import has_method_detail
from ..models._model import left_pad
from ..vectors._intervention import InterventionConfig, lowrank_delta, train_intervention

if TYPE_CHECKING:
    from ..models._model import OysterModel
    from ..vectors._intervention import LowRankIntervention

__all__ = [
    "PREFILLS",
    "SYSTEM_PROMPTS",
    "PlanTrainingConfig",
    "coherence",
    "distilled_targets",
    "repetition",
    "select_gain",
]

SYSTEM_PROMPTS = {
    "redirect": (
        "You are a responsible assistant. The user is asking for something harmful, illegal or "
        "unethical. Do not give any instructions or details. Firmly say you can't help with that "
        "and briefly why, then offer one safe, legal alternative related to the user's underlying goal."
    ),
    "guide": (
        "You are a caring, responsible assistant. The user is struggling or may be at risk. Respond "
        "warmly and speak to what they said. Never give methods or details that could cause harm and "
        "never praise or agree with a dangerous plan. Encourage them to reach out to someone they "
        "trust, a doctor or counsellor, or a crisis line or emergency number if they are in danger, "
        "and suggest one small safe next step."
    ),
}
PREFILLS = {  # each stops before its object, so the model names the request or situation itself
    "redirect": (
        "I can't help with",
        "I won't help with",
        "I'm not able to help with",
        "Sorry, but I can't help with",
        "I can't assist with",
        "I won't assist with",
    ),
    "guide": (
        "I'm really sorry you're",
        "It sounds like you're",
        "Thank you for telling me about",
        "I'm sorry to hear that you're",
        "I'm glad you reached out about",
        "That sounds really hard, and",
    ),
}
INTENT_OF = {"redirect": "malicious", "guide": "vulnerable"}
# what the plan checks (oyster_steer.control): a boundary may go on the malicious strategy
ROLES = {"redirect": "boundary", "guide": "anti_refusal"}
_BAD_OPENING = re.compile(
    r"here's|here is|step|:|\bhow to\b|\bfirst,|guide you|walk you|show you|help you (with|through)"
    r"|proceed|\bAI\b|\bbot\b",
    re.I,
)
_WORD = re.compile(r"[a-z]{5,}")
_COMMON = frozenset(
    [
        "about",
        "would",
        "could",
        "should",
        "there",
        "their",
        "these",
        "those",
        "which",
        "while",
        "being",
        "going",
        "really",
        "sorry",
        "think",
        "thing",
        "things",
        "something",
        "anything",
        "everything",
        "never",
        "always",
        "people",
        "other",
        "right",
    ]
)


def _topical(opening: str, prompt: str) -> bool:
    """Whether ``opening`` shares a content word (5+ letters, not a filler) with ``prompt``."""
    words = set(_WORD.findall(prompt.lower())) - _COMMON
    return bool(words & set(_WORD.findall(opening.lower())))


@dataclass(frozen=True)
class PlanTrainingConfig:
    """What :func:`train_plan_actions` does (defaults: the shipped SmolLM2 pack)."""

    n_prompts: int = 64  # training prompts per strategy
    samples: int = 2  # sampled openings per prompt
    max_prompt_tokens: int = 96
    max_reply_tokens: int = 128  # targets are an opening sentence + a 1-3 sentence exemplar tail
    layers: tuple[int, ...] = (12, 16, 20, 24)  # resid_post sites, from the read site on
    rank: int = 4
    steps: int = 100
    lr: float = 6e-3
    gains: tuple[float, ...] = (1.0, 1.5)
    n_validation: int = 12
    max_new_tokens: int = 48
    seed: int = 0
    strategies: tuple[str, ...] = ("redirect", "guide")
    extra: dict[str, Any] = field(default_factory=dict)


def _pick(options: Sequence[str], text: str, salt: int) -> str:
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


@torch.inference_mode()
def _sample_openings(
    model: OysterModel,
    prompts: Sequence[str],
    system: str,
    prefills: Sequence[str],
    *,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 8,
) -> list[str]:

    rows = [
        model.tokenizer(model.format_chat(p, system=system) + f, add_special_tokens=False)[
            "input_ids"
        ]
        for p, f in zip(prompts, prefills, strict=True)
    ]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = [""] * len(rows)
    eos = model.tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids, mask = left_pad([rows[i] for i in batch], model.pad_id, model.device)
        torch.manual_seed(seed * 1_000_003 + start)
        new = model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            repetition_penalty=1.1,
            pad_token_id=model.pad_id,
        )[:, ids.shape[1] :]
        for i, row in zip(batch, new.tolist(), strict=True):
            row = row[: row.index(eos)] if eos in row else row
            out[i] = prefills[i] + model.tokenizer.decode(row, skip_special_tokens=True)
    return out


def distilled_targets(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    *,
    samples: int = 2,
    seed: int = 0,
    topical: bool = True,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """(prompt, target) pairs for ``strategy``: a sampled opening sentence + the exemplar's rest.

    Openings that contain method detail, steps or "here is" are dropped; with ``topical``,
    openings that share no content word with their prompt are used only to top up to one pair per
    prompt when fewer than half the prompts got a topical one: a target must speak to its prompt,
    or the intervention learns one canned opening for every prompt.
    """

    texts = [r.text for r in records]
    pairs: list[tuple[str, str]] = []
    spare: list[tuple[str, str]] = []
    for k in range(samples):
        log(f"{strategy}: sampling openings {k + 1}/{samples} for {len(texts)} prompts")
        prefills = [_pick(PREFILLS[strategy], t, seed + k) for t in texts]
        openings = _sample_openings(
            model, texts, SYSTEM_PROMPTS[strategy], prefills, max_new_tokens=28, seed=seed + k
        )
        for record, opening in zip(records, openings, strict=True):
            match = re.match(r"(.+?[.!?])(\s|$)", opening.replace("\n", " "))
            first = match.group(1).strip() if match else ""
            if (
                not first
                or len(first.split()) > 30
                or has_method_detail(first)
                or _BAD_OPENING.search(first)
            ):
                continue
            exemplar = exemplar_for(record.text, record.intent, record.category).constructive
            parts = re.split(r"(?<=[.!?;])\s", exemplar, maxsplit=1)
            pair = (record.text, f"{first} {parts[1] if len(parts) > 1 else exemplar}")
            (pairs if _topical(first, record.text) else spare).append(pair)
    if topical and len(pairs) >= len(records) // 2:
        return pairs
    return pairs + spare[: max(0, len(records) - len(pairs))]  # too few topical ones: top up


def repetition(text: str) -> float:
    """Share of repeated word 3-grams in ``text`` (0: none; a loop is well above 0.3)."""
    words = text.split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def coherence(model: OysterModel, prompts: Sequence[str], replies: Sequence[str]) -> list[float]:
    """Perplexity of each reply after its prompt under ``model`` as it is (unpatched: unsteered)."""

    groups = [
        Group(chat_ids(model, p), (reply_ids(model, r, 64) or (model.pad_id,),))
        for p, r in zip(prompts, replies, strict=True)
    ]
    return [math.exp(-float(lp[0])) for lp in score_groups(model, groups)]


def _hooks(model: OysterModel, intervention: LowRankIntervention, gain: float) -> list[Any]:

    def make(R: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> Callable[..., torch.Tensor]:
        R, W, b = (t.to(model.device, model.dtype) for t in (R, W, b))
        return lambda h: h + gain * lowrank_delta(h, R, W, b)

    return [
        Hook(resolve_site(site, model.n_layers), make(*part), write=True)
        for site, part in intervention.parts.items()
    ]


def select_gain(
    model: OysterModel,
    intervention: LowRankIntervention,
    records: Sequence[Any],
    gains: Sequence[float],
    *,
    max_new_tokens: int = 48,
    log: Callable[[str], None] = print,
) -> tuple[float, list[dict[str, Any]]]:
    """The gain with the most constructive verdicts on ``records`` among coherent ones.

    Coherent: median reply perplexity (under the unsteered model) at most twice the unsteered
    replies' median, and no reply in a repetition loop (:func:`repetition` > 0.3). Returns the
    gain and one row per gain tried (unsteered first) with rates and replies.
    """

    prompts = [r.text for r in records]
    rows: list[dict[str, Any]] = []
    for gain in (0.0, *gains):
        if gain:
            with get_backend(model.backend).add_hooks(model, _hooks(model, intervention, gain)):
                replies = generate_replies(model, prompts, max_new_tokens=max_new_tokens)
        else:
            replies = generate_replies(model, prompts, max_new_tokens=max_new_tokens)
        verdicts = [j["verdict"] for j in judge_replies(records, replies, model=model)]
        ppl = sorted(coherence(model, prompts, replies))
        rows.append(
            {
                "gain": gain,
                "constructive": verdicts.count("constructive") / len(verdicts),
                "refusal": verdicts.count("refusal") / len(verdicts),
                "compliance": verdicts.count("compliance") / len(verdicts),
                "ppl": ppl[len(ppl) // 2],
                "loops": sum(repetition(r) > 0.3 for r in replies),
                "replies": replies,
            }
        )
        log(
            f"  gain {gain:g}: constructive {rows[-1]['constructive']:.0%}, compliance "
            f"{rows[-1]['compliance']:.0%}, median ppl {rows[-1]['ppl']:.2f}, loops {rows[-1]['loops']}"
        )
    base = rows[0]["ppl"]
    ok = [r for r in rows[1:] if r["ppl"] <= 2 * base and r["loops"] == 0] or rows[1:2]
    best = max(ok, key=lambda r: (r["constructive"], -r["compliance"], -abs(r["gain"] - 1.0)))
    return float(best["gain"]), rows


def _sample(
    model: OysterModel, data: Any, intent: str, n: int, seed: int, max_tokens: int
) -> list[Any]:
    records = list(data.filter(intent=intent).sample(4 * n, seed=seed))
    short = [
        r
        for r in records
        if len(model.tokenizer(r.text, add_special_tokens=False)["input_ids"]) <= max_tokens
    ]
    return short[:n]


def _cached_pairs(
    cache: Path | None, key: str, make: Callable[[], list[tuple[str, str]]]
) -> list[tuple[str, str]]:
    """Targets from ``cache`` when it holds them for ``key`` (config + model), else made and stored."""
    stored = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    if key in stored:
        return [tuple(p) for p in stored[key]]
    pairs = make()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        stored[key] = pairs
        cache.write_text(json.dumps(stored))
    return pairs


def train_plan_actions(
    model: OysterModel,
    data: Any,
    config: PlanTrainingConfig | None = None,
    *,
    log: Callable[[str], None] = print,
    targets_cache: Path | None = None,
) -> tuple[dict[str, tuple[LowRankIntervention, float]], dict[str, Any]]:
    """Train one intervention per strategy and pick its gain; returns ``{strategy: (iv, gain)}``.

    ``data``: a :class:`~oyster_steer.data.PromptSet` with "train" and "validation" splits.
    ``targets_cache``: a JSON file that keeps the sampled targets (keyed by strategy, sampling
    settings and model fingerprint), so a rerun with other training settings reuses them.
    """

    cfg = config or PlanTrainingConfig()
    train, val = data.split("train"), data.split("validation")
    out: dict[str, tuple[LowRankIntervention, float]] = {}
    report: dict[str, Any] = {}
    for strategy in cfg.strategies:
        intent = INTENT_OF[strategy]
        started = time.monotonic()
        records = _sample(model, train, intent, cfg.n_prompts, cfg.seed, cfg.max_prompt_tokens)
        if not records:
            raise EmptyInputError(
                f"strategy {strategy!r} has no training prompts: the data has no {intent} prompts in its train split; add some"
            )
        key = json.dumps(
            [
                strategy,
                cfg.n_prompts,
                cfg.samples,
                cfg.seed,
                cfg.max_prompt_tokens,
                model.fingerprint,
            ]
        )
        pairs = _cached_pairs(
            targets_cache,
            key,
            partial(
                distilled_targets, model, records, strategy, samples=cfg.samples, seed=cfg.seed
            ),
        )
        log(f"{strategy}: {len(pairs)} targets from {len(records)} {intent} prompts")
        iv = train_intervention(
            model,
            [p for p, _ in pairs],
            [t for _, t in pairs],
            sites=list(cfg.layers),
            config=InterventionConfig(
                rank=cfg.rank,
                steps=cfg.steps,
                lr=cfg.lr,
                seed=cfg.seed,
                max_reply_tokens=cfg.max_reply_tokens,
            ),
            log=log,
            meta={
                "strategy": strategy,
                "population": intent,
                "role": ROLES[strategy],
                "targets": "distilled openings + exemplar continuations",
            },
        )
        val_records = _sample(
            model, val, intent, cfg.n_validation, cfg.seed + 1, cfg.max_prompt_tokens
        )
        gain, rows = select_gain(
            model, iv, val_records, cfg.gains, max_new_tokens=cfg.max_new_tokens, log=log
        )
        log(f"{strategy}: gain {gain:g} ({time.monotonic() - started:.0f} s)")
        out[strategy] = (iv, gain)
        report[strategy] = {
            "pairs": pairs,
            "validation": rows,
            "gain": gain,
            "val_prompts": [r.text for r in val_records],
        }
    return out, report
