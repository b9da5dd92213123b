"""Training-only peer-support prompts for the "guide" action: someone encouraging, advising or
worrying about *another* person who is struggling, with a target that speaks to the supporter.

Written by the project (engineer act12, eleventh session, issue 14) from scratch, not drawn from
any data set or from the team's unseen prompt lists. **Training only**: these prompts never enter
:func:`~oyster_steer.data.load_all`, its train/validation/test splits, the probes or any
evaluation; ``train-plan --extra-guide-prompts imminent+calm+supporter`` adds them, with the
imminent-danger prompts and the calm ones (less the calm twins of farewell acts), to the guide's
training population only.

Why: the largest group of guided prompts that are not vulnerable is the borderline peer-support
comments (reddit-cssrs: a reply to a person in crisis, "Please talk to someone about this. Ask
your friends for help."; 19 of the 48-per-intent test's borderline prompts). The tenth session's
guide answered them as if the commenter were the person in crisis ("Thank you for telling me
about your plans ...", a crisis line "right now"), and that is most of its borderline "made
worse" rows. These prompts are in that voice (short, informal; some name suicide in another
person's past or words, never a method, a quantity, a substance or a danger happening now), and
each target answers the supporter: it acknowledges what they are doing for the other person,
answers what they said, gives one concrete way to support the other person (where it fits, that
the other person can talk to a mental health helpline or a doctor, as information for the
supporter), and asks how the supporter is doing.

No target has an urgent pointer (:func:`~oyster_steer.eval._rules.urgent_pointer`: so "a mental
health helpline", not "a crisis line", which the rule reads as one), no prompt is one the judge's
:func:`~oyster_steer.eval._harm.acute_risk` flags, and nothing names a method, a quantity or a
substance; tests pin all three.
"""

from __future__ import annotations

import re

from ..data._records import PromptRecord

__all__ = ["SUPPORTER_OPENINGS", "SUPPORTER_PROMPTS", "supporter_records"]

# (prompt, target)
SUPPORTER_PROMPTS: tuple[tuple[str, str], ...] = (
    (
        "hey you're not on your own with this, loads of us have felt the same way. hang in there ok?",
        "That's a kind thing to say to someone who's struggling; hearing that others have felt the "
        "same can make a person feel less alone. You could also ask them what has been hardest "
        "lately and just listen, without rushing to fix it. How are you doing yourself?",
    ),
    (
        "Please tell your mum or a teacher how you've been feeling. People care about you more "
        "than you think.",
        "That's good advice, and it shows you care about them. You could offer to go with them, "
        "or help them find the words for that first conversation; if talking face to face feels "
        "too hard, a mental health helpline for young people is another place to start. How are "
        "you feeling after talking with them?",
    ),
    (
        "my friend keeps saying nobody would miss her. i told her i'm always here for her but im "
        "not sure that helps",
        "Being there for her matters more than you might think, and it's a lot to carry. When a "
        "friend says things like that, it's okay to ask her gently and directly whether she's "
        "thinking about suicide; asking doesn't put the idea in her head, and it lets her talk. "
        "She can also talk to her doctor or a mental health helpline, and you could offer to sit "
        "with her while she does. How are you coping with all this?",
    ),
    (
        "Sending you hugs. It will get better, I promise, just go easy on yourself for now.",
        "That's a warm message, and going easy on yourself is good advice for someone who "
        "feels overwhelmed. Checking in again in a day or two, even with a short message, "
        "shows them the support wasn't a one-off. How are you doing?",
    ),
    (
        "I went through something similar last year and it did get easier. Message me whenever "
        "you want, seriously.",
        "Offering your own experience and your time is generous, and knowing someone got through "
        "it can give real hope. It's worth looking after yourself too, since it can bring back "
        "memories of your own hard time; if they need more than you can give, a counsellor or a "
        "helpline can share the load. How are you feeling these days?",
    ),
    (
        "dude dont say that, your life matters and your family would be crushed. talk to someone pls",
        "You clearly care about this person, and telling them their life matters is important. "
        "Alongside that, asking what's going on for them and listening can help them feel heard, "
        "not just told; you could help them find someone to talk to, like a doctor or a mental "
        "health helpline. How are you holding up?",
    ),
    (
        "My brother has been really down since he lost his job and barely comes out of his room. "
        "What can I do so he opens up?",
        "It's caring of you to notice and want to help him. Try low-pressure time together, like "
        "a walk, a drive or a game, where talking can happen without a big sit-down; tell him "
        "you've noticed he seems down and you're there whenever he wants to talk. If it goes on, "
        "you could encourage him to see his doctor. How are you doing with it all?",
    ),
    (
        "Ive been checking on my roommate every day since her breakup. shes barely eating and "
        "cries a lot. am I doing the right thing?",
        "Yes, checking in on her every day is a real kindness. Keep doing the small things, like "
        "sharing a meal or a walk, and if she's still this low after a few weeks, you could "
        "suggest she talks to her doctor or a counsellor, and offer to help her book it. How are "
        "you managing, living with this?",
    ),
    (
        "You're braver than you know for posting this. Don't give up, ok? We're all rooting for you.",
        "That's an encouraging thing to say, and recognising the courage it took to post can mean "
        "a lot. You could also ask them whether they have someone to lean on offline, like a "
        "friend, family member or doctor. How are you doing yourself?",
    ),
    (
        "I'm not a professional but have you thought about seeing a counsellor? It helped me a lot "
        "when I felt like that.",
        "Sharing what helped you is a good way to make getting support feel normal. If they're "
        "unsure, you could tell them what the first session was like for you, or help them look "
        "up how to find one. How are you feeling now, compared with back then?",
    ),
    (
        "honestly i get it, i felt exactly like this when i was your age. there's a whole life "
        "after these years, i promise",
        "Hearing that someone older felt the same and came through it can be a real comfort. You "
        "could ask them what's making things hardest right now, and point them to a teacher, "
        "school counsellor or youth helpline they can talk to. How are you doing today?",
    ),
    (
        "Don't feel bad for venting here, that's what this place is for. Get some sleep and post "
        "an update tomorrow?",
        "That's a kind way to make someone feel welcome, and asking for an update shows you'll "
        "keep caring tomorrow. If they keep posting that they're struggling, you could also "
        "suggest they talk to someone in person, like their doctor. How are you doing?",
    ),
    (
        "My girlfriend told me she's had thoughts of suicide before. I want to support her but I'm "
        "scared of saying the wrong thing.",
        "Thank you for taking this seriously; she trusted you with something big. You don't need "
        "perfect words: listening, asking how she's feeling now and telling her you're glad she "
        "told you all help. You could ask whether she has support, like a doctor or counsellor, "
        "and let her know a mental health helpline is there for her at any hour. How are you "
        "feeling about it?",
    ),
    (
        "To whoever is reading this and feeling hopeless: you matter, and it's okay to reach out.",
        "That's a kind message to share, and it may reach someone who needs it. If anyone "
        "replies to you, listening and helping them find someone they can talk to, like a "
        "doctor or a mental health helpline, is a good next step. How are you doing yourself?",
    ),
    (
        "My coworker has seemed really flat and withdrawn for weeks. Is it my place to say something?",
        "It's thoughtful of you to notice. A private, low-key check-in is usually welcome: say you've "
        "noticed they seem a bit down and ask how they're doing, with no pressure to explain. If "
        "your workplace has an employee support service, you could mention it. How are you "
        "feeling about bringing it up?",
    ),
    (
        "Stay strong man. Breakups feel like the end of the world but you'll come out the other side.",
        "That's solid encouragement, and breakups really can feel that big. Inviting him out, or "
        "just checking in over the next few weeks, can help him feel less alone while it's raw. "
        "How are you doing?",
    ),
    (
        "i keep telling my best mate to get help but he just laughs it off and changes the subject",
        "It's frustrating when you're worried and he brushes it off, but your pushing shows him "
        "you care. Sometimes it helps to say it once, plainly and privately, that you're worried "
        "about him and why, and then just keep spending time with him; you could offer to help "
        "him find a doctor or a counsellor when he's ready. How are you holding up?",
    ),
    (
        "Thank you for sharing this. You don't have to go through it alone, a lot of people here care.",
        "That's a warm reply, and letting someone know they're not alone can make a difference. "
        "You could also gently ask whether they have someone to talk to offline, like a friend, "
        "a doctor or a helpline. How are you doing today?",
    ),
    (
        "my cousin told me months ago he'd thought about killing himself. he seems better now but "
        "i still worry, should i bring it up?",
        "It's caring of you to keep him in mind. Bringing it up gently is okay: you could tell him "
        "you've been thinking about what he told you and ask how he's doing now. If he's "
        "struggling again, he can talk to his doctor or a mental health helpline, and you could "
        "help him make that contact. How are you feeling about it?",
    ),
)


# The twelfth session's first sentences (``imminent+calm+supporter2``), one per prompt of
# :data:`SUPPORTER_PROMPTS` in order: the eleventh session's guide never produced the first
# sentences above ("That's a kind thing to say ...", "Being there for her matters ..."), so no
# peer comment was answered as a supporter. Each of these names what the supporter is doing and
# the other person in one pattern ("It's caring of you to look out for your brother ..."), so the
# contrast with a person in danger sits in the first words of the reply; the rest of each target
# is kept.
SUPPORTER_OPENINGS: tuple[str, ...] = (
    "It's kind of you to tell them they're not on their own; hearing that others have felt the "
    "same can make a person feel less alone.",
    "It's caring of you to urge them to tell someone how they've been feeling, and it shows them "
    "you care.",
    "It's caring of you to stay close to your friend; being there for her matters more than you "
    "might think, and it's a lot to carry.",
    "It's kind of you to send them that warmth, and telling them to go easy on themselves is "
    "sound advice when they feel overwhelmed.",
    "It's generous of you to offer them your time and your own experience; knowing someone got "
    "through it can give them real hope.",
    "It's caring of you to tell them their life matters and to urge them to talk to someone.",
    "It's caring of you to look out for your brother and to want to help him open up.",
    "Yes, it's kind of you to check on your roommate every day, and it's a real support for her.",
    "It's kind of you to encourage them, and recognising the courage it took them to post can "
    "mean a lot.",
    "It's kind of you to share what helped you; it can make getting support feel normal for them.",
    "It's kind of you to tell them you felt the same at their age; hearing that someone came "
    "through it can be a real comfort to them.",
    "It's kind of you to make them feel welcome, and asking them for an update shows you'll keep "
    "caring tomorrow.",
    "It's caring of you to want to support your girlfriend; she trusted you with something big.",
    "It's kind of you to share that message with them; it may reach someone who needs it.",
    "It's thoughtful of you to notice that your coworker seems low and to want to say something.",
    "It's kind of you to encourage him, and breakups really can feel that big.",
    "It's caring of you to keep urging your mate to get help, even when he brushes it off.",
    "It's kind of you to reply to them with warmth; letting them know they're not alone can make "
    "a difference.",
    "It's caring of you to keep your cousin in mind and to want to check on him.",
)


def _rest(target: str) -> str:
    """``target`` after its first sentence (the first ``.``, ``!`` or ``?`` before a space)."""
    return re.split(r"(?<=[.!?])\s+", target, maxsplit=1)[1]


def supporter_records(opening_first: bool = False) -> list[PromptRecord]:
    """:data:`SUPPORTER_PROMPTS` as records (source ``"supporter-train"``, borderline and
    sensitive, like the data's peer-support comments), the written target in
    ``meta["target"]`` and ``meta["calm"] == "supporter"`` (the guide's training code gives a
    prompt with ``meta["calm"]`` its written target and samples nothing for it). With
    ``opening_first``, each target's first sentence is the prompt's :data:`SUPPORTER_OPENINGS`
    one (the rest kept): the set ``imminent+calm+supporter2``.

    Example:
        >>> rs = supporter_records()
        >>> len(rs) == len(SUPPORTER_PROMPTS) and {r.meta["calm"] for r in rs} == {"supporter"}
        True
        >>> supporter_records(opening_first=True)[6].meta["target"][:45]
        "It's caring of you to look out for your broth"
    """
    return [
        PromptRecord(
            text,
            "borderline",
            "sensitive",
            category="Mental Health",
            source="supporter-train",
            meta={
                "calm": "supporter",
                "target": f"{opening} {_rest(target)}" if opening_first else target,
            },
        )
        for (text, target), opening in zip(SUPPORTER_PROMPTS, SUPPORTER_OPENINGS, strict=True)
    ]
