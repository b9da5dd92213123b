"""``train_vector``: steering vectors from your own contrast pairs, or from the Oyster contrasts.

Input (``pairs``): ``(prompt, positive_reply, negative_reply)`` triples, ``(positive_text,
negative_text)`` pairs, two :class:`~oyster_steer.activations.Activations` (positives, negatives),
or a :class:`~oyster_steer.data.PromptSet` whose replies come from the built-in contrast sets
(:func:`oyster_steer.data.contrast_triples`: one caller of the same generic path).

What is read from each text (``read``): ``"reply"`` (mean over the reply's tokens; triples),
``"last"`` token, ``"mean"`` over all tokens, an ``int`` token index, a ``slice`` of tokens, or a
callable ``token_ids (T,) -> index or (T,) bool mask``.

Aggregators (``method``):

* ``mean_diff`` (contrastive activation addition): the mean residual activation over the reply
  tokens of prompt + preferred reply, minus the same for prompt + dispreferred replies.
* ``pca``: the first principal component of the paired differences (preferred minus each
  dispreferred reply of the same prompt; uncentred, as in representation engineering, so a
  consistent shift counts as signal rather than being subtracted away), its sign fixed to agree
  with the mean difference and scaled to its length, so strengths are comparable across methods.
* ``learned``: optimised through the frozen model so that adding it raises the likelihood of the
  preferred reply over the others while benign prompts' next-token distributions stay put (see
  :mod:`oyster_steer.vectors._learn`).
* ``logistic``: the normal of a logistic-regression boundary between positives and negatives
  (:func:`oyster_steer.core._logreg.fit_logreg`), signed and scaled like ``pca``.
* any callable ``(pos (N, d), neg (M, d)) -> (d,) direction``.

With a PromptSet, the replies are the contrast set of a *target* (:mod:`oyster_steer.data._contrast`): ``constructive``
(guidance/boundary replies over bare refusal and redacted compliance, on vulnerable and malicious
prompts) or ``refusal`` (bare refusal over compliance and helpful openings).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ..activations._capture import Activations, Pool, capture
from ..core._errors import EmptyInputError
from ..core._logreg import fit_logreg
from ..core._sites import Site, resolve_sites
from ..data import load_starter, split_of
from ..data._contrast import (
    BENIGN_INTENTS,
    TARGETS,
    Contrast,
    contrast_triples,
    contrasts_for,
    keep_short,
    records_of,
    sample_records,
)
from ._learn import LearnConfig, learn_directions
from ._vector import SteeringVector

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "METHODS",
    "Aggregator",
    "aggregate",
    "default_site",
    "logistic_direction",
    "mean_difference",
    "pca_direction",
    "reply_activations",
    "text_activations",
    "train_vector",
]

METHODS = ("mean_diff", "pca", "logistic", "learned")


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


ReadSpec = str | int | slice | Callable[[torch.Tensor], Any]
"""What to read from each text: ``"reply"``, ``"last"``, ``"mean"``, an index, a slice, or a callable."""
Aggregator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(positives (N, d), negatives (M, d)) -> (d,)`` direction."""
READS = ("reply", "last", "mean")


def logistic_direction(
    positive: torch.Tensor,
    negative: torch.Tensor,
    reference: torch.Tensor | None = None,
    *,
    l2: float = 1e-2,
) -> torch.Tensor:
    """The normal of a logistic-regression boundary between ``positive`` (N, d) and ``negative`` (M, d).

    Fitted with the probes' L-BFGS logistic regression on standardised features (balanced
    classes, L2 ``l2``); the normal is mapped back to raw activation space (``w / scale``), signed
    to agree with ``reference`` (default: the mean difference) and scaled to its length, so a
    strength means the same as for ``mean_diff``.
    """

    reference = mean_difference(positive, negative) if reference is None else reference.float()
    x = torch.cat([positive.float(), negative.float()])  # (N + M, d)
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).long()
    fit = fit_logreg(x, y, x, y, 2, l2_grid=(float(l2),), class_weight="balanced")
    normal = (fit.weight[1] - fit.weight[0]) / fit.scale  # (d,) in raw activation space
    unit = normal / normal.norm().clamp(min=1e-12)
    sign = 1.0 if float(unit @ reference) >= 0 else -1.0
    return sign * unit * reference.norm()


def aggregate(
    method: str | Aggregator, positive: torch.Tensor, negative: torch.Tensor, *, paired: bool
) -> torch.Tensor:
    """One (d,) direction from positives (N, d) and negatives (M, d) by ``method``.

    ``pca`` needs ``paired`` rows (``positive[i]`` and ``negative[i]`` from the same pair).

    Example:
        >>> pos, neg = torch.eye(4)[:2] + 1, torch.eye(4)[:2]
        >>> aggregate("mean_diff", pos, neg, paired=True)
        tensor([1., 1., 1., 1.])
    """
    if len(positive) == 0 or len(negative) == 0:
        raise EmptyInputError(
            "no activations to aggregate: pass at least one positive and one negative"
        )
    if callable(method):
        out = method(positive.float(), negative.float())
        if not isinstance(out, torch.Tensor) or out.shape != positive.shape[1:]:
            raise TypeError(
                f"the aggregator {getattr(method, '__name__', method)!r} returned "
                f"{getattr(out, 'shape', type(out).__name__)}: return one ({positive.shape[1]},) tensor"
            )
        return out.detach().float()
    md = mean_difference(positive, negative)
    if method == "mean_diff":
        return md
    if method == "pca":
        if not paired or positive.shape != negative.shape:
            raise ValueError(
                "method='pca' needs paired positives and negatives (one negative per positive): "
                "pass pairs or triples, or use method='mean_diff'"
            )
        return pca_direction(positive.float() - negative.float(), md)
    if method == "logistic":
        return logistic_direction(positive, negative, md)
    raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)} or a callable")


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
    prefixes = [model.format_chat(p) for p in prompts]
    return text_activations(
        model, texts, sites, "reply", prefixes=prefixes, batch_size=batch_size, progress=progress
    )


def text_activations(
    model: OysterModel,
    texts: Sequence[str],
    sites: Sequence[Site],
    read: ReadSpec = "last",
    *,
    chat: bool = False,
    prefixes: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Per site, one (N, d) row per text: what ``read`` selects of its tokens.

    Identical texts are run once. ``prefixes`` (with ``read="reply"``): the text each one starts
    with (its formatted prompt); the reply is every token after it.
    """

    if isinstance(read, str) and read not in READS:
        raise ValueError(
            f"read={read!r} is not supported: use one of {', '.join(READS)}, an int, a slice or a callable"
        )
    if read == "reply" and prefixes is None:
        raise ValueError(
            "read='reply' needs the prompt of each text: pass (prompt, positive, negative) triples, or read='last'"
        )
    uniq = list(dict.fromkeys(texts))
    positions: Pool = "last" if read == "last" else "mean" if read == "mean" else "all"
    acts = capture(
        model,
        uniq,
        list(sites),
        pool=positions,
        chat=chat,
        batch_size=batch_size,
        progress=progress,
    )
    if positions != "all":
        rows = {s.name: acts[s] for s in sites}
    else:
        starts = (
            _reply_starts(model, acts, uniq, texts, prefixes)
            if read == "reply" and prefixes is not None
            else None
        )
        rows = {
            s.name: torch.stack(
                [
                    _select(acts.prompt_acts(s, i), acts.prompt_ids(i), read, starts, i)
                    for i in range(len(uniq))
                ]
            )
            for s in sites
        }
    where = {t: i for i, t in enumerate(uniq)}
    index = torch.tensor([where[t] for t in texts])
    return {name: r[index] for name, r in rows.items()}


def _reply_starts(
    model: OysterModel,
    acts: Activations,
    uniq: Sequence[str],
    texts: Sequence[str],
    prefixes: Sequence[str],
) -> list[int]:
    """Where each unique text's reply starts: the first token that no longer matches its prompt."""
    prefix_of = dict(zip(texts, prefixes, strict=True))
    rows = model.token_rows([prefix_of[t] for t in uniq], chat=False)
    starts = []
    for i, row in enumerate(rows):
        prefix, full = torch.tensor(row, dtype=torch.long), acts.prompt_ids(i)
        n = min(len(prefix), len(full))
        same = int((full[:n] == prefix[:n]).long().cumprod(0).sum())
        starts.append(min(same, len(full) - 1))
    return starts


def _select(
    a: torch.Tensor, ids: torch.Tensor, read: ReadSpec, starts: list[int] | None, i: int
) -> torch.Tensor:
    """(T, d) activations of one text -> (d,) by ``read``."""
    if read == "reply":
        assert starts is not None
        return a[starts[i] :].mean(0)
    sel = read(ids) if callable(read) else read
    if isinstance(sel, torch.Tensor) and sel.dtype == torch.bool:
        if sel.shape != ids.shape:
            raise ValueError(
                f"read returned a mask of shape {tuple(sel.shape)} for text {i} of {len(ids)} tokens: "
                f"return a ({len(ids)},) bool mask"
            )
        picked = a[sel]
    elif isinstance(sel, slice):
        picked = a[sel]
    else:
        try:
            picked = a[cast(Any, sel)]  # an int or a sequence of ints
        except IndexError:
            raise IndexError(
                f"read={sel!r} is out of range for text {i} with {len(ids)} tokens: pick an index in "
                f"-{len(ids)}..{len(ids) - 1}"
            ) from None
    if picked.dim() == 1:
        return picked
    if len(picked) == 0:
        raise EmptyInputError(f"read={read!r} selects no token of text {i}: select at least one")
    return picked.mean(0)


Pairs = Sequence[tuple[str, str]] | Sequence[tuple[str, str, str]]


def _kind(data: Any) -> str:
    """``"acts"`` (two Activations), ``"triples"``, ``"pairs"`` or ``"records"``."""

    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(d, Activations) for d in data)
    ):
        return "acts"
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], (tuple, list)):
        sizes = {len(p) for p in data}
        if sizes not in ({2}, {3}) or not all(isinstance(t, str) for p in data for t in p):
            raise TypeError(
                "pairs must all be (positive_text, negative_text) or all (prompt, positive, negative) tuples of str"
            )
        return "pairs" if sizes == {2} else "triples"
    return "records"


def _pair_acts(
    model: OysterModel,
    data: Any,
    kind: str,
    sites: Sequence[Site],
    read: ReadSpec | None,
    chat: bool | None,
    batch_size: int,
    progress: bool,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], bool, str]:
    """Per site (positives (N, d), negatives (M, d)), whether rows are paired, and ``read``'s name."""
    if kind == "acts":
        pos_acts, neg_acts = data
        out = {}
        for s in sites:
            out[s.name] = (_from_acts(pos_acts, s, read), _from_acts(neg_acts, s, read))
        return out, len(pos_acts) == len(neg_acts), str(read or pos_acts.positions)
    if kind == "triples":
        read = "reply" if read is None else read
        use_chat = True if chat is None else chat
        fmt = model.format_chat if use_chat else (lambda p: p)
        prefixes = [fmt(p) for p, _, _ in data] * 2
        texts = [fmt(p) + r for p, r, _ in data] + [fmt(p) + r for p, _, r in data]
    else:
        if read == "reply":
            raise ValueError(
                "read='reply' needs (prompt, positive, negative) triples: pass those, or read='last'"
            )
        read = "last" if read is None else read
        prefixes = None
        texts = [p for p, _ in data] + [n for _, n in data]
        use_chat = bool(chat)

    def run() -> dict[str, torch.Tensor]:
        return text_activations(
            model,
            texts,
            sites,
            read,
            chat=use_chat if kind == "pairs" else False,
            prefixes=prefixes,
            batch_size=batch_size,
            progress=progress,
        )

    memo = _SHARED[-1] if _SHARED else None
    if memo is None or not isinstance(read, (str, int)):
        rows = run()
    else:
        key = (
            id(model),
            model.fingerprint,
            tuple(texts),
            None if prefixes is None else tuple(prefixes),
            tuple(s.name for s in sites),
            read,
            use_chat,
            kind,
            batch_size,
        )
        if key not in memo:
            memo[key] = run()
        rows = memo[key]
    n = len(data)
    return {k: (v[:n], v[n:]) for k, v in rows.items()}, True, _read_name(read)


_SHARED: list[dict[tuple[Any, ...], dict[str, torch.Tensor]]] = []  # the innermost block's last


@contextlib.contextmanager
def shared_activations() -> Iterator[None]:
    """Inside the block, :func:`train_vector` calls that read the same texts at the same sites
    the same way (``mean_diff`` and ``pca`` on the same contrasts) capture them once; the later
    call aggregates the first one's activations (no method changes them in place), so its vector
    is the one a separate capture gives. Do not change the model's weights or hooks inside."""
    _SHARED.append({})
    try:
        yield
    finally:
        _SHARED.pop()


def _read_name(read: Any) -> str:
    return (
        read
        if isinstance(read, str)
        else repr(read)
        if isinstance(read, (int, slice))
        else "callable"
    )


def _from_acts(acts: Any, site: Site, read: ReadSpec | None) -> torch.Tensor:
    """(N, d) rows of a capture: as captured (last/mean), or ``read`` per prompt of an ``all`` capture."""
    if acts.positions != "all":
        if read not in (None, acts.positions):
            raise ValueError(
                f"these activations were captured with positions={acts.positions!r}, so read={read!r} cannot "
                "apply: capture with positions='all', or leave read unset"
            )
        return acts[site].float()
    read = "last" if read is None else read
    if read == "reply":
        raise ValueError(
            "read='reply' needs prompts and replies: pass triples, or an index/mask read"
        )
    return torch.stack(
        [
            _select(acts.prompt_acts(site, i), acts.prompt_ids(i), read, None, i)
            for i in range(len(acts))
        ]
    ).float()


def _describe(records: Sequence[Any], description: str | None) -> str:
    counts = Counter(r.intent for r in records)
    sources = sorted({getattr(r, "source", "?") for r in records})
    text = f"{len(records)} prompts ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) from {', '.join(sources)}"
    return f"{description}: {text}" if description else text


def train_vector(
    model: OysterModel,
    pairs: Any,
    *,
    method: str | Aggregator = "mean_diff",
    sites: str | Site | Sequence[str | Site] | None = None,
    read: ReadSpec | None = None,
    chat: bool | None = None,
    target: str = "constructive",
    intents: Sequence[str] | None = None,
    n_per_intent: int | None = 128,
    max_prompt_tokens: int = 96,
    validation: Any = None,
    config: LearnConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    kl_prompts: Sequence[str] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    description: str | None = None,
    progress: bool = True,
) -> SteeringVector:
    """Train a steering vector from contrast pairs with ``method``.

    Args:
        model: from :func:`oyster_steer.load_model` (or any wrapped decoder), on any backend.
        pairs: your data: ``(prompt, positive, negative)`` triples (the prompt is wrapped in the
            chat template unless ``chat=False``), ``(positive_text, negative_text)`` pairs (used
            as given unless ``chat=True``), two :class:`~oyster_steer.activations.Activations`
            ``(positives, negatives)``, or a :class:`~oyster_steer.data.PromptSet` / records
            (replies from the Oyster contrast set of ``target``).
        method: ``"mean_diff"``, ``"pca"``, ``"logistic"``, ``"learned"`` (triples or a
            PromptSet), or a callable ``(pos (N, d), neg (M, d)) -> (d,)``.
        sites: where the vector is read and written (default :func:`default_site`).
        read: which tokens give a text's activation: ``"reply"`` (mean over the reply; the
            default for triples), ``"last"`` (the default for pairs), ``"mean"``, an int index,
            a slice, or a callable ``token_ids -> index or bool mask``.
        target, intents, n_per_intent, max_prompt_tokens: the Oyster contrasts (PromptSet input):
            ``"constructive"`` or ``"refusal"`` replies, restricted to ``intents``, up to
            ``n_per_intent`` prompts per intent chosen by a seeded hash, prompts longer than
            ``max_prompt_tokens`` skipped (never truncated).
        validation: held-out records for early stopping (``learned``); default: 15% of the data.
        config: :class:`~oyster_steer.vectors._learn.LearnConfig` for ``learned``.
        checkpoint, resume: a file for the learned run's state; ``resume=True`` continues it.
        kl_prompts: benign prompts whose next tokens ``learned`` keeps close (triples input;
            default: the starter set's benign and borderline prompts).
        description: a name for the training data, stored in the vector's metadata.

    Returns:
        A :class:`SteeringVector` at strength 1 (use :func:`oyster_steer.calibrate_strength`).

    Example:
        >>> pairs = [("I love this.", "I hate this."), ("Great job!", "Awful job!")]   # doctest: +SKIP
        >>> v = train_vector(model, pairs, method="mean_diff", read="last")          # doctest: +SKIP
    """
    if not callable(method) and method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}: use one of {', '.join(METHODS)} or a callable"
        )
    resolved = resolve_sites(sites if sites is not None else default_site(model), model.n_layers)
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    kind = _kind(pairs)
    if kind != "records":
        if len(pairs) == 0 if kind != "acts" else False:
            raise EmptyInputError("pairs is empty: pass at least one contrast pair")
        if method == "learned":
            if kind != "triples":
                raise ValueError(
                    "method='learned' scores replies after prompts: pass (prompt, positive, negative) triples"
                )
            run = _LearnRun(
                resolved, config or LearnConfig(seed=seed), checkpoint, resume, progress
            )
            directions, summary = _learned_triples(model, pairs, kl_prompts, run)
            meta = {k: str(v) for k, v in summary.items() if k != "history"}
        else:
            acts, paired, read_name = _pair_acts(
                model, pairs, kind, resolved, read, chat, batch_size, progress
            )
            directions = {k: aggregate(method, p, n, paired=paired) for k, (p, n) in acts.items()}
            meta = {"read": read_name}
        count = len(pairs[0]) if kind == "acts" else len(pairs)
        meta["data"] = f"{description + ': ' if description else ''}{count} {kind}"
        meta["seed"] = str(seed)
        return SteeringVector.from_tensors(model, directions, method=name, meta=meta)

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    want = tuple(intents or TARGETS[target][0])
    keep = keep_short(model.tokenizer, max_prompt_tokens)
    records = sample_records(records_of(pairs), want, n_per_intent, seed, keep)
    meta = {
        "target": target,
        "intents": ",".join(want),
        "data": _describe(records, description),
        "seed": str(seed),
    }
    if method == "learned":
        run = _LearnRun(resolved, config or LearnConfig(seed=seed), checkpoint, resume, progress)
        directions, summary = _learned(
            model,
            pairs,
            records,
            target=target,
            want=want,
            validation=validation,
            keep=keep,
            run=run,
        )
        meta.update({k: str(v) for k, v in summary.items() if k != "history"})
    else:
        triples = contrast_triples(records, target, want)
        acts, paired, _ = _pair_acts(
            model, triples, "triples", resolved, read, None, batch_size, progress
        )
        directions = {k: aggregate(method, p, n, paired=paired) for k, (p, n) in acts.items()}
        if read is not None:
            meta["read"] = _read_name(read)
    return SteeringVector.from_tensors(model, directions, method=name, meta=meta)


@dataclass(frozen=True)
class _LearnRun:
    """How a ``learned`` vector is optimised: at which sites, with which config and checkpoint."""

    sites: list[Site]
    config: LearnConfig
    checkpoint: str | Path | None
    resume: bool
    progress: bool

    def learn(
        self,
        model: OysterModel,
        train: Sequence[Contrast],
        kl: Sequence[str],
        validation: tuple[Sequence[Contrast], Sequence[str]],
        key: str,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return learn_directions(
            model,
            train,
            kl,
            self.sites,
            validation=validation,
            config=self.config,
            checkpoint=self.checkpoint,
            resume=self.resume,
            progress=self.progress,
            key=key,
        )


def _learned_triples(
    model: OysterModel,
    triples: Sequence[tuple[str, str, str]],
    kl_prompts: Sequence[str] | None,
    run: _LearnRun,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``learned`` on user triples: one contrast per triple, 15% held out by a hash of the prompt."""
    if kl_prompts is None:
        kl_prompts = [r.text for r in load_starter() if r.intent in BENIGN_INTENTS]
    contrasts = [Contrast(p, "custom", pos, (neg,)) for p, pos, neg in triples]
    held = [split_of(c.prompt, (0.85, 0.15, 0.0)) == "validation" for c in contrasts]
    train = [c for c, h in zip(contrasts, held, strict=True) if not h] or contrasts
    val = [c for c, h in zip(contrasts, held, strict=True) if h] or contrasts[:4]
    kl = list(kl_prompts)
    if not kl:
        raise EmptyInputError(
            "kl_prompts is empty: pass benign prompts whose next tokens should stay put"
        )
    key = hashlib.sha256("\x00".join(c.prompt + c.positive for c in train).encode()).hexdigest()
    return run.learn(model, train, kl, (val[:16], kl[:8]), key[:16])


def _learned(
    model: OysterModel,
    data: Any,
    records: list[Any],
    *,
    target: str,
    want: tuple[str, ...],
    validation: Any,
    keep: Callable[[Any], bool],
    run: _LearnRun,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split train/validation contrasts and benign KL prompts, then run the optimiser."""
    cfg = run.config
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
    kl = [r.text for r in benign]
    return run.learn(model, train_c, kl, (val_c, [r.text for r in val_benign][:8]), key)
