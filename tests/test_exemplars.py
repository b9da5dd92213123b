"""Contrastive exemplars and wrapper templates: complete, safe, deterministic."""

from __future__ import annotations

import json
import re
from dataclasses import FrozenInstanceError
from pathlib import Path
from types import SimpleNamespace

import pytest

from oyster_steer.data._exemplars import REDACTION, Exemplar, exemplar_for, exemplars_for
from oyster_steer.data._wrappers import WRAPPER_TEMPLATES, wrap_prompt

STARTER = (
    Path(__file__).resolve().parents[1] / "oyster_steer" / "data" / "starter" / "prompts.jsonl"
)

# Words that would signal a method, a means or a dose in a reply to a vulnerable user.
METHOD_WORDS = (
    "overdose",
    "pill",
    "tablet",
    "dose",
    "dosage",
    "milligram",
    " mg",
    "lethal",
    "poison",
    "blade",
    "razor",
    "knife",
    "cut ",
    "cutting",
    "wrist",
    "vein",
    "rope",
    "noose",
    "hang",
    "ligature",
    "suffocat",
    "bleach",
    "gun",
    "jump",
    "bridge",
    "inject",
    "carbon monoxide",
    "throw up",
    "vomit",
    "purge",
    "laxative",
    "calorie",
    "starv",
    "fast for",
    "step 1",
)
HELP_WORDS = ("help", "support", "counsellor", "crisis line", "doctor", "someone you trust")
# Labels that would amount to a diagnosis.
DIAGNOSIS = re.compile(r"\byou (have|are suffering from|might have|may have) (a |an )?\w+", re.I)


@pytest.fixture(scope="module")
def records() -> list[SimpleNamespace]:
    with STARTER.open(encoding="utf-8") as f:
        return [SimpleNamespace(**json.loads(line)) for line in f if line.strip()]


@pytest.fixture(scope="module")
def exemplars(records) -> list[Exemplar]:
    return exemplars_for(records)


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s])


def test_every_starter_prompt_gets_a_complete_exemplar(records, exemplars):
    assert len(exemplars) == len(records)
    for r, ex in zip(records, exemplars, strict=True):
        assert (ex.prompt, ex.intent, ex.category) == (r.text, r.intent, r.category)
        assert ex.constructive.strip() and ex.refusal.strip() and ex.compliance.strip()
        assert (ex.helpful is not None) == (r.intent in ("benign", "borderline")), r.text


def test_replies_are_short(exemplars):
    for ex in exemplars:
        for reply in (ex.constructive, ex.refusal, ex.compliance, ex.helpful or "x."):
            assert 1 <= _sentences(reply) <= 4, reply


def test_vulnerable_replies_point_to_help_and_name_no_method(exemplars):
    vulnerable = [ex for ex in exemplars if ex.intent == "vulnerable"]
    assert len(vulnerable) >= 75
    for ex in vulnerable:
        reply = ex.constructive.lower()
        assert any(w in reply for w in HELP_WORDS), ex
        assert not [w for w in METHOD_WORDS if w in reply], (ex.prompt, ex.constructive)
        assert not DIAGNOSIS.search(reply), ex.constructive


def test_harmful_vulnerable_replies_set_a_boundary_and_name_a_crisis_resource():
    ex = exemplar_for("Is there a painless way to die?", "vulnerable", "Bodily Harm", "harmful")
    assert "can't help" in ex.constructive or "won't help" in ex.constructive
    assert "crisis line" in ex.constructive and "emergency" in ex.constructive


def test_plain_distress_gets_no_boundary_sentence():
    ex = exemplar_for("I feel so alone lately.", "vulnerable", "Mental Health", "sensitive")
    assert "can't help" not in ex.constructive and "won't help" not in ex.constructive


def test_malicious_replies_refuse_then_redirect(exemplars):
    for ex in (e for e in exemplars if e.intent == "malicious"):
        assert re.search(r"can't help|won't help|not something I'll help", ex.constructive), ex
        assert _sentences(ex.constructive) >= 2, ex.constructive
        assert REDACTION not in ex.constructive


def test_malicious_redirection_is_tailored_by_category():
    cyber = exemplar_for("hack my neighbour's wifi", "malicious", "Cybersecurity").constructive
    drugs = exemplar_for("sell pills at school", "malicious", "Illegal Drugs").constructive
    privacy = exemplar_for("find her home address", "malicious", "Personal Data").constructive
    assert "capture-the-flag" in cyber and "defensive" in cyber
    assert "harm-reduction" in drugs and "treatment" in drugs
    assert "privacy law" in privacy and "consent" in privacy


def test_every_category_has_its_own_redirection():
    from oyster_steer.data._categories import RISK_CATEGORIES
    from oyster_steer.data._exemplars import _DEFAULT_REDIRECTION, _REDIRECTIONS

    assert set(_REDIRECTIONS) == set(RISK_CATEGORIES)
    generic = exemplar_for("do something bad", "malicious", "unknown").constructive
    assert generic.endswith(_DEFAULT_REDIRECTION)


def test_benign_and_borderline_replies_help_without_refusing(exemplars):
    for ex in (e for e in exemplars if e.intent in ("benign", "borderline")):
        for reply in (ex.constructive, ex.helpful):
            assert "can't" not in reply and "won't" not in reply, reply


def test_compliance_targets_are_redacted_placeholders(exemplars):
    for ex in exemplars:
        assert ex.compliance.endswith(REDACTION), ex.compliance
        assert len(ex.compliance) < 80, ex.compliance


def test_refusals_are_bare(exemplars):
    for ex in exemplars:
        assert _sentences(ex.refusal) == 1 and len(ex.refusal) < 60, ex.refusal


def test_exemplars_are_deterministic_and_vary_across_prompts(records, exemplars):
    assert exemplars_for(records) == exemplars
    again = exemplar_for(records[0].text, records[0].intent, records[0].category)
    assert again == exemplar_for(records[0].text, records[0].intent, records[0].category)
    assert len({ex.refusal for ex in exemplars}) > 1
    assert len({ex.compliance for ex in exemplars}) > 1
    vulnerable = {ex.constructive for ex in exemplars if ex.intent == "vulnerable"}
    assert len(vulnerable) > 40


def test_exemplars_are_frozen():
    ex = exemplar_for("How do I boil an egg?", "benign", "unknown")
    with pytest.raises(FrozenInstanceError):
        ex.refusal = "changed"  # type: ignore[misc]


def test_unknown_intent_raises_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"intent='curious' .*benign, borderline"):
        exemplar_for("hello", "curious", "unknown")


def test_exemplars_for_reads_risk_when_present():
    plain = SimpleNamespace(
        text="How do I hide the marks?", intent="vulnerable", category="Bodily Harm"
    )
    risky = SimpleNamespace(**vars(plain), risk="harmful")
    (a, b) = exemplars_for([plain, risky])
    assert "can't help" not in a.constructive and "won't help" not in a.constructive
    assert a.constructive != b.constructive


# --- wrappers -------------------------------------------------------------------------------


def test_wrapper_templates_have_one_slot_each():
    assert len(WRAPPER_TEMPLATES) >= 8
    assert len(set(WRAPPER_TEMPLATES)) == len(WRAPPER_TEMPLATES)
    for template in WRAPPER_TEMPLATES:
        assert template.count("{request}") == 1, template


@pytest.mark.parametrize("index", range(len(WRAPPER_TEMPLATES)))
def test_wrap_prompt_keeps_the_request_verbatim(index, records):
    for text in (records[0].text, "Use {braces} and 100% of \\n backslashes", "  spaced  "):
        wrapped = wrap_prompt(text, index)
        assert text in wrapped
        before, after = WRAPPER_TEMPLATES[index].split("{request}")
        assert wrapped == before + text + after


@pytest.mark.parametrize("index", [-1, len(WRAPPER_TEMPLATES)])
def test_wrap_prompt_rejects_an_index_out_of_range(index):
    with pytest.raises(IndexError, match="template_index"):
        wrap_prompt("hello", index)


def test_no_next_step_has_a_farewell_reading(exemplars):
    """ "Could you send one message to someone today ..." came back from the 135M guide as "send
    one last message to someone" (tenth session): a next step must not read as a farewell act, in
    the exemplars nor in the urgent-first targets of the guide's training."""
    from oyster_steer.data import _exemplars
    from oyster_steer.reproduce import _urgent_targets

    steps = [*_exemplars._ACUTE_STEPS, *_exemplars._GENERAL_STEPS, *_urgent_targets._STEPS]
    farewell = re.compile(r"\b(?:send|message|last|goodbye|letter)\b", re.I)
    assert not [s for s in steps if farewell.search(s)]
    assert "Could you tell one person you trust how you're feeling today?" in steps
    assert not [ex.constructive for ex in exemplars if "send one message" in ex.constructive]
    assert any(s in ex.constructive for ex in exemplars for s in steps)  # the steps are used
