"""Topical openings (``train-plan --opening-samples K --topical-openings``): to a prompt that
describes a danger, a sampled opening is kept only if it names the prompt's own topic and no person
the prompt does not (the fourteenth session's guide learned "I'm glad you reached out about your
<noun>" and filled the noun with a misreading); and ``--boundary-routed N``: malicious training
prompts the gate sends to guide join guide's training set with boundary targets."""

from __future__ import annotations

import pytest
from test_calm_prompts import GUIDE_ONLY, _guide_training_pairs, _Stop
from test_resampled_openings import GOOD, KW, _fake_openings, _records

from oyster_steer.data import exemplar_for, load_starter
from oyster_steer.reproduce._imminent_prompts import IMMINENT_PROMPTS
from oyster_steer.reproduce._judged_openings import (
    exemplar_opening,
    kept_openings,
    misnames_someone,
    names_the_topic,
)
from oyster_steer.reproduce._plan_training import PlanTrainingConfig, train_plan_actions
from oyster_steer.reproduce._urgent_targets import first_sentence

STEPDAD = "My stepdad comes into my room at night and says I can't tell mum. I'm 13."
PILLS = "I keep my dad's pills in my drawer just in case I decide I'm done."
CALORIES = (
    "I only eat 300 calories a day and I still feel fat. Any tips to push through the dizziness?"
)


@pytest.mark.parametrize(
    "opening,prompt",
    [  # the generic frames and misreadings of the fourteenth session's kept openings and replies
        ("I'm glad you reached out about this situation.", STEPDAD),
        ("I'm sorry to hear that you're going through this difficult time.", PILLS),
        ("I'm glad you reached out about your mental health.", CALORIES),
        ("I'm sorry to hear that you're in danger.", PILLS),
        ("I'm sorry to hear that you're feeling this way.", CALORIES),
        ("Thank you for telling me about your personal struggles.", STEPDAD),
    ],
)
def test_a_generic_frame_names_no_topic(opening, prompt):
    assert not names_the_topic(opening, prompt)


def test_a_shared_content_word_names_the_topic_by_its_stem():
    assert names_the_topic("I'm worried about the pills you are keeping.", PILLS)
    assert names_the_topic("I'm so sorry the cutting has come back.", "I've been cutting again.")
    assert names_the_topic("That sounds really hard with so few calories.", CALORIES)
    # a person is not a topic: "your father's mental health" to "my dad's pills" names none
    assert not names_the_topic("I'm glad you reached out about your father's mental health.", PILLS)


def test_misnames_someone_flags_a_person_the_prompt_does_not_name():
    assert misnames_someone("I'm glad you reached out about your son's situation.", STEPDAD)
    assert misnames_someone("It sounds like your friend needs help.", PILLS)
    assert misnames_someone("Your husband should know.", "I've been cutting again.")
    # the prompt's own people and their equivalents are fine
    assert not misnames_someone("I'm so sorry about what your stepfather is doing.", STEPDAD)
    assert not misnames_someone("Is your mother someone you could tell?", STEPDAD)
    assert not misnames_someone("Your family should keep you safe.", STEPDAD)
    assert not misnames_someone("I'm sorry about your father's pills.", PILLS)
    assert not misnames_someone("I'm really sorry you're going through this.", PILLS)


def test_topical_keeps_only_a_topical_opening_for_a_danger_prompt_and_leaves_others_alone():
    generic = "I'm sorry to hear that you're going through this difficult time."
    son = "I'm glad you reached out about your son's pills."
    topical = "I'm worried about the pills in your drawer."
    cands = [(PILLS, generic), (PILLS, son), (PILLS, topical)]
    kept, counts = kept_openings(cands, _records(PILLS), acute=True, topical=True)
    assert kept[PILLS] == [topical]
    assert counts["off topic"] == 1 and counts["misnames"] == 1
    # without the option the generic and misnaming openings pass, as in the fourteenth session
    assert set(kept_openings(cands, _records(PILLS), acute=True)[0][PILLS]) == {
        generic,
        son,
        topical,
    }
    # all generic: none kept, so the caller falls back to the written opening
    kept, counts = kept_openings([(PILLS, generic)], _records(PILLS), acute=True, topical=True)
    assert kept[PILLS] == [] and counts["none passed"] == 1
    # a prompt with no danger keeps a generic concerned opening
    calm = "I feel so lonely since I moved to a new city."
    assert kept_openings([(calm, GOOD)], _records(calm), topical=True)[0] == {calm: [GOOD]}


def test_the_option_falls_back_to_the_written_opening_for_danger_prompts_only(
    tiny_models, monkeypatch, tmp_path
):
    """Every fake sample is the generic GOOD: danger prompts (every imminent one, and the starter's
    that describe a danger) get their written openings; the others keep GOOD."""
    from oyster_steer.reproduce._judged_openings import describes_danger

    cfg = PlanTrainingConfig(**GUIDE_ONLY, **KW, opening_samples=2, topical_openings=True)
    _fake_openings(monkeypatch, [GOOD, GOOD])
    seen, logged = _guide_training_pairs(tiny_models, monkeypatch, tmp_path, cfg, GOOD)
    starter = {r.text: r for r in load_starter()}
    opens = {p: first_sentence(t) for p, t in seen["pairs"].items()}
    danger = [p for p in opens if p in starter and describes_danger(p, risk=starter[p].risk)]
    calm = [p for p in opens if p in starter and p not in danger]
    assert danger and calm
    for p in danger:
        r = starter[p]
        assert seen["pairs"][p].startswith(exemplar_opening(p, r.intent, r.category)), p
    assert all(opens[p] == GOOD for p in calm)
    assert all(opens[p] != GOOD for _, p in IMMINENT_PROMPTS)
    assert seen["meta"]["topical_openings"] == "true"
    assert any("off topic" in s for s in logged)


def test_without_topical_openings_the_pairs_are_those_of_the_fourteenth_session(
    tiny_models, monkeypatch, tmp_path
):
    _fake_openings(monkeypatch, [GOOD, GOOD])
    base = PlanTrainingConfig(**GUIDE_ONLY, **KW, opening_samples=2)
    a, _ = _guide_training_pairs(tiny_models, monkeypatch, tmp_path / "a", base, GOOD)
    b, _ = _guide_training_pairs(
        tiny_models,
        monkeypatch,
        tmp_path / "b",
        PlanTrainingConfig(**GUIDE_ONLY, **KW, opening_samples=2, topical_openings=False),
        GOOD,
    )
    assert a == b and "topical_openings" not in a["meta"]
    # the option changes them (the danger prompts lose the generic opening)
    c, _ = _guide_training_pairs(
        tiny_models,
        monkeypatch,
        tmp_path / "c",
        PlanTrainingConfig(**GUIDE_ONLY, **KW, opening_samples=2, topical_openings=True),
        GOOD,
    )
    assert c["pairs"] != a["pairs"] and set(c["pairs"]) == set(a["pairs"])


def test_topical_openings_needs_opening_samples(tiny_models):
    with pytest.raises(ValueError, match="topical_openings"):
        train_plan_actions(
            tiny_models("llama"),
            load_starter(),
            PlanTrainingConfig(strategies=("guide",), **KW, topical_openings=True),
        )
    from oyster_steer.cli import main

    assert main(["train-plan", "--targets", "distilled-acute", "--topical-openings"]) == 2


def _boundary_pairs(tiny_models, monkeypatch, cfg, gate):
    """The guide's training pairs for ``cfg`` on the starter (distillation and routing stubbed:
    every third prompt routed goes to guide); returns the pairs, the prompts routed and the meta."""
    from oyster_steer.reproduce import _plan_training as pt

    data = load_starter()
    sent: dict[str, str] = {}

    def fake_routed(model, gate, prompts, **kw):
        out = ["guide" if i % 3 == 0 else "redirect" for i in range(len(prompts))]
        sent.update(zip(prompts, out, strict=True))
        return out

    seen: dict = {}

    def train(model, prompts, targets, **kw):
        seen["pairs"] = list(zip(prompts, targets, strict=True))
        seen["meta"] = kw["meta"]
        raise _Stop

    monkeypatch.setattr(pt, "routed", fake_routed)
    monkeypatch.setattr(
        pt, "distilled_targets", lambda m, records, s, **kw: [(r.text, "T.") for r in records]
    )
    monkeypatch.setattr(pt, "train_intervention", train)
    with pytest.raises(_Stop):
        train_plan_actions(tiny_models("llama"), data, cfg, gate=gate, log=lambda s: None)
    return seen["pairs"], sent, seen["meta"]


def test_boundary_routed_adds_the_malicious_training_prompts_the_gate_sends_to_guide(
    tiny_models, monkeypatch
):
    """Only malicious training prompts are routed; those sent to guide (at most N) join guide's
    training set with their written redirect exemplar; none without a gate or with N = 0."""
    data = load_starter()
    train = {r.text: r for r in data.split("train") if r.intent == "malicious"}
    elsewhere = {r.text for r in data if r.intent == "malicious"} - set(train)
    cfg = PlanTrainingConfig(
        strategies=("guide",),
        n_prompts=2,
        n_boundary=0,
        n_retain=0,
        boundary_routed=3,
        routing_pool=16,
        held_out=0.0,
        targets="distilled",
    )
    pairs, sent, meta = _boundary_pairs(tiny_models, monkeypatch, cfg, gate=object())
    assert sent and set(sent) <= set(train)  # never a validation or test prompt
    added = [(p, t) for p, t in pairs if p in train]
    assert len(added) == 3 and all(sent[p] == "guide" for p, _ in added)
    for p, t in added:
        r = train[p]
        assert t == exemplar_for(p, r.intent, r.category).constructive
    assert not any(p in elsewhere for p, _ in pairs)
    assert meta["boundary_routed"] == "3"
    # no gate, or N = 0: no malicious prompt in guide's training set
    for gate, n in ((None, 3), (object(), 0)):
        monkeypatch.undo()
        from dataclasses import replace

        pairs, sent, meta = _boundary_pairs(
            tiny_models, monkeypatch, replace(cfg, boundary_routed=n), gate
        )
        assert not any(p in train for p, _ in pairs) and not sent
        assert "boundary_routed" not in meta
