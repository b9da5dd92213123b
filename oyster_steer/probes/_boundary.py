"""Risk-boundary discovery: where does a probe separate harmful from benign, and where not?

* :func:`twin_margins`: topic-matched pairs (JailbreakBench harmful goals and their benign twins,
  the starter set's borderline and malicious prompts of one category) scored side by side.
* :func:`most_borderline`: the prompts closest to the probe's decision boundary.
* :func:`category_separability`: AUROC within each Oyster risk category, worst first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from ..activations._cache import cached_capture
from ..activations._capture import Activations, capture
from ..core._errors import EmptyInputError
from ..core._metrics import auroc, auroc_ovr
from ..core._sites import resolve_site
from ..models._model import OysterModel
from ._probe import LinearProbe
from ._sweep import task_labels

__all__ = [
    "BorderlinePrompt",
    "CategoryScore",
    "TwinMargins",
    "category_separability",
    "most_borderline",
    "twin_margins",
    "twin_pairs",
]


def _scores(
    model: OysterModel, probe: LinearProbe, texts: Sequence[str], cache: Any = None
) -> torch.Tensor:
    """(N, C) logits of the probe on its own features (last prompt token or prompt mean,
    ``probe.pool``); ``cache``: reuse an all-layer capture cache (last-token probes) or the
    sites ``train-probe`` captured (mean-pooled ones, ``meta["capture_sites"]``)."""
    site = resolve_site(probe.site, model.n_layers)
    if cache is not None:
        recorded = probe.meta.get("capture_sites")
        sites = site.kind if probe.pool == "last" else (recorded.split(",") if recorded else [site])
        x = cached_capture(model, list(texts), sites, pool=probe.pool, root=cache, progress=False)[
            site
        ]
    else:
        x = cast(Activations, capture(model, list(texts), site, pool=probe.pool, progress=False))[
            site
        ]
    return probe.to(model.device).logits(x.to(model.device)).cpu()


def _positive(probe: LinearProbe, logits: torch.Tensor) -> torch.Tensor:
    """(N,) log-odds of the positive class (binary) or of the last class vs the rest (multiclass)."""
    logp = logits.log_softmax(-1)  # (N, C)
    return logp[:, -1] - logp[:, :-1].logsumexp(-1)


def twin_pairs(prompts: Sequence[Any]) -> list[tuple[str, str]]:
    """(harmful, benign) text pairs: JailbreakBench twins joined on ``meta["twin"]``, and starter
    malicious and borderline prompts of the same category, paired in order."""
    jbb: dict[str, dict[str, str]] = {}
    starter: dict[str, dict[str, list[str]]] = {}
    for r in prompts:
        if r.source == "jailbreakbench" and "twin" in r.meta and "wrapper" not in r.meta:
            jbb.setdefault(r.meta["twin"], {})[r.intent] = r.text
        elif (
            r.source == "starter"
            and r.intent in ("malicious", "borderline")
            and "wrapper" not in r.meta
        ):
            starter.setdefault(r.category, {}).setdefault(r.intent, []).append(r.text)
    pairs = [(p["malicious"], p["borderline"]) for _, p in sorted(jbb.items()) if len(p) == 2]
    for _, by in sorted(starter.items()):
        pairs.extend(zip(by.get("malicious", []), by.get("borderline", []), strict=False))
    return pairs


@dataclass(frozen=True)
class TwinMargins:
    """Positive-class log-odds of each harmful prompt and its benign twin.

    Attributes:
        pairs: the (harmful, benign) texts; harmful, benign: (P,) log-odds; margin = harmful - benign.
    """

    pairs: list[tuple[str, str]]
    harmful: torch.Tensor
    benign: torch.Tensor

    @property
    def margin(self) -> torch.Tensor:
        return self.harmful - self.benign

    @property
    def ordered(self) -> float:
        """Share of pairs where the harmful twin scores higher."""
        return float((self.margin > 0).double().mean())

    def table(self, k: int | None = None) -> list[dict[str, Any]]:
        """Rows sorted by margin, smallest (least separated) first."""
        order = self.margin.argsort().tolist()[:k]
        return [
            {
                "harmful": self.pairs[i][0],
                "benign": self.pairs[i][1],
                "margin": float(self.margin[i]),
            }
            for i in order
        ]


def twin_margins(
    model: OysterModel,
    probe: LinearProbe,
    pairs: Sequence[tuple[str, str]] | Sequence[Any],
    *,
    cache: Any = None,
) -> TwinMargins:
    """Score topic-matched (harmful, benign) pairs with a probe.

    Args:
        pairs: (harmful, benign) text pairs, or prompt records to build them from (:func:`twin_pairs`).
        cache: a capture-cache directory (all layers of the probe's site kind) to reuse, or None.

    Example:
        >>> tm = twin_margins(model, risk_probe, load_all().split("test"))  # doctest: +SKIP
        >>> tm.ordered, tm.table(3)                                          # doctest: +SKIP
    """
    pairs = list(pairs)
    if pairs and not isinstance(pairs[0], tuple):
        pairs = twin_pairs(pairs)
    if not pairs:
        raise EmptyInputError(
            "no (harmful, benign) twin pairs: pass pairs or prompts with JailbreakBench twins / starter prompts"
        )
    logits = _scores(model, probe, [t for p in pairs for t in p], cache)  # (2P, C)
    pos = _positive(probe, logits).reshape(-1, 2)  # (P, 2)
    return TwinMargins(pairs, pos[:, 0], pos[:, 1])


@dataclass(frozen=True)
class BorderlinePrompt:
    """A prompt near the decision boundary: its text, label, probabilities and margin."""

    text: str
    label: str
    probs: dict[str, float]
    margin: float


def most_borderline(
    model: OysterModel,
    probe: LinearProbe,
    prompts: Sequence[Any],
    k: int = 10,
    *,
    cache: Any = None,
) -> list[BorderlinePrompt]:
    """The ``k`` prompts the probe is least sure about.

    Binary probes: smallest distance between the positive log-odds and the threshold's log-odds
    (0 without a threshold). Multiclass: smallest gap between the two largest logits.

    Example:
        >>> [p.text for p in most_borderline(model, risk_probe, data.test, k=5)]  # doctest: +SKIP
    """
    texts = [getattr(r, "text", r) for r in prompts]
    labels = [getattr(r, "intent", "?") for r in prompts]
    logits = _scores(model, probe, texts, cache)  # (N, C)
    if probe.n_classes == 2:
        t = probe.threshold if probe.threshold is not None else 0.5
        cut = torch.logit(torch.tensor(t).clamp(1e-6, 1 - 1e-6))
        dist = (logits[:, 1] - logits[:, 0] - cut).abs()  # (N,)
    else:
        top = logits.topk(2, dim=-1).values  # (N, 2)
        dist = top[:, 0] - top[:, 1]
    probs = logits.softmax(-1)
    order = dist.argsort()[:k].tolist()
    return [
        BorderlinePrompt(
            texts[i],
            labels[i],
            dict(zip(probe.labels, probs[i].tolist(), strict=True)),
            float(dist[i]),
        )
        for i in order
    ]


@dataclass(frozen=True)
class CategoryScore:
    """How well a probe separates classes inside one risk category."""

    category: str
    auroc: float
    n: int
    counts: dict[str, int]


def category_separability(
    model: OysterModel,
    probe: LinearProbe,
    prompts: Sequence[Any],
    *,
    task: Any = None,
    min_per_class: int = 2,
    cache: Any = None,
) -> list[CategoryScore]:
    """AUROC inside each risk category (binary probe: positive vs negative; multiclass: macro
    one-vs-rest), worst first; categories lacking two classes with ``min_per_class`` are skipped.

    Args:
        task: labels the records (default: the probe's ``meta["task"]``, else ``"intent"``).

    Example:
        >>> category_separability(model, risk_probe, data.test)[:3]  # doctest: +SKIP
    """

    y, task = task_labels(task or probe.meta.get("task", "intent"), prompts)
    probs = _scores(model, probe, [r.text for r in prompts], cache).softmax(-1)  # (N, C)
    cats = [r.category for r in prompts]
    out = []
    for cat in sorted(set(cats)):
        idx = torch.tensor([i for i, c in enumerate(cats) if c == cat])
        counts = torch.bincount(y[idx], minlength=len(task.labels))
        if int((counts >= min_per_class).sum()) < 2:
            continue
        value = (
            auroc(probs[idx, 1], y[idx] == 1)
            if probe.n_classes == 2
            else auroc_ovr(probs[idx], y[idx])
        )
        out.append(
            CategoryScore(
                cat, float(value), len(idx), dict(zip(task.labels, counts.tolist(), strict=True))
            )
        )
    return sorted(out, key=lambda s: s.auroc)
