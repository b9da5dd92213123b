"""The training-only prompts of imminent danger (``train-plan --extra-guide-prompts imminent``):
written without method detail, never in the data's splits, added to the guide's training
population only, each with an urgent-first target whose pointer fits who is in danger."""

from __future__ import annotations

import json
import re

import pytest

from oyster_steer.data import load_starter, normalize_text
from oyster_steer.eval._rules import has_method_detail, urgent_pointer
from oyster_steer.reproduce._imminent_prompts import (
    IMMINENT_KINDS,
    IMMINENT_PROMPTS,
    imminent_records,
)
from oyster_steer.reproduce._plan_training import (
    EXTRA_GUIDE_PROMPTS,
    PlanTrainingConfig,
    check_extra_guide_prompts,
    train_plan_actions,
)
from oyster_steer.reproduce._urgent_targets import imminent_opening, urgent_target


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text)


def test_the_prompts_are_vulnerable_distinct_of_a_known_kind_and_name_no_method():
    records = imminent_records()
    assert len(records) == len(IMMINENT_PROMPTS) >= 30
    assert len({normalize_text(r.text) for r in records}) == len(records)
    assert {r.meta["imminent"] for r in records} == IMMINENT_KINDS
    assert {(r.intent, r.risk, r.source) for r in records} == {
        ("vulnerable", "harmful", "imminent-train")
    }
    assert not [r.text for r in records if has_method_detail(r.text)]
    # no quantities: a number of pills or a dose is operational detail
    assert not [r.text for r in records if re.search(r"\d", r.text)]


def test_the_prompts_are_not_in_the_data_the_probes_and_eval_read():
    from oyster_steer.data import load_all

    texts = {normalize_text(t) for _, t in IMMINENT_PROMPTS}
    for split in ("train", "validation", "test"):
        seen = {normalize_text(r.text) for r in load_all().split(split)}
        assert not texts & seen, split
    assert not texts & {normalize_text(r.text) for r in load_starter()}


@pytest.mark.parametrize("kind,text", IMMINENT_PROMPTS)
def test_each_prompt_gets_an_urgent_pointer_in_its_second_sentence(kind, text):
    target = urgent_target(text, imminent_opening(text, [], kind), kind=kind)
    first, second, *rest = _sentences(target)
    assert urgent_pointer(second), second
    assert rest and not has_method_detail(target)
    if kind == "someone":
        assert second.startswith("If anyone is in immediate danger")
    if kind == "taken":
        assert "poison control" in second
    if kind == "abuse":
        assert "these thoughts" not in target and "emergency number" in second


def test_an_opening_that_normalises_agrees_or_misreads_is_passed_over():
    taken = "I took too many of my pills earlier and I'm sleepy."
    sampled = [
        "It sounds like you're experiencing side effects, but it's completely normal to feel tired.",
        "I'm glad you reached out about your friend's safety.",
        "That sounds really hard, and you're right, this can happen to anyone.",
        "I'm so sorry you're feeling this way right now.",
    ]
    assert imminent_opening(taken, sampled, "taken") == sampled[3]
    fallback = imminent_opening(taken, sampled[:3], "taken")
    assert fallback not in sampled and fallback.endswith(".")
    # someone else's danger may name them
    brother = "My brother locked himself in and said goodbye."
    own = "It sounds like your brother's safety matters most right now."
    assert imminent_opening(brother, [own], "someone") == own


def test_a_kind_outside_the_set_is_refused():
    with pytest.raises(ValueError, match="kind='later'"):
        urgent_target("x.", "Opening. Rest.", kind="later")


def test_the_option_needs_a_known_set_and_the_urgent_recipe():
    check_extra_guide_prompts(PlanTrainingConfig())
    check_extra_guide_prompts(
        PlanTrainingConfig(targets="distilled-urgent", extra_guide_prompts="imminent")
    )
    with pytest.raises(ValueError, match="distilled-urgent"):
        check_extra_guide_prompts(PlanTrainingConfig(extra_guide_prompts="imminent"))
    with pytest.raises(ValueError, match="not a prompt set"):
        check_extra_guide_prompts(
            PlanTrainingConfig(targets="distilled-urgent", extra_guide_prompts="nope")
        )


class _Stop(Exception):
    pass


def test_the_extra_prompts_join_the_guide_only_and_the_other_cached_targets_are_reused(
    tiny_models, monkeypatch, tmp_path
):
    from oyster_steer.reproduce import _plan_training as pt

    calls: list[list[str]] = []
    seen: dict = {}

    def distilled(model, records, strategy, **kw):
        calls.append([r.text for r in records])
        return [(r.text, f"I'm sorry you're hurting. More about {r.text[:10]}.") for r in records]

    def train(model, prompts, targets, **kw):
        seen["pairs"] = list(zip(prompts, targets, strict=True))
        raise _Stop

    monkeypatch.setattr(pt, "distilled_targets", distilled)
    monkeypatch.setattr(pt, "train_intervention", train)
    cache = tmp_path / "targets.json"
    model = tiny_models("llama")
    base = dict(strategies=("guide",), n_prompts=64, n_boundary=0, n_retain=0, held_out=0.0)
    with pytest.raises(_Stop):
        cfg = PlanTrainingConfig(targets="distilled-urgent", **base)
        train_plan_actions(model, load_starter(), cfg, log=lambda s: None, targets_cache=cache)
    without = dict(seen["pairs"])
    stored = json.loads(cache.read_text())
    calls.clear()
    cfg = PlanTrainingConfig(targets="distilled-urgent", extra_guide_prompts="imminent", **base)
    with pytest.raises(_Stop):
        train_plan_actions(model, load_starter(), cfg, log=lambda s: None, targets_cache=cache)
    with_extra = dict(seen["pairs"])
    # the data's prompts: read from the cache as they were (only the new set was sampled)
    assert calls == [[t for _, t in IMMINENT_PROMPTS]]
    assert {p: t for p, t in with_extra.items() if p in without} == without
    assert set(with_extra) - set(without) == {t for _, t in IMMINENT_PROMPTS}
    assert all(urgent_pointer(_sentences(with_extra[t])[1]) for _, t in IMMINENT_PROMPTS)
    assert set(stored) < set(json.loads(cache.read_text()))  # appended under its own key
    # the data itself is untouched: the extra prompts are in none of its splits
    data = load_starter()
    assert not {t for _, t in IMMINENT_PROMPTS} & {r.text for r in data}
    assert {"imminent", "imminent+calm"} <= set(EXTRA_GUIDE_PROMPTS)


def test_the_cli_refuses_the_option_without_the_urgent_recipe(capsys):
    from oyster_steer.cli import main

    assert main(["train-plan", "--extra-guide-prompts", "imminent"]) == 2  # before any model load
    assert "needs --targets distilled-urgent" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-plan", "--extra-guide-prompts", "other"])


@pytest.mark.parametrize("pool", ["last", "last+mean"])
def test_the_retain_routed_gate_reads_the_features_its_probe_was_fit_on(pool):
    """``train-plan --retain-routed`` built its gate reading the last token whatever the probe's
    pool, which the shipped last+mean intent probe refuses."""
    import torch

    from oyster_steer.cli._train_plan import routing_gate
    from oyster_steer.control import Policy
    from oyster_steer.data import INTENTS
    from oyster_steer.probes._probe import LinearProbe

    width = 2 * 8 if pool == "last+mean" else 8
    probe = LinearProbe(
        "blocks.1.hook_resid_post",
        INTENTS,
        torch.randn(len(INTENTS), width),
        torch.zeros(len(INTENTS)),
        torch.zeros(width),
        torch.ones(width),
        meta={"pool": pool},
    )
    assert routing_gate(probe, Policy()).read == pool
    if pool == "last+mean":  # what the command built before: refused
        from oyster_steer.control import ControlPlan

        with pytest.raises(ValueError, match="pass read='last\\+mean'"):
            ControlPlan(probe, [], policy=Policy())
