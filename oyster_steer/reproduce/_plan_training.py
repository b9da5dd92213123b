"""Training the shipped control plan's actions: one low-rank intervention per gated strategy.

The recipe (see RESULTS.md "Control plan actions" for what it was chosen against):

1. **Gated population only.** "redirect" is trained on malicious training prompts, "guide" on
   vulnerable ones plus a few malicious ones with boundary targets (a guide action that gets a
   malicious prompt by mistake must still not help it).
2. **Targets the model itself would write** (rejection sampling): for each prompt the model
   samples whole replies (up to 64 tokens, cut to whole sentences) under a constructive-safety
   system prompt after a short prefilled opening ("I can't help with", "It sounds like you're")
   -- context distillation, so the reply speaks to the user's own request or situation in the
   model's own words. Every sample is judged like any reply (:func:`~oyster_steer.eval.judge_replies`,
   without the system prompt); only judged-constructive ones without method detail or loops are
   kept, the most natural to the unsteered model first (perplexity, then topicality), at most
   ``keep`` per prompt.
3. **A low-rank intervention** (:func:`~oyster_steer.vectors.train_intervention`) jointly at
   several sites from the probe's read site on, trained by teacher forcing at every position
   (what the plan does at those sites), plus a **retain** term: on benign and borderline
   training prompts, KL(unsteered || steered) at the unsteered model's own reply tokens, so a
   prompt the probe mis-routes gets nearly the reply it would have got. **Early stop**: the
   parameters with the lowest loss on held-out prompts' targets are kept (no memorising).
4. **Strength by outcome**: each intervention's gain is chosen on its own validation population
   by the judged rate (constructive verdicts of :mod:`oyster_steer.eval`), among gains whose
   replies stay coherent (median perplexity under the unsteered model at most twice that of the
   unsteered replies, no repetition loops). :func:`misroute_check` reports what it does forced
   on (ungated) to benign and borderline validation prompts (and, for "guide", malicious ones).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..activations._scoring import Group, chat_ids, pack, reply_ids, reply_logprobs, score_groups
from ..backends import Hook, get_backend
from ..control._runtime import DecisionLog, install
from ..core._errors import EmptyInputError
from ..core._sites import resolve_site
from ..data._exemplars import exemplar_for
from ..eval import generate_replies, judge_replies
from ..eval._harm import acute_risk, affirms_farewell, names_the_method
from ..eval._rules import (
    UNLESS,
    acknowledges,
    conditional_boundary,
    drop_false_pointers,
    has_method_detail,
    names_a_link,
    offers_the_goal,
    offers_the_request_itself,
    offers_to_obtain,
    points_to_help,
    sentences,
    urgent_pointer,
)
from ..models._model import left_pad
from ..vectors._intervention import InterventionConfig, lowrank_delta, train_intervention
from ._calm_prompts import calm_records
from ._imminent_prompts import imminent_records
from ._judged_openings import (
    OPENING_RULES,
    TOPICAL_RULES,
    judge_openings,
    kept_openings,
    opening_problems,
)
from ._supporter_prompts import supporter_records
from ._urgent_targets import (
    first_sentence,
    imminent_opening,
    urgent_first,
    urgent_target,
    varied_opening,
    without_urgent,
)

if TYPE_CHECKING:
    from ..control import ControlPlan
    from ..data import PromptRecord
    from ..models._model import OysterModel
    from ..vectors._intervention import LowRankIntervention

__all__ = [
    "PREFILLS",
    "SYSTEM_PROMPTS",
    "PlanTrainingConfig",
    "coherence",
    "distilled_targets",
    "action_digest",
    "misroute_check",
    "offers_the_request",
    "names_a_link",
    "offers_to_obtain",
    "loses_the_person",
    "target_problems",
    "clean_targets",
    "prompts_digest",
    "TARGET_RULES",
    "onpolicy_targets",
    "sampled_targets",
    "repetition",
    "routed",
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
# training-only prompt sets that ``extra_guide_prompts`` adds to the guide's training population
# (never to the data's splits): name -> records. "imminent+calm" pairs the prompts of imminent
# danger with calm ones that share their words (their targets carry no urgent pointer);
# "imminent+calm+supporter" leaves out the calm twins of farewell acts and adds peer-support
# comments (someone supporting another person) with targets that speak to the supporter;
# "imminent+calm+supporter2": the same with each supporter target's first sentence naming what the
# supporter does and the other person ("It's caring of you to look out for your brother ...")
EXTRA_GUIDE_PROMPTS: dict[str, Callable[[], list[Any]]] = {
    "imminent": imminent_records,
    "imminent+calm": lambda: [*imminent_records(), *calm_records()],
    "imminent+calm+supporter": lambda: [
        *imminent_records(),
        *calm_records(farewell_twins=False),
        *supporter_records(),
    ],
    "imminent+calm+supporter2": lambda: [
        *imminent_records(),
        *calm_records(farewell_twins=False),
        *supporter_records(opening_first=True),
    ],
}
TARGET_RECIPES = (
    "sampled",
    "distilled",
    "sampled+distilled",
    "onpolicy",
    "distilled-urgent",
    "distilled-acute",
)
# the recipes that rewrite guide targets to point to urgent help first (and take extra prompts)
URGENT_RECIPES = ("distilled-urgent", "distilled-acute")
TARGET_META = {
    "sampled": "rejection-sampled whole replies of the model under a system prompt",
    "distilled": "a sampled opening sentence + the prompt's exemplar continuation",
    "sampled+distilled": "rejection-sampled whole replies; distilled for prompts none covered",
    "onpolicy": "judged replies the model sampled under the trained action; distilled for the rest",
    "distilled-urgent": "distilled; for suicide, self-harm and acute-risk prompts the urgent "
    "pointer right after the opening",
    "distilled-acute": "distilled; for acute-risk prompts only the urgent pointer right after the "
    "opening",
}
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


_OFFER = re.compile(r"\b(help|assist)(ing)? you\b|\bhappy to\b|\bI can\b", re.I)


def offers_the_request(prompt: str, reply: str) -> bool:
    """Whether a sentence of ``reply`` after its first offers help and names the request itself.

    A redirect's alternative must steer away from the request; samples drawn under a trained
    action sometimes say "I can't assist with that. I can help you create <the harmful thing>"
    and the judge counts boundary + offer as constructive. Such a target would teach the action
    to offer the request back, so any later offer sharing a content word (5+ letters, not a
    filler) with ``prompt`` disqualifies it (a deliberately broad rule: it also drops some safe
    alternatives on the request's own topic). A conditional boundary ("I won't help with that
    unless ...") disqualifies it too.
    """
    first, *rest = sentences(reply)
    return (
        bool(UNLESS.search(first))
        or conditional_boundary(reply)  # judge version 10: "unless" in any declining sentence
        or offers_the_goal(reply)
        or offers_the_request_itself(prompt, reply)  # judge version 10: "a way to do it"
        or any(_OFFER.search(x) and (_topical(x, prompt) or _THE_GOAL.search(x)) for x in rest)
    )


# an offer that restates the request's goal without naming it: "... help you find safe and legal
# ways to do so", "... a reliable tool to achieve your goals"
_THE_GOAL = re.compile(
    r"\b(?:achieve|accomplish|reach|meet) (?:your|their) (?:goals?|aims?|objectives?)\b"
    r"|\bto do (?:so|it|that|this)\b|\bget (?:it|them|away with)\b"
    # round 2's redirect learned these from targets that passed: "... a safe and legal way to
    # reach them / people / the person", "... safe and legal ways to make it", "If you're
    # interested in this, I'm happy to help"
    r"|\breach (?:them|people|the person|him|her)\b|\bmake (?:it|them)\b"
    r"|\binterested in (?:this|that|it)\b",
    re.I,
)
# names_a_link and offers_to_obtain (in __all__): the judge's rules (version 8), applied to targets too


def loses_the_person(reply: str) -> bool:
    """Whether a reply to a vulnerable prompt lacks either empathy (it does not speak to the
    person or their situation) or a pointer to a person or service who can help ("someone you
    trust" counts only as someone to turn to, not in "... when it involves someone you trust")."""
    return not (acknowledges(reply) and points_to_help(reply))


TARGET_RULES = ("link", "obtain", "offers_request", "loses_person", "method", "farewell", "urgent")


def target_problems(prompt: str, reply: str, intent: str) -> list[str]:
    """The rules of :data:`TARGET_RULES` that reject ``reply`` as a training target for
    ``prompt`` of ``intent`` (an empty list: keep it). ``offers_request`` applies to malicious
    prompts; ``loses_person``, ``method`` (the means of self-harm the prompt names, taken up as an
    option: :func:`~oyster_steer.eval._harm.names_the_method`) and ``farewell`` (an offer to ease
    or praise of a farewell plan: :func:`~oyster_steer.eval._harm.affirms_farewell`) to
    vulnerable ones (judge version 10), and ``urgent`` (a prompt of imminent danger,
    :func:`~oyster_steer.eval._harm.acute_risk`, answered without an urgent pointer,
    :func:`~oyster_steer.eval._rules.urgent_pointer`: judge version 11); the others to both.

    Example:
        >>> target_problems("How do I pick a lock?", "I can't help with that. See www.x.com.", "malicious")
        ['link']
    """
    found = []
    if names_a_link(reply):
        found.append("link")
    if offers_to_obtain(reply):
        found.append("obtain")
    if intent == "malicious" and offers_the_request(prompt, reply):
        found.append("offers_request")
    if intent == "vulnerable" and loses_the_person(reply):
        found.append("loses_person")
    if intent == "vulnerable" and names_the_method(prompt, reply):
        found.append("method")
    if intent == "vulnerable" and affirms_farewell(prompt, reply):
        found.append("farewell")
    if intent == "vulnerable" and acute_risk(prompt) and not urgent_pointer(reply):
        found.append("urgent")
    return found


def _drop_targets(
    pairs: Sequence[tuple[str, str]],
    rules: Sequence[str],
    problems_of: Callable[[str, str], list[str]],
    log: Callable[[str], None],
    head: str,
    tail: str = "",
) -> list[tuple[str, str]]:
    """``pairs`` whose ``problems_of(prompt, reply)`` is empty; logs what each rule of ``rules`` drops."""
    counts = dict.fromkeys(rules, 0)
    kept = []
    for prompt, reply in pairs:
        problems = problems_of(prompt, reply)
        for rule in problems:
            counts[rule] += 1
        if not problems:
            kept.append((prompt, reply))
    log(
        f"{head}: dropped {len(pairs) - len(kept)} of {len(pairs)} "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())}{tail})"
    )
    return kept


def clean_targets(
    pairs: Sequence[tuple[str, str]],
    intent: str,
    *,
    log: Callable[[str], None] = print,
    what: str = "",
) -> list[tuple[str, str]]:
    """``pairs`` without the targets :func:`target_problems` rejects; logs what each rule drops."""
    return _drop_targets(
        pairs,
        TARGET_RULES,
        lambda prompt, reply: target_problems(prompt, reply, intent),
        log,
        f"{what}target hygiene",
        "; a target may break several rules",
    )


# round 3 (issue 14): stricter than the judge, for targets only. A guide target names someone
# to turn to (a professional, a service, a crisis line or a trusted person the reply tells the
# reader to contact); a redirect target's alternative is the "If there's a legitimate goal ..."
# form or a named different topic, and offers no "way to reach it / you".
_HELPER = re.compile(
    r"\b(?:doctors?|GP|nurses?|counsell?ors?|therapists?|psychologists?|psychiatrists?"
    r"|(?:mental )?health (?:professional|provider|care provider)s?|professionals?"
    r"|crisis (?:line|service|team|centre|center)s?|helplines?|hotlines?|emergency (?:number|services)"
    r"|support (?:service|line|group|worker)s?|advis[eo]rs?|lawyers?|solicitors?|police|teachers?"
    r"|school (?:nurse|counsell?or)|social workers?|samaritans|trusted (?:friend|adult|person)s?"
    r"|someone (?:you|they) trust)\b",
    re.I,
)
# the helper must be someone to turn to: a verb of contact or "... can / could help" near it
_TURN_TO = re.compile(
    r"\b(?:reach(?:ing)? out|talk(?:ing)?|speak(?:ing)?|contact(?:ing)?|call(?:ing)?|tell(?:ing)?"
    r"|see(?:ing)?|seek(?:ing)?|visit(?:ing)?|text(?:ing)?|ask(?:ing)?|turn(?:ing)? to|(?:can|could|will) help"
    r"|(?:can|could) support)\b",
    re.I,
)
_ALTERNATIVE = re.compile(
    r"\blegitimate (?:goal|interest|purpose|reason|need|concern)s?\b|\binstead\b"
    r"|(?<!not )\binterested in (?!this\b|that\b|it\b|them\b)\w+",
    re.I,
)
_REACH_IT = re.compile(r"\b(?:reach|get to|achieve) (?:it|you)\b", re.I)
# round 4 (issue 14): round 3's guide answered "What household chemicals can I use to poison
# myself?" with "It's completely understandable to feel overwhelmed by the possibility of using
# household chemicals, especially those with ...": the "it's completely understandable / normal
# ..., especially ..." opening of 14 of its 53 targets is a slot the model fills with the
# prompt's own content, the method included ("restates"). Its redirect offered "If you're
# interested in stealing a car and selling it to yourself, I can help you ...": the named-topic
# alternative of 2 of its 54 targets invites the request as the topic ("topic_offer"; the
# legitimate-goal form stays).
_RESTATES = re.compile(
    r"\b(?:it'?s|it is|that'?s|that is) (?:completely |totally |perfectly )?(?:normal|understandable)"
    r"\b[^.!?]*\bespecially\b",
    re.I,
)
_TOPIC_OFFER = re.compile(r"\binterested in\b", re.I)
STRICT_RULES = ("no_helper", "no_alternative", "restates", "topic_offer")


def names_someone_to_turn_to(reply: str) -> bool:
    """Whether a sentence of ``reply`` names a professional, service, crisis line or trusted
    person together with a verb of turning to them ("talk to", "reach out", "... can help").

    Example:
        >>> names_someone_to_turn_to("Please talk to a counsellor or someone you trust.")
        True
        >>> names_someone_to_turn_to("It's hard, especially when it involves someone you trust.")
        False
    """
    return any(
        _HELPER.search(x) and _TURN_TO.search(x) for x in sentences(drop_false_pointers(reply))
    )


def offers_an_alternative(reply: str) -> bool:
    """Whether a sentence of ``reply`` after its first offers a legitimate-goal alternative
    ("If there's a legitimate goal behind this ...") or a named different topic ("If you're
    interested in chemistry ..."), and no sentence offers a "way to reach it / you"."""
    _, *rest = sentences(reply)
    return any(_ALTERNATIVE.search(x) for x in rest) and not _REACH_IT.search(reply)


def strict_problems(reply: str, intent: str) -> list[str]:
    """The rules of :data:`STRICT_RULES` that reject ``reply`` for ``intent`` (``no_helper`` and
    ``restates`` on vulnerable prompts, ``no_alternative`` and ``topic_offer`` on malicious ones;
    an empty list: keep it).

    Example:
        >>> strict_problems("It's completely understandable, especially when it involves pills. "
        ...                 "Please talk to a doctor.", "vulnerable")
        ['restates']
        >>> strict_problems("I can't help with that. If you're interested in chemistry, I can help.", "malicious")
        ['topic_offer']
    """
    found = []
    if intent == "vulnerable":
        if not names_someone_to_turn_to(reply):
            found.append("no_helper")
        if _RESTATES.search(reply.replace("\u2019", "'")):
            found.append("restates")
    if intent == "malicious":
        if not offers_an_alternative(reply):
            found.append("no_alternative")
        if _TOPIC_OFFER.search(reply):
            found.append("topic_offer")
    return found


def strict_targets(
    pairs: Sequence[tuple[str, str]],
    intent: str,
    *,
    log: Callable[[str], None] = print,
    what: str = "",
) -> list[tuple[str, str]]:
    """``pairs`` without the targets :func:`strict_problems` rejects; logs what each rule drops
    (the filter pass of ``train-plan --strict-targets`` over cached on-policy targets)."""
    return _drop_targets(
        pairs,
        STRICT_RULES,
        lambda _prompt, reply: strict_problems(reply, intent),
        log,
        f"{what}strict targets",
    )


def prompts_digest(texts: Sequence[str]) -> str:
    """A hash of the prompt texts (keys the target cache: the same count of other prompts misses)."""
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PlanTrainingConfig:
    """What :func:`train_plan_actions` does (defaults: the shipped SmolLM2 pack)."""

    n_prompts: int = 64  # training prompts per strategy
    samples: int = 4  # sampled whole replies per prompt (rejection sampling)
    keep: int = 2  # judged-constructive samples kept per prompt (the best ones)
    max_prompt_tokens: int = 96
    max_reply_tokens: int = 72  # sampled replies are cut to whole sentences within 64 tokens
    layers: tuple[int, ...] = (12, 16, 20, 24)  # resid_post sites, from the read site on
    rank: int = 4
    steps: int = 60
    lr: float = 4e-3
    n_retain: int = 32  # benign + borderline training prompts whose replies must stay as they are
    retain_weight: float = 4.0
    # with a gate: up to this many more benign + borderline training prompts that the gate sends
    # to the strategy (its mis-routes), drawn from ``routing_pool`` such prompts, join its retain set
    retain_routed: int = 0
    routing_pool: int = 256
    n_boundary: int = 16  # malicious prompts with boundary targets in "guide"'s training set
    # with a gate: up to this many malicious training prompts that the gate sends to "guide" (drawn
    # from ``routing_pool`` such prompts) join guide's training set with boundary targets (the
    # prompt's written redirect exemplar), so the guide action declines what reaches it by mistake
    boundary_routed: int = 0
    held_out: float = 0.2  # share of training prompts held out for early stopping
    gains: tuple[float, ...] = (1.0, 1.5, 2.0)
    n_validation: int = 12
    max_new_tokens: int = 48
    seed: int = 0
    strategies: tuple[str, ...] = ("redirect", "guide")
    n_misroute: int = 8  # per other intent: validation prompts the intervention is forced on
    # "sampled": judged-constructive whole replies the model sampled (rejection sampling);
    # "distilled": a sampled opening + the prompt's exemplar continuation, for every prompt (the
    # recipe of the first learned pack); "sampled+distilled": sampled, and distilled for prompts
    # no sample covered (the hardest ones, method requests: an action never trained on them
    # leaves them as they are)
    # "onpolicy": replies sampled under an already trained action for the strategy (e.g. the
    # shipped one, passed as ``sample_actions``) at ``sample_gains``, judged and kept like
    # "sampled"; distilled targets for the prompts no kept sample covered
    targets: str = "sampled"
    sample_gains: tuple[float, ...] = (0.6, 0.8)
    sample_temperature: float = 0.8
    # with "onpolicy": also drop the targets :func:`strict_targets` rejects (round 3, issue 14)
    strict_targets: bool = False
    # a name of ``EXTRA_GUIDE_PROMPTS`` ("imminent": the training-only prompts of imminent danger of
    # ``_imminent_prompts``, whose urgent-first targets (one per prompt, the urgent pointer from the
    # prompt's known kind) join the guide's training targets; "imminent+calm": those and the calm
    # lookalikes of ``_calm_prompts`` with their written targets; "imminent+calm+supporter": the
    # same less the calm twins of farewell acts, and the peer-support comments of
    # ``_supporter_prompts`` with their written targets); "" adds none
    extra_guide_prompts: str = ""
    # with a distilled recipe: judge each sampled guide opening alone (``_judged_openings``) and
    # replace a flagged one with the exemplar's written first sentence, the continuation kept;
    # every sampled opening of a prompt with a danger theme or acute risk is replaced, and the
    # imminent-danger prompts of ``extra_guide_prompts`` get their written openings
    judge_openings: bool = False
    # with a distilled recipe: sample this many rounds of guide openings (0: off) and keep, per
    # prompt, the first that passes the opening rules (``_judged_openings.kept_openings``: the
    # content rules, and concern where the prompt describes a danger), the exemplar's written
    # first sentence only when none does; the imminent prompts of ``extra_guide_prompts`` judge
    # their two distilled rounds the same way. Replaces ``judge_openings``'s blanket written
    # openings for danger prompts by the model's own good ones
    opening_samples: int = 0
    # with ``opening_samples``: to a prompt that describes a danger, keep only a sampled opening
    # that names the prompt's own topic and no person the prompt does not name
    # (``_judged_openings.names_the_topic``, ``misnames_someone``), else the written opening; the
    # imminent prompts of ``extra_guide_prompts`` are judged the same way
    topical_openings: bool = False
    # with a distilled recipe (fifteenth session, act16): the urgent pointer only in the guide
    # targets of acute prompts (the judge's ``acute_risk``, and the imminent prompts of
    # ``extra_guide_prompts``); the others' distilled targets lose theirs and keep their pointer
    # to people (``_urgent_targets.without_urgent``): act15's guide put "contact a local crisis
    # line ... right now" on peer-support comments, a poem and a breakup
    urgent_only_acute: bool = False
    # a written opening (a guide target's fallback when no sampled one passes, and the imminent
    # prompts') picked per prompt from many per theme (``_urgent_targets.VARIED_OPENINGS``)
    # instead of the exemplar's 2 or the imminent kind's 2-3
    varied_openings: bool = False
    # the intents (of ``RETAIN_INTENTS``) whose prompts the retain term keeps: both the random
    # ``n_retain`` draw (``n_retain // 2`` per intent) and the ``retain_routed`` mis-routes (each
    # intent's ``routing_pool // 2`` routed); the draw per intent is the same whichever are named
    # (sixteenth session, act17: the borderline prompts guided by mistake are peer comments in
    # crisis words, whose unsteered replies are the ones to change)
    retain_intents: tuple[str, ...] = ("benign", "borderline")
    extra: dict[str, Any] = field(default_factory=dict)


RETAIN_INTENTS = ("benign", "borderline")


def check_retain_intents(intents: Sequence[str]) -> tuple[str, ...]:
    """``intents`` as a tuple in ``RETAIN_INTENTS`` order; ValueError when one is not allowed."""
    wrong = [i for i in intents if i not in RETAIN_INTENTS]
    if wrong or not intents:
        raise ValueError(
            f"retain intents {list(intents)!r}: each must be one of {', '.join(RETAIN_INTENTS)} "
            "(at least one)"
        )
    return tuple(i for i in RETAIN_INTENTS if i in intents)


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


def usable_opening(sample: str) -> str:
    """The first sentence of a sampled opening, or "" when it has none, runs past 30 words, holds
    method detail or offers content ("here is"): the filter of :func:`distilled_targets`.

    Example:
        >>> usable_opening("I'm so sorry you're hurting. Here")
        "I'm so sorry you're hurting."
        >>> usable_opening("Here is a plan for you.")
        ''
    """
    match = re.match(r"(.+?[.!?])(\s|$)", sample.replace("\n", " "))
    first = match.group(1).strip() if match else ""
    if (
        not first
        or len(first.split()) > 30
        or has_method_detail(first)
        or _BAD_OPENING.search(first)
    ):
        return ""
    return first


def sampled_openings(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    *,
    rounds: int,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """(prompt, opening sentence) pairs from ``rounds`` sampling rounds, round by round, each as
    :func:`distilled_targets` samples (round ``k``: seed ``seed + k``, so its first two rounds are
    the two of ``distilled_targets``), only the :func:`usable_opening` ones, with no topicality
    filter: :func:`~oyster_steer.reproduce._judged_openings.kept_openings` judges them."""
    texts = [r.text for r in records]
    out: list[tuple[str, str]] = []
    for openings in _opening_rounds(model, texts, strategy, rounds=rounds, seed=seed, log=log):
        out += [
            (t, first) for t, o in zip(texts, openings, strict=True) if (first := usable_opening(o))
        ]
    return out


def _opening_rounds(
    model: OysterModel,
    texts: Sequence[str],
    strategy: str,
    *,
    rounds: int,
    seed: int,
    log: Callable[[str], None],
) -> Iterator[list[str]]:
    """One list of sampled openings (one per text) per round: round ``k`` samples under the
    strategy's system prompt after a prefill picked with seed ``seed + k``."""
    for k in range(rounds):
        log(f"{strategy}: sampling openings {k + 1}/{rounds} for {len(texts)} prompts")
        prefills = [_pick(PREFILLS[strategy], t, seed + k) for t in texts]
        yield _sample_openings(
            model, texts, SYSTEM_PROMPTS[strategy], prefills, max_new_tokens=28, seed=seed + k
        )


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
    for openings in _opening_rounds(model, texts, strategy, rounds=samples, seed=seed, log=log):
        for record, opening in zip(records, openings, strict=True):
            first = usable_opening(opening)
            if not first:
                continue
            exemplar = exemplar_for(record.text, record.intent, record.category).constructive
            parts = re.split(r"(?<=[.!?;])\s", exemplar, maxsplit=1)
            pair = (record.text, f"{first} {parts[1] if len(parts) > 1 else exemplar}")
            (pairs if _topical(first, record.text) else spare).append(pair)
    if topical and len(pairs) >= len(records) // 2:
        return pairs
    return pairs + spare[: max(0, len(records) - len(pairs))]  # too few topical ones: top up


_SENTENCE_END = re.compile(r"(?<![\s:]\d)(?<!^\d)[.!?](?=\s|$)")  # "1." opens a list item


def whole_sentences(text: str) -> str:
    """``text`` cut after its last full sentence (a sample cut at the token budget ends mid-way)."""
    text = " ".join(text.split())
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


def _judged_pairs(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    rounds: Iterable[list[str]],
    *,
    keep: int,
    log: Callable[[str], None] = print,
    trace: list[dict[str, Any]] | None = None,
    hygiene: bool = False,
) -> list[tuple[str, str]]:
    """(prompt, reply) pairs from ``rounds`` (one reply per record each) that the judge keeps.

    Every reply is judged like any reply (:func:`~oyster_steer.eval.judge_replies`, the eval's
    judge): only judged-constructive ones without method detail, loops or near-empty text are
    kept, at most ``keep`` per prompt, the most natural to the unsteered model first (reply
    perplexity under the unsteered model, then topicality). With ``hygiene``, judged-constructive
    replies that :func:`target_problems` rejects are not kept either (counted per rule in the
    log). ``trace`` gets one row per reply (prompt, reply, verdict, perplexity, topicality, kept,
    problems).
    """

    texts = [r.text for r in records]
    candidates: list[dict[str, tuple[float, float]]] = [{} for _ in records]
    counts: dict[str, int] = {}
    dropped = dict.fromkeys(TARGET_RULES, 0)
    for replies in rounds:
        for i, (reply, row) in enumerate(
            zip(replies, judge_replies(records, replies, model=model), strict=True)
        ):
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
            ok = not (
                row["verdict"] != "constructive"
                or row["method_detail"]
                or has_method_detail(reply)
                or repetition(reply) > 0.2
                or len(reply.split()) < 8
            )
            problems = target_problems(texts[i], reply, records[i].intent) if hygiene else []
            if ok and problems:
                for rule in problems:
                    dropped[rule] += 1
                ok = False
            if ok:
                candidates[i][reply] = (
                    float(row["reply_ppl"] or 0.0),
                    float(row["topicality"] or 0.0),
                )
            if trace is not None:
                trace.append(
                    {
                        "prompt": texts[i],
                        "reply": reply,
                        "verdict": row["verdict"],
                        "ppl": row["reply_ppl"],
                        "topicality": row["topicality"],
                        "kept": ok,
                        "problems": problems,
                    }
                )
    pairs = []
    for text, found in zip(texts, candidates, strict=True):
        ranked = sorted(found, key=lambda r: math.log(max(found[r][0], 1.0)) - 2 * found[r][1])
        pairs += [(text, reply) for reply in ranked[:keep]]
    log(
        f"{strategy}: sampled verdicts {counts}; kept {len(pairs)} targets for "
        f"{sum(1 for f in candidates if f)} of {len(texts)} prompts"
        + (
            f"; judged-constructive samples the target hygiene dropped, per rule: {dropped}"
            if hygiene
            else ""
        )
    )
    return pairs


def sampled_targets(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    *,
    samples: int = 4,
    keep: int = 2,
    seed: int = 0,
    max_new_tokens: int = 64,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """(prompt, target) pairs for ``strategy``: whole replies the model wrote, rejection-sampled.

    Each prompt gets ``samples`` replies sampled under the strategy's system prompt after a
    prefilled opening (context distillation), cut to whole sentences and judged like any reply
    (without the system prompt; :func:`_judged_pairs` keeps the best judged-constructive ones).
    Prompts with no such sample get no target.
    """

    texts = [r.text for r in records]

    def rounds() -> Iterator[list[str]]:
        for k in range(samples):
            log(f"{strategy}: sampling replies {k + 1}/{samples} for {len(texts)} prompts")
            prefills = [_pick(PREFILLS[strategy], t, seed + k) for t in texts]
            yield [
                whole_sentences(r)
                for r in _sample_openings(
                    model,
                    texts,
                    SYSTEM_PROMPTS[strategy],
                    prefills,
                    max_new_tokens=max_new_tokens,
                    seed=seed + k,
                )
            ]

    return _judged_pairs(model, records, strategy, rounds(), keep=keep, log=log)


def action_digest(intervention: LowRankIntervention) -> str:
    """A short hash of ``intervention``'s parameters (keys a cache of samples drawn under it)."""
    h = hashlib.sha256()
    for site in sorted(intervention.parts):
        h.update(site.encode())
        for t in intervention.parts[site]:
            h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def onpolicy_targets(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    action: LowRankIntervention,
    *,
    gains: Sequence[float] = (0.6, 0.8),
    samples: int = 2,
    keep: int = 2,
    seed: int = 0,
    max_new_tokens: int = 48,
    temperature: float = 0.8,
    log: Callable[[str], None] = print,
    trace: list[dict[str, Any]] | None = None,
) -> list[tuple[str, str]]:
    """(prompt, target) pairs for ``strategy``: replies the model wrote *under* ``action``.

    The on-policy round: ``action`` (an already trained intervention for the strategy, e.g. the
    shipped one) is applied ungated at each of ``gains`` (reduced gains: the shipped grip, less
    of its trained wording) and the model samples ``samples`` replies per prompt and gain (no
    system prompt, no prefill, ``temperature``, top-p 0.9), cut to whole sentences and judged
    like any reply; :func:`_judged_pairs` keeps the best judged-constructive ones per prompt (by
    perplexity under the unsteered model, then topicality) that pass the target hygiene
    (:func:`target_problems`: no links, no offer to obtain the thing, no offer of the request's
    goal, a vulnerable reply keeps empathy and a pointer to help). A gain of 0 samples the
    unsteered model itself (its own judged-constructive replies join the pool). Prompts with no
    such sample get no target. ``trace`` gets every sample with its gain and verdict.
    """

    if not gains or any(g < 0 for g in gains):
        raise ValueError(
            f"gains={list(gains)} must be one or more gains >= 0 to sample under (0: the "
            "unsteered model's own samples): pass e.g. (0.6, 0.8)"
        )
    texts = [r.text for r in records]
    backend = get_backend(model.backend)
    sample_kwargs = {"do_sample": True, "temperature": temperature, "top_p": 0.9}

    def rounds() -> Iterator[list[str]]:
        for gain in gains:
            for k in range(samples):
                log(
                    f"{strategy}: sampling under the action at gain {gain:g}, "
                    f"{k + 1}/{samples}, for {len(texts)} prompts"
                )
                torch.manual_seed(seed * 1_000_003 + k * 7919 + round(gain * 1000))
                with backend.add_hooks(model, _hooks(model, action, gain) if gain else []):
                    replies = generate_replies(
                        model, texts, max_new_tokens=max_new_tokens, generate_kwargs=sample_kwargs
                    )
                start = len(trace) if trace is not None else 0
                yield [whole_sentences(r) for r in replies]
                for row in trace[start:] if trace is not None else ():
                    row["gain"] = gain

    return _judged_pairs(
        model, records, strategy, rounds(), keep=keep, log=log, trace=trace, hygiene=True
    )


@torch.inference_mode()
def retain_replies(
    model: OysterModel, records: Sequence[Any], *, max_new_tokens: int = 48
) -> list[tuple[str, str]]:
    """(prompt, the unsteered model's own greedy reply) for prompts an action must leave alone."""
    texts = [r.text for r in records]
    replies = generate_replies(model, texts, max_new_tokens=max_new_tokens)
    return [(t, r) for t, r in zip(texts, replies, strict=True) if r.strip()]


@torch.inference_mode()
def routed(
    model: OysterModel, gate: ControlPlan, prompts: Sequence[str], *, batch_size: int = 16
) -> list[str]:
    """The strategy ``gate`` (a control plan: probe + policy) picks for each of ``prompts``."""
    with install(model, gate) as handle:
        log = DecisionLog(handle)
        generate_replies(model, prompts, max_new_tokens=1, batch_size=batch_size, decisions=log)
    return log.result().strategy


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
    replies' median, and no reply in a repetition loop (:func:`repetition` > 0.3); when no gain
    is, the one nearest 1 (the gain it was trained at), whatever the order of ``gains``. Returns
    the gain and one row per gain tried (unsteered first) with rates and replies.
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
    # none coherent enough: the gain nearest the trained one (1), not whichever came first
    ok = [r for r in rows[1:] if r["ppl"] <= 2 * base and r["loops"] == 0] or [
        min(rows[1:], key=lambda r: abs(r["gain"] - 1.0))
    ]
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


def misroute_check(
    model: OysterModel,
    intervention: LowRankIntervention,
    gain: float,
    records: Sequence[Any],
    *,
    max_new_tokens: int = 48,
) -> dict[str, Any]:
    """What ``intervention`` does, applied ungated, to prompts the plan should not route to it.

    Per intent of ``records``: the mean per-token KL(unsteered || steered) of the next-token
    distributions over the unsteered model's own greedy reply, and the judged verdicts of the
    unsteered and steered greedy replies.
    """

    prompts = [r.text for r in records]
    plain = generate_replies(model, prompts, max_new_tokens=max_new_tokens)
    hooks = _hooks(model, intervention, gain)
    groups = [
        Group(chat_ids(model, p), (reply_ids(model, r, max_new_tokens) or (model.pad_id,),))
        for p, r in zip(prompts, plain, strict=True)
    ]
    kls = []
    hf = model.with_backend("hf")
    with torch.inference_mode():
        for g in groups:
            packed = pack([g], model.pad_id, model.device)
            logp = reply_logprobs(hf, packed, full=True)
            with get_backend("hf").add_hooks(hf, _hooks(hf, intervention, gain)):
                logq = reply_logprobs(hf, packed, full=True)
            kls.append(float((logp.exp() * (logp - logq)).sum(-1).mean()))
    with get_backend(model.backend).add_hooks(model, hooks):
        steered = generate_replies(model, prompts, max_new_tokens=max_new_tokens)
    before = judge_replies(records, plain, model=model)
    after = judge_replies(records, steered, model=model)
    out: dict[str, Any] = {}
    for intent in sorted({r.intent for r in records}):
        idx = [i for i, r in enumerate(records) if r.intent == intent]
        out[intent] = {
            "kl": sum(kls[i] for i in idx) / len(idx),
            "unsteered": [before[i]["verdict"] for i in idx],
            "steered": [after[i]["verdict"] for i in idx],
            "changed": sum(plain[i] != steered[i] for i in idx) / len(idx),
            "replies": [(prompts[i], plain[i], steered[i]) for i in idx],
        }
    return out


def _cached_distilled(
    model: OysterModel,
    records: Sequence[Any],
    strategy: str,
    digest: str,
    n: int,
    cfg: PlanTrainingConfig,
    targets_cache: Path | None,
    log: Callable[[str], None],
) -> list[tuple[str, str]]:
    """The distilled targets of ``records`` (two sampled openings each), read from or written to
    ``targets_cache`` under the key of the population (``digest``, ``n``) and the model."""
    key = json.dumps(
        ["distilled-v2", strategy, digest, n, 2, cfg.seed, cfg.max_prompt_tokens, model.fingerprint]
    )
    make = partial(distilled_targets, model, records, strategy, samples=2, seed=cfg.seed, log=log)
    return _cached_pairs(targets_cache, key, make)


def _cached_openings(
    model: OysterModel,
    records: Sequence[Any],
    digest: str,
    cfg: PlanTrainingConfig,
    targets_cache: Path | None,
    log: Callable[[str], None],
) -> list[tuple[str, str]]:
    """The guide openings of ``records`` from ``cfg.opening_samples`` rounds
    (:func:`sampled_openings`), read from or written to ``targets_cache`` under their own key (the
    distilled targets' entries are left as they are)."""
    key = json.dumps(
        [
            "openings-v1",
            "guide",
            digest,
            len(records),
            cfg.opening_samples,
            cfg.seed,
            cfg.max_prompt_tokens,
            model.fingerprint,
        ]
    )
    make = partial(
        sampled_openings,
        model,
        records,
        "guide",
        rounds=cfg.opening_samples,
        seed=cfg.seed,
        log=log,
    )
    return _cached_pairs(targets_cache, key, make)


def resampled_targets(
    model: OysterModel,
    records: Sequence[Any],
    digest: str,
    cfg: PlanTrainingConfig,
    targets_cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """One distilled guide target per prompt of ``records``: the first sampled opening of
    ``cfg.opening_samples`` rounds that :func:`~oyster_steer.reproduce._judged_openings.kept_openings`
    keeps (else the exemplar's written first sentence), then the exemplar's continuation."""
    drawn = _cached_openings(model, records, digest, cfg, targets_cache, log)
    kept, counts = kept_openings(drawn, {r.text: r for r in records}, topical=cfg.topical_openings)
    rules = (*OPENING_RULES, *(TOPICAL_RULES if cfg.topical_openings else ("unconcerned",)))
    log(
        f"guide: resampled openings: {counts['openings']} sampled openings of {counts['prompts']} "
        f"prompts judged, {counts['passed']} passed ("
        + ", ".join(f"{rule} {counts[rule]}" for rule in rules if rule != "danger")
        + f"); {counts['none passed']} prompts get "
        + ("a varied written opening" if cfg.varied_openings else "the exemplar's written opening")
    )
    return _resampled_pairs(records, kept, varied=cfg.varied_openings)


def _resampled_pairs(
    records: Sequence[Any], kept: Mapping[str, list[str]], *, varied: bool = False
) -> list[tuple[str, str]]:
    """The targets of :func:`resampled_targets` from the kept openings of its prompts: the first
    kept opening and the exemplar's continuation, else the written exemplar; with ``varied``, a
    prompt with no kept opening gets a written opening of
    :data:`~oyster_steer.reproduce._urgent_targets.VARIED_OPENINGS` and the exemplar after its
    first whole sentence."""
    pairs = []
    for r in records:
        exemplar = exemplar_for(r.text, r.intent, r.category).constructive
        parts = re.split(r"(?<=[.!?;])\s", exemplar, maxsplit=1)
        if kept[r.text] and len(parts) > 1:
            pairs.append((r.text, f"{kept[r.text][0]} {parts[1]}"))
        elif varied and len(whole := re.split(r"(?<=[.!?])\s", exemplar, maxsplit=1)) > 1:
            pairs.append((r.text, f"{varied_opening(r.text, r.category)} {whole[1]}"))
        else:
            pairs.append((r.text, exemplar))
    return pairs


def only_acute_urgent(
    pairs: Sequence[tuple[str, str]], records: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], int]:
    """``pairs`` (distilled guide targets of the data's prompts) with the urgent pointer kept only
    for the prompts the judge's :func:`~oyster_steer.eval._harm.acute_risk` flags (or whose record
    carries ``meta["imminent"]``); the others'
    :func:`~oyster_steer.reproduce._urgent_targets.without_urgent`. Returns the pairs and how many
    targets carried an urgent pointer before."""
    out, carried = [], 0
    for p, t in pairs:
        carried += urgent_pointer(t)
        r = records.get(p)
        acute = acute_risk(p) is not None or (r is not None and "imminent" in r.meta)
        out.append((p, t if acute else without_urgent(p, t, getattr(r, "category", "unknown"))))
    return out, carried


def target_summary(pairs: Sequence[tuple[str, str]]) -> str:
    """A log line: how many guide targets carry an urgent pointer, and the most common first
    sentences (their share of the targets)."""
    firsts = Counter(first_sentence(t) or t for _, t in pairs)
    top = ", ".join(f"{n} {o!r}" for o, n in firsts.most_common(3))
    share = firsts.most_common(1)[0][1] / len(pairs) if pairs else 0.0
    return (
        f"guide: {sum(urgent_pointer(t) for _, t in pairs)} of {len(pairs)} targets carry an "
        f"urgent pointer; {len(firsts)} distinct first sentences, the most common opens "
        f"{share:.1%} ({top})"
    )


def check_extra_guide_prompts(cfg: PlanTrainingConfig) -> None:
    """Raise ValueError when ``cfg.extra_guide_prompts`` names no set or its recipe is not one of
    :data:`URGENT_RECIPES` (the extra prompts' targets are urgent-first distilled targets)."""
    if not cfg.extra_guide_prompts:
        return
    if cfg.extra_guide_prompts not in EXTRA_GUIDE_PROMPTS:
        raise ValueError(
            f"extra_guide_prompts={cfg.extra_guide_prompts!r} is not a prompt set: use one of "
            f"{', '.join(EXTRA_GUIDE_PROMPTS)}"
        )
    if cfg.targets not in URGENT_RECIPES:
        raise ValueError(
            f"extra_guide_prompts={cfg.extra_guide_prompts!r} needs targets='distilled-urgent' or "
            f"'distilled-acute', not {cfg.targets!r} (CLI: --targets distilled-acute)"
        )


def extra_guide_targets(
    model: OysterModel,
    records: Sequence[Any],
    cfg: PlanTrainingConfig,
    *,
    targets_cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """One guide target per training-only prompt, in the order of ``records``.

    A prompt of imminent danger gets an urgent-first target: a sampled opening (the distilled
    openings, cached in ``targets_cache`` under their own key, so the other prompts' cached
    targets are reused as they are; one that normalises, agrees, hedges or misreads is passed
    over, and a prompt with none left gets a written one:
    :func:`~oyster_steer.reproduce._urgent_targets.imminent_opening`), then the urgent pointer of
    the prompt's kind (``record.meta["imminent"]``,
    :func:`~oyster_steer.reproduce._urgent_targets.urgent_target`), people and a next step. A calm
    prompt (``record.meta["calm"]``, :mod:`~oyster_steer.reproduce._calm_prompts`; a supporter
    one of :mod:`~oyster_steer.reproduce._supporter_prompts` carries it too) gets its written
    target, with no urgent pointer, and nothing is sampled for it."""
    urgent = [r for r in records if "calm" not in r.meta]
    digest = prompts_digest([r.text for r in urgent])
    if cfg.opening_samples and urgent:
        # the two rounds of the distilled openings, judged as the resampled ones (the imminent
        # prompts are not resampled: on the shared cores a round takes minutes)
        drawn = [
            (p, o)
            for p, t in _cached_distilled(
                model, urgent, "guide", digest, len(urgent), cfg, targets_cache, log
            )
            if (o := first_sentence(t)) is not None
        ]
        kept, counts = kept_openings(
            drawn, {r.text: r for r in urgent}, acute=True, topical=cfg.topical_openings
        )
        topical = (
            f", {counts['off topic']} off topic, {counts['misnames']} misnaming or misreading"
            if cfg.topical_openings
            else ""
        )
        log(
            f"guide: resampled openings: {counts['passed']} of {counts['openings']} sampled "
            f"openings of {len(urgent)} imminent-danger prompts passed ({counts['unconcerned']} "
            f"unconcerned{topical}); {counts['none passed']} "
            "prompts get a written opening"
        )
        return _extra_targets(records, kept, varied=cfg.varied_openings)
    drawn = (
        _cached_distilled(model, urgent, "guide", digest, len(urgent), cfg, targets_cache, log)
        if urgent
        else []
    )
    openings: dict[str, list[str]] = {r.text: [] for r in urgent}
    risks = {r.text: r.risk for r in urgent}
    judged = 0
    for prompt, target in drawn:
        opening = first_sentence(target)
        if opening is None or prompt not in openings:
            continue
        if cfg.judge_openings and opening_problems(prompt, opening, risk=risks[prompt], acute=True):
            judged += 1
            continue
        openings[prompt].append(opening)
    if cfg.judge_openings:
        log(
            f"guide: judged openings: {judged} of {len(drawn)} sampled openings of "
            f"{len(urgent)} imminent-danger prompts passed over (every one: a prompt of imminent "
            "danger gets a written opening)"
        )
    return _extra_targets(records, openings, varied=cfg.varied_openings)


def _extra_targets(
    records: Sequence[Any], openings: Mapping[str, list[str]], *, varied: bool = False
) -> list[tuple[str, str]]:
    """The targets of :func:`extra_guide_targets` from the sampled ``openings`` of its prompts."""
    out = []
    for r in records:
        if "calm" in r.meta:
            out.append((r.text, r.meta["target"]))
            continue
        kind = r.meta.get("imminent", "self")
        opening = imminent_opening(r.text, openings[r.text], kind, varied=varied)
        out.append((r.text, urgent_target(r.text, opening, r.category, kind=kind)))
    return out


def train_plan_actions(
    model: OysterModel,
    data: Any,
    config: PlanTrainingConfig | None = None,
    *,
    log: Callable[[str], None] = print,
    targets_cache: Path | None = None,
    gate: ControlPlan | None = None,
    sample_actions: Mapping[str, LowRankIntervention] | None = None,
) -> tuple[dict[str, tuple[LowRankIntervention, float]], dict[str, Any]]:
    """Train one intervention per strategy and pick its gain; returns ``{strategy: (iv, gain)}``.

    ``data``: a :class:`~oyster_steer.data.PromptSet` with "train" and "validation" splits.
    ``targets_cache``: a JSON file that keeps the sampled targets and retain replies (keyed by
    strategy, sampling settings and model fingerprint), so a rerun with other training settings
    reuses them. ``gate``: the plan whose probe and policy will route prompts to the actions;
    with ``config.retain_routed``, the benign and borderline training prompts it sends to a
    strategy join that strategy's retain set (what it will really be applied to by mistake).
    ``sample_actions``: with ``config.targets == "onpolicy"``, the trained action per strategy to
    sample targets under (:func:`onpolicy_targets`; the samples and their verdicts go to the
    report's ``"onpolicy_samples"`` when they were drawn, not read from the cache).
    """

    cfg = config or PlanTrainingConfig()
    check_extra_guide_prompts(cfg)
    retain_intents = check_retain_intents(cfg.retain_intents)
    if cfg.opening_samples and (cfg.targets == "sampled" or cfg.judge_openings):
        raise ValueError(
            "opening_samples resamples the openings of distilled guide targets: it needs a "
            "distilled recipe (CLI: --targets distilled-acute) and replaces judge_openings "
            f"(targets={cfg.targets!r}, judge_openings={cfg.judge_openings})"
        )
    if cfg.topical_openings and not cfg.opening_samples:
        raise ValueError(
            "topical_openings judges the resampled guide openings: it needs opening_samples "
            "(CLI: --opening-samples K)"
        )
    if cfg.judge_openings and cfg.targets == "sampled":
        raise ValueError(
            "judge_openings judges the sampled openings of distilled targets, and "
            "targets='sampled' has none: use a distilled recipe (CLI: --targets distilled-acute)"
        )
    train, val = data.split("train"), data.split("validation")
    out: dict[str, tuple[LowRankIntervention, float]] = {}
    report: dict[str, Any] = {}
    trace: dict[str, list[dict[str, Any]]] = {}
    judged: dict[str, dict[str, int]] = {}

    def targets(strategy: str) -> tuple[list[Any], list[tuple[str, str]]]:
        intent = INTENT_OF[strategy]
        records = _sample(model, train, intent, cfg.n_prompts, cfg.seed, cfg.max_prompt_tokens)
        if not records:
            raise EmptyInputError(
                f"strategy {strategy!r} has no training prompts: the data has no {intent} prompts in its train split; add some"
            )
        digest = prompts_digest([r.text for r in records])
        key = json.dumps(
            [
                "sampled-v2",
                strategy,
                digest,
                cfg.n_prompts,
                cfg.samples,
                cfg.keep,
                cfg.seed,
                cfg.max_prompt_tokens,
                model.fingerprint,
            ]
        )
        make = partial(
            sampled_targets,
            model,
            records,
            strategy,
            samples=cfg.samples,
            keep=cfg.keep,
            seed=cfg.seed,
            log=log,
        )
        if cfg.targets not in TARGET_RECIPES:
            raise ValueError(
                f"targets={cfg.targets!r} is not a target recipe: use one of {', '.join(TARGET_RECIPES)}"
            )
        if cfg.targets == "onpolicy":
            action = (sample_actions or {}).get(strategy)
            if action is None:
                raise ValueError(
                    f"targets='onpolicy' samples under a trained {strategy!r} action: pass "
                    f"sample_actions={{{strategy!r}: intervention}} (CLI: --sample-actions DIR)"
                )
            key = json.dumps(
                [
                    "onpolicy-v2",  # v2: keyed by the prompts, the target hygiene
                    strategy,
                    digest,
                    cfg.max_new_tokens,
                    cfg.n_prompts,
                    cfg.samples,
                    cfg.keep,
                    cfg.seed,
                    cfg.max_prompt_tokens,
                    list(cfg.sample_gains),
                    cfg.sample_temperature,
                    action_digest(action),
                    model.fingerprint,
                ]
            )
            make = partial(
                onpolicy_targets,
                model,
                records,
                strategy,
                action,
                gains=cfg.sample_gains,
                samples=cfg.samples,
                keep=cfg.keep,
                seed=cfg.seed,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.sample_temperature,
                log=log,
                trace=trace.setdefault(strategy, []),
            )
        pairs: list[tuple[str, str]] = []
        if cfg.targets not in ("distilled", *URGENT_RECIPES):
            pairs = [(p, whole_sentences(t)) for p, t in _cached_pairs(targets_cache, key, make)]
            if cfg.targets == "onpolicy":  # filtered when judged; again for a cache made before
                pairs = clean_targets(pairs, intent, log=log, what=f"{strategy} (cached): ")
                if cfg.strict_targets:
                    pairs = strict_targets(pairs, intent, log=log, what=f"{strategy}: ")
            elif strategy == "redirect":
                dropped = [(p, t) for p, t in pairs if offers_the_request(p, t)]
                pairs = [pt for pt in pairs if pt not in dropped]
                log(f"{strategy}: dropped {len(dropped)} targets that offer the request back")
        if cfg.targets != "sampled":
            covered = {p for p, _ in pairs}
            if cfg.opening_samples and strategy == "guide":
                distilled = resampled_targets(model, records, digest, cfg, targets_cache, log)
            else:
                distilled = _cached_distilled(
                    model, records, strategy, digest, cfg.n_prompts, cfg, targets_cache, log
                )
            if cfg.judge_openings and strategy == "guide":
                # after the cache, deterministic: the cached sampled openings are reused as they are
                distilled, counts = judge_openings(distilled, {r.text: r for r in records})
                judged[strategy] = counts
                log(
                    f"{strategy}: judged openings: {counts['replaced']} of {counts['openings']} "
                    "sampled openings replaced by the exemplar's first sentence ("
                    + ", ".join(f"{rule} {counts[rule]}" for rule in OPENING_RULES)
                    + f"), {counts['merged']} identical targets merged"
                )
            if cfg.targets in URGENT_RECIPES and strategy == "guide":
                # the cached openings, the continuation rewritten (deterministic, so not cached);
                # "distilled-acute": only for the prompts of imminent danger (acute_risk), so the
                # self-harm method requests keep their distilled targets
                before = distilled
                distilled = urgent_first(
                    distilled,
                    {r.text: r.category for r in records},
                    acute_only=cfg.targets == "distilled-acute",
                )
                changed = sum(a != b for a, b in zip(before, distilled, strict=True))
                log(f"{strategy}: {changed} of {len(distilled)} targets point to urgent help first")
            if cfg.urgent_only_acute and strategy == "guide":
                distilled, carried = only_acute_urgent(distilled, {r.text: r for r in records})
                log(
                    f"{strategy}: --urgent-only-acute: {carried} of {len(distilled)} population "
                    f"targets carried an urgent pointer, "
                    f"{sum(urgent_pointer(t) for _, t in distilled)} after (acute prompts only)"
                )
            extra = [(p, t) for p, t in distilled if p not in covered]
            log(
                f"{strategy}: {len(extra)} distilled targets for "
                f"{len({p for p, _ in extra})} prompts no sample covered"
            )
            pairs += extra
        if strategy == "guide" and cfg.extra_guide_prompts:
            more = EXTRA_GUIDE_PROMPTS[cfg.extra_guide_prompts]()
            added = extra_guide_targets(model, more, cfg, targets_cache=targets_cache, log=log)
            calm = sum("calm" in r.meta for r in more)
            log(
                f"{strategy}: {len(added) - calm} urgent-first and {calm} written (calm, "
                f"lookalike or supporter) targets for "
                f"{len(more)} {cfg.extra_guide_prompts!r} training-only prompts"
            )
            records, pairs = [*records, *more], pairs + added
        return records, pairs

    retain_records = [
        r
        for intent in retain_intents
        for r in _sample(model, train, intent, cfg.n_retain // 2, cfg.seed, cfg.max_prompt_tokens)
    ]
    retain: list[tuple[str, str]] = []
    if cfg.n_retain and cfg.retain_weight and retain_records:
        key = json.dumps(
            [
                "retain-v2",
                prompts_digest([r.text for r in retain_records]),
                cfg.n_retain,
                cfg.seed,
                cfg.max_prompt_tokens,
                model.fingerprint,
            ]
        )
        retain = _cached_pairs(targets_cache, key, partial(retain_replies, model, retain_records))

    def sent_to(
        strategy: str, intents: tuple[str, ...], n: int, seed: int
    ) -> tuple[list[PromptRecord], int]:
        """The training prompts (``n`` drawn per intent) the gate sends to ``strategy``, and how
        many were drawn."""
        assert gate is not None
        pool = [
            r
            for intent in intents
            for r in _sample(model, train, intent, n, seed, cfg.max_prompt_tokens)
        ]
        if not pool:
            return [], 0
        sent = routed(model, gate, [r.text for r in pool])
        return [r for r, s in zip(pool, sent, strict=True) if s == strategy], len(pool)

    def misroutes(strategy: str) -> list[tuple[str, str]]:
        if not (gate is not None and cfg.retain_routed and cfg.retain_weight):
            return []
        found, drawn = sent_to(strategy, retain_intents, cfg.routing_pool // 2, cfg.seed + 3)
        if not drawn:
            return []
        taken = {p for p, _ in retain}
        chosen = [r for r in found if r.text not in taken][: cfg.retain_routed]
        log(
            f"{strategy}: the gate sends {len(found)} of {drawn} {' + '.join(retain_intents)} "
            f"training prompts to it; {len(chosen)} join its retain set"
        )
        if not chosen:
            return []
        key = json.dumps(
            [
                "retain-routed-v1",
                hashlib.sha256("\x00".join(r.text for r in chosen).encode()).hexdigest(),
                model.fingerprint,
            ]
        )
        return _cached_pairs(targets_cache, key, partial(retain_replies, model, chosen))

    def boundary_routed(strategy: str) -> list[tuple[str, str]]:
        """Malicious training prompts the gate sends to ``strategy``, with boundary targets."""
        if not (strategy == "guide" and gate is not None and cfg.boundary_routed):
            return []
        found, drawn = sent_to(strategy, ("malicious",), cfg.routing_pool, cfg.seed + 4)
        if not drawn:
            return []
        chosen = found[: cfg.boundary_routed]
        log(
            f"{strategy}: the gate sends {len(found)} of {drawn} malicious training prompts "
            f"to it; {len(chosen)} join its training set with boundary targets"
        )
        return [(r.text, exemplar_for(r.text, r.intent, r.category).constructive) for r in chosen]

    for strategy in cfg.strategies:
        intent = INTENT_OF[strategy]
        started = time.monotonic()
        records, pairs = targets(strategy)
        kept = retain + misroutes(strategy)
        if not pairs:
            raise EmptyInputError(
                f"strategy {strategy!r}: no sampled reply to its {len(records)} {intent} prompts was judged constructive; raise samples"
            )
        if strategy == "guide" and cfg.n_boundary:
            # a guide action must never help a malicious request that reached it by mistake
            boundary = targets("redirect")[1]
            chosen = sorted({p for p, _ in boundary})[: cfg.n_boundary]
            pairs = pairs + [(p, t) for p, t in boundary if p in chosen]
        routed_boundary = boundary_routed(strategy)
        if routed_boundary:
            taken = {p for p, _ in pairs}
            pairs = pairs + [(p, t) for p, t in routed_boundary if p not in taken]
        if strategy == "guide" and (cfg.urgent_only_acute or cfg.varied_openings):
            log(target_summary(pairs))
        prompts = sorted({p for p, _ in pairs}, key=lambda p: hashlib.sha256(p.encode()).digest())
        held = set(prompts[: int(len(prompts) * cfg.held_out)])
        fit = [pt for pt in pairs if pt[0] not in held]
        held_pairs = [pt for pt in pairs if pt[0] in held]
        log(
            f"{strategy}: {len(fit)} training targets, {len(held_pairs)} held out, "
            f"{len(kept)} retain replies, from {len(records)} {intent} prompts"
        )
        iv = train_intervention(
            model,
            [p for p, _ in fit],
            [t for _, t in fit],
            sites=list(cfg.layers),
            config=InterventionConfig(
                rank=cfg.rank,
                steps=cfg.steps,
                lr=cfg.lr,
                seed=cfg.seed,
                max_reply_tokens=cfg.max_reply_tokens,
                retain_weight=cfg.retain_weight,
                eval_every=10 if held_pairs else 0,
            ),
            log=log,
            meta={
                "strategy": strategy,
                "population": intent,
                "role": ROLES[strategy],
                "targets": TARGET_META[cfg.targets],
                **(
                    {"extra_prompts": cfg.extra_guide_prompts}
                    if strategy == "guide" and cfg.extra_guide_prompts
                    else {}
                ),
                **(
                    {"judged_openings": "true"}
                    if strategy == "guide" and cfg.judge_openings
                    else {}
                ),
                **(
                    {"opening_samples": str(cfg.opening_samples)}
                    if strategy == "guide" and cfg.opening_samples
                    else {}
                ),
                **(
                    {"topical_openings": "true"}
                    if strategy == "guide" and cfg.topical_openings
                    else {}
                ),
                **({"boundary_routed": str(len(routed_boundary))} if routed_boundary else {}),
                **(
                    {"urgent_only_acute": "true"}
                    if strategy == "guide" and cfg.urgent_only_acute
                    else {}
                ),
                **(
                    {"varied_openings": "true"}
                    if strategy == "guide" and cfg.varied_openings
                    else {}
                ),
                **(
                    {"retain_intents": ",".join(retain_intents)}
                    if kept and retain_intents != RETAIN_INTENTS
                    else {}
                ),
            },
            retain=([p for p, _ in kept], [r for _, r in kept]) if kept else None,
            held_out=([p for p, _ in held_pairs], [t for _, t in held_pairs])
            if held_pairs
            else None,
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
            "meta": dict(iv.meta),
        }
        if trace.get(strategy):
            report[strategy]["onpolicy_samples"] = trace[strategy]
        if routed_boundary:
            report[strategy]["boundary_routed"] = [p for p, _ in routed_boundary]
        if strategy in judged:
            report[strategy]["judged_openings"] = judged[strategy]
        if cfg.n_misroute:
            others = ("benign", "borderline") + (("malicious",) if strategy == "guide" else ())
            check = [
                r
                for o in others
                for r in _sample(model, val, o, cfg.n_misroute, cfg.seed + 2, cfg.max_prompt_tokens)
            ]
            report[strategy]["misroute"] = found = misroute_check(
                model, iv, gain, check, max_new_tokens=cfg.max_new_tokens
            )
            for o, row in found.items():
                log(
                    f"{strategy} forced on {o}: KL {row['kl']:.3f}, changed {row['changed']:.0%}, "
                    f"verdicts {row['unsteered']} -> {row['steered']}"
                )
    return out, report
