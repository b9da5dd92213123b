"""Guide targets that point to urgent help early, for prompts of suicide, self-harm or imminent danger.

The distilled guide target (:func:`~oyster_steer.reproduce._plan_training.distilled_targets`) is a
sampled opening sentence followed by the prompt's constructive exemplar after its first sentence:
for the crisis and self-harm themes that is "... talk to someone you trust ..., and if you might
act on these thoughts, contact a local crisis line or your emergency number" plus a next step, so
the crisis line comes last and a steered reply cut at 48 tokens often never reaches it (judge
version 11 asks for an urgent pointer on prompts of imminent danger, :func:`~oyster_steer.eval.
_harm.acute_risk`). The ``distilled-urgent`` recipe keeps the distilled target's opening and, for
such prompts only, replaces the rest with the urgent pointer in the very next sentence, then a
pointer to people and professionals, then the exemplar's next step. Every other target is left as
it is, and so is :func:`~oyster_steer.data.exemplar_for` (the shipped vectors and the probes'
exemplar contrasts are built from it). Like the exemplars, no sentence here names a method.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..data._exemplars import pick_variant, vulnerable_theme
from ..eval._harm import acute_risk
from ..eval._rules import urgent_pointer

__all__ = [
    "URGENT_THEMES",
    "VARIED_OPENINGS",
    "first_sentence",
    "imminent_opening",
    "opening_theme",
    "varied_opening",
    "without_urgent",
    "urgent_first",
    "urgent_kind",
    "urgent_target",
    "urgent_theme",
]

# Themes whose exemplar support sentence ends in a crisis line; abuse and young keep theirs (an
# emergency number already in the support sentence), exploitation its "don't send anything".
URGENT_THEMES = frozenset({"crisis", "self_harm"})

# Suicide and self-harm phrasings the exemplar themes miss, so a post about a window ledge that
# also says "take yourself out to eat" is matched as eating (``vulnerable_theme`` is kept as it
# is: exemplar_for and the judge's danger themes read it). Checked only after a theme that has no
# danger of its own.
_MISSED = (
    (
        "crisis",
        re.compile(
            r"\bjump(?:ing)? (?:off|from|in front)\b|\bledge\b|\bshould jump\b"
            r"|\breason to (?:keep )?liv(?:e|ing)\b|\bworth (?:me )?(?:being|staying) alive\b"
            r"|\bwant(?:ed)? to die\b|\bdon'?t want to (?:live|be alive|be here)\b|\boverdos"
            r"|\bbetter off dead\b|\bend (?:it all|things)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "self_harm",
        re.compile(
            r"\bharm(?:ing)? myself\b|\bcutting (?:myself|again)\b|\bburn(?:ing)? myself\b"
            r"|\bpoison(?:ing)? myself\b",
            re.IGNORECASE,
        ),
    ),
)
_OWN_DANGER = frozenset({"crisis", "self_harm", "abuse", "young", "exploitation", "grief"})

_URGENT = (
    "Please contact a local crisis line or your emergency number right now if you might act on "
    "these thoughts.",
    "If you're in danger, please call your emergency number or a local crisis line right now.",
)
# someone else in danger ("my 7 year old says she wants to kill herself"): no "these thoughts"
_SOMEONE_ELSE = re.compile(
    r"\b(?:kill|hurt|harm|cut|end)(?:s|ing)? (?:herself|himself|themselves|her life|his life)\b",
    re.IGNORECASE,
)
_URGENT_ANYONE = (
    "If anyone is in immediate danger, please call your emergency number or a local crisis line "
    "right now."
)
_URGENT_BY_KIND = {
    "taken": "Please call your emergency number or poison control right now, even if you feel "
    "okay.",
    "injury": "Please call your emergency number or go to A&E right now.",
    "abuse": "If you're in danger, please call your emergency number right now.",
}
_PEOPLE = {
    "crisis": (
        "Please talk to someone you trust today; a doctor or counsellor can help you through this.",
        "You don't have to carry this alone: someone you trust, a doctor or a counsellor can help.",
    ),
    "self_harm": (
        "You deserve support, not shame: please talk to someone you trust or to a doctor or "
        "counsellor.",
        "A doctor or counsellor can help you find other ways through these moments, and someone "
        "you trust can be with you.",
    ),
}
_PEOPLE_NOW = {
    "someone": (
        "If you can do it safely, stay with them or get another adult to help until help arrives.",
        "You don't have to handle this alone: get an adult nearby to help while you call.",
    ),
    "abuse": (
        "This is not your fault, and you don't have to face it alone: a domestic abuse helpline "
        "or an adult you trust can help you stay safe.",
        "You deserve to be safe; a helpline or an adult you trust can help you with what comes "
        "next.",
    ),
}
_PEOPLE.update(_PEOPLE_NOW)
_FORCED_KINDS = frozenset({"self", "taken", "injury", "someone", "abuse"})
_STEPS = (
    "Is there somewhere safe you can be right now, with someone nearby?",
    "Could you tell one person you trust how you're feeling today?",
)
_STEPS_BY_KIND = {
    "someone": ("You did the right thing by telling someone; please make that call now.",),
}
_FIRST = re.compile(r"(.+?[.!?])(\s|$)")  # the distilled opening, as distilled_targets cut it


def first_sentence(target: str) -> str | None:
    """The opening sentence of a distilled target (None when it has no sentence end).

    Example:
        >>> first_sentence("I'm so sorry. A counsellor can help.")
        "I'm so sorry."
    """
    match = _FIRST.match(target)
    return match.group(1).strip() if match else None


# Sampled openings that must not open a reply to someone in imminent danger: they normalise or
# agree ("it's completely normal to feel tired after taking multiple pills", "you're right"),
# explain the danger away ("side effects", "taking your medication too far"), speak as a service
# ("our services can only ..."), hedge ("not sure", "not always a straightforward answer") or
# take up the journey ("trouble getting there"); the ones that read a person's own danger as a
# friend's are caught by _THIRD_PERSON. Seen in the 38 training-only prompts' samples.
_BAD_IMMINENT_OPENING = re.compile(
    r"\bnormal\b|\bunderstandable\b|\byou'?re right\b|\bside effects?\b|\btoo far\b"
    r"|\bour services?\b|\bnot sure\b|\bnot always\b|\bgetting there\b",
    re.IGNORECASE,
)
_THIRD_PERSON = re.compile(
    r"\byour (?:friend|brother|sister|loved ones)'?s?\b(?! love)", re.IGNORECASE
)
_OPENINGS = {
    "someone": (
        "I'm glad you told me; what you're describing sounds serious.",
        "Thank you for reaching out; this sounds frightening, and it matters that you acted.",
    ),
    "abuse": (
        "I'm so sorry this is happening to you; what is being done to you is not okay.",
        "Thank you for telling me; you don't deserve to be hurt, and your safety comes first.",
    ),
    "self": (
        "I'm really glad you told me, and I'm worried about your safety right now.",
        "Thank you for telling me; what you're describing sounds serious, and you matter.",
        "I'm so sorry you're in this much pain right now, and I'm glad you reached out.",
    ),
}


def urgent_theme(text: str, category: str = "unknown") -> str:
    """The exemplar theme of a vulnerable prompt, with the suicide and self-harm phrasings the
    exemplar matcher misses ("... on the ledge of my window ... whether I should jump") taking
    precedence over a theme without danger of its own (eating, distress, panic, ...).

    Example:
        >>> urgent_theme("I sat on the ledge thinking I should jump. Mum said go out to eat.")
        'crisis'
    """
    theme = vulnerable_theme(text, category)
    if theme in _OWN_DANGER:
        return theme
    for name, pattern in _MISSED:
        if pattern.search(text):
            return name
    return theme


def urgent_kind(text: str, category: str = "unknown") -> str | None:
    """Why a guide target for ``text`` should point to urgent help first: the judge's acute risk
    (``"taken"``, ``"plan"``, ...), else the theme when it is crisis or self-harm; None otherwise.

    Example:
        >>> urgent_kind("I took more of my sleeping pills than I should have an hour ago.")
        'taken'
        >>> urgent_kind("I feel so alone lately.") is None
        True
    """
    kind = acute_risk(text)
    if kind is not None:
        return kind
    theme = urgent_theme(text, category)
    return theme if theme in URGENT_THEMES else None


def urgent_target(
    text: str, target: str, category: str = "unknown", *, kind: str | None = None
) -> str:
    """``target`` (a distilled guide target for ``text``) with the urgent pointer right after its
    opening sentence, then people to turn to and a next step; unchanged when :func:`urgent_kind`
    is None or the target has no sentence end.

    ``kind`` overrides :func:`urgent_kind` for a prompt known to be of imminent danger (the
    training-only prompts of :mod:`~oyster_steer.reproduce._imminent_prompts`, most of which the
    judge's rules do not flag): ``"self"``, ``"taken"``, ``"injury"``, ``"someone"`` (someone
    else in danger now) or ``"abuse"`` (the user, harmed by someone now).

    Example:
        >>> t = urgent_target("I wrote goodbye letters to my family last night.",
        ...                   "I'm so sorry you're hurting. A counsellor can help. Is there ...?")
        >>> "emergency number" in t.split(". ")[1]
        True
        >>> t = urgent_target("My friend said goodbye and won't answer.", "I'm sorry. More.",
        ...                   kind="someone")
        >>> t.split(". ")[1].startswith("If anyone is in immediate danger")
        True
    """
    if kind is not None and kind not in _FORCED_KINDS:
        raise ValueError(
            f"kind={kind!r} is not an imminent-danger kind: use one of {', '.join(sorted(_FORCED_KINDS))}"
        )
    kind = kind or urgent_kind(text, category)
    opening = first_sentence(target)
    if kind is None or opening is None:
        return target
    theme = urgent_theme(text, category)
    urgent = (
        _URGENT_BY_KIND.get(kind)
        or (_URGENT_ANYONE if kind == "someone" or _SOMEONE_ELSE.search(text) else None)
        or pick_variant(_URGENT, text, "urgent")
    )
    people = pick_variant(
        _PEOPLE.get(kind) or _PEOPLE.get(theme) or _PEOPLE["crisis"], text, "people"
    )
    step = pick_variant(_STEPS_BY_KIND.get(kind, _STEPS), text, "step")
    return f"{opening} {urgent} {people} {step}"


# ``train-plan --varied-openings`` (fifteenth session, act16): the written openings the guide's
# targets fall back to, many per theme, picked by a hash of the prompt, so no one written sentence
# opens more than a few targets (act15's guide said "Thank you for telling me; what you're
# describing sounds serious, and you matter." to a poem and a wifi request: 2-3 sentences per
# kind opened 65 danger targets). None names a method, judges, or calls anything normal; "self",
# "someone" and "abuse" are the imminent kinds' (taken and injury read "self"), "low" is for a
# vulnerable prompt without imminent danger (concern without an emergency).
VARIED_OPENINGS: dict[str, tuple[str, ...]] = {
    "self": (
        "I'm really glad you wrote to me, and I'm worried about you.",
        "What you've written worries me, and I'm glad you said it out loud.",
        "Your life matters, and I'm taking what you've told me seriously.",
        "It sounds like you're in a very dark place, and I'm concerned for your safety.",
        "I hear how much pain you're in, and I don't want you to be alone with it.",
        "Thank you for trusting me with something this heavy; I'm concerned about you.",
        "I'm so sorry things have got this bad, and I'm glad you're still talking to me.",
        "You reached out, and that matters; your safety is what I care about most.",
        "Before anything else: I'm glad you're here, and I'm worried about you.",
        "I can hear how exhausted and hopeless you feel, and I'm concerned for you.",
        "Please stay with me for a moment; what you've shared sounds serious.",
        "This sounds like a moment when you deserve help straight away, and you are worth it.",
    ),
    "someone": (
        "I'm glad you told me; what you're describing sounds serious.",
        "It's good that you're paying attention to this; it sounds urgent.",
        "Taking this seriously is the right call, and I'm glad you reached out.",
        "This sounds frightening, and you don't have to handle it by yourself.",
        "Thank you for speaking up for them; this sounds like it needs help now.",
        "I can hear how scared you are for them, and your worry is well placed.",
        "What you're seeing sounds serious, and acting on it quickly matters.",
        "You're doing something important by asking; let's get them help.",
    ),
    "abuse": (
        "I'm so sorry this is happening to you; what is being done to you is not okay.",
        "None of this is your fault, and you deserve to be safe.",
        "Thank you for telling me; nobody has the right to hurt you like this.",
        "That sounds frightening, and I'm glad you said something.",
        "You did nothing to deserve this, and your safety matters most.",
        "It took courage to write this, and I believe you.",
        "I'm sorry you're going through this; being treated this way is not okay.",
        "What's happening to you is not okay, and you deserve people on your side.",
    ),
    "low": (
        "Thank you for telling me this; it sounds like a lot to carry.",
        "I'm sorry things feel so heavy at the moment.",
        "That sounds really painful, and I'm glad you put it into words.",
        "You've been carrying this for a while, and you deserve some support with it.",
        "I'm glad you reached out; you don't have to work through this by yourself.",
        "What you're going through sounds exhausting, and you deserve care.",
        "I hear you, and I'm sorry it's been this hard.",
        "Thank you for being honest about how you're doing.",
        "It sounds like this has been weighing on you, and I'm glad you said something.",
        "That's a lot to deal with, and you matter in all of it.",
    ),
}
_ABUSE_THEMES = frozenset({"abuse", "young", "exploitation"})


def opening_theme(text: str, category: str = "unknown", kind: str | None = None) -> str:
    """The :data:`VARIED_OPENINGS` theme for a prompt: its imminent ``kind`` when known
    ("taken" and "injury" read "self"), else "abuse" for abuse, young or exploitation themes,
    "self" for a prompt the judge's ``acute_risk`` flags, "low" otherwise.

    Example:
        >>> opening_theme("I feel so alone lately.")
        'low'
        >>> opening_theme("My friend said goodbye and won't answer.", kind="someone")
        'someone'
    """
    if kind is not None:
        return kind if kind in VARIED_OPENINGS else "self"
    if urgent_theme(text, category) in _ABUSE_THEMES:
        return "abuse"
    return "self" if acute_risk(text) is not None else "low"


def varied_opening(text: str, category: str = "unknown", kind: str | None = None) -> str:
    """A written opening for ``text`` from :data:`VARIED_OPENINGS` (its :func:`opening_theme`),
    picked by a hash of the prompt (the same on every run).

    Example:
        >>> varied_opening("I feel so alone lately.") in VARIED_OPENINGS["low"]
        True
    """
    return pick_variant(
        VARIED_OPENINGS[opening_theme(text, category, kind)], text, "varied-opening"
    )


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# where a support sentence turns to the urgent pointer: "..., and if you feel unsafe right now,
# contact a local crisis line or your emergency number."
_URGENT_CLAUSE = re.compile(r",? and (?:if|when)\b|;\s")


# a pointer to people to turn to (not urgent)
_TO_PEOPLE = re.compile(
    r"\bsomeone you trust\b|\bdoctor\b|\bcounsell?or\b|\btherapist\b|\bsupport service\b"
    r"|\badult you trust\b|\bhelpline\b|\bsupport group\b|\bteacher\b|\bGP\b"
)


def without_urgent(text: str, target: str, category: str = "unknown") -> str:
    """``target`` (a guide target for ``text``) with its urgent pointers taken out
    (``train-plan --urgent-only-acute``): a sentence whose urgent pointer follows a clause of
    people to turn to keeps that clause ("Please talk to someone you trust today, and if anyone is
    in immediate danger, contact a local crisis line ..." -> "Please talk to someone you trust
    today."); a sentence that is only an urgent pointer is dropped; if no one to turn to is left,
    the theme's non-urgent pointer to people (someone you trust, a doctor or counsellor) follows
    the opening. A target without an urgent pointer is returned as it is.

    Example:
        >>> t = ("I'm so sorry. Please talk to someone you trust today, and if anyone is in "
        ...      "immediate danger, contact a local crisis line for help right away. What helps?")
        >>> without_urgent("I want to disappear.", t)
        "I'm so sorry. Please talk to someone you trust today. What helps?"
    """
    if not urgent_pointer(target):
        return target
    sentences = _SENTENCE.split(target.strip())
    kept: list[str] = []
    for i, sentence in enumerate(sentences):
        if i == 0 or not urgent_pointer(sentence):
            kept.append(sentence)
            continue
        head = _URGENT_CLAUSE.split(sentence, maxsplit=1)[0].rstrip(" ,;:")
        if head != sentence and len(head.split()) >= 4 and not urgent_pointer(head):
            kept.append(head + ".")
    if not any(_TO_PEOPLE.search(s) for s in kept[1:]):
        theme = urgent_theme(text, category)
        people = pick_variant(_PEOPLE.get(theme, _PEOPLE["crisis"]), text, "people")
        if urgent_pointer(people):  # the abuse one names a helpline: keep to the crisis one
            people = pick_variant(_PEOPLE["crisis"], text, "people")
        kept.insert(1, people)
    out = " ".join(kept)
    return out if not urgent_pointer(out) else target


def imminent_opening(text: str, openings: Sequence[str], kind: str, *, varied: bool = False) -> str:
    """The first of ``openings`` (sampled opening sentences for ``text``, a prompt of imminent
    danger of ``kind``) that neither normalises, agrees, hedges nor explains the danger away, nor
    reads the person's own danger as someone else's; else a written opening for ``kind``.

    Example:
        >>> o = imminent_opening("I took too many pills tonight.",
        ...                      ["It's completely normal to feel tired after that."], "taken")
        >>> o in _OPENINGS["self"]
        True
        >>> imminent_opening("I can't go on.", ["I'm so sorry you're hurting."], "self")
        "I'm so sorry you're hurting."
    """
    for opening in openings:
        if _BAD_IMMINENT_OPENING.search(opening):
            continue
        if kind != "someone" and _THIRD_PERSON.search(opening):
            continue
        return opening
    if varied:
        return varied_opening(text, kind=kind)
    return pick_variant(_OPENINGS.get(kind, _OPENINGS["self"]), text, "opening")


def urgent_first(
    pairs: Sequence[tuple[str, str]],
    categories: dict[str, str] | None = None,
    *,
    acute_only: bool = False,
) -> list[tuple[str, str]]:
    """:func:`urgent_target` applied to every (prompt, target) pair; ``categories`` maps a prompt
    to its Oyster category (the exemplar themes read "Illegal Drugs" and "Gambling"). With
    ``acute_only``, only the prompts the judge's :func:`~oyster_steer.eval._harm.acute_risk` flags
    are rewritten: a suicide or self-harm prompt without imminent danger (a method request, a
    wish) keeps its distilled target.

    Example:
        >>> pairs = [("I've been cutting again.", "I'm sorry. A counsellor can help.")]
        >>> urgent_first(pairs, acute_only=True) == pairs != urgent_first(pairs)
        True
    """
    cats = categories or {}
    return [
        (
            p,
            t
            if acute_only and acute_risk(p) is None
            else urgent_target(p, t, cats.get(p, "unknown")),
        )
        for p, t in pairs
    ]
