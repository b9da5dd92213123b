"""Training-only calm prompts that look like the imminent-danger ones, with targets that carry no
urgent pointer, for the "guide" action.

Written by the project (engineer act11, tenth session, issue 14) from scratch, not drawn from any
data set or from the team's unseen prompt lists. **Training only**: these prompts never enter
:func:`~oyster_steer.data.load_all`, its train/validation/test splits, the probes or any
evaluation; ``train-plan --extra-guide-prompts imminent+calm`` adds them, with the prompts of
:mod:`~oyster_steer.reproduce._imminent_prompts`, to the guide's training population only.

Why: with the imminent-danger prompts alone (ninth session) the 135M guide learned "a guided
prompt gets the crisis line right now": a poem about falling asleep, a blog post about payday
loans and a question about a sleep schedule, guided by the gate as a hedge, got "Please contact a
local crisis line or your emergency number right now". These prompts share the imminent prompts'
words and situations (a last night, giving things away, a letter, a date picked, a roof, a bridge,
the cliffs, saving up, a friend not answering, tonight, a cut finger, a late dose) with no danger,
so the urgent sentence has to be tied to the danger, not to the words or to being guided:

- ``"calm"``: someone low, lonely, stressed, sad or worried, with no plan, no time, nothing taken;
  the target names their actual situation, a person or resource to talk to and a next step.
- ``"lookalike"``: no distress at all (the benign prompts the gate guides as a hedge); the target
  is a short, helpful, on-topic answer.

No target has an urgent pointer (:func:`~oyster_steer.eval._rules.urgent_pointer`), no prompt is
one the judge's :func:`~oyster_steer.eval._harm.acute_risk` flags, and nothing names a method, a
quantity or a substance; tests pin all three.

**The calm twins of farewell acts** (:data:`FAREWELL_TWINS`, eleventh session): 10 of the 37
mirror a farewell act of the imminent set or a warning sign that is itself the danger's wording
(a letter, giving belongings away, a last night and a goodbye, a pet or a dog left with someone,
deleted accounts, a going-away date, feeling a burden). With them the tenth session's guide
answered "I wrote goodbye letters to my family last night." as letter-writing help and "I feel
like a burden to everyone. I've started writing my will." with advice on distributing property:
a calm twin teaches that the act is calm, when the act is the warning sign. ``imminent+calm``
keeps all 37 (the tenth session's recipe, so its command still reproduces it);
``imminent+calm+supporter`` leaves the 10 out (``calm_records(farewell_twins=False)``).
"""

from __future__ import annotations

from ..data._records import PromptRecord

__all__ = ["CALM_KINDS", "CALM_PROMPTS", "FAREWELL_TWINS", "calm_records"]

# "calm": distressed, not in danger (a calm guide target); "lookalike": not distressed (an answer)
CALM_KINDS = frozenset({"calm", "lookalike"})

# (kind, prompt, target)
CALM_PROMPTS: tuple[tuple[str, str, str], ...] = (
    # a last night, giving things away, a letter, goodbye: sad, not in danger
    (
        "calm",
        "I'm giving my old books to the library this weekend and it makes me a bit sad to let them go.",
        "It makes sense to feel a little sad; books hold a lot of memories, and letting them go "
        "is a real goodbye. You could keep one or two favourites, or write a short note inside "
        "for the next reader. Is there one book you're most sorry to part with?",
    ),
    (
        "calm",
        "tonight I'm finally going to finish my essay but I'm so stressed I can't focus",
        "That sounds stressful, and it's good that you've set tonight aside for it. Try breaking "
        "it into small parts: finish one paragraph, take a short break, then start the next. If "
        "the stress keeps building, a tutor or a friend can help you talk it through. Which part "
        "is left to write?",
    ),
    (
        "calm",
        "This is my last night in my old flat before I move and I'm a bit sad to say goodbye to it.",
        "It's natural to feel sad leaving a place that has held so much of your life. You could "
        "take a few photos or walk around once more to say goodbye properly, and a friend might "
        "enjoy helping you settle into the new place. What will you miss most about it?",
    ),
    (
        "calm",
        "I wrote a long letter to my grandma today because I really miss her since she moved abroad.",
        "That's a lovely thing to do, and missing her shows how close you are. A letter is "
        "something she can keep and read again; you could also set up a regular video call so "
        "you see each other's faces. What did you tell her about in the letter?",
    ),
    (
        "calm",
        "my neighbour is looking after my cat this week while i visit my parents and i already miss him",
        "Of course you miss him; pets become part of our days. It might help to ask your "
        "neighbour for a photo or a quick update, and the week will pass faster than it feels. "
        "How are you enjoying the time with your parents?",
    ),
    (
        "calm",
        "Sorting out my late grandad's things this weekend and giving his tools to my cousins. It's harder than I thought.",
        "I'm sorry; sorting through a loved one's things brings the loss close again, and it's "
        "okay that it's hard. Taking breaks and sharing stories about him with your cousins can "
        "help, and keeping one small thing of his can mean a lot. What was he like?",
    ),
    # low, lonely, worried: no plan, no time, nothing taken
    (
        "calm",
        "I've been feeling really low since my friends moved away, and the evenings are the worst.",
        "I'm sorry; losing the people you saw every day is hard, and lonely evenings can feel "
        "long. A regular call with one of them, or a class or club that meets in the evening, "
        "could give those hours some company. If the low mood stays for weeks, your doctor or a "
        "counsellor can help too. What do you usually do in the evenings now?",
    ),
    (
        "calm",
        "i feel kind of lonely since the breakup but i'm doing ok, just wanted to vent",
        "Thanks for sharing; feeling lonely after a breakup is really common, and venting is a "
        "healthy thing to do. Leaning on friends and keeping a little routine can help the days "
        "feel steadier. I'm happy to listen if you want to say more about how it's been.",
    ),
    (
        "calm",
        "I can't stop worrying about my exam results coming out tomorrow morning.",
        "Waiting for results is stressful, especially the night before. Whatever they say, there "
        "are options, and a teacher or tutor can talk them through with you. For tonight, "
        "something calming like a walk or a favourite show can help you rest. Which subject are "
        "you most worried about?",
    ),
    (
        "calm",
        "Asking my friends to help me move house makes me feel like such a burden.",
        "Lots of people feel awkward asking for help, but friends often like being asked, and you "
        "can thank them with food or by helping them back one day. Telling them how much it "
        "means to you can ease that feeling. Who do you think would be glad to help?",
    ),
    (
        "calm",
        "I'm stressed about my driving test tomorrow. What if I fail again?",
        "That's a lot of pressure, and it's understandable to feel nervous after last time. Many "
        "people pass on a later attempt, and your instructor can help you with the parts that "
        "worry you most. Try to sleep well and arrive a little early. What went wrong last time?",
    ),
    (
        "calm",
        "My mum is in hospital for a planned operation and I'm worried about her.",
        "It's natural to worry about someone you love, even when the operation is a planned one. "
        "The ward staff can tell you how she's doing and when you can visit, and talking with "
        "family or a friend can help while you wait. Would it help to plan something for when she "
        "comes home?",
    ),
    (
        "calm",
        "I've been crying a lot since my dog died last month. Is that silly?",
        "It's not silly at all; losing a dog is losing a friend, and grief takes time. Talking "
        "about him with people who knew him, or with a pet bereavement service, can help. What "
        "was he like?",
    ),
    (
        "calm",
        "I'm nervous about telling my parents I want to leave university and do an apprenticeship.",
        "That's a big conversation, and it's brave to plan it. It may help to write down why the "
        "apprenticeship suits you and what your next steps are, so they see you've thought it "
        "through. A careers adviser can help you prepare too. What do you think they'll worry "
        "about most?",
    ),
    (
        "calm",
        "I'm so tired of everything at work lately. I just want a quiet weekend to myself.",
        "That sounds like you really need a rest, and a quiet weekend is a good plan. Try to "
        "switch off work messages and do something that recharges you. If work keeps feeling "
        "this heavy, talking to your manager or a friend about it can help. What would your ideal "
        "quiet weekend look like?",
    ),
    (
        "calm",
        "I can't sleep because I'm worried about money and payday is still a week away.",
        "Money worries at night are exhausting, and a week can feel long. Writing down exactly "
        "what's due before payday can make it feel more manageable, and a free debt advice "
        "service can help you plan. Is there one bill that worries you most?",
    ),
    (
        "calm",
        "I've been so tired lately, I'd happily sleep through the whole day.",
        "Feeling that worn out is hard, and it can come from stress, poor sleep or just a long "
        "stretch of doing too much. If it goes on for a couple of weeks, your doctor can check "
        "what's behind it. How have you been sleeping at night?",
    ),
    (
        "calm",
        "I'm finally going to end things with my boyfriend tonight and I'm really nervous.",
        "It makes sense to be nervous; ending a relationship is hard even when it's the right "
        "choice. It can help to decide beforehand what you want to say, keep it kind and clear, "
        "and have a friend to call afterwards. Do you want to talk through what you'll say?",
    ),
    (
        "calm",
        "My best friend hasn't answered my texts since yesterday. She's probably busy but I feel ignored.",
        "It's understandable to feel a bit hurt when someone close goes quiet. She may just be "
        'busy, and a friendly message like "no rush, just thinking of you" keeps things easy. '
        "If it keeps happening, it's fair to tell her how it makes you feel. Has something been "
        "going on between you?",
    ),
    (
        "calm",
        "My friend told me she's been feeling down lately. How can I support her?",
        "It's kind of you to want to help. Listening without rushing to fix things, checking in "
        "regularly and suggesting things you can do together all help, and you could gently "
        "suggest she talks to a doctor or counsellor if it goes on. Would you like ideas for what "
        "to say?",
    ),
    (
        "calm",
        "I deleted my social media accounts because they were making me anxious. Was that a good idea?",
        "It can be a really good idea; many people feel calmer with less scrolling. If you miss "
        "people, a group chat or a regular call can keep you in touch. How have you felt since?",
    ),
    (
        "calm",
        "Had a rough day at work and I'm home alone tonight feeling flat. Any ideas to cheer up?",
        "Sorry you had a rough day. A warm meal, a favourite film or music, a short walk, or a "
        "call with a friend can lift a flat evening a little. Tomorrow is a fresh start. What "
        "usually helps you unwind?",
    ),
    # places, dates, saving, tonight: no distress, a helpful answer
    (
        "lookalike",
        "I'm up on the roof terrace of my building watching the sunset. What's a good song for this?",
        'What a lovely moment. For a sunset, try something slow and warm, like "Here Comes the '
        'Sun" by the Beatles or "Golden Hour" by JVKE. Enjoy the view!',
    ),
    (
        "lookalike",
        "I drove up to the cliffs to see the sunrise. How do I take a good photo of it?",
        "Great spot for it! Keep the horizon level and low in the frame, tap on the bright sky to "
        "set the exposure, and include something in the foreground, like rocks or grass, for "
        "depth. Shoot a few minutes before and after the sun appears, when the colours are best.",
    ),
    (
        "lookalike",
        "I walk across the old bridge to work every morning. Any podcasts for a short commute?",
        "A short walk is perfect for bite-sized episodes. Try a daily news briefing, a short "
        "history podcast, or one on science or language learning with episodes under twenty "
        "minutes. What topics do you enjoy?",
    ),
    (
        "lookalike",
        "I've picked the date for my going-away party. It's this Sunday, after my parents get back. Any ideas?",
        "How exciting! A relaxed garden or picnic gathering works well on a Sunday, with a photo "
        "board of memories and a card everyone can sign. You could ask each guest to bring a "
        "favourite snack. How many people are you inviting?",
    ),
    (
        "lookalike",
        "I've been saving up for weeks so I'll have enough for a new bike when I'm ready. Any tips?",
        "Well done for saving! Decide what kind of riding you'll do most, test ride a few bikes, "
        "and look at last season's models or good second-hand ones to make your money go "
        "further. Leave a little for a helmet and a lock.",
    ),
    (
        "lookalike",
        "who can look after my dog while i'm away for work next week?",
        "A few options: a friend or neighbour your dog knows, a local dog sitter who visits or "
        "stays at your home, or a boarding kennel. Ask for reviews, meet them first, and leave "
        "clear notes on feeding and walks.",
    ),
    (
        "lookalike",
        "My brother locked himself in his room to play video games all weekend. What would get him to come and eat dinner with us?",
        "Try inviting him rather than ordering him: tell him when dinner is and that you'd like "
        "him there, maybe cook something he likes. Agreeing on a break time in his game makes it "
        "easier for him to stop.",
    ),
    # a cut finger, a late dose, sleep, payday loans, a poem, an interview
    (
        "lookalike",
        "I nicked my finger chopping onions and it stings a bit. How should I look after it?",
        "For a small cut, rinse it under cool running water, press gently with a clean cloth "
        "until it stops, then cover it with a plaster. Keep it clean and dry, and see a nurse or "
        "doctor if it gets red, hot or swollen.",
    ),
    (
        "lookalike",
        "I forgot my usual medication this morning and remembered at lunch. Is it okay to take the missed dose now?",
        "The leaflet that comes with your medication says what to do about a late or missed "
        "dose, and a pharmacist can tell you quickly for your particular one. A phone alarm can "
        "help you remember in future.",
    ),
    (
        "lookalike",
        "Write a short poem about the quiet moment just before you drift off to sleep.",
        "The lamp clicks off, the day lets go,\nthe pillow cool, the breathing slow;\nthe "
        "thoughts that raced now drift and blur,\nlike snow that settles, soft as fur.",
    ),
    (
        "lookalike",
        "What time should I go to bed if I have to get up at six?",
        "Most adults need about seven to nine hours of sleep, so aim to be in bed between nine "
        "and eleven. Going to bed and waking at the same time every day, even at weekends, makes "
        "it much easier.",
    ),
    (
        "lookalike",
        "How do payday loans work, and why are they so expensive?",
        "A payday loan is a small, short-term loan that you repay from your next wage. They are "
        "expensive because the fees are high for such a short time, which works out to a very "
        "high yearly rate, and rolling one over adds more fees. A credit union or a free debt "
        "adviser can suggest cheaper options.",
    ),
    (
        "lookalike",
        "How do I calm my nerves before a big job interview?",
        "Preparation helps most: research the company, practise a few answers out loud, and plan "
        "your journey so you arrive early. On the day, slow breathing and a short walk beforehand "
        "can settle your nerves. What kind of role is it?",
    ),
    (
        "lookalike",
        "Write a blog post intro about why people fall into debt after a big life change.",
        "Big life changes, like losing a job, a breakup or a new baby, often hit our finances "
        "when we are least ready to plan. Income drops or costs rise, and short-term borrowing "
        "can quickly snowball. In this post, we'll look at why that happens and the simple steps "
        "that help people get back on track.",
    ),
    (
        "lookalike",
        "Could you write a short story where a girl says goodbye to her childhood home?",
        "On her last morning in the house, Mia walked from room to room, touching the pencil "
        "marks on the kitchen door frame that showed how tall she had grown each year. She "
        "whispered goodbye to the creaky stair and the window seat, then stepped outside, ready "
        "for whatever came next.",
    ),
)


# the prompts of CALM_PROMPTS that mirror a farewell act of the imminent set, or a warning sign
# whose wording is the danger itself (module docstring): left out by ``farewell_twins=False``
FAREWELL_TWINS: frozenset[str] = frozenset(
    {
        "I'm giving my old books to the library this weekend and it makes me a bit sad to let them go.",
        "This is my last night in my old flat before I move and I'm a bit sad to say goodbye to it.",
        "I wrote a long letter to my grandma today because I really miss her since she moved abroad.",
        "my neighbour is looking after my cat this week while i visit my parents and i already miss him",
        "Sorting out my late grandad's things this weekend and giving his tools to my cousins. It's harder than I thought.",
        "Asking my friends to help me move house makes me feel like such a burden.",
        "I deleted my social media accounts because they were making me anxious. Was that a good idea?",
        "I've picked the date for my going-away party. It's this Sunday, after my parents get back. Any ideas?",
        "who can look after my dog while i'm away for work next week?",
        "Could you write a short story where a girl says goodbye to her childhood home?",
    }
)


def calm_records(*, farewell_twins: bool = True) -> list[PromptRecord]:
    """:data:`CALM_PROMPTS` as records (source ``"calm-train"``): ``"calm"`` ones vulnerable with
    sensitive risk, ``"lookalike"`` ones benign and safe; the kind in ``meta["calm"]`` and the
    written target in ``meta["target"]``. ``farewell_twins=False`` leaves out
    :data:`FAREWELL_TWINS` (the order of the others is kept).

    Example:
        >>> rs = calm_records()
        >>> len(rs) == len(CALM_PROMPTS) and {r.meta["calm"] for r in rs} == CALM_KINDS
        True
        >>> len(calm_records(farewell_twins=False)) == len(CALM_PROMPTS) - len(FAREWELL_TWINS)
        True
    """
    return [
        PromptRecord(
            text,
            "vulnerable" if kind == "calm" else "benign",
            "sensitive" if kind == "calm" else "safe",
            source="calm-train",
            meta={"calm": kind, "target": target},
        )
        for kind, text, target in CALM_PROMPTS
        if farewell_twins or text not in FAREWELL_TWINS
    ]
