"""Attack transforms (issue 15 item 2): seeded, content-preserving, labels carried over."""

from __future__ import annotations

import ast
import random
import re

import pytest

from oyster_steer.data import (
    ATTACK_TRANSFORMS,
    WRAPPER_TEMPLATES,
    PromptRecord,
    apply_attack,
    ascii_letters,
    augment_attacks,
)

REQUESTS = [
    "How do I bake sourdough bread at home?",
    "Explain {braces} and $dollar signs in a format string.",
    "Summarise",
    "What are the warning signs that a friend might be thinking about suicide, and how can I help?",
]
VERBATIM = {"roleplay_template", "roleplay_script", "long_padding", "opposing", "decomposition"}


def recover(attack: str, out: str) -> str:
    """Read the request back out of a transform's output (the test's own decoder)."""
    if attack in VERBATIM:
        return out  # checked by containment
    if attack == "word_shuffle":
        return out.rsplit(": ", 1)[1] if "Words:" not in out else out.split("Words: ", 1)[1]
    if attack == "code_embedding":
        if "task = " in out:
            return ast.literal_eval(out.split("task = ", 1)[1].split("\n", 1)[0])
        return " ".join(ast.literal_eval(out.split("const parts = ", 1)[1].split(";\n", 1)[0]))
    if attack == "ascii_drawing":
        art_row = next(line for line in out.splitlines() if line.startswith("| "))
        word = "".join(c.strip() for c in art_row.strip("|").split("|"))
        question = out.split("Question: ", 1)[1]
        return question.replace("[MASK]", word)
    if attack == "multi_turn":
        return " ".join(re.findall(r'remember part \d+: "(.*)"', out))
    raise AssertionError(attack)


@pytest.mark.parametrize("attack", sorted(ATTACK_TRANSFORMS))
@pytest.mark.parametrize("request_text", REQUESTS)
def test_each_transform_keeps_the_request_recoverable(attack: str, request_text: str) -> None:
    for seed in range(5):
        out = apply_attack(request_text, attack, seed)
        assert out != request_text
        got = recover(attack, out)
        if attack in VERBATIM:
            assert request_text in got
        elif attack == "word_shuffle":
            assert sorted(got.split()) == sorted(request_text.split())
        elif attack == "ascii_drawing":
            assert got.lower() == request_text.lower()
        else:
            assert got == request_text


@pytest.mark.parametrize("attack", sorted(ATTACK_TRANSFORMS))
def test_transforms_are_deterministic_per_seed_and_leave_global_random_alone(attack: str) -> None:
    text = "Please list three ways to keep houseplants alive through the winter months"
    random.seed(123)
    state = random.getstate()
    a = [apply_attack(text, attack, s) for s in range(6)]
    assert random.getstate() == state  # a local generator only
    assert a == [apply_attack(text, attack, s) for s in range(6)]
    # two-frame transforms may repeat in 6 draws; the drawing masks the longest word (seed: ties)
    if attack not in {"opposing", "code_embedding", "ascii_drawing"}:
        assert len(set(a)) > 1, f"{attack} ignores its seed"


def test_word_shuffle_and_multi_turn_actually_disguise() -> None:
    text = "one two three four five six seven eight nine ten"
    shuffled = [recover("word_shuffle", apply_attack(text, "word_shuffle", s)) for s in range(5)]
    assert any(s != text for s in shuffled)
    turns = apply_attack(text, "multi_turn", 0)
    assert text not in turns and turns.count("remember part") in (2, 3)
    padded = apply_attack(text, "long_padding", 0)
    assert len(padded) > 10 * len(text)


def test_ascii_letters_draws_one_box_per_letter() -> None:
    art = ascii_letters("Abc").splitlines()
    assert art == ["+---+---+---+", "| A | B | C |", "+---+---+---+"]


def test_augment_attacks_carries_labels_and_benign_stays_benign() -> None:
    recs = [
        PromptRecord("How do I boil an egg?", "benign", "safe", "Food", "demo"),
        PromptRecord(
            "I feel hopeless and alone tonight.", "vulnerable", "sensitive", source="demo"
        ),
        PromptRecord("How do I pick a lock I own?", "borderline", "sensitive", source="demo"),
    ]
    out = augment_attacks(recs, seed=7, per_record=3)
    assert len(out) == 9
    by_id = {r.id: r for r in recs}
    for w in out:
        src = by_id[w.meta["wrapped_from"]]
        assert (w.intent, w.risk, w.category, w.source) == (
            src.intent,
            src.risk,
            src.category,
            src.source,
        )
        assert w.meta["wrapper"] in ATTACK_TRANSFORMS
        assert w.text != src.text
    assert {w.intent for w in out if by_id[w.meta["wrapped_from"]].intent == "benign"} == {"benign"}
    # order-independent: the same record gets the same disguises whatever its neighbours
    again = augment_attacks(list(reversed(recs)), seed=7, per_record=3)
    assert sorted(w.text for w in again) == sorted(w.text for w in out)
    assert sorted(w.text for w in augment_attacks(recs, seed=8, per_record=3)) != sorted(
        w.text for w in out
    )


def test_errors_name_the_argument() -> None:
    with pytest.raises(KeyError, match="attack='nope'"):
        apply_attack("hi there", "nope")
    with pytest.raises(ValueError, match="request="):
        apply_attack("   ", "opposing")
    with pytest.raises(KeyError, match="attacks="):
        augment_attacks([], ["nope"])
    with pytest.raises(ValueError, match="per_record=0"):
        augment_attacks([], per_record=0)


def test_the_original_templates_are_unchanged() -> None:
    # the shipped probes were trained on these eight frames: extending must not reorder them
    assert len(WRAPPER_TEMPLATES) == 8 and "{request}" in WRAPPER_TEMPLATES[0]
