"""Risk and intent scores over labelled prompt records, and RESULTS.md section writing.

Risk metrics read the positive (malicious) probability; flag rates use a calibrated threshold
(chosen on validation negatives, never on test). ``plain`` prompts are the original requests,
``wrapped`` ones the same kind of requests inside jailbreak-style frames (``meta["wrapper"]``).
The eval engineer may reuse these on any PromptSet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..core._metrics import auroc, flag_rate, macro_f1, per_class_recall
from ._markdown import write_section as replace

__all__ = ["intent_metrics", "risk_metrics", "write_section"]


def _mask(records: Sequence[Any], intents: Sequence[str], wrapped: bool | None) -> torch.Tensor:
    return torch.tensor(
        [
            r.intent in intents and (wrapped is None or ("wrapper" in r.meta) == wrapped)
            for r in records
        ]
    )


def risk_metrics(p_pos: torch.Tensor, records: Sequence[Any], threshold: float) -> dict[str, float]:
    """AUROCs and flag rates of a malicious-vs-rest score on labelled records.

    Args:
        p_pos: (N,) probability of the positive (malicious) class.
        records: the N prompt records (intent, ``meta["wrapper"]`` for wrapped copies).
        threshold: flag when ``p_pos > threshold``.
    """
    mal = _mask(records, ["malicious"], None)
    plain_pair = _mask(records, ["malicious", "benign"], False)
    out = {
        "auroc_malicious_vs_benign": auroc(p_pos[plain_pair], mal[plain_pair]),
        "auroc_malicious_vs_rest": auroc(p_pos, mal),
        "auroc_wrapped_malicious_vs_wrapped_rest": _safe_auroc(
            p_pos, mal, _mask(records, ["benign", "borderline", "vulnerable", "malicious"], True)
        ),
    }
    for name, intents, wrapped in (
        ("recall_malicious", ["malicious"], False),
        ("recall_wrapped_malicious", ["malicious"], True),
        ("flag_benign", ["benign"], False),
        ("flag_borderline", ["borderline"], False),
        ("flag_vulnerable", ["vulnerable"], False),
        ("flag_wrapped_benign", ["benign"], True),
        ("flag_wrapped_borderline", ["borderline"], True),
    ):
        m = _mask(records, intents, wrapped)
        out[name] = flag_rate(p_pos[m], threshold) if m.any() else torch.tensor(float("nan"))
        out[f"n_{name.split('_', 1)[1]}"] = torch.tensor(float(m.sum()))
    return {k: float(v) for k, v in out.items()}


def _safe_auroc(scores: torch.Tensor, positive: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return auroc(scores[keep], positive[keep]) if keep.any() else torch.tensor(float("nan"))


def intent_metrics(
    probs: torch.Tensor, y: torch.Tensor, records: Sequence[Any], labels: Sequence[str]
) -> dict[str, float]:
    """Macro-F1 (all, plain only), accuracy and per-class recall of a 4-way intent classifier."""
    pred = probs.argmax(-1)
    plain = ~_mask(records, list(labels), True)
    out = {
        "macro_f1": float(macro_f1(pred, y, len(labels))),
        "macro_f1_plain": float(macro_f1(pred[plain], y[plain], len(labels))),
    }
    out["accuracy"] = float((pred == y).double().mean())
    out.update(
        {
            f"recall_{name}": float(v)
            for name, v in zip(labels, per_class_recall(pred, y, len(labels)), strict=True)
        }
    )
    return out


def write_section(path: str | Path, body: str, heading: str = "## Probes") -> Path:
    """Replace the ``heading`` section of a markdown file with ``body`` (append it if absent)."""

    return replace(path, f"{heading}\n\n{body.strip()}\n", heading)
