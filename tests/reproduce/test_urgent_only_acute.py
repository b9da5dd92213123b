"""``train-plan --urgent-only-acute`` and ``--varied-openings`` (fifteenth session, act16).

act15's guide learned the frame its targets shared: 71 of 164 targets carried an urgent pointer
(the crisis and self-harm exemplars end in "contact a local crisis line or your emergency
number" whatever the prompt), and 65 danger prompts opened with one of 2-3 written sentences per
kind, so it said "Thank you for telling me; what you're describing sounds serious, and you matter.
Please contact a local crisis line ..." to a poem and a wifi request. With the first flag only
acute prompts keep an urgent pointer; with the second the written openings come from 8-12 per
theme. Without them the pairs are act15's."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from test_calm_prompts import GUIDE_ONLY, _guide_training_pairs
from test_resampled_openings import GOOD, KW, _fake_openings

from oyster_steer.data import exemplar_for, load_starter
from oyster_steer.eval._harm import acute_risk
from oyster_steer.eval._rules import urgent_pointer
from oyster_steer.reproduce._imminent_prompts import IMMINENT_PROMPTS
from oyster_steer.reproduce._judged_openings import opening_problems
from oyster_steer.reproduce._plan_training import (
    EXTRA_GUIDE_PROMPTS,
    PlanTrainingConfig,
    _extra_targets,
    _resampled_pairs,
    only_acute_urgent,
    target_summary,
)
from oyster_steer.reproduce._urgent_targets import (
    _OPENINGS,
    _TO_PEOPLE,
    VARIED_OPENINGS,
    first_sentence,
    urgent_theme,
    varied_opening,
    without_urgent,
)

IMMINENT = {p for _, p in IMMINENT_PROMPTS}


def _vulnerable():
    return [r for r in load_starter() if r.intent == "vulnerable"]


def test_each_theme_has_at_least_eight_distinct_openings_that_pass_the_opening_rules():
    every = [o for options in VARIED_OPENINGS.values() for o in options]
    assert len(every) == len(set(every))
    for theme, options in VARIED_OPENINGS.items():
        assert len(options) >= 8, theme
        # varied in structure, not word swaps: no two share their first three words
        assert len({tuple(o.lower().split()[:3]) for o in options}) >= len(options) - 1, theme
    for o in every:
        assert not re.search(r"\bnormal\b|\bshould\b|\bwrong with you\b", o, re.I), o
        assert not urgent_pointer(o), o
        for prompt in ("I feel so alone lately.", "I've written letters to everyone I love."):
            assert not opening_problems(prompt, o, sampled=False), (o, prompt)


def test_varied_opening_is_deterministic_and_spread_over_real_prompts():
    prompts = [r.text for r in _vulnerable()] + sorted(IMMINENT)
    picks = [varied_opening(p) for p in prompts]
    assert picks == [varied_opening(p) for p in prompts]
    counts = Counter(picks)
    assert len(counts) >= 20
    # within each theme the hash spreads the prompts: none gets twice its fair share (+2)
    for theme, options in VARIED_OPENINGS.items():
        used = [o for o in picks if o in options]
        if used:
            top = Counter(used).most_common(1)[0][1]
            assert top <= 2 * len(used) / len(options) + 2, (theme, top, len(used))
    # the imminent kinds pick their own theme
    assert varied_opening(IMMINENT_PROMPTS[0][1], kind="self") in VARIED_OPENINGS["self"]
    assert varied_opening(IMMINENT_PROMPTS[0][1], kind="taken") in VARIED_OPENINGS["self"]
    assert varied_opening("x", kind="abuse") in VARIED_OPENINGS["abuse"]


def test_without_urgent_keeps_the_people_and_drops_the_crisis_line_of_real_exemplars():
    changed = 0
    for r in _vulnerable():
        target = exemplar_for(r.text, r.intent, r.category).constructive
        out = without_urgent(r.text, target, r.category)
        if not urgent_pointer(target):
            assert out == target
            continue
        changed += 1
        assert not urgent_pointer(out), out
        assert out.split(" ")[:3] == target.split(" ")[:3]  # the opening is kept
        assert _TO_PEOPLE.search(out), out
        assert len(out) < len(target)
    assert changed >= 10
    # a target that is only an opening and an urgent pointer gets the theme's people instead
    bare = "I'm so sorry. If you're in danger, please call your emergency number right now."
    out = without_urgent("I've been cutting again.", bare)
    assert not urgent_pointer(out) and _TO_PEOPLE.search(out) and out.startswith("I'm so sorry.")


def test_only_acute_urgent_keeps_the_pointer_for_acute_and_imminent_prompts():
    from oyster_steer.reproduce._imminent_prompts import imminent_records

    records = {r.text: r for r in [*_vulnerable(), *imminent_records()]}
    pairs = [
        (p, exemplar_for(p, "vulnerable", r.category).constructive) for p, r in records.items()
    ]
    urgent_before = [p for p, t in pairs if urgent_pointer(t)]
    out, carried = only_acute_urgent(pairs, records)
    assert carried == len(urgent_before) > 10
    kept = {p for p, t in out if urgent_pointer(t)}
    acute = {p for p in urgent_before if acute_risk(p) is not None or p in IMMINENT}
    assert kept == acute and acute and len(kept) < carried
    themes = {urgent_theme(p) for p in urgent_before if p not in kept}
    assert {"crisis", "self_harm"} <= themes


def _firsts(pairs) -> Counter:
    return Counter(first_sentence(t) for _, t in pairs)


def test_varied_written_openings_replace_the_few_written_sentences():
    more = EXTRA_GUIDE_PROMPTS["imminent+calm+supporter"]()
    none = {r.text: [] for r in more if "calm" not in r.meta}
    old, new = _extra_targets(more, none), _extra_targets(more, none, varied=True)
    assert [p for p, _ in old] == [p for p, _ in new]
    imminent_old = [(p, t) for p, t in old if p in IMMINENT]
    imminent_new = [(p, t) for p, t in new if p in IMMINENT]
    every = {o for v in VARIED_OPENINGS.values() for o in v}
    assert all(first_sentence(t) in every for _, t in imminent_new)
    old_top = _firsts(imminent_old).most_common(1)[0][1]
    new_top = _firsts(imminent_new).most_common(1)[0][1]
    assert new_top < old_top / 2
    # the urgent pointer after the opening is the same
    assert [t.split(". ", 1)[1] for _, t in imminent_old] == [
        t.split(". ", 1)[1] for _, t in imminent_new
    ]
    # the written fallback of the population prompts: the exemplar's continuation after a varied one
    recs = _vulnerable()
    plain = _resampled_pairs(recs, {r.text: [] for r in recs})
    varied = _resampled_pairs(recs, {r.text: [] for r in recs}, varied=True)
    assert plain == [
        (r.text, exemplar_for(r.text, r.intent, r.category).constructive) for r in recs
    ]
    assert all(first_sentence(t) in every for _, t in varied)
    assert all(
        b.endswith(a.split(". ", 1)[1][-40:]) for (_, a), (_, b) in zip(plain, varied, strict=True)
    )
    # a kept sampled opening is used as before
    kept = {r.text: [GOOD] for r in recs}
    assert _resampled_pairs(recs, kept, varied=True) == _resampled_pairs(recs, kept)
    assert "distinct first sentences" in target_summary(varied)


def test_without_the_flags_the_pairs_are_those_of_act15(tiny_models, monkeypatch, tmp_path):
    _fake_openings(monkeypatch, ["It sounds like you're on the right track.", GOOD])
    base = dict(**GUIDE_ONLY, **KW, opening_samples=2, topical_openings=True)
    a, _ = _guide_training_pairs(
        tiny_models, monkeypatch, tmp_path / "a", PlanTrainingConfig(**base)
    )
    b, _ = _guide_training_pairs(
        tiny_models,
        monkeypatch,
        tmp_path / "b",
        PlanTrainingConfig(**base, urgent_only_acute=False, varied_openings=False),
    )
    assert a == b
    assert "urgent_only_acute" not in a["meta"] and "varied_openings" not in a["meta"]
    c, logged = _guide_training_pairs(
        tiny_models,
        monkeypatch,
        tmp_path / "c",
        PlanTrainingConfig(**base, urgent_only_acute=True, varied_openings=True),
    )
    assert set(c["pairs"]) == set(a["pairs"]) and c["pairs"] != a["pairs"]
    assert c["meta"]["urgent_only_acute"] == "true" and c["meta"]["varied_openings"] == "true"
    starter = {r.text for r in load_starter()}
    for p, t in c["pairs"].items():
        acute = p in IMMINENT or acute_risk(p) is not None
        if p in starter and not acute:
            assert not urgent_pointer(t), (p, t)
        if p in IMMINENT:
            assert urgent_pointer(t), (p, t)
    before = sum(urgent_pointer(t) for t in a["pairs"].values())
    after = sum(urgent_pointer(t) for t in c["pairs"].values())
    assert after < before

    # the written openings of the imminent prompts are spread (the sampled GOOD, kept for the
    # population's calm prompts, is the same in both)
    def top_written(pairs: dict) -> int:
        return _firsts((p, t) for p, t in pairs.items() if p in IMMINENT).most_common(1)[0][1]

    assert top_written(c["pairs"]) < top_written(a["pairs"]) / 2
    assert any("--urgent-only-acute:" in s for s in logged)
    assert any("targets carry an urgent pointer" in s for s in logged)


@pytest.mark.parametrize("flag", ["--urgent-only-acute", "--varied-openings"])
def test_the_flags_need_a_distilled_recipe(flag):
    from oyster_steer.cli import main

    assert main(["train-plan", "--targets", "sampled", flag]) == 2
    assert _OPENINGS  # the act15 openings stay, for runs without the flag
