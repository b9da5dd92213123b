"""Layer sweeps: one capture pass per split at every site, one probe per site, metrics per split.

The best site is chosen on validation and reported on test, so the test split never steers a
choice. Tasks map prompt records to classes: ``"intent"`` (benign / borderline / vulnerable /
malicious), ``"risk"`` (binary: positive = malicious intent, i.e. the request seeks harm to
others; vulnerable users asking about self-harm are negatives, they need care, not a boundary)
and ``"risk_level"`` (safe / sensitive / harmful).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from ..activations._cache import cached_capture
from ..activations._capture import Activations, Pool, capture, resolve_pool
from ..core._metrics import summary
from ..core._sites import Site, parse_site
from ..data import INTENTS, RISKS
from ..models._model import OysterModel
from ._probe import LinearProbe
from ._train import train_probe

__all__ = [
    "TASKS",
    "LayerSweep",
    "SweepChoice",
    "Task",
    "sweep_activations",
    "sweep_layers",
    "task_labels",
]

_LOWER_IS_BETTER = frozenset({"ece", "log_loss"})


@dataclass(frozen=True)
class Task:
    """A labelling of prompt records: class names and record -> class id."""

    name: str
    labels: tuple[str, ...]
    of: Callable[[Any], int]


def _intent_id(r: Any) -> int:

    return INTENTS.index(r.intent)


def _risk_level_id(r: Any) -> int:

    return RISKS.index(r.risk)


TASKS: dict[str, Task] = {
    "intent": Task("intent", ("benign", "borderline", "vulnerable", "malicious"), _intent_id),
    "risk": Task("risk", ("not_malicious", "malicious"), lambda r: int(r.intent == "malicious")),
    "risk_level": Task("risk_level", ("safe", "sensitive", "harmful"), _risk_level_id),
}


def task_labels(task: str | Task, prompts: Sequence[Any]) -> tuple[torch.Tensor, Task]:
    """(N,) class ids of ``prompts`` (PromptRecords) under ``task``, and the task."""
    if isinstance(task, str):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)} or pass a Task")
        task = TASKS[task]
    return torch.tensor([task.of(r) for r in prompts], dtype=torch.long), task


@dataclass(frozen=True)
class SweepChoice:
    """The site chosen on one split's metric, its probe, and its metrics on every split."""

    site: Site
    probe: LinearProbe
    metrics: dict[str, dict[str, float]]


@dataclass
class LayerSweep:
    """Probes and metrics per site. ``metrics[split][site_name][metric]``."""

    task: str
    labels: tuple[str, ...]
    sites: list[Site]
    probes: dict[str, LinearProbe]
    metrics: dict[str, dict[str, dict[str, float]]]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.metrics)

    def values(self, metric: str = "auroc", split: str = "validation") -> list[float]:
        """One value per site, in site order."""
        if split not in self.metrics:
            raise KeyError(
                f"split {split!r} was not scored; scored splits: {', '.join(self.metrics)}"
            )
        return [self.metrics[split][s.name][metric] for s in self.sites]

    def best(
        self, metric: str = "auroc", split: str = "validation", max_layer: int | None = None
    ) -> SweepChoice:
        """The site with the best ``metric`` on ``split`` (lower is better for ece and log_loss),
        among the sites at or before ``max_layer`` when given.

        Example:
            >>> choice = sweep.best("macro_f1")                    # doctest: +SKIP
            >>> choice.site.layer, choice.metrics["test"]["macro_f1"]  # doctest: +SKIP
        """
        values = torch.tensor(self.values(metric, split))
        values = -values if metric in _LOWER_IS_BETTER else values
        if max_layer is not None:
            allowed = torch.tensor([s.layer <= max_layer for s in self.sites])
            if not bool(allowed.any()):
                raise ValueError(
                    f"max_layer={max_layer} is before every swept site "
                    f"(first: {self.sites[0].name}): sweep earlier layers or raise max_layer"
                )
            values = torch.where(allowed, values, torch.tensor(float("-inf")))
        site = self.sites[int(values.nan_to_num(float("-inf")).argmax())]
        return SweepChoice(
            site, self.probes[site.name], {sp: dict(m[site.name]) for sp, m in self.metrics.items()}
        )

    def table(self) -> list[dict[str, Any]]:
        """One row per site: ``site``, ``layer`` and ``{split}_{metric}`` columns."""
        rows = []
        for s in self.sites:
            row: dict[str, Any] = {"site": s.name, "layer": s.layer}
            for split, per_site in self.metrics.items():
                row.update({f"{split}_{k}": v for k, v in per_site[s.name].items()})
            rows.append(row)
        return rows


def sweep_activations(
    activations: Mapping[str, Activations],
    labels: Mapping[str, torch.Tensor],
    task: Task,
    *,
    sites: Sequence[str | Site] | None = None,
    progress: bool = True,
    **train_kwargs: Any,
) -> LayerSweep:
    """Train a probe per site on ``activations["train"]`` (validation: ``["validation"]``) and
    score every split given. ``train_kwargs`` go to :func:`~oyster_steer.train_probe`."""
    from tqdm.auto import tqdm

    for needed in ("train", "validation"):
        if needed not in activations:
            raise KeyError(
                f"activations has no {needed!r} split: pass train and validation captures"
            )
    names = [parse_site(s).name for s in (sites or activations["train"].sites)]
    probes: dict[str, Any] = {}
    metrics: dict[str, dict[str, Any]] = {split: {} for split in activations}
    for name in tqdm(
        names, desc=f"sweep {task.name}", unit="site", disable=not progress, leave=False
    ):
        val = (activations["validation"][name], labels["validation"])
        probe = train_probe(
            activations["train"][name],
            labels["train"],
            site=name,
            label_names=task.labels,
            val=val,
            meta={"task": task.name},
            **train_kwargs,
        )
        probes[name] = probe
        for split, acts in activations.items():
            x = acts[name].to(probe.device, torch.float32)
            metrics[split][name] = summary(probe.probs(x), labels[split].to(probe.device))
    return LayerSweep(task.name, task.labels, [parse_site(n) for n in names], probes, metrics)


def sweep_layers(
    model: OysterModel,
    train_prompts: Sequence[Any],
    val_prompts: Sequence[Any],
    test_prompts: Sequence[Any] | None = None,
    *,
    task: str | Task = "intent",
    sites: str | Sequence[str | Site] = "resid_post",
    pool: Pool | None = None,
    positions: Pool | None = None,
    cache: Any = None,
    batch_size: int = 16,
    progress: bool = True,
    **train_kwargs: Any,
) -> LayerSweep:
    """Capture each split once at every site, train a probe per site, score every split.

    Args:
        model: any backend.
        train_prompts, val_prompts, test_prompts: PromptSets (records carry the labels).
        task: ``"intent"``, ``"risk"``, ``"risk_level"`` or a :class:`Task`.
        sites: a bare kind (``"resid_post"``: every layer) or site names.
        pool: ``"last"`` prompt token (default) or ``"mean"`` over the prompt.
        positions: deprecated name of ``pool`` (removed in the next release).
        cache: a directory for :func:`~oyster_steer.activations._cache.cached_capture`, or None.

    Returns:
        A :class:`LayerSweep`; ``.best()`` picks on validation and reports test.

    Example:
        >>> sweep = sweep_layers(model, data.train, data.validation, data.test, task="risk")  # doctest: +SKIP
        >>> sweep.best("auroc").site                                                         # doctest: +SKIP
        Site(layer=27, kind='resid_post')
    """
    pool = resolve_pool(pool, positions, "sweep_layers")
    splits = {"train": train_prompts, "validation": val_prompts} | (
        {"test": test_prompts} if test_prompts is not None else {}
    )
    acts = {
        name: _capture(model, ps, sites, pool, cache, batch_size, progress)
        for name, ps in splits.items()
    }
    labelled = {name: task_labels(task, ps) for name, ps in splits.items()}
    resolved = labelled["train"][1]
    sweep = sweep_activations(
        acts, {k: v[0] for k, v in labelled.items()}, resolved, progress=progress, **train_kwargs
    )
    sweep.meta.update(model_name=model.name, model_fingerprint=model.fingerprint, positions=pool)
    return sweep


def _capture(
    model: OysterModel,
    prompts: Any,
    sites: Any,
    pool: Pool,
    cache: Any,
    batch_size: int,
    progress: bool,
) -> Activations:
    texts = [r.text for r in prompts]
    if cache is not None:
        return cached_capture(
            model,
            texts,
            sites,
            pool=pool,
            root=cache,
            batch_size=batch_size,
            progress=progress,
        )
    return cast(
        Activations,
        capture(model, texts, sites, pool=pool, batch_size=batch_size, progress=progress),
    )
