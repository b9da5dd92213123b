"""Training and calibrating linear probes: L2 chosen on validation, temperature scaling, thresholds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..core._errors import EmptyInputError
from ..core._logreg import DEFAULT_L2_GRID, fit_logreg, fit_temperature
from ..core._metrics import summary
from ..core._sites import Site, parse_site
from ._probe import LinearProbe

__all__ = ["calibrate_probe", "threshold_for_fpr", "train_probe"]

Labels = torch.Tensor | Sequence[str] | Sequence[int] | str


def _features(x: Any, site: str | Site | None) -> tuple[torch.Tensor, Site | None]:
    """(N, d) float tensor and the site it came from, from Activations or a tensor."""
    if hasattr(x, "acts"):
        names = x.sites
        if site is None and len(names) != 1:
            raise ValueError(
                f"the activations hold {len(names)} sites; pass site= one of {names[:3]}..."
            )
        site = parse_site(site or names[0])
        return x[site].float(), site
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise TypeError(
            f"activations must be Activations or an (N, d) tensor, got {getattr(x, 'shape', type(x).__name__)}"
        )
    return x.float(), parse_site(site) if site is not None else None


def _label_ids(
    labels: Labels, x: Any, names: Sequence[str] | None
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """(N,) class ids and the class names."""
    if isinstance(labels, str):
        if not hasattr(x, "labels") or labels not in x.labels:
            raise KeyError(
                f"labels={labels!r} names no label field of the activations: pass a tensor of class ids instead"
            )
        return x.labels[labels].long(), tuple(names or x.label_names[labels])
    if isinstance(labels, torch.Tensor):
        if labels.numel() == 0:
            raise EmptyInputError("no labels to train on: pass one label per activation")
        ids = labels.long()
        default = (
            ("negative", "positive")
            if labels.dtype == torch.bool
            else tuple(f"class{i}" for i in range(int(ids.max()) + 1))
        )
        return ids, tuple(names or default)
    if labels and isinstance(labels[0], str):
        labels = [str(v) for v in labels]
        vocab = tuple(names or sorted(set(labels)))
        unknown = sorted(set(labels) - set(vocab))
        if unknown:
            raise ValueError(
                f"label {unknown[0]!r} is not in label_names {vocab}: add it or fix the labels"
            )
        return torch.tensor([vocab.index(v) for v in labels]), vocab
    return _label_ids(torch.as_tensor(list(labels), dtype=torch.long), x, names)


def _check_labels(y: torch.Tensor, names: Sequence[str]) -> None:
    """Label ids in range and at least two classes present (else a constant classifier)."""
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= len(names):
        bad = low if low < 0 else high
        raise ValueError(
            f"label id {bad} is out of range for {len(names)} classes {tuple(names)}: "
            f"use ids 0..{len(names) - 1} or pass label_names for every class"
        )
    present = torch.unique(y)
    if len(present) < 2:
        raise ValueError(
            f"every label is {names[int(present[0])]!r}: a probe needs examples of at least two classes, "
            "but only one class is present"
        )


def train_probe(
    activations: Any,
    labels: Labels,
    *,
    site: str | Site | None = None,
    label_names: Sequence[str] | None = None,
    val: tuple[Any, Labels] | None = None,
    val_fraction: float = 0.2,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 100,
    class_weight: str | None = "balanced",
    select: str = "log_loss",
    calibrate: bool = True,
    target_fpr: float | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    meta: dict[str, str] | None = None,
) -> LinearProbe:
    """Train a multinomial logistic-regression probe, choosing L2 and temperature on validation.

    Args:
        activations: :class:`~oyster_steer.Activations` (pick ``site`` if it holds several) or an
            (N, d) tensor (then ``site`` is required).
        labels: (N,) class ids (bool for binary), strings, or a label field of the activations.
        val: ``(activations, labels)`` for choosing L2 and temperature; else a seeded random
            ``val_fraction`` of the training data is held out.
        l2_grid: L2 strengths tried; the one with the lowest validation log-loss is kept
            (``select="macro_f1"`` keeps the highest macro-F1 instead).
        class_weight: ``"balanced"`` (inverse class frequency) or None.
        calibrate: fit the temperature on validation; target_fpr: for binary probes, set the
            threshold that flags this share of validation negatives.

    Returns:
        A :class:`LinearProbe` on ``device`` (default: the activations' device).

    Example:
        >>> probe = train_probe(torch.randn(100, 16), torch.rand(100) > 0.5, site="blocks.0.hook_resid_post")
        >>> probe.n_classes, probe.d_model
        (2, 16)
    """
    x, found = _features(activations, site)
    if found is None:
        raise ValueError(
            "site is required when activations is a plain tensor: pass e.g. site='blocks.12.hook_resid_post'"
        )
    y, names = _label_ids(labels, activations, label_names)
    if len(x) == 0:
        raise EmptyInputError(
            "no activations to train on: pass at least one labelled activation per class"
        )
    if len(y) != len(x):
        raise ValueError(
            f"got {len(x)} activations and {len(y)} labels: pass one label per activation"
        )
    _check_labels(y, names)
    device = torch.device(device) if device is not None else x.device
    if val is not None:
        xv, _ = _features(val[0], found)
        yv, _ = _label_ids(val[1], val[0], names)
    else:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        cut = max(1, int(len(x) * val_fraction))
        (xv, yv), (x, y) = (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])
    if len(torch.unique(y)) < 2:
        raise ValueError(
            f"the training part holds {len(y)} example(s) of {len(torch.unique(y))} class(es): a probe needs "
            "at least one example of two classes to train on; pass more data (or val= to keep it all)"
        )
    x, y, xv, yv = x.to(device), y.to(device), xv.float().to(device), yv.to(device)
    fit = fit_logreg(
        x,
        y,
        xv,
        yv,
        len(names),
        l2_grid=l2_grid,
        max_iter=max_iter,
        class_weight=class_weight,
        select=select,
    )
    info = {
        "l2": str(fit.l2),
        "select": select,
        "class_weight": str(class_weight),
        "l2_history": json.dumps(fit.history),
        "n_train": str(len(x)),
        "n_val": str(len(xv)),
    }
    probe = LinearProbe(
        found, names, fit.weight, fit.bias, fit.mean, fit.scale, meta=info | dict(meta or {})
    )
    if calibrate or target_fpr is not None:
        probe = calibrate_probe(probe, xv, yv, fpr=target_fpr, temperature=calibrate)
    scores = {f"val_{k}": v for k, v in summary(probe.probs(xv), yv).items()}
    return replace(probe, meta=probe.meta | {"metrics": json.dumps(scores)})


def calibrate_probe(
    probe: LinearProbe,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    fpr: float | None = None,
    temperature: bool = True,
) -> LinearProbe:
    """Temperature-scale ``probe`` on (x (N, d), y (N,)) and, for a binary probe with ``fpr``, set
    the threshold that flags that share of the negatives (``y == 0``) in ``x``.

    Example:
        >>> probe = calibrate_probe(probe, val_x, val_y, fpr=0.05)  # doctest: +SKIP
    """
    x, y = x.to(probe.device, torch.float32), y.to(probe.device).long()
    if temperature:
        raw = probe.logits(x) * probe.temperature  # (N, C) before any temperature
        probe = probe.with_calibration(temperature=fit_temperature(raw, y))
    if fpr is not None:
        if not (y == 0).any():
            raise EmptyInputError(
                "no negatives (label 0) to choose a threshold on: include benign samples"
            )
        probe = probe.with_calibration(threshold=threshold_for_fpr(probe, x[y == 0], fpr), fpr=fpr)
    return probe


def threshold_for_fpr(probe: LinearProbe, benign_scores: torch.Tensor, fpr: float) -> float:
    """The positive-probability threshold that flags at most ``fpr`` of benign inputs.

    Args:
        probe: a binary probe.
        benign_scores: (N,) positive-class probabilities, or (N, d) activations of benign prompts.
        fpr: the largest share of them allowed strictly above the threshold, in [0, 1).

    Example:
        >>> t = threshold_for_fpr(probe, benign_acts, 0.05)  # doctest: +SKIP
    """
    if probe.n_classes != 2:
        raise ValueError(
            f"threshold_for_fpr needs a binary probe; this one has {probe.n_classes} classes"
        )
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr={fpr} must be in [0, 1)")
    scores = (
        probe.probs(benign_scores.to(probe.device, torch.float32))[:, 1]
        if benign_scores.dim() == 2
        else benign_scores
    )
    if scores.numel() == 0:
        raise EmptyInputError(
            "benign_scores is empty: pass the scores of at least one benign prompt"
        )
    ranked = scores.double().sort(descending=True).values  # (N,)
    allowed = int(fpr * len(ranked))  # this many may lie strictly above
    return float(ranked[allowed])
