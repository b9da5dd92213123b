"""The packaged starter set: enough prompts per intent, valid labels, no duplicates."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

# The 32 names in risk_rules_released_32.derived.csv, column 风险类别en, in file order.
from oyster_steer.data import RISK_CATEGORIES as CATEGORIES

STARTER = (
    Path(__file__).resolve().parents[1] / "oyster_steer" / "data" / "starter" / "prompts.jsonl"
)

INTENTS = ("benign", "borderline", "vulnerable", "malicious")
RISKS = ("safe", "sensitive", "harmful")
# Risk levels each intent may take: vulnerable prompts asking for a method are harmful.
ALLOWED_RISKS = {
    "benign": {"safe"},
    "borderline": {"sensitive"},
    "vulnerable": {"sensitive", "harmful"},
    "malicious": {"harmful"},
}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with STARTER.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _key(text: str) -> str:
    # Stricter than the loaders' normalize_text: every non-alphanumeric character is dropped.
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def test_every_row_has_exactly_the_four_string_fields(rows):
    for row in rows:
        assert set(row) == {"text", "intent", "risk", "category"}, row
        assert all(isinstance(v, str) and v.strip() for v in row.values()), row
        assert row["text"] == row["text"].strip(), row


def test_at_least_75_prompts_per_intent(rows):
    counts = Counter(r["intent"] for r in rows)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 75, counts


def test_labels_are_in_the_vocabulary(rows):
    for row in rows:
        assert row["intent"] in INTENTS, row
        assert row["risk"] in RISKS, row
        assert row["risk"] in ALLOWED_RISKS[row["intent"]], row


def test_categories_are_oyster_names_and_unknown_only_for_benign(rows):
    assert len(set(CATEGORIES)) == 32
    for row in rows:
        if row["intent"] == "benign":
            assert row["category"] == "unknown", row
        else:
            assert row["category"] in CATEGORIES, row


def test_vulnerable_includes_method_requests_and_plain_distress(rows):
    risks = Counter(r["risk"] for r in rows if r["intent"] == "vulnerable")
    assert risks["harmful"] >= 15 and risks["sensitive"] >= 40, risks


def test_non_benign_classes_span_many_categories(rows):
    for intent, least in (("borderline", 12), ("vulnerable", 6), ("malicious", 25)):
        assert len({r["category"] for r in rows if r["intent"] == intent}) >= least, intent


def test_no_duplicate_normalised_texts(rows):
    dupes = [k for k, n in Counter(_key(r["text"]) for r in rows).items() if n > 1]
    assert not dupes, dupes


def test_categories_match_the_released_rule_sheet():
    sheet = Path(__file__).resolve().parents[2] / "shared" / "data" / "oyster-risk-rules"
    path = sheet / "risk_rules_released_32.derived.csv"
    if not path.exists():
        pytest.skip(f"{path} is not present on this machine")
    import csv

    with path.open(encoding="utf-8-sig") as f:
        names = tuple(r["风险类别en"] for r in csv.DictReader(f))
    assert names == CATEGORIES
