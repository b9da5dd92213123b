"""Contrastive response exemplars: short target replies for building steering directions.

Each prompt gets four replies that differ in strategy, not topic:

    constructive  what constructive safety wants: guidance for vulnerable users, a boundary plus a
                  safe redirection for malicious ones, a helpful answer for benign and borderline
    refusal       a bare refusal
    compliance    the opening of literal compliance, with the content redacted ("[details withheld]")
    helpful       a generic helpful opening (benign and borderline only), the "keep behaving
                  normally" target

Replies are 1-4 sentences, built from template variants picked by a hash of the prompt text, so the
same prompt always gets the same exemplar. No template contains operational harmful content:
compliance targets are redacted placeholders, and replies to vulnerable users give no methods and no
diagnosis.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ._records import LabelError

__all__ = [
    "REDACTION",
    "VULNERABLE_THEMES",
    "Exemplar",
    "exemplar_for",
    "exemplars_for",
    "pick_variant",
    "vulnerable_theme",
]

REDACTION = "[details withheld]"


@dataclass(frozen=True)
class Exemplar:
    """Contrastive replies to one prompt; ``helpful`` is None for vulnerable and malicious ones."""

    prompt: str
    intent: str
    category: str
    constructive: str
    refusal: str
    compliance: str
    helpful: str | None


class _Labelled(Protocol):
    text: str
    intent: str
    category: str


def pick_variant(options: tuple[str, ...], text: str, salt: str) -> str:
    """One of ``options``, chosen by a hash of ``salt`` and ``text`` (the same on every run)."""
    # sha256, not hash(): str hashes are salted per process, and exemplars must be reproducible.
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


_REFUSALS = (
    "I can't help with that.",
    "I'm sorry, but I can't assist with that request.",
    "Sorry, I can't help with that request.",
    "I won't be able to help with this.",
)

_COMPLIANCES = (
    f"Sure, here are the steps: {REDACTION}",
    f"Of course! Here's exactly how to do it: {REDACTION}",
    f"Absolutely. Step 1: {REDACTION}",
    f"Sure, here is what you asked for: {REDACTION}",
)

_HELPFUL = (
    "Sure, happy to help! Here you go.",
    "Of course. Here's a clear, helpful answer.",
    "Happy to help! Here's what you need.",
    "Sure! Let me walk you through it.",
)

# --- borderline: a helpful answer with a safety note where the topic calls for one -------------

_BORDERLINE_OPENERS = ("Sure, happy to help.", "Good question.", "That's a sensible thing to ask.")

_BORDERLINE_NOTES: dict[str, str] = {
    "Healthcare": "Here's the general, evidence-based picture; for a specific person, a doctor or "
    "pharmacist is the one to confirm what's safe.",
    "Hazardous Materials": "Here's what to know to stay safe, and if anyone is exposed or hurt, "
    "call your local poison-control or emergency number.",
    "Cybersecurity": "Here's how it works at a high level, and what you can do to protect "
    "yourself and others.",
    "Violent Terror": "Here's a factual overview of the history, focusing on causes, consequences "
    "and what people learned from it.",
    "Illegal Drugs": "Here are the facts about the risks, and local drug-information or treatment "
    "services can offer more support if it's needed.",
    "Legal Consultation": "Here's the general picture; laws vary by place, so a qualified lawyer or "
    "official guidance can confirm what applies to you.",
    "Gambling": "Here's how the maths works; the odds are built to favour the house, which is "
    "worth knowing before anyone plays.",
    "Personal Data": "Here's how it works, and the steps you can take to protect your personal "
    "information.",
    "Vulnerable Groups": "Thank you for looking out for them. Here are the key signs to watch for, "
    "and who you can contact if you're worried.",
    "Bodily Harm": "Here's a clear, practical answer, with any safety points called out along "
    "the way.",
}
_BORDERLINE_DEFAULT_NOTE = (
    "Here's a clear, factual answer, with a note on staying safe where it matters."
)

# --- vulnerable: validate, set a boundary if asked for harm, point to people and help ------------

# Themes are matched on the text in order; the first match wins.
VULNERABLE_THEMES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("grief", r"\b(died|dies|passed away|funeral|miscarriage|griev|grief)"),
        ("exploitation", r"\b(nudes?|pics|photos|pictures|sextort)"),
        (
            "young",
            r"\b(i'?m|im|i am) (1[0-7]|[89])\b|\bgroom|\bmeet up\b|touches me when|run away|pressur",
        ),
        (
            "self_harm",
            r"\bcut (myself|again)|\bcuts\b|marks on my|hurt(ing)? myself|self[- ]harm|bleed",
        ),
        (
            "crisis",
            r"suicid|\bend (it|my life)|ending my life|kill (myself|herself|himself)|\bdie\b"
            r"|\bdeath\b|better off without me|\bdisappeared\b|goodbye letter|wake up|for good"
            r"|be over\b|take them all|point in anything|a burden",
        ),
        ("gambling", r"gambl|\bbet(s|ting)?\b|casino|loan shark"),
        (
            "abuse",
            r"\bhits? me\b|pushed me|violent|scared to go home|controls|threaten|assault|abus"
            r"|screams at me|comments about my body",
        ),
        (
            "eating",
            r"\beat(ing|en)?\b|\bmeals?\b|\bfat\b|\bthin(ner)?\b|weight|starv|calorie|\bdiet|binge|my body|\bkg\b",
        ),
        (
            "substances",
            r"relaps|sober|rehab|drunk|drink|wine|alcohol|\bdrugs?\b|\busing\b|used again"
            r"|withdrawal|cocaine|painkiller|\bpills\b|\bmeds\b|vaping",
        ),
        ("bullying", r"bull(y|ied|ies|ying)|call me names|beat me up"),
        ("panic", r"panic|anxious|anxiety|can'?t breathe|shaking|racing|close my eyes|loud noises"),
    )
)
_CATEGORY_THEMES = {"Illegal Drugs": "substances", "Gambling": "gambling"}

_CRISIS_LINE = "a local crisis line or your emergency number"

# theme -> (acknowledgements, sentences pointing to people and professional help)
_VULNERABLE_REPLIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "crisis": (
        (
            "I'm really glad you reached out, and I'm so sorry you're carrying this much pain.",
            "Thank you for telling me; what you're feeling matters, and so do you.",
        ),
        (
            "Please talk to someone you trust today, and if anyone is in immediate danger, "
            f"contact {_CRISIS_LINE} for help right away.",
            "A doctor or counsellor can help you through this, and if you might act on these "
            f"thoughts, please contact {_CRISIS_LINE} now.",
        ),
    ),
    "self_harm": (
        (
            "I'm really glad you told me, and I'm sorry things have been this painful.",
            "Thank you for trusting me with this; there's no shame in struggling.",
        ),
        (
            "You deserve support, not shame: please talk to someone you trust or to a doctor or "
            f"counsellor, and if you feel unsafe right now, contact {_CRISIS_LINE}.",
            "A doctor or counsellor can help you find other ways through these moments, and "
            f"if you feel unsafe right now, please contact {_CRISIS_LINE} for help.",
        ),
    ),
    "abuse": (
        (
            "What you're describing is not okay, and it is not your fault.",
            "I'm so sorry this is happening to you; nobody deserves to be treated like that.",
        ),
        (
            "Please reach out to someone you trust or a local abuse support service, and "
            "if you're in danger right now, call your emergency number for help.",
            "A support service for people facing abuse can help you plan how to stay safe, and if you're in "
            "danger right now, please call your emergency number.",
        ),
    ),
    "young": (
        (
            "Thank you for telling me. You deserve to feel safe, and you don't have to sort this "
            "out on your own.",
            "I'm really glad you said something; none of this is your fault.",
        ),
        (
            "Please talk to a parent, teacher, school counsellor or another adult you trust as soon "
            "as you can, and if you're in danger right now, call your emergency number for help.",
            "A trusted adult, like a teacher, school counsellor or relative, can help you with "
            "this, and a local helpline for young people can support you too.",
        ),
    ),
    "exploitation": (
        (
            "That sounds really frightening, and none of this is your fault.",
            "I'm glad you told me; you deserve to feel safe, and this is not on you.",
        ),
        (
            "Please don't send anything, and tell someone you trust; you can also report it to the "
            "platform and the police, who deal with this often and can help.",
            "Keep the messages, don't send anything more, and get help from a trusted adult or the "
            "police, who take this seriously and can support you.",
        ),
    ),
    "substances": (
        (
            "Thank you for being honest about this; it takes real courage to say it.",
            "That sounds really hard, and you deserve support, not judgement.",
        ),
        (
            "A doctor or a local alcohol and drug support service can help you through this, one "
            "step at a time.",
            "Reaching out to your doctor, a support group or someone you trust can make the next "
            "days feel less lonely, and help is available whenever you're ready.",
        ),
    ),
    "gambling": (
        (
            "That sounds incredibly stressful, and it took courage to say it.",
            "Thank you for being honest about this; you're not the only one this has happened to.",
        ),
        (
            "A confidential gambling support service or a free debt adviser can help you take "
            "control again, and telling someone you trust can ease the weight.",
            "Free, confidential gambling and debt support services can help you make a plan, and "
            "you don't have to face this alone.",
        ),
    ),
    "eating": (
        (
            "What you're going through with food and your body sounds really painful, and you "
            "deserve care, not punishment.",
            "I'm glad you told me; you deserve to feel at peace with yourself.",
        ),
        (
            "A doctor, counsellor or a support line for people struggling with food and body image "
            "can help, and talking to someone you trust is a good start.",
            "Please reach out to a doctor or counsellor who can support you at your own pace, and "
            "let someone you trust know how you're feeling.",
        ),
    ),
    "grief": (
        (
            "I'm so sorry for your loss; grief has no timetable, and what you feel is valid.",
            "I'm really sorry. There is no right way to grieve, and your feelings make sense.",
        ),
        (
            "Leaning on people you trust can help, and a grief counsellor or support group is there "
            "if it feels too heavy to carry alone.",
            "Talking with a friend, a doctor or a bereavement support service can help you through "
            "this, at your own pace.",
        ),
    ),
    "bullying": (
        (
            "Being treated like that is exhausting and unfair, and none of it is your fault.",
            "I'm sorry you're going through this; nobody deserves to be bullied.",
        ),
        (
            "Please tell someone you trust, such as a teacher, family member or someone at work, so "
            "you get help and don't have to face it alone.",
            "Keeping a record and telling someone you trust can help, and a counsellor can support "
            "you with how this has been making you feel.",
        ),
    ),
    "panic": (
        (
            "That sounds really frightening, and it makes sense that you feel overwhelmed.",
            "I'm sorry you're going through this; feeling this way is exhausting.",
        ),
        (
            "A doctor or counsellor can help you understand what's happening and find support that "
            f"fits you, and if you ever feel in danger, contact {_CRISIS_LINE}.",
            "Talking to someone you trust, and to a doctor or counsellor, can help over time; you "
            "don't have to handle this alone.",
        ),
    ),
    "distress": (
        (
            "I'm really sorry you're going through this; it sounds exhausting, and your feelings "
            "make sense.",
            "Thank you for telling me. That sounds really hard, and you don't have to face it alone.",
        ),
        (
            "Talking it through with someone you trust, or with a doctor or counsellor, can help "
            f"over time, and if it ever feels unbearable, {_CRISIS_LINE} is there for you.",
            "A counsellor or doctor can offer real support with this, and reaching out to someone "
            "you trust can make it feel less heavy.",
        ),
    ),
}

_VULNERABLE_BOUNDARIES = (
    "I can't help with that part, because I care about your safety.",
    "I won't help with anything that could put you at risk, but I don't want to leave you alone "
    "with this.",
    "That's something I can't help with, because your safety matters to me.",
)

# A small, safe next step. Acute themes ask first about safety right now.
_ACUTE_THEMES = frozenset({"crisis", "self_harm", "abuse", "young", "exploitation"})
_ACUTE_STEPS = (
    "Is there somewhere safe you can be right now, with someone nearby?",
    "If it helps, tell me a little more about what's happening; I'm here to listen.",
    "Could you tell one person you trust how you're feeling today?",
)
_GENERAL_STEPS = (
    "If it helps, tell me a little more about what's going on; I'm here to listen.",
    "Could you tell one person you trust how you're feeling today?",
    "One small step for today could be booking a time to talk with your doctor or a counsellor.",
)
_PANIC_STEP = (
    "Right now, try breathing out slowly and naming five things you can see around you; I'm here "
    "with you."
)

# --- malicious: a clear boundary, then a safe redirection that fits the category ----------------

_MALICIOUS_BOUNDARIES = (
    "I can't help with that, because it could seriously harm other people.",
    "I won't help with this, because it could cause real harm to others.",
    "That's not something I'll help with.",
)

_REDIRECTIONS: dict[str, str] = {
    "Cult": "If you're interested in how groups build belonging, I'm happy to talk about healthy "
    "communities, or how people recognise and leave coercive groups.",
    "Illicit Uses": "If money is tight, I can help you look at legitimate options, or explain how "
    "people protect themselves from scams like this.",
    "Biodiversity Protection": "I'm happy to talk about how wildlife protection works, or to suggest "
    "humane, legal options if an animal is causing you trouble.",
    "Religious Superstition": "I'm happy to share evidence-based information on the topic, or to "
    "talk about the beliefs involved with respect.",
    "Cybersecurity": "If you're interested in security, I'd be glad to help you learn defensive "
    "skills, practise on your own lab machines, or get started with legal capture-the-flag "
    "challenges.",
    "Commercial Law Violations": "I can explain how to stay within the law, including tax and "
    "competition rules, or help you find a qualified adviser.",
    "Intellectual Property": "I can help you find legal ways to access or license the work, or "
    "explain how creators are protected and paid.",
    "Violation of Personal Rights": "Everyone has a right to privacy and dignity; if there's a real "
    "problem behind this, I can help you address it through fair, legal means.",
    "Harmful Scenes": "If you're working on a story or video, I can help you convey tension and "
    "impact without graphic detail.",
    "Promotion of Negative Values": "I'm happy to help you write something engaging that "
    "encourages people to stay safe and treat each other well.",
    "Subjective Evaluation/Comparison": "I can help with a fair, evidence-based comparison instead, "
    "one that doesn't target people for who they are.",
    "Business Ethics Violations": "I can help you find honest ways to grow the business, such as "
    "improving your product, marketing it fairly and treating staff well.",
    "Race/Ethnicity/Religion/Regional Discrimination": "If you'd like, I can share what the "
    "evidence says about human diversity, or help you write something that brings people together.",
    "Gender/Occupational/Age/Other Demographic Discrimination": "I can help you write something "
    "fair and inclusive instead, or explain how equal-treatment laws work.",
    "Vulnerable Groups": "If you're worried about a child's safety, I can point you to "
    "child-protection services, and if you're having thoughts about harming a child, "
    "confidential professional help is available.",
    "Special Groups": "I'm glad to help you write about disability and other groups fairly, with "
    "respect and accurate facts.",
    "Bodily Harm": "If you're in conflict with someone, I can help you step back and find a safe "
    "way to resolve it, and a counsellor can help if anger feels overwhelming.",
    "Mental Health": "If something is weighing on you, I'm here to talk, and a counsellor or doctor "
    "can offer real support.",
    "Hate and Abuse": "If you're in a conflict with someone, I can help you communicate calmly or "
    "find a fair way to resolve it.",
    "Personal Data": "I can explain how privacy law and consent work, or help you reach the person "
    "through legitimate, consensual channels.",
    "Business Data": "If you're changing jobs or competing, I can help you do it within your "
    "confidentiality obligations and the law.",
    "Sensitive Data": "If you have concerns about wrongdoing, I can explain the legal "
    "whistle-blowing channels that exist for this.",
    "Common Sense Factual Errors": "I'm happy to share accurate, well-sourced information on the "
    "topic instead.",
    "Non-political False Rumors": "If you have a real concern, I can help you write something "
    "accurate, or explain how to check claims against reliable sources.",
    "Illegal Drugs": "If you or someone you know is struggling with drugs, I can share "
    "harm-reduction information and point you to confidential treatment and support services.",
    "Gambling": "If gambling is becoming a problem, confidential support services can help, and "
    "I'm glad to talk it through.",
    "Hazardous Materials": "If you're interested in chemistry, I'm happy to talk about lab safety, "
    "how emergency services handle dangerous materials, or safe experiments to try.",
    "Illegal Acts": "If you're in a difficult situation, I can help you look at legal options or "
    "find someone who can advise you.",
    "Violent Terror": "If you're worried about someone being drawn into extremism, or feel drawn "
    "to it yourself, I can point you to support and prevention services.",
    "Healthcare": "I can help you share accurate, evidence-based health information instead, and "
    "anyone facing a serious illness should be guided by their doctor.",
    "Investment and Finance": "I can explain how legitimate investing works and how regulators "
    "protect investors.",
    "Legal Consultation": "I can explain your options in general terms, and a qualified lawyer can "
    "advise you on a fair way forward.",
}
_DEFAULT_REDIRECTION = (
    "If there's a legitimate goal behind this, I'm happy to help you find a safe, legal way to "
    "reach it."
)


def vulnerable_theme(text: str, category: str) -> str:
    """The first of ``VULNERABLE_THEMES`` matching ``text``, else the category's theme."""
    for name, pattern in VULNERABLE_THEMES:
        if pattern.search(text):
            return name
    return _CATEGORY_THEMES.get(category, "distress")


def _next_step(theme: str, text: str) -> str:
    if theme == "panic":
        return _PANIC_STEP
    return pick_variant(_ACUTE_STEPS if theme in _ACUTE_THEMES else _GENERAL_STEPS, text, "step")


def _vulnerable_reply(text: str, category: str, risk: str | None) -> str:
    theme = vulnerable_theme(text, category)
    acks, supports = _VULNERABLE_REPLIES[theme]
    parts = [pick_variant(acks, text, "ack")]
    if risk == "harmful":
        parts.append(pick_variant(_VULNERABLE_BOUNDARIES, text, "boundary"))
    parts.append(pick_variant(supports, text, "support"))
    parts.append(_next_step(theme, text))
    return " ".join(parts)


def _malicious_reply(text: str, category: str, risk: str | None) -> str:
    boundary = pick_variant(_MALICIOUS_BOUNDARIES, text, "boundary")
    return f"{boundary} {_REDIRECTIONS.get(category, _DEFAULT_REDIRECTION)}"


def _borderline_reply(text: str, category: str, risk: str | None) -> str:
    opener = pick_variant(_BORDERLINE_OPENERS, text, "opener")
    return f"{opener} {_BORDERLINE_NOTES.get(category, _BORDERLINE_DEFAULT_NOTE)}"


def _benign_reply(text: str, category: str, risk: str | None) -> str:
    return pick_variant(_HELPFUL, text, "helpful")


_CONSTRUCTIVE = {
    "benign": _benign_reply,
    "borderline": _borderline_reply,
    "vulnerable": _vulnerable_reply,
    "malicious": _malicious_reply,
}
_HAS_HELPFUL = frozenset({"benign", "borderline"})


def exemplar_for(text: str, intent: str, category: str, risk: str | None = None) -> Exemplar:
    """Build the contrastive replies for one prompt; the same arguments always give the same result.

    Args:
        text: the user prompt.
        intent: one of ``benign``, ``borderline``, ``vulnerable``, ``malicious``.
        category: an Oyster risk category (or ``"unknown"``); picks the malicious redirection and
            the borderline safety note, with a generic fallback for any other value.
        risk: optional; ``"harmful"`` on a vulnerable prompt adds a gentle boundary sentence.

    Returns:
        An :class:`Exemplar`.

    Example:
        >>> ex = exemplar_for("I feel so alone lately.", "vulnerable", "Mental Health")
        >>> "[details withheld]" in ex.compliance and ex.helpful is None
        True
    """
    build = _CONSTRUCTIVE.get(intent)
    if build is None:
        raise LabelError(
            f"intent={intent!r} is not a known intent; use one of {', '.join(_CONSTRUCTIVE)}."
        )
    return Exemplar(
        prompt=text,
        intent=intent,
        category=category,
        constructive=build(text, category, risk),
        refusal=pick_variant(_REFUSALS, text, "refusal"),
        compliance=pick_variant(_COMPLIANCES, text, "compliance"),
        helpful=pick_variant(_HELPFUL, text, "helpful") if intent in _HAS_HELPFUL else None,
    )


def exemplars_for(records: Iterable[_Labelled]) -> list[Exemplar]:
    """Exemplars for any objects with ``.text``, ``.intent`` and ``.category`` (and optional ``.risk``).

    Example:
        >>> from types import SimpleNamespace as R
        >>> [e.intent for e in exemplars_for([R(text="Hi!", intent="benign", category="unknown")])]
        ['benign']
    """
    return [exemplar_for(r.text, r.intent, r.category, getattr(r, "risk", None)) for r in records]
