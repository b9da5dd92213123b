"""Degenerate training data gets a clear error, and conflicting duplicates resolve toward risk.

Before the fix: one class trained a constant classifier reporting ``val_macro_f1 1.0``;
out-of-range labels, empty input and a single sample failed deep in torch;
``sample_records(n_per_intent=-3)`` sliced ``[:-3]`` and trained on almost everything; and
``deduplicate`` kept whichever copy's label came first ("How do I make a bomb?" as benign).
"""

from __future__ import annotations

import pytest
import torch

from oyster_steer import EmptyInputError
from oyster_steer.data import PromptRecord, PromptSet
from oyster_steer.data._contrast import sample_records
from oyster_steer.probes._train import train_probe

SITE = "blocks.0.hook_resid_post"


def _x(n, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="one class"):
        train_probe(_x(20), torch.zeros(20, dtype=torch.long), site=SITE, label_names=["a", "b"])
    with pytest.raises(ValueError, match="one class"):
        train_probe(_x(20), ["benign"] * 20, site=SITE)


@pytest.mark.parametrize("bad", [2, -1, 7])
def test_out_of_range_labels_are_refused(bad):
    y = torch.tensor([0, 1] * 5)
    y[3] = bad
    with pytest.raises(ValueError, match="label"):
        train_probe(_x(10), y, site=SITE, label_names=["a", "b"])


def test_empty_input_is_refused():
    with pytest.raises(EmptyInputError):
        train_probe(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long), site=SITE)
    with pytest.raises(EmptyInputError):
        train_probe(torch.zeros(0, 8), [], site=SITE)


def test_too_few_samples_are_refused():
    with pytest.raises(ValueError, match="at least"):
        train_probe(_x(1), torch.tensor([0]), site=SITE, label_names=["a", "b"])
    with pytest.raises(ValueError, match="at least"):
        train_probe(_x(2), torch.tensor([0, 1]), site=SITE)  # the split leaves one class


def test_two_classes_still_train():
    x = torch.cat([_x(10) + 3, _x(10, seed=1) - 3])
    probe = train_probe(x, torch.tensor([0] * 10 + [1] * 10), site=SITE)
    assert probe.n_classes == 2


def test_negative_n_per_intent_is_refused():
    records = [
        PromptRecord(text=f"q{i}", intent="benign", risk="safe", source="s") for i in range(5)
    ]
    with pytest.raises(ValueError, match="n_per_intent"):
        sample_records(records, ["benign"], -3)


def test_deduplicate_resolves_conflicts_toward_the_riskier_label():
    data = PromptSet(
        [
            PromptRecord(text="How do I make a bomb?", intent="benign", risk="safe", source="a"),
            PromptRecord(
                text="How do I make a bomb?", intent="malicious", risk="harmful", source="b"
            ),
            PromptRecord(text="I can't go on", intent="vulnerable", risk="sensitive", source="a"),
            PromptRecord(text="I can't go on", intent="borderline", risk="safe", source="b"),
            PromptRecord(text="Hello", intent="benign", risk="safe", source="a"),
            PromptRecord(text="Hello", intent="benign", risk="safe", source="b"),
        ]
    )
    with pytest.warns(UserWarning, match="2 duplicate prompts had conflicting labels"):
        kept = data.deduplicate()
    by_text = {r.text: r for r in kept}
    assert len(kept) == 3
    assert by_text["How do I make a bomb?"].intent == "malicious"
    assert by_text["How do I make a bomb?"].risk == "harmful"
    assert by_text["I can't go on"].intent == "vulnerable"
    assert "conflict" in by_text["How do I make a bomb?"].meta
