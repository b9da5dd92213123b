"""``train_vector``: steering vectors by mean difference, PCA, or gradient descent.

* ``mean_diff`` (contrastive activation addition): the mean residual activation over the reply
  tokens of prompt + preferred reply, minus the same for prompt + dispreferred replies.
* ``pca``: the first principal component of the paired differences (preferred minus each
  dispreferred reply of the same prompt; uncentred, as in representation engineering, so a
  consistent shift counts as signal rather than being subtracted away), its sign fixed to agree with the mean difference and
  scaled to its length, so strengths are comparable across methods.
* ``learned``: optimised through the frozen model so that adding it raises the likelihood of the
  preferred reply over the others while benign prompts' next-token distributions stay put (see
  :mod:`oyster_steer.vectors._learn`).

The replies are the contrast set of a *target* (:mod:`oyster_steer.data._contrast`): ``constructive``
(guidance/boundary replies over bare refusal and redacted compliance, on vulnerable and malicious
prompts) or ``refusal`` (bare refusal over compliance and helpful openings).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..activations._capture import capture
from ..core._errors import EmptyInputError
from ..core._sites import Site, resolve_sites
from ..data._contrast import BENIGN_INTENTS, TARGETS, Contrast, contrasts_for, records_of, sample_records
from ._learn import LearnConfig
from ._vector import SteeringVector

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "METHODS",
    "default_site",
    "mean_difference",
    "pca_direction",
    "reply_activations",
    "train_vector",
]

METHODS = ("mean_diff", "pca", "learned")


def default_site(model: OysterModel) -> str:
    """The residual output of the block at 40% depth (layer 12 of SmolLM2-135M's 30)."""
    return f"blocks.{int(0.4 * model.n_layers)}.hook_resid_post"


def mean_difference(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of ``positive`` (N, d) minus mean of ``negative`` (M, d): a (d,) direction."""
    if len(positive) == 0 or len(negative) == 0:
        raise EmptyInputError(
            "mean_difference needs at least one positive and one negative activation"
        )
    return positive.float().mean(0) - negative.float().mean(0)


def pca_direction(differences: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """First principal component of the paired ``differences`` (N, d), signed and scaled to ``reference``.

    The component is the top right-singular vector of the *uncentred* differences (the direction
    of largest second moment). Centring would subtract the mean difference, the very shift the
    pairs share, and leave a direction that is close to orthogonal to it. The sign makes it agree
    with ``reference`` (the mean difference); its length is ``reference``'s, so a strength means
    the same thing for both methods.
    """
    if len(differences) < 2:
        raise EmptyInputError("pca_direction needs at least two paired differences")
    _, _, vh = torch.linalg.svd(differences.float(), full_matrices=False)  # uncentred
    pc = vh[0]  # (d,) unit
    sign = 1.0 if float(pc @ reference.float()) >= 0 else -1.0
    return sign * pc * reference.float().norm()


def reply_activations(
    model: OysterModel,
    prompts: Sequence[str],
    replies: Sequence[str],
    sites: Sequence[Site],
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Per site, the mean activation over each reply's tokens after its chat prompt: (N, d)."""
    texts = [model.format_chat(p) + r for p, r in zip(prompts, replies, strict=True)]
    acts = capture(
        model,
        texts,
        list(sites),
        positions="all",
        chat=False,
        batch_size=batch_size,
        progress=progress,
    )
    starts = []
    for i, p in enumerate(prompts):  # the reply starts where the prompt's own tokens stop matching
        prefix = model.encode([model.format_chat(p)], chat=False)[0][0].cpu()
        full = acts.prompt_ids(i)
        same = (full[: len(prefix)] == prefix[: len(full)]).long().cumprod(0).sum()
        starts.append(min(int(same), len(full) - 1))
    return {
        s.name: torch.stack(
            [acts.prompt_acts(s, i)[starts[i] :].mean(0) for i in range(len(prompts))]
        )
        for s in sites
    }


def _contrast_acts(
    model: OysterModel,
    contrasts: Sequence[Contrast],
    sites: Sequence[Site],
    batch_size: int,
    progress: bool,
):
    """(N, d) positives and (N, n_neg, d) negatives per site (every contrast has n_neg negatives)."""
    n_neg = len(contrasts[0].negatives)
    prompts = [c.prompt for c in contrasts for _ in range(1 + n_neg)]
    replies = [r for c in contrasts for r in (c.positive, *c.negatives)]
    acts = reply_activations(
        model, prompts, replies, sites, batch_size=batch_size, progress=progress
    )
    out = {}
    for name, a in acts.items():
        grouped = a.reshape(len(contrasts), 1 + n_neg, -1)  # (N, 1 + n_neg, d)
        out[name] = (grouped[:, 0], grouped[:, 1:])
    return out


def _activation_method(
    model, contrasts, sites, method, batch_size, progress
) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """mean_diff and pca directions, grouping contrasts by their number of negatives."""
    by_size: dict[int, list[Contrast]] = {}
    for c in contrasts:
        by_size.setdefault(len(c.negatives), []).append(c)
    pos: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
    neg: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
    diffs: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
    for group in by_size.values():
        for name, (p, n) in _contrast_acts(model, group, sites, batch_size, progress).items():
            pos[name].append(p)
            neg[name].append(n.reshape(-1, n.shape[-1]))
            diffs[name].append((p.unsqueeze(1) - n).reshape(-1, n.shape[-1]))
    out = {}
    for name in pos:
        md = mean_difference(torch.cat(pos[name]), torch.cat(neg[name]))
        out[name] = md if method == "mean_diff" else pca_direction(torch.cat(diffs[name]), md)
    return out


def _describe(records: Sequence[Any], description: str | None) -> str:
    counts = Counter(r.intent for r in records)
    sources = sorted({getattr(r, "source", "?") for r in records})
    text = f"{len(records)} prompts ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) from {', '.join(sources)}"
    return f"{description}: {text}" if description else text


def train_vector(
    model: OysterModel,
    data: Any,
    *,
    method: str = "mean_diff",
    target: str = "constructive",
    sites: str | Site | Sequence[str | Site] | None = None,
    intents: Sequence[str] | None = None,
    n_per_intent: int | None = 128,
    max_prompt_tokens: int = 96,
    validation: Any = None,
    config: LearnConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    batch_size: int = 16,
    seed: int = 0,
    description: str | None = None,
    progress: bool = True,
) -> SteeringVector:
    """Train a steering vector toward ``target`` behaviour with ``method``.

    Args:
        model: from :func:`oyster_steer.load_model`, on any backend.
        data: a :class:`~oyster_steer.data.PromptSet` (or records with text/intent/category), e.g.
            its ``"train"`` split; replies come from :func:`~oyster_steer.data.exemplar_for`.
        method: ``"mean_diff"``, ``"pca"`` or ``"learned"``.
        target: ``"constructive"`` or ``"refusal"`` (see :mod:`oyster_steer.data._contrast`).
        sites: where the vector is read and written (default :func:`default_site`).
        intents: restrict the contrast prompts to these intents.
        n_per_intent: prompts per intent, chosen by a seeded hash; None for all.
        max_prompt_tokens: skip (never truncate) prompts longer than this many tokens.
        validation: held-out records for early stopping (``learned``); default: 15% of ``data``.
        config: :class:`~oyster_steer.vectors._learn.LearnConfig` for ``learned``.
        checkpoint, resume: a file for the learned run's state; ``resume=True`` continues it.
        description: a name for the training data, stored in the vector's metadata.

    Returns:
        A :class:`SteeringVector` at strength 1 (use :func:`oyster_steer.calibrate_strength`).

    Example:
        >>> train = load_all().split("train")                                        # doctest: +SKIP
        >>> v = train_vector(model, train, method="learned", sites="blocks.12.hook_resid_post")  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    resolved = resolve_sites(sites if sites is not None else default_site(model), model.n_layers)
    want = tuple(intents or TARGETS[target][0])
    keep = _short(model, max_prompt_tokens)
    records = sample_records(records_of(data), want, n_per_intent, seed, keep)
    meta = {
        "target": target,
        "intents": ",".join(want),
        "data": _describe(records, description),
        "seed": str(seed),
    }
    if method == "learned":
        cfg = config or LearnConfig(seed=seed)
        directions, summary = _learned(
            model,
            data,
            records,
            target,
            want,
            resolved,
            validation,
            cfg,
            keep,
            checkpoint,
            resume,
            progress,
        )
        meta.update({k: str(v) for k, v in summary.items() if k != "history"})
    else:
        contrasts = contrasts_for(records, target, want)
        directions = _activation_method(model, contrasts, resolved, method, batch_size, progress)
    return SteeringVector.from_tensors(model, directions, method=method, meta=meta)


def _short(model: OysterModel, max_tokens: int) -> Any:
    def keep(record: Any) -> bool:
        return (
            len(model.tokenizer(record.text, add_special_tokens=False)["input_ids"]) <= max_tokens
        )

    return keep


def _learned(
    model, data, records, target, want, sites, validation, cfg, keep, checkpoint, resume, progress
):  # noqa: ANN001
    """Split train/validation contrasts and benign KL prompts, then run the optimiser."""
    import hashlib

    from ..data import split_of
    from ._learn import learn_directions

    n_kl = max(8, len(records) // 4)
    benign = sample_records(records_of(data), BENIGN_INTENTS, n_kl, cfg.seed, keep)
    if validation is None:  # hold out ~15% of the given prompts, by a hash of their text
        held = lambda r: split_of(r.text, (0.85, 0.15, 0.0)) == "validation"  # noqa: E731
        val_records, val_benign = [r for r in records if held(r)], [r for r in benign if held(r)]
        records, benign = [r for r in records if not held(r)], [r for r in benign if not held(r)]
    else:
        pool = records_of(validation)
        val_records = sample_records(pool, want, 8, cfg.seed, keep)
        val_benign = sample_records(pool, BENIGN_INTENTS, 4, cfg.seed, keep)
    train_c = contrasts_for(records, target, want)
    val_c = contrasts_for(val_records, target, want)[:16]
    texts = [c.prompt for c in train_c] + [r.text for r in benign]
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    return learn_directions(
        model,
        train_c,
        [r.text for r in benign],
        sites,
        validation=(val_c, [r.text for r in val_benign][:8]),
        config=cfg,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        key=key,
    )
