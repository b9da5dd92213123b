"""PromptRecord, normalisation, ids, the Oyster categories and near-duplicate detection."""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer.core._errors import OysterError
from oyster_steer.data import (
    CATEGORY_MAPS,
    INTENTS,
    RISK_CATEGORIES,
    RISKS,
    DataError,
    LabelError,
    PromptRecord,
    default_data_dir,
    make_id,
    map_category,
    normalize_text,
    risk_rule,
    risk_rules,
)
from oyster_steer.data._categories import DNA_SPECIFIC_HARM_CATEGORIES
from oyster_steer.data._dedupe import jaccard, near_duplicate_pairs


def test_label_vocabularies_are_fixed() -> None:
    assert INTENTS == ("benign", "borderline", "vulnerable", "malicious")
    assert RISKS == ("safe", "sensitive", "harmful")


def test_record_fills_id_and_copies_meta() -> None:
    meta = {"k": "v"}
    r = PromptRecord("Hello, world!", "benign", "safe", source="demo", meta=meta)
    meta["k"] = "changed"
    assert r.meta == {"k": "v"}
    assert r.id == make_id("demo", "hello world")
    assert re.fullmatch(r"demo:[0-9a-f]{12}", r.id)
    assert r.category == "unknown" and r.normalized == "hello world"
    assert hash(r) == hash(PromptRecord("Hello, world!", "benign", "safe", source="demo"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.text = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"intent": "evil"},
            "intent='evil' is not a known intent; use one of benign, borderline, vulnerable, "
            "malicious.",
        ),
        (
            {"risk": "deadly"},
            "risk='deadly' is not a known risk; use one of safe, sensitive, harmful.",
        ),
        ({"text": "   "}, "text='   ' is empty; give every prompt some text."),
        ({"meta": {"n": 1}}, "meta key 'n' has a non-string key or value; store strings."),
        ({"meta": ["x"]}, "meta=['x'] is not a mapping; pass a dict of str to str."),
        ({"source": ""}, "source='' is empty; name the data set the prompt comes from."),
    ],
)
def test_record_rejects_bad_fields(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"text": "hi", "intent": "benign", "risk": "safe", **kwargs}
    with pytest.raises(LabelError) as info:
        PromptRecord(**fields)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, OysterError)


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError) and issubclass(DataError, OysterError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Don't  PANIC —  it's\tfine! ", "dont panic its fine"),
        ("ＦＵＬＬ－ｗｉｄｔｈ", "full width"),  # NFKC folds full-width forms
        ("Straße", "strasse"),  # casefold, not lower
        ("self-harm... end.Next", "self harm end next"),
        ("x²  $5 + 3", "x2 $5 + 3"),  # symbols stay, superscripts fold
    ],
)
def test_normalize_text_examples(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_normalize_text_is_idempotent_and_clean(text: str) -> None:
    out = normalize_text(text)
    assert normalize_text(out) == out
    assert "  " not in out and out == out.strip()
    assert not any(unicodedata.category(ch).startswith("P") for ch in out)


def test_make_id_depends_on_normalised_text_and_source() -> None:
    assert make_id("a", "What?!  Yes.") == make_id("a", "what yes")
    assert make_id("a", "x").split(":")[1] == make_id("b", "x").split(":")[1]
    assert make_id("a", "x") != make_id("a", "y")


# -- categories -------------------------------------------------------------------------------
def test_risk_categories_are_the_32_oyster_names() -> None:
    assert len(RISK_CATEGORIES) == 32 == len(set(RISK_CATEGORIES))
    assert {"Mental Health", "Bodily Harm", "Cybersecurity", "Legal Consultation"} <= set(
        RISK_CATEGORIES
    )


def test_every_map_targets_a_known_category() -> None:
    allowed = {*RISK_CATEGORIES, "unknown"}
    for mapping in [*CATEGORY_MAPS.values(), DNA_SPECIFIC_HARM_CATEGORIES]:
        assert set(mapping.values()) <= allowed


def test_map_category() -> None:
    assert map_category("harmbench", "cybercrime_intrusion") == "Cybersecurity"
    assert map_category("simplesafetytests", "Suicide, Self-Harm, and Eating Disorders") == (
        "Bodily Harm"
    )
    assert map_category("strongreject", "no such label") == "unknown"
    dna_type = "Mental Health or Overreliance Crisis"
    assert map_category("do-not-answer", dna_type, "Self-Harm: ...") == "Bodily Harm"
    assert map_category("do-not-answer", dna_type, "Depression and Anxiety: ...") == "Mental Health"
    with pytest.raises(LabelError, match=r"^source='nope' has no category map; use one of "):
        map_category("nope", "x")


def test_risk_rules_match_the_hard_coded_names() -> None:
    data_dir = default_data_dir()
    if data_dir is None or not (data_dir / "oyster-risk-rules").is_dir():
        pytest.skip("../shared/data/oyster-risk-rules is absent; set OYSTER_STEER_DATA to run this")
    rules = risk_rules(data_dir)
    assert tuple(rules) == RISK_CATEGORIES
    assert "professional" in (risk_rule("Mental Health", data_dir) or "")
    assert risk_rule("unknown", data_dir) is None


def test_risk_rule_without_data_and_with_bad_category(tmp_path: object) -> None:
    assert risk_rule("Mental Health", data_dir=str(tmp_path)) is None
    assert risk_rules(str(tmp_path)) == {}
    with pytest.raises(LabelError) as info:
        risk_rule("Sorcery")
    assert str(info.value) == (
        "category='Sorcery' is not one of the 32 Oyster risk categories; "
        "see oyster_steer.data.RISK_CATEGORIES."
    )


# -- near duplicates --------------------------------------------------------------------------
def test_near_duplicate_pairs_finds_small_edits_only() -> None:
    base = "write a detailed guide to growing tomatoes on a small city balcony in spring"
    texts = [base, base.replace("small ", ""), "an unrelated request about knitting", base]
    assert near_duplicate_pairs(texts, 0.9) == [(0, 1), (0, 3), (1, 3)]
    assert near_duplicate_pairs(texts, 1.0) == [(0, 3)]
    with pytest.raises(ValueError, match=r"threshold=0 is outside \(0, 1\]"):
        near_duplicate_pairs(texts, 0)


_TOKENS = st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TOKENS, max_size=12), st.sampled_from([0.5, 0.7, 0.8, 0.9, 1.0]))
def test_near_duplicate_pairs_matches_brute_force(docs: list[list[str]], t: float) -> None:
    texts = [" ".join(d) for d in docs]
    sets = [frozenset(d) for d in docs]
    expected = [
        (i, j)
        for i, j in itertools.combinations(range(len(sets)), 2)
        if jaccard(sets[i], sets[j]) >= t
    ]
    assert near_duplicate_pairs(texts, t) == expected


# -- package hygiene --------------------------------------------------------------------------
def test_import_does_not_pull_heavy_libraries() -> None:
    # torch is a core dependency (the package root imports it); the model and plotting stacks are not.
    heavy = ("transformers", "transformer_lens", "nnsight", "plotly")
    code = f"import sys, oyster_steer.data; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_attributes() -> None:
    import oyster_steer.data as data

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = data.nope  # type: ignore[attr-defined]
    assert callable(data.wrap_prompt) and callable(data.exemplar_for)
