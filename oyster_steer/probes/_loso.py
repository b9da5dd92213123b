"""Leave one source out: train the probe on every source but one, score it on that one.

Distribution shift measured inside the repo (issue 15 item 5): for each source, the same
logistic-regression probe (L2 and temperature on validation, the risk threshold at a target FPR
on validation negatives) is fit on the train and validation rows of every *other* source, then
read on every row of the held-out source (all three splits: none of it was seen). Wrapped copies
carry their original's source, so holding a source out holds out its wrappers too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ._train import train_probe

__all__ = ["leave_one_source_out"]


def leave_one_source_out(
    features: Mapping[str, torch.Tensor],
    records: Mapping[str, Sequence[Any]],
    labels: Mapping[str, torch.Tensor],
    label_names: Sequence[str],
    *,
    site: str,
    sources: Sequence[str] | None = None,
    target_fpr: float | None = None,
    group: Callable[[Any], str] = lambda r: r.source,
    by: Callable[[Any], str] | None = None,
    min_rows: int = 10,
) -> list[dict[str, Any]]:
    """One row per held-out source and label: how the probe trained without it reads it.

    Args:
        features: split -> (N, d) features (``train``, ``validation`` and optionally ``test``).
        records: split -> the N records (their ``group`` names the source).
        labels: split -> (N,) class ids; label_names: the class names.
        target_fpr: binary probes: the threshold flags this share of validation negatives.
        sources: the sources to hold out (default: every source with ``min_rows`` rows or more).
        group: a record's source; by: a record's report row (default: its class name), e.g.
            ``lambda r: r.intent`` to break a binary risk probe's flags down by intent.

    Returns:
        Rows ``{"source", "label", "n", "read_as_label", "read_as": {class: rate}, "flag"}``
        (``label``: the ``by`` value); ``read_as_label`` is the share predicted as its own class;
        ``flag`` (binary
        probes) is the share above the threshold.

    Example:
        >>> rows = leave_one_source_out(feats, recs, ys, ("benign", "malicious"), site="blocks.16.hook_resid_post")  # doctest: +SKIP
    """
    splits = [s for s in ("train", "validation", "test") if s in features]
    for needed in ("train", "validation"):
        if needed not in features:
            raise KeyError(f"features has no {needed!r} split: pass train and validation features")
    groups = {s: [group(r) for r in records[s]] for s in splits}
    counts: dict[str, int] = {}
    for s in splits:
        for g in groups[s]:
            counts[g] = counts.get(g, 0) + 1
    chosen = (
        list(sources)
        if sources is not None
        else sorted(g for g, n in counts.items() if n >= min_rows)
    )
    unknown = [g for g in chosen if g not in counts]
    if unknown:
        raise ValueError(
            f"sources holds {unknown[0]!r}, which no record has: use one of {sorted(counts)}"
        )
    rows: list[dict[str, Any]] = []
    for held in chosen:
        keep = {s: torch.tensor([g != held for g in groups[s]]) for s in splits}
        probe = train_probe(
            features["train"][keep["train"]],
            labels["train"][keep["train"]],
            site=site,
            label_names=label_names,
            val=(
                features["validation"][keep["validation"]],
                labels["validation"][keep["validation"]],
            ),
            target_fpr=target_fpr,
        )
        held_recs = [
            r for s in splits for r, k in zip(records[s], keep[s].tolist(), strict=True) if not k
        ]
        x = torch.cat([features[s][~keep[s]] for s in splits])
        y = torch.cat([labels[s][~keep[s]] for s in splits])
        probs = probe.probs(x.float())
        pred = probs.argmax(-1)
        keys = [
            by(r) if by is not None else label_names[int(c)]
            for r, c in zip(held_recs, y.tolist(), strict=True)
        ]
        for key in sorted(set(keys)):
            sel = torch.tensor([k == key for k in keys])
            row: dict[str, Any] = {
                "source": held,
                "label": key,
                "n": int(sel.sum()),
                "read_as_label": float((pred[sel] == y[sel]).float().mean()),
                "read_as": {
                    name: float((pred[sel] == k).float().mean())
                    for k, name in enumerate(label_names)
                },
            }
            if probe.n_classes == 2 and probe.threshold is not None:
                row["flag"] = float((probs[sel, 1] > probe.threshold).float().mean())
            rows.append(row)
    return rows
