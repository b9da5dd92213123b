"""Training-only prompts of imminent danger, in the user's own voice, for the "guide" action.

Written by the project (engineer act10, ninth session, issue 14) from scratch, not drawn from any
data set or from the team's unseen prompt lists. **Training only**: these prompts never enter
:func:`~oyster_steer.data.load_all`, its train/validation/test splits, the probes or any
evaluation; ``train-plan --extra-guide-prompts imminent`` adds them to the guide's training
population only, with ``distilled-urgent`` targets.

Why: none of the guide's 57 training prompts of the shipped recipe is one the judge's
:func:`~oyster_steer.eval._harm.acute_risk` flags (8 of the 2,089 vulnerable prompts of
``load_all()`` are), so a guide trained with urgent-first targets learned to attach the crisis
line to words ("cut", "kill myself"), not to the situations of imminent danger: farewell acts, a
plan with a time, a place, something already taken, a stockpile, someone else in danger now,
abuse happening now, intoxicated and alone with intent.

Content rule: the prompts state a situation, never a method, a quantity or a substance's name.
"""

from __future__ import annotations

from ..data._records import PromptRecord

__all__ = ["IMMINENT_KINDS", "IMMINENT_PROMPTS", "imminent_records"]

# who is in danger and how, which picks the urgent pointer of the prompt's target
# (:func:`~oyster_steer.reproduce._urgent_targets.urgent_target`): "self" (a crisis line or the
# emergency number), "taken" (something already taken: the emergency number or poison control),
# "injury" (A&E), "someone" (someone else in danger now), "abuse" (the user, harmed by someone now)
IMMINENT_KINDS = frozenset({"self", "taken", "injury", "someone", "abuse"})

# (kind, prompt)
IMMINENT_PROMPTS: tuple[tuple[str, str], ...] = (
    # farewell acts
    (
        "self",
        "I've written letters to everyone I love and left them on my desk. I think this is the last night.",
    ),
    ("self", "gave my cat to my neighbour today and told her i wont be coming back for him"),
    (
        "self",
        "I finished my will this afternoon and paid off my small debts so nobody is left with anything.",
    ),
    (
        "self",
        "I texted my sister to say goodbye and that I'm sorry. I switched my phone off after.",
    ),
    (
        "self",
        "Spent today giving my favourite books and my guitar to friends. I won't need them after this weekend.",
    ),
    (
        "self",
        "I've deleted all my accounts and sent my best friend my passwords so it's tidy when I'm gone.",
    ),
    ("self", "who do i ask to look after my dog after i'm gone? i need it sorted before friday"),
    ("self", "This is probably the last thing I'll ever write to anyone. I'm sorry."),
    # a plan with a time
    ("self", "I've decided. Tonight after everyone's asleep I'm going to end it."),
    ("self", "Once my shift ends at midnight I'm done with all of this, for good."),
    ("self", "tomorrow morning is when i do it. i just wanted to tell someone first"),
    ("self", "I've picked the date. It's this Sunday, after my parents leave for their trip."),
    ("self", "I can't promise I'll still be here in the morning."),
    # a place, without how
    (
        "self",
        "I'm sitting on the edge of the roof of my building right now and I can't make myself go back inside.",
    ),
    ("self", "im at the bridge again. its late and nobody is around"),
    (
        "self",
        "I'm standing by the train tracks near my house and I don't want to walk away from them.",
    ),
    (
        "self",
        "I drove up to the cliffs and I'm parked at the edge. I don't think I'm driving home.",
    ),
    ("self", "I'm in my car at the old quarry and I keep thinking tonight is the night."),
    # something already taken, or an injury now
    ("taken", "I took too many of my pills earlier this evening and I'm getting really sleepy."),
    ("taken", "i swallowed a lot of what was in the medicine cabinet. i dont know why i did it"),
    ("taken", "I already took something to make it all stop. I feel sick and dizzy and I'm alone."),
    (
        "taken",
        "took way more of my meds than the label says about half an hour ago. should i just sleep it off",
    ),
    (
        "injury",
        "I hurt myself badly tonight and it won't stop bleeding. I don't want anyone to know.",
    ),
    # collecting, stockpiling
    ("self", "I've been saving up my prescription for weeks so I'll have enough when I'm ready."),
    (
        "self",
        "I've been collecting pills from every cabinet in the house and hiding them in a box under my bed.",
    ),
    ("self", "I bought what I need and it's in my bag. I'm just waiting for the right moment."),
    # someone else in danger right now
    (
        "someone",
        "My best friend just messaged me goodbye and thank you for everything, and now she isn't answering her phone.",
    ),
    (
        "someone",
        "My brother locked himself in the bathroom and said he won't be around tomorrow. What do I do right now?",
    ),
    (
        "taken",
        "my roommate told me she took a bunch of pills and went to sleep. i cant wake her up properly",
    ),
    (
        "someone",
        "A boy in my class posted that tonight is his last night and everyone thinks it's a joke.",
    ),
    (
        "someone",
        "My dad is drunk and says he's going to drive off and never come back. He has the car keys in his hand.",
    ),
    # abuse happening now
    (
        "abuse",
        "He's banging on the bathroom door and I'm locked in here. He said he'll hurt me when he gets in.",
    ),
    (
        "abuse",
        "my partner just hurt me again and went out to get more drinks. he'll be back soon and i'm scared",
    ),
    (
        "someone",
        "My mum's boyfriend is shouting and smashing things in the next room and my little sister is in there with him.",
    ),
    (
        "abuse",
        "The man my mum leaves me with comes in my bedroom at night and he's in the house right now.",
    ),
    # intoxicated and alone, with intent
    ("self", "drunk and alone and i really want to die tonight. nobody would even notice"),
    (
        "self",
        "I've had a lot to drink and I keep thinking tonight's the night I stop being a burden.",
    ),
    ("self", "so wasted rn. everythings blurry and i just want it to be over for good"),
)


def imminent_records() -> list[PromptRecord]:
    """:data:`IMMINENT_PROMPTS` as vulnerable, harmful-risk records (source ``"imminent-train"``,
    the kind in ``meta["imminent"]``).

    Example:
        >>> rs = imminent_records()
        >>> len(rs) == len(IMMINENT_PROMPTS) and {r.intent for r in rs} == {"vulnerable"}
        True
    """
    return [
        PromptRecord(
            text, "vulnerable", "harmful", source="imminent-train", meta={"imminent": kind}
        )
        for kind, text in IMMINENT_PROMPTS
    ]
