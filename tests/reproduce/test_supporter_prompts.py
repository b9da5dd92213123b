"""The training-only peer-support prompts (``train-plan --extra-guide-prompts
imminent+calm+supporter``): comments by someone supporting another person, never in the data's
splits nor near the unseen or test prompts, each with a written target that speaks to the
supporter and carries no urgent pointer; and the set that adds them, which leaves out the calm
twins of farewell acts."""

from __future__ import annotations

import re

import pytest
from test_calm_prompts import _assert_training_only, _fake_distilled, _sentences

from oyster_steer.data import normalize_text
from oyster_steer.eval._harm import acute_risk
from oyster_steer.eval._rules import has_method_detail, urgent_pointer
from oyster_steer.reproduce._calm_prompts import CALM_PROMPTS, FAREWELL_TWINS, calm_records
from oyster_steer.reproduce._imminent_prompts import IMMINENT_PROMPTS
from oyster_steer.reproduce._judged_openings import opening_problems
from oyster_steer.reproduce._plan_training import (
    EXTRA_GUIDE_PROMPTS,
    PlanTrainingConfig,
    check_extra_guide_prompts,
    extra_guide_targets,
)
from oyster_steer.reproduce._supporter_prompts import (
    SUPPORTER_OPENINGS,
    SUPPORTER_PROMPTS,
    supporter_records,
)

_PROMPTS = [p for p, _ in SUPPORTER_PROMPTS]
_SET = "imminent+calm+supporter"
_SET2 = "imminent+calm+supporter2"


def test_the_prompts_are_distinct_records_naming_no_method_or_quantity():
    records = supporter_records()
    assert 15 <= len(records) == len(SUPPORTER_PROMPTS) <= 20
    assert len({normalize_text(r.text) for r in records}) == len(records)
    assert {(r.intent, r.risk, r.source, r.meta["calm"]) for r in records} == {
        ("borderline", "sensitive", "supporter-train", "supporter")
    }
    texts = [t for pair in SUPPORTER_PROMPTS for t in pair]
    assert not [t for t in texts if has_method_detail(t)]
    assert not [t for t in texts if re.search(r"\d", t)]


@pytest.mark.parametrize("prompt,target", SUPPORTER_PROMPTS)
def test_each_target_speaks_to_the_supporter_with_no_urgent_pointer(prompt, target):
    assert acute_risk(prompt) is None
    assert not urgent_pointer(target), target
    # about another person: the target names them (them / her / him), not only "you"
    assert re.search(r"\b(?:them|they|her|she|him|he|his)\b", target, re.I), target
    # and ends by asking how the supporter is doing
    assert _sentences(target)[-1].startswith("How are you") and target.endswith("?"), target
    assert not re.search(r"\byour (?:plans?|feelings of|thoughts of)\b", target, re.I)


def test_some_name_suicide_in_another_persons_words():
    """The contrast the guide lacked: a peer's comment that names suicide is not the user in
    danger now (the tenth session's guide gave "DO NOT.why does your brother want to kill
    himself?" a crisis line "right now")."""
    named = [p for p in _PROMPTS if re.search(r"suicid|killing himself|miss her", p, re.I)]
    assert len(named) >= 3


def test_the_prompts_are_not_in_the_data_and_share_no_five_words_with_the_test_or_unseen():
    _assert_training_only(list(_PROMPTS))


def test_the_farewell_twins_are_calm_prompts_and_the_rest_name_no_farewell_act():
    calm_texts = [p for _, p, _ in CALM_PROMPTS]
    assert set(calm_texts) > FAREWELL_TWINS and len(FAREWELL_TWINS) == 10
    kept = [r.text for r in calm_records(farewell_twins=False)]
    assert kept == [t for t in calm_texts if t not in FAREWELL_TWINS]  # order kept
    farewell = re.compile(
        r"\b(?:goodbye|letter|giv(?:e|ing)|will|burden|deleted|accounts?|going-away|look(?:ing)? after (?:my|your|his|her) (?:dog|cat|pet))\b",
        re.I,
    )
    assert not [t for t in kept if farewell.search(t)]
    assert all(farewell.search(t) for t in FAREWELL_TWINS)


def test_the_set_is_imminent_the_kept_calm_and_the_supporters_and_the_old_sets_stay():
    records = EXTRA_GUIDE_PROMPTS[_SET]()
    texts = [r.text for r in records]
    assert texts == [
        *(t for _, t in IMMINENT_PROMPTS),
        *(p for _, p, _ in CALM_PROMPTS if p not in FAREWELL_TWINS),
        *_PROMPTS,
    ]
    assert set(EXTRA_GUIDE_PROMPTS) == {"imminent", "imminent+calm", _SET, _SET2}
    assert len(EXTRA_GUIDE_PROMPTS["imminent+calm"]()) == len(IMMINENT_PROMPTS) + len(CALM_PROMPTS)
    check_extra_guide_prompts(
        PlanTrainingConfig(targets="distilled-acute", extra_guide_prompts=_SET)
    )
    with pytest.raises(ValueError, match="distilled-acute"):
        check_extra_guide_prompts(PlanTrainingConfig(targets="distilled", extra_guide_prompts=_SET))


def test_supporters_get_their_written_targets_and_only_imminent_ones_are_sampled(
    tiny_models, monkeypatch, tmp_path
):
    calls = _fake_distilled(monkeypatch)
    cfg = PlanTrainingConfig(targets="distilled-acute", extra_guide_prompts=_SET)
    pairs = extra_guide_targets(
        tiny_models("llama"), EXTRA_GUIDE_PROMPTS[_SET](), cfg, targets_cache=tmp_path / "t.json"
    )
    assert calls == [[t for _, t in IMMINENT_PROMPTS]]  # the same key as "imminent" alone
    got = dict(pairs)
    assert all(got[p] == t for p, t in SUPPORTER_PROMPTS)
    assert not [p for p in _PROMPTS if urgent_pointer(got[p])]
    assert all(urgent_pointer(_sentences(got[t])[1]) for _, t in IMMINENT_PROMPTS)
    assert not FAREWELL_TWINS & set(got)


def test_the_cli_takes_the_new_set():
    from oyster_steer.cli import main

    assert main(["train-plan", "--extra-guide-prompts", _SET]) == 2  # refused: needs the recipe


_OTHER = re.compile(
    r"\b(?:them|they|their|themselves|her|she|him|he|his|someone|your (?:brother|roommate|"
    r"girlfriend|coworker|mate|cousin|friend))\b",
    re.I,
)


@pytest.mark.parametrize(
    "record,old", list(zip(supporter_records(opening_first=True), SUPPORTER_PROMPTS, strict=True))
)
def test_supporter2_targets_open_on_the_supporter_and_the_other_person(record, old):
    """The twelfth session's set: the first sentence says what the supporter (you) does for the
    other person, in one pattern; the rest of the eleventh session's target is kept, and the
    constraints above hold for the new target too."""
    target = record.meta["target"]
    first, rest = _sentences(target)[0], _sentences(target)[1:]
    assert re.search(r"\bof you to\b", first) and _OTHER.search(first), first
    assert rest == _sentences(old[1])[1:] and first != _sentences(old[1])[0]
    assert not urgent_pointer(target) and not has_method_detail(target)
    assert not re.search(r"\d", target)
    assert _sentences(target)[-1].startswith("How are you") and target.endswith("?")
    assert opening_problems(record.text, first, sampled=False) == []


def test_supporter2_changes_only_the_supporter_targets_and_the_old_set_stays():
    assert len(SUPPORTER_OPENINGS) == len(SUPPORTER_PROMPTS)
    old, new = EXTRA_GUIDE_PROMPTS[_SET](), EXTRA_GUIDE_PROMPTS[_SET2]()
    assert [r.text for r in old] == [r.text for r in new]
    changed = [r.text for r, n in zip(old, new, strict=True) if r.meta != n.meta]
    assert changed == _PROMPTS
    assert [r.meta["target"] for r in supporter_records()] == [t for _, t in SUPPORTER_PROMPTS]
