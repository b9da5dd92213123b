"""Classification metrics in torch: AUROC, F1, recall, confusion, calibration error, log-loss.

Pure functions of tensors on any device; each returns a tensor (0-d, or one value per class)
so that nothing syncs with the host until the caller asks (``float(auroc(s, y))``). Labels are
class ids ``(N,)``; binary scores are the positive class's probability or any monotone score.

Example:
    >>> s, y = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    >>> float(auroc(s, y))
    0.75
"""

from __future__ import annotations

import torch

from ._errors import EmptyInputError

__all__ = [
    "accuracy",
    "auroc",
    "auroc_ovr",
    "confusion",
    "ece",
    "flag_rate",
    "log_loss",
    "macro_f1",
    "per_class_recall",
    "summary",
]


def _check(n: int, what: str) -> None:
    if n == 0:
        raise EmptyInputError(f"{what} got no samples: pass at least one score and label")


def _average_ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties sharing their average rank. (N,) -> (N,)"""
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # (U,) last rank of each distinct value
    return (ends - (counts.double() - 1) / 2)[inverse]


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve of a binary score (Mann-Whitney U, ties count half).

    Args:
        scores: (N,) higher means more positive.
        labels: (N,) 1/True for positives, 0/False for negatives.

    Returns:
        0-d float64; NaN when one class is absent.
    """
    _check(scores.numel(), "auroc")
    pos = labels.bool()
    n_pos, n_neg = pos.sum().double(), (~pos).sum().double()
    rank_sum = _average_ranks(scores.double())[pos].sum()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auroc_ovr(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Macro one-vs-rest AUROC over the classes present with both positives and negatives.

    Args:
        probs: (N, C) class probabilities (or scores); a binary problem uses column 1 only.
        labels: (N,) class ids.
    """
    if probs.shape[-1] == 2:
        return auroc(probs[:, 1], labels == 1)
    per_class = torch.stack(
        [auroc(probs[:, c], labels == c) for c in range(probs.shape[-1])]
    )  # (C,)
    return per_class.nanmean()


def confusion(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, C) counts; row = true class, column = predicted class."""
    flat = labels.long() * n_classes + pred.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_recall(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C,) recall of each class; NaN for a class with no samples."""
    cm = confusion(pred, labels, n_classes).double()
    return cm.diagonal() / cm.sum(1)


def macro_f1(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Unweighted mean F1 over the classes that occur in ``labels`` or ``pred``."""
    _check(labels.numel(), "macro_f1")
    cm = confusion(pred, labels, n_classes).double()
    tp, support, predicted = cm.diagonal(), cm.sum(1), cm.sum(0)
    f1 = 2 * tp / (support + predicted).clamp(min=1)  # (C,)
    present = (support + predicted) > 0
    return f1[present].mean()


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of correct predictions."""
    _check(labels.numel(), "accuracy")
    return (pred.long() == labels.long()).double().mean()


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> torch.Tensor:
    """Expected calibration error of the top-class confidence, equal-width bins.

    Args:
        probs: (N, C) probabilities.
        labels: (N,) class ids.
        n_bins: confidence bins on [0, 1].
    """
    _check(labels.numel(), "ece")
    conf, pred = probs.double().max(-1)  # (N,), (N,)
    correct = (pred == labels).double()
    bins = (conf * n_bins).long().clamp(max=n_bins - 1)  # (N,)
    count = torch.bincount(bins, minlength=n_bins).double()
    gap = torch.bincount(bins, weights=conf - correct, minlength=n_bins)  # (n_bins,)
    return gap.abs().sum() / count.sum()


def log_loss(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean negative log-likelihood of the true class. probs: (N, C)."""
    _check(labels.numel(), "log_loss")
    picked = probs.double().gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)  # (N,)
    return -picked.clamp(min=eps).log().mean()


def flag_rate(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Share of ``scores`` strictly above ``threshold`` (the flag rule of calibrated probes)."""
    _check(scores.numel(), "flag_rate")
    return (scores > threshold).double().mean()


def summary(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """AUROC (macro one-vs-rest), accuracy, macro-F1, ECE and log-loss as plain floats.

    Example:
        >>> summary(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1]))["accuracy"]
        1.0
    """
    n_classes = probs.shape[-1]
    pred = probs.argmax(-1)
    values = {
        "auroc": auroc_ovr(probs, labels),
        "accuracy": accuracy(pred, labels),
        "macro_f1": macro_f1(pred, labels, n_classes),
        "ece": ece(probs, labels),
        "log_loss": log_loss(probs, labels),
    }
    return {k: float(v) for k, v in values.items()}
