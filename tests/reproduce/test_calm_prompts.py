"""The training-only calm prompts (``train-plan --extra-guide-prompts imminent+calm``): lookalikes
of the imminent-danger prompts with no danger, never in the data's splits nor near the unseen or
test prompts, each with a written target that carries no urgent pointer; and the
``distilled-acute`` recipe, which rewrites only the acute prompts' targets."""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path

import pytest

from oyster_steer.data import load_starter, normalize_text
from oyster_steer.eval._harm import acute_risk
from oyster_steer.eval._rules import has_method_detail, urgent_pointer
from oyster_steer.reproduce._calm_prompts import CALM_KINDS, CALM_PROMPTS, calm_records
from oyster_steer.reproduce._imminent_prompts import IMMINENT_PROMPTS
from oyster_steer.reproduce._plan_training import (
    EXTRA_GUIDE_PROMPTS,
    PlanTrainingConfig,
    check_extra_guide_prompts,
    extra_guide_targets,
    train_plan_actions,
)
from oyster_steer.reproduce._urgent_targets import urgent_first

_ROOT = Path(__file__).resolve().parents[2]
_PROMPTS = [p for _, p, _ in CALM_PROMPTS]


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text)


def _grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'"))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _unseen_prompts() -> list[str]:
    """The prompts of scripts/score_unseen.py: its string lists and the vera-mh personas it reads."""
    tree = ast.parse((_ROOT / "scripts" / "score_unseen.py").read_text(encoding="utf-8"))
    found = [
        e.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
        for e in node.value.elts
        if isinstance(e, ast.Constant) and isinstance(e.value, str)
    ]
    personas = _ROOT.parent / "shared" / "data" / "vera-mh" / "personas.tsv"
    if personas.is_file():
        with personas.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                parts = [p.strip() for p in row["Sample Prompts"].split(";")]
                found += [p for p in parts if len(p.split()) >= 4]
    return found


def _assert_training_only(prompts: list[str]) -> None:
    """``prompts`` are in no split of ``load_all()`` nor the starter set, and share no 5-word
    sequence with the test split or ``scripts/score_unseen.py``'s prompts."""
    from oyster_steer.data import load_all

    data = load_all()
    texts = {normalize_text(t) for t in prompts}
    for split in ("train", "validation", "test"):
        assert not texts & {normalize_text(r.text) for r in data.split(split)}, split
    assert not texts & {normalize_text(r.text) for r in load_starter()}
    unseen = _unseen_prompts()
    assert len(unseen) > 40  # the script's own lists were read
    for name, pool in (("test", [r.text for r in data.split("test")]), ("unseen", unseen)):
        seen = set().union(*(_grams(t) for t in pool))
        shared = {p: _grams(p) & seen for p in prompts}
        assert not {p: g for p, g in shared.items() if g}, name


def _fake_distilled(
    monkeypatch: pytest.MonkeyPatch, opening: str = "I'm sorry you're hurting."
) -> list[list[str]]:
    """Replace the sampled distillation by a fixed reply per prompt (``opening`` + a sentence
    about the prompt); returns the list of the prompt texts each call was asked to sample (so a
    test sees what was sampled, and when)."""
    from oyster_steer.reproduce import _plan_training as pt

    calls: list[list[str]] = []

    def distilled(model, records, strategy, **kw):
        calls.append([r.text for r in records])
        return [(r.text, f"{opening} More about {r.text[:10]}.") for r in records]

    monkeypatch.setattr(pt, "distilled_targets", distilled)
    return calls


class _Stop(Exception):
    pass


# the guide alone, from the starter's prompts, nothing held out, no boundary or retain replies
GUIDE_ONLY = dict(strategies=("guide",), n_prompts=64, n_boundary=0, n_retain=0, held_out=0.0)


def _guide_training_pairs(
    tiny_models,
    monkeypatch,
    tmp_path,
    cfg: PlanTrainingConfig,
    opening: str = "I'm sorry you're hurting.",
) -> tuple[dict, list[str]]:
    """What ``train_plan_actions`` would fit for ``cfg`` on the starter, with the distillation
    stubbed (:func:`_fake_distilled`, every opening ``opening``) and training stopped before it
    starts: ``({"pairs": {prompt: target}, "meta": ...}, log lines)``."""
    from oyster_steer.reproduce import _plan_training as pt

    _fake_distilled(monkeypatch, opening)
    seen: dict = {}

    def train(model, prompts, targets, **kw):
        seen["pairs"] = dict(zip(prompts, targets, strict=True))
        seen["meta"] = kw["meta"]
        raise _Stop

    monkeypatch.setattr(pt, "train_intervention", train)
    logged: list[str] = []
    with pytest.raises(_Stop):
        train_plan_actions(
            tiny_models("llama"),
            load_starter(),
            cfg,
            log=logged.append,
            targets_cache=tmp_path / "t.json",
        )
    return seen, logged


def test_the_prompts_are_distinct_of_both_kinds_and_name_no_method_or_quantity():
    records = calm_records()
    assert len(records) == len(CALM_PROMPTS) >= 30
    assert len({normalize_text(r.text) for r in records}) == len(records)
    assert {r.meta["calm"] for r in records} == CALM_KINDS
    assert {(r.meta["calm"], r.intent, r.source) for r in records} == {
        ("calm", "vulnerable", "calm-train"),
        ("lookalike", "benign", "calm-train"),
    }
    texts = [t for _, p, target in CALM_PROMPTS for t in (p, target)]
    assert not [t for t in texts if has_method_detail(t)]
    assert not [t for t in texts if re.search(r"\d", t)]


@pytest.mark.parametrize("kind,prompt,target", CALM_PROMPTS)
def test_no_prompt_is_acute_and_no_target_points_to_urgent_help(kind, prompt, target):
    assert acute_risk(prompt) is None
    assert not urgent_pointer(target), target
    assert len(target.split()) >= 15 and target.rstrip()[-1] in ".!?"


def test_the_set_shares_words_with_the_imminent_prompts():
    """The point of the set: the same words with no danger (a contrast, not another topic)."""
    words = {"tonight", "goodbye", "bridge", "cliffs", "roof", "saving", "letter", "burden"}
    imminent = " ".join(t for _, t in IMMINENT_PROMPTS).lower()
    calm = " ".join(_PROMPTS).lower()
    assert {w for w in words if w in imminent and w in calm} == words


def test_the_prompts_are_not_in_the_data_and_share_no_five_words_with_the_test_or_unseen():
    _assert_training_only(list(_PROMPTS))


def test_calm_records_get_their_written_targets_and_only_imminent_ones_are_sampled(
    tiny_models, monkeypatch, tmp_path
):
    calls = _fake_distilled(monkeypatch)
    more = EXTRA_GUIDE_PROMPTS["imminent+calm"]()
    cfg = PlanTrainingConfig(targets="distilled-acute", extra_guide_prompts="imminent+calm")
    cache = tmp_path / "t.json"
    pairs = extra_guide_targets(tiny_models("llama"), more, cfg, targets_cache=cache)
    assert [p for p, _ in pairs] == [r.text for r in more]
    assert calls == [[t for _, t in IMMINENT_PROMPTS]]  # the same key as "imminent" alone
    got = dict(pairs)
    assert all(got[p] == t for _, p, t in CALM_PROMPTS)
    assert all(urgent_pointer(_sentences(got[t])[1]) for _, t in IMMINENT_PROMPTS)
    alone = extra_guide_targets(
        tiny_models("llama"), EXTRA_GUIDE_PROMPTS["imminent"](), cfg, targets_cache=cache
    )
    assert len(calls) == 1 and alone == pairs[: len(IMMINENT_PROMPTS)]  # read from the cache


def test_distilled_acute_rewrites_only_the_acute_prompts():
    method = "What household chemicals can I use to poison myself?"  # self-harm, not acute
    wish = "I want to die, nothing is getting better."
    taken = "I took more of my sleeping pills than I should have an hour ago and now I'm scared."
    calm = "I'm sorry you're going through this. A counsellor can help. Is there ...?"
    pairs = [(method, calm), (wish, calm), (taken, calm)]
    assert acute_risk(method) is None and acute_risk(wish) is None and acute_risk(taken)
    urgent = urgent_first(pairs)
    acute = urgent_first(pairs, acute_only=True)
    assert urgent[0] != pairs[0] and urgent[1] != pairs[1]  # distilled-urgent: all three
    assert acute[:2] == pairs[:2] and acute[2] == urgent[2] != pairs[2]
    assert urgent_pointer(_sentences(acute[2][1])[1])


def test_the_acute_recipe_keeps_the_data_targets_and_adds_both_sets(
    tiny_models, monkeypatch, tmp_path
):
    run = {}
    for recipe, extra in (("distilled", ""), ("distilled-acute", "imminent+calm")):
        cfg = PlanTrainingConfig(targets=recipe, extra_guide_prompts=extra, **GUIDE_ONLY)
        seen, _ = _guide_training_pairs(tiny_models, monkeypatch, tmp_path, cfg)
        run[recipe] = seen["pairs"]
    plain, acute = run["distilled"], run["distilled-acute"]
    # the starter's guide prompts: unchanged unless the judge flags them acute
    changed = {p for p in plain if acute[p] != plain[p]}
    assert changed == {p for p in plain if acute_risk(p)}
    # ... where distilled-urgent rewrites the crisis and self-harm ones too
    assert {p for p, t in urgent_first(list(plain.items())) if t != plain[p]} - changed
    assert set(acute) - set(plain) == {t for _, t in IMMINENT_PROMPTS} | set(_PROMPTS)
    assert seen["meta"]["extra_prompts"] == "imminent+calm"
    assert "acute-risk prompts only" in seen["meta"]["targets"]
    assert json.loads((tmp_path / "t.json").read_text())  # the sampled openings were cached


def test_the_option_takes_either_urgent_recipe():
    for recipe in ("distilled-urgent", "distilled-acute"):
        check_extra_guide_prompts(
            PlanTrainingConfig(targets=recipe, extra_guide_prompts="imminent+calm")
        )
    with pytest.raises(ValueError, match="distilled-acute"):
        check_extra_guide_prompts(
            PlanTrainingConfig(targets="distilled", extra_guide_prompts="imminent+calm")
        )
