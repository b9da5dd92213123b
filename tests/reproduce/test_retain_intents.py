"""``train-plan --retain-intents`` (sixteenth session, act17).

act16's retain term kept the unsteered replies of benign and borderline training prompts, the
random ``n_retain`` draw and the gate's mis-routes; the borderline ones (peer comments in crisis
words) are what the guide should change, and act16's guide lost its grip. ``retain_intents``
restricts both draws to the named intents; each intent's draw is the one the default makes, so
the benign prompts retained are the same. The default keeps today's pairs."""

from __future__ import annotations

import hashlib

import pytest

from oyster_steer.data import load_starter
from oyster_steer.reproduce import _plan_training as pt
from oyster_steer.reproduce._plan_training import PlanTrainingConfig, train_plan_actions

CFG = dict(
    strategies=("guide",),
    n_prompts=2,
    n_boundary=0,
    n_retain=8,
    retain_routed=40,
    routing_pool=32,
    held_out=0.0,
    targets="distilled",
)


class _Stop(Exception):
    pass


def _by_hash(text: str) -> str:
    """A stub gate that sends a prompt to guide by its text alone (not its place in the pool)."""
    return "guide" if hashlib.sha256(text.encode()).digest()[0] % 3 == 0 else "help"


def _retain_run(tiny_models, monkeypatch, **kw):
    """guide's retain pairs for ``PlanTrainingConfig(**CFG, **kw)`` on the starter, and the
    prompts the gate was asked about (distillation, routing, replies and training stubbed)."""
    asked: list[str] = []

    def fake_routed(model, gate, prompts, **_):
        asked.extend(prompts)
        return [_by_hash(p) for p in prompts]

    seen: dict[str, list[tuple[str, str]]] = {}

    def train(model, prompts, targets, *, retain=None, **_):
        seen["retain"] = list(zip(*retain, strict=True)) if retain else []
        raise _Stop

    monkeypatch.setattr(pt, "routed", fake_routed)
    monkeypatch.setattr(
        pt, "distilled_targets", lambda m, records, s, **_: [(records[0].text, "T.")]
    )
    monkeypatch.setattr(
        pt, "retain_replies", lambda m, records: [(r.text, f"R:{r.text}") for r in records]
    )
    monkeypatch.setattr(pt, "train_intervention", train)
    logged: list[str] = []
    with pytest.raises(_Stop):
        train_plan_actions(
            tiny_models("llama"),
            load_starter(),
            PlanTrainingConfig(**CFG, **kw),
            gate=object(),
            log=logged.append,
        )
    return seen["retain"], asked, logged


def _intents():
    return {r.text: r.intent for r in load_starter().split("train")}


def test_the_default_retains_benign_and_borderline_as_before(tiny_models, monkeypatch):
    default, asked, _ = _retain_run(tiny_models, monkeypatch)
    named, asked_named, _ = _retain_run(
        tiny_models, monkeypatch, retain_intents=("borderline", "benign")
    )
    # naming both (in any order) is the default, pair for pair, routing pool for routing pool
    assert named == default and asked_named == asked
    # the pre-flag draw: n_retain // 2 per intent (benign, then borderline), then the mis-routes
    model, train = tiny_models("llama"), load_starter().split("train")
    cfg = PlanTrainingConfig(**CFG)
    drawn = [
        r.text
        for intent in ("benign", "borderline")
        for r in pt._sample(model, train, intent, 4, cfg.seed, cfg.max_prompt_tokens)
    ]
    assert [p for p, _ in default[: len(drawn)]] == drawn
    intents = _intents()
    assert {intents[p] for p, _ in default} == {"benign", "borderline"}
    assert {intents[p] for p in asked} == {"benign", "borderline"}
    assert all(r == f"R:{p}" for p, r in default)


def test_benign_only_retains_no_borderline_prompt_and_the_same_benign_ones(
    tiny_models, monkeypatch
):
    default, asked, _ = _retain_run(tiny_models, monkeypatch)
    benign, asked_benign, logged = _retain_run(tiny_models, monkeypatch, retain_intents=("benign",))
    intents = _intents()
    assert benign and {intents[p] for p, _ in benign} == {"benign"}
    # the gate is asked only about the benign half of the default's pool, in the same order
    assert asked_benign == [p for p in asked if intents[p] == "benign"]
    # the benign prompts retained (random draw and mis-routes) are the default's, no more
    assert benign == [(p, r) for p, r in default if intents[p] == "benign"]
    misroutes = [p for p in asked_benign if _by_hash(p) == "guide"]
    assert misroutes and set(misroutes) <= {p for p, _ in benign}
    assert any("of 16 benign training prompts to it" in s for s in logged), logged


@pytest.mark.parametrize("bad", [("benign", "vulnerable"), ("malicious",), ()])
def test_an_unknown_retain_intent_names_the_allowed_ones(tiny_models, bad):
    with pytest.raises(ValueError, match=r"each must be one of benign, borderline"):
        train_plan_actions(
            tiny_models("llama"),
            load_starter(),
            PlanTrainingConfig(**CFG, retain_intents=bad),
            log=lambda s: None,
        )


def test_the_cli_flag_rejects_an_unknown_intent(capsys):
    from oyster_steer.cli import main

    assert main(["train-plan", "--retain-intents", "benign,vulnerable"]) == 2
    err = capsys.readouterr().err
    assert "--retain-intents 'benign,vulnerable'" in err
    assert "each must be one of benign, borderline" in err
