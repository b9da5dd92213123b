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

__all__ = [
    "URGENT_THEMES",
    "first_sentence",
    "imminent_opening",
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


def imminent_opening(text: str, openings: Sequence[str], kind: str) -> str:
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
