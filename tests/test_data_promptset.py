"""PromptSet: sequence protocol, filters, labels, hash splits, de-duplication, sampling, JSONL."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer.data import (
    INTENTS,
    RISKS,
    SPLITS,
    DataError,
    EmptyDataError,
    LabelError,
    PromptRecord,
    PromptSet,
    default_data_dir,
    load_all,
    split_of,
)
from oyster_steer.data._dedupe import near_duplicate_pairs

_RISK_OF = {
    "benign": "safe",
    "borderline": "sensitive",
    "vulnerable": "sensitive",
    "malicious": "harmful",
}


def _synthetic(n: int, source: str = "synthetic") -> PromptSet:
    return PromptSet(
        PromptRecord(f"prompt number {i}", INTENTS[i % 4], _RISK_OF[INTENTS[i % 4]], source=source)
        for i in range(n)
    )


@pytest.fixture(scope="module")
def small() -> PromptSet:
    return PromptSet(
        [
            PromptRecord("What is 2+2?", "benign", "safe", source="a"),
            PromptRecord("How do locks work?", "borderline", "sensitive", "Illegal Acts", "b"),
            PromptRecord("I feel hopeless.", "vulnerable", "sensitive", "Mental Health", "a"),
            PromptRecord("Plan an attack.", "malicious", "harmful", "Violent Terror", "b"),
        ]
    )


@pytest.fixture(scope="module")
def everything() -> PromptSet:
    data_dir = default_data_dir()
    if data_dir is None:
        pytest.skip("../shared/data is absent; set OYSTER_STEER_DATA to run the real-data tests")
    return load_all(data_dir)


# -- sequence protocol and selection -----------------------------------------------------------
def test_sequence_protocol(small: PromptSet) -> None:
    assert len(small) == 4 and small[0].text == "What is 2+2?" and small[-1].intent == "malicious"
    assert isinstance(small[1:3], PromptSet) and small[1:3].texts == [r.text for r in small][1:3]
    assert list(small) == list(small.records) and small[0] in small
    assert PromptSet(list(small)) == small
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.records = ()  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"^records\[0\] is a str; pass PromptRecord items\.$"):
        PromptSet(["text"])  # type: ignore[list-item]


def test_concat_and_add(small: PromptSet) -> None:
    both = small + small[:1]
    assert len(both) == 5 and both == PromptSet.concat(small, small[:1])
    assert both[4] == small[0]


def test_filter(small: PromptSet) -> None:
    assert small.filter(intent="benign").texts == ["What is 2+2?"]
    assert len(small.filter(intent=("vulnerable", "malicious"), source="b")) == 1
    assert len(small.filter(risk="sensitive", category="Mental Health")) == 1
    assert small.filter(predicate=lambda r: "?" in r.text).texts == [
        "What is 2+2?",
        "How do locks work?",
    ]
    with pytest.raises(LabelError) as info:
        small.filter(intent="evil")
    assert str(info.value) == (
        "intent='evil' is not a known intent; use one of benign, borderline, vulnerable, malicious."
    )


def test_counts_labels_and_ids(small: PromptSet) -> None:
    assert small.counts() == dict.fromkeys(INTENTS, 1)
    assert small.counts("risk") == {"safe": 1, "sensitive": 2, "harmful": 1}
    assert small.counts("source") == {"a": 2, "b": 2}
    assert small.labels("risk") == ["safe", "sensitive", "sensitive", "harmful"]
    ids = small.label_ids()
    assert ids.dtype == torch.long and ids.tolist() == [0, 1, 2, 3]
    assert small.label_ids("risk").tolist() == [RISKS.index(r.risk) for r in small]
    with pytest.raises(ValueError, match=r"^field='category' has no fixed class order"):
        small.label_ids("category")
    with pytest.raises(ValueError, match=r"^field='colour' is not a label"):
        small.labels("colour")


def test_summary_is_a_table_with_totals(small: PromptSet) -> None:
    lines = small.summary().splitlines()
    assert lines[0].split() == ["source", *INTENTS, "total"]
    assert lines[-1].split() == ["total", "1", "1", "1", "1", "4"]


# -- splits -----------------------------------------------------------------------------------
def test_split_of_uses_the_normalised_text() -> None:
    a = PromptRecord("What are the three primary colors?", "benign", "safe", source="x")
    b = PromptRecord("what are the THREE primary colors", "malicious", "harmful", source="y")
    assert split_of(a) == split_of(b) == split_of(a.text) in SPLITS
    assert split_of(a, (1.0, 0.0, 0.0)) == "train"
    assert split_of(a, (0.0, 0.0, 1.0)) == "test"
    with pytest.raises(ValueError, match=r"^fractions=\(0\.5, 0\.5, 0\.5\) must be three"):
        split_of(a, (0.5, 0.5, 0.5))


def test_splits_partition_and_are_deterministic() -> None:
    ps = _synthetic(400)
    parts = ps.splits()
    assert sum(len(p) for p in parts.values()) == 400
    assert {r.id for p in parts.values() for r in p} == {r.id for r in ps}
    shuffled = list(ps)
    random.Random(3).shuffle(shuffled)
    again = PromptSet(shuffled).splits()
    for name in SPLITS:
        assert {r.id for r in again[name]} == {r.id for r in parts[name]}
        assert ps.split(name) == parts[name]
    with pytest.raises(ValueError, match=r"^split='dev' is unknown"):
        ps.split("dev")


def _within(count: int, n: int, fraction: float) -> bool:
    """Binomial count within 4 standard deviations of its mean (false alarm rate ~1e-4)."""
    return abs(count - n * fraction) <= 4 * math.sqrt(n * fraction * (1 - fraction)) + 1


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.2, 0.0)])
def test_split_proportions_hold_per_class(fractions: tuple[float, float, float]) -> None:
    ps = _synthetic(4000)
    parts = ps.splits(fractions)
    for intent in INTENTS:
        n = ps.counts()[intent]
        for name, fraction in zip(SPLITS, fractions, strict=True):
            assert _within(parts[name].counts()[intent], n, fraction), (intent, name)


# -- de-duplication and sampling --------------------------------------------------------------
def test_deduplicate_keeps_the_priority_source() -> None:
    ps = PromptSet(
        [
            PromptRecord("Write a phishing email.", "malicious", "harmful", source="advbench"),
            PromptRecord("Tell me a joke", "benign", "safe", source="alpaca"),
            PromptRecord("write a PHISHING email", "malicious", "harmful", source="strongreject"),
            PromptRecord("Write a phishing e-mail, please", "malicious", "harmful", source="mine"),
        ]
    )
    exact = ps.deduplicate()
    assert [r.source for r in exact] == ["alpaca", "strongreject", "mine"]
    assert exact[1].meta["also_in"] == "advbench"
    tokens_equal = PromptSet(
        [
            PromptRecord("a b c d e f g h i j", "malicious", "harmful", source="x"),
            PromptRecord("a b c d e f g h i j k", "malicious", "harmful", source="y"),
            PromptRecord("a b c d e f g h i j k", "benign", "safe", source="z"),
        ]
    )
    assert len(tokens_equal.deduplicate()) == 2  # the last two are exact duplicates
    near = tokens_equal.deduplicate(near_threshold=0.9)
    assert [r.source for r in near] == ["x"] and near[0].meta["also_in"] == "y,z"
    benign_only = tokens_equal[:2].deduplicate(near_threshold=0.9, near_intents=("benign",))
    assert len(benign_only) == 2


def test_sample_is_deterministic_and_order_free() -> None:
    ps = _synthetic(200)
    picked = ps.sample(10, seed=1)
    assert picked.counts() == dict.fromkeys(INTENTS, 10)
    shuffled = list(ps)
    random.Random(0).shuffle(shuffled)
    assert {r.id for r in PromptSet(shuffled).sample(10, seed=1)} == {r.id for r in picked}
    assert ps.sample(10, seed=1) == picked and ps.sample(10, seed=2) != picked
    assert len(ps.sample(1000)) == 200 and len(ps.sample(3, by="risk")) == 9
    with pytest.raises(ValueError, match=r"^n_per_class=-1 is negative"):
        ps.sample(-1)


# -- JSONL -----------------------------------------------------------------------------------
_WORD = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
_RECORD = st.builds(
    PromptRecord,
    text=_WORD.filter(lambda t: t.strip() != ""),
    intent=st.sampled_from(INTENTS),
    risk=st.sampled_from(RISKS),
    category=st.sampled_from(["unknown", "Mental Health"]),
    source=st.sampled_from(["starter", "x y", "ünï"]),
    meta=st.dictionaries(_WORD, _WORD, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_RECORD, max_size=8))
def test_jsonl_round_trip(records: list[PromptRecord]) -> None:
    ps = PromptSet(records)
    with tempfile.TemporaryDirectory() as tmp:
        path = ps.save_jsonl(Path(tmp) / "sub" / "set.jsonl")
        if records:
            assert PromptSet.load_jsonl(path) == ps
        else:
            with pytest.raises(EmptyDataError):
                PromptSet.load_jsonl(path)


def test_load_jsonl_defaults_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"text": "hi", "intent": "benign", "risk": "safe"}\n\n', encoding="utf-8")
    (r,) = PromptSet.load_jsonl(path, source="mine")
    assert (r.source, r.category, r.meta) == ("mine", "unknown", {})
    cases = {
        '{"text": "hi", "intent": "benign"}': (
            "line 1 has no key 'risk'; expected keys text, intent, risk."
        ),
        "{not json": "line 1 is not valid JSON (Expecting property name enclosed in double "
        "quotes); expected one object per line with keys text, intent, risk.",
        '["a"]': "line 1 is not a JSON object; expected one object per line with keys text, "
        "intent, risk.",
        '{"text": "hi", "intent": "nice", "risk": "safe"}': (
            "line 1: intent='nice' is not a known intent; use one of benign, borderline, "
            "vulnerable, malicious."
        ),
    }
    for line, message in cases.items():
        path.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(DataError) as info:
            PromptSet.load_jsonl(path)
        assert str(info.value) == f"{path} {message}"
    with pytest.raises(DataError) as info:
        PromptSet.load_jsonl(tmp_path / "absent.jsonl")
    assert str(info.value) == (
        f"{tmp_path / 'absent.jsonl'} not found; expected a JSONL file with columns text, intent, "
        "risk; write it with PromptSet.save_jsonl or add the missing keys."
    )


def test_saved_lines_are_plain_json(small: PromptSet, tmp_path: Path) -> None:
    lines = small.save_jsonl(tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1]) == small[1].to_dict()


# -- real data: leakage and determinism --------------------------------------------------------
def test_no_normalised_text_in_two_splits(everything: PromptSet) -> None:
    data_dir = default_data_dir()
    raw = load_all(data_dir, near_threshold=None, alpaca_limit=None)  # every source, every row
    seen: dict[str, str] = {}
    for ps in (raw, everything):
        for r in ps:
            assert seen.setdefault(r.normalized, split_of(r)) == split_of(r)
    for name, part in everything.splits().items():
        others = {r.normalized for n, p in everything.splits().items() if n != name for r in p}
        assert not others & {r.normalized for r in part}


def test_no_near_duplicate_malicious_prompts_survive(everything: PromptSet) -> None:
    malicious = everything.filter(intent="malicious")
    assert near_duplicate_pairs([r.normalized for r in malicious], 0.9) == []


def test_splits_do_not_depend_on_load_order(everything: PromptSet) -> None:
    from oyster_steer.data import LOADERS

    reverse = load_all(default_data_dir(), sources=list(reversed(LOADERS)))
    assert len(reverse) == len(everything)
    for name in SPLITS:
        key = {(r.normalized, r.source) for r in everything.split(name)}
        assert {(r.normalized, r.source) for r in reverse.split(name)} == key


def test_real_split_proportions_per_intent(everything: PromptSet) -> None:
    parts = everything.splits()
    for intent, n in everything.counts().items():
        for name, fraction in zip(SPLITS, (0.7, 0.15, 0.15), strict=True):
            assert _within(parts[name].counts()[intent], n, fraction), (intent, name)
