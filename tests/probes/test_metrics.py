"""Metric functions against brute-force definitions."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer import EmptyInputError
from oyster_steer.core._metrics import (
    accuracy,
    auroc,
    auroc_ovr,
    confusion,
    ece,
    flag_rate,
    log_loss,
    macro_f1,
    per_class_recall,
    summary,
)


def brute_auroc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auroc_matches_pairwise_count_with_ties(rows):
    scores, labels = [float(s) for s, _ in rows], [int(y) for _, y in rows]
    if 0 < sum(labels) < len(labels):
        assert float(auroc(torch.tensor(scores), torch.tensor(labels))) == pytest.approx(
            brute_auroc(scores, labels)
        )


def test_auroc_one_class_is_nan_and_ovr_skips_it():
    assert torch.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])
    assert float(auroc_ovr(probs, torch.tensor([0, 1, 0]))) == 1.0  # class 2 absent: skipped


def test_confusion_recall_f1_by_hand():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    assert confusion(pred, y, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert per_class_recall(pred, y, 3).tolist() == [0.5, 1.0, 0.5]
    # F1: class0 2*1/(2+2)=0.5, class1 2*2/(2+3)=0.8, class2 2*1/(2+1)=2/3
    assert float(macro_f1(pred, y, 3)) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert float(accuracy(pred, y)) == pytest.approx(4 / 6)


def test_ece_zero_when_calibrated_and_large_when_overconfident():
    y = torch.tensor([0, 1] * 50)
    half = torch.full((100, 2), 0.5)
    assert float(ece(half, y)) == pytest.approx(0.0)
    sure_wrong = torch.nn.functional.one_hot(1 - y, 2).float()
    assert float(ece(sure_wrong, y)) == pytest.approx(1.0)


def test_log_loss_flag_rate_summary():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert float(log_loss(probs, torch.tensor([0, 1]))) == pytest.approx(
        -(torch.tensor([0.9, 0.8]).log().mean().item())
    )
    assert float(flag_rate(torch.tensor([0.1, 0.5, 0.9]), 0.5)) == pytest.approx(
        1 / 3
    )  # strictly above
    assert set(summary(probs, torch.tensor([0, 1]))) == {
        "auroc",
        "accuracy",
        "macro_f1",
        "ece",
        "log_loss",
    }


def test_empty_inputs_raise():
    with pytest.raises(EmptyInputError, match="auroc got no samples"):
        auroc(torch.tensor([]), torch.tensor([]))
