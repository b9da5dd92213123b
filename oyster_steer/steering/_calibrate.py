"""Strength calibration: how far a vector moves replies, and what it costs on benign prompts.

For each strength, on held-out prompts:

* margin: the mean per-token log-likelihood of the preferred reply minus that of each
  dispreferred reply (for ``constructive``: guidance over bare refusal and over redacted
  compliance), on the target's prompts (vulnerable and malicious), teacher-forced;
* KL: KL(unsteered || steered) of benign and borderline prompts' next-token distributions, at
  the last prompt token and along the model's own first greedy tokens, averaged.

``StrengthCurve.recommend(kl_budget)`` picks the strength with the largest margin whose KL stays
within the budget; ``gain_at_kl`` compares methods at equal benign KL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..activations._scoring import (
    FrozenInputs,
    Group,
    chat_ids,
    frozen_inputs,
    greedy_continuations,
    kl_from,
    reply_ids,
    score_groups,
)
from ..core._errors import EmptyInputError
from ..core._sites import parse_site
from ..data._contrast import (
    BENIGN_INTENTS,
    TARGETS,
    contrasts_for,
    keep_short,
    records_of,
    sample_records,
)
from ..models._forward import supports_forward_from
from ..vectors._vector import SteeringVector
from ._steer import patch

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["NEGATIVE_NAMES", "CalibrationCache", "StrengthCurve", "calibrate_strength"]

NEGATIVE_NAMES = {"constructive": ("refusal", "compliance"), "refusal": ("other",)}
DEFAULT_STRENGTHS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class StrengthCurve:
    """Margins and benign KL of one vector over a grid of strengths.

    Attributes:
        strengths: (S,) multipliers of the vector's directions, ascending, starting at 0.
        margins: intent -> negative name -> (S,) mean per-token log-likelihood margin of the
            preferred reply over that reply (nats per token).
        kl: (S,) mean benign next-token KL (nats).
        n_prompts: prompts per intent (and ``"kl"`` for the benign ones).
        target, method, vector: what was calibrated.
    """

    strengths: tuple[float, ...]
    margins: dict[str, dict[str, tuple[float, ...]]]
    kl: tuple[float, ...]
    n_prompts: dict[str, int]
    target: str = "constructive"
    method: str = "custom"
    vector: str = ""

    def margin(self, intent: str | None = None) -> np.ndarray:
        """(S,) margin averaged over negatives (and over intents when ``intent`` is None)."""
        intents = [intent] if intent else list(self.margins)
        if any(i not in self.margins for i in intents):
            raise KeyError(
                f"no margins for intent {intent!r}: calibrated intents are {', '.join(self.margins)}"
            )
        return np.mean([np.mean(list(self.margins[i].values()), axis=0) for i in intents], axis=0)

    def gain(self, intent: str | None = None) -> np.ndarray:
        """(S,) margin minus the unsteered margin (strength 0)."""
        m = self.margin(intent)
        return m - m[0]

    def _at(self, values: np.ndarray, kl_budget: float) -> tuple[float, float]:
        """(strength, value) where the curve reaches ``kl_budget`` (linear between grid points)."""
        kl = np.asarray(self.kl)
        s = np.asarray(self.strengths)
        above = np.nonzero(kl > kl_budget)[0]
        if len(above) == 0:
            return float(s[-1]), float(values[-1])
        k = int(above[0])
        if k == 0:
            return 0.0, float(values[0])
        w = (kl_budget - kl[k - 1]) / max(kl[k] - kl[k - 1], 1e-12)
        return float(s[k - 1] + w * (s[k] - s[k - 1])), float(
            values[k - 1] + w * (values[k] - values[k - 1])
        )

    def recommend(self, kl_budget: float) -> float:
        """The strength with the largest mean margin gain among those whose benign KL is within budget.

        Example:
            >>> curve.recommend(0.1)  # doctest: +SKIP
            3.2
        """
        gain = self.gain()
        feasible = [
            (float(g), float(s))
            for g, s, k in zip(gain, self.strengths, self.kl, strict=True)
            if k <= kl_budget
        ]
        feasible.append(self._at(gain, kl_budget)[::-1])
        return max(feasible, key=lambda gs: (gs[0], -gs[1]))[1]  # equal gains: the smaller strength

    def gain_at_kl(self, kl_budget: float, intent: str | None = None) -> float:
        """Margin gain where benign KL first reaches ``kl_budget`` (the last point if it never does)."""
        return self._at(self.gain(intent), kl_budget)[1]

    def reaches(self, kl_budget: float) -> bool:
        """Whether the grid's largest strength reaches ``kl_budget`` (else gain_at_kl is a lower bound)."""
        return max(self.kl) >= kl_budget

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StrengthCurve:
        data = json.loads(text)
        data["strengths"], data["kl"] = tuple(data["strengths"]), tuple(data["kl"])
        data["margins"] = {
            i: {n: tuple(v) for n, v in d.items()} for i, d in data["margins"].items()
        }
        return cls(**data)


def _target_groups(
    model: OysterModel,
    records: Sequence[Any],
    target: str,
    n: int,
    max_prompt_tokens: int,
    max_reply_tokens: int | None,
    seed: int,
) -> dict[str, list[Group]]:
    """Tokenised contrasts per target intent: prompt + [preferred, *negatives]."""
    keep = keep_short(model.tokenizer, max_prompt_tokens)
    contrasts = contrasts_for(sample_records(records, TARGETS[target][0], n, seed, keep), target)
    groups: dict[str, list[Group]] = {}
    for c in contrasts:
        replies = tuple(reply_ids(model, r, max_reply_tokens) for r in (c.positive, *c.negatives))
        groups.setdefault(c.intent, []).append(Group(chat_ids(model, c.prompt), replies))
    return groups


def _benign_groups(
    model: OysterModel,
    records: Sequence[Any],
    n: int,
    kl_tokens: int,
    max_prompt_tokens: int,
    seed: int,
) -> list[Group]:
    """Benign and borderline prompts with the model's own greedy continuations."""
    keep = keep_short(model.tokenizer, max_prompt_tokens)
    benign = sample_records(records, BENIGN_INTENTS, n, seed, keep)
    if not benign:
        raise EmptyInputError(
            "calibration needs benign or borderline prompts for the KL: add some to heldout"
        )
    benign_ids = [chat_ids(model, r.text) for r in benign]
    continuations = greedy_continuations(model, benign_ids, kl_tokens)
    return [Group(p, (c,)) for p, c in zip(benign_ids, continuations, strict=True)]


class CalibrationCache:
    """What calibrations of several vectors on the same held-out prompts share, computed once.

    The contrasts and benign prompts a calibration samples, the greedy continuations and the
    unsteered reference log-probabilities of the benign prompts, the cached lower blocks, and
    the margins at strength 0 (no steering installed) depend on the model, the prompts and the
    settings, not on the vector. Pass one cache to every :func:`calibrate_strength` call that
    calibrates vectors of one model on the same held-out set: each entry is keyed by everything
    it depends on, so a call with other settings computes (and keeps) its own; the curves are
    the ones separate calls give. Do not change the model's weights or hooks between the calls.

    Example:
        >>> cache = CalibrationCache()                                               # doctest: +SKIP
        >>> curves = {m: calibrate_strength(model, v, val, cache=cache) for m, v in vecs.items()}  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._store: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], make: Any) -> Any:
        """The value stored under ``key``, made by ``make()`` the first time."""
        if key not in self._store:
            self._store[key] = make()
        return self._store[key]

    def __len__(self) -> int:
        return len(self._store)


def _margins(
    model: OysterModel,
    groups: dict[str, list[Group]],
    names: Sequence[str],
    batch_size: int,
    hidden: dict[str, list[FrozenInputs]] | None = None,
) -> dict[str, dict[str, float]]:
    """Per intent and negative: mean (preferred - negative) per-token log-likelihood."""
    out = {}
    for intent, gs in groups.items():
        frozen = None if hidden is None else hidden[intent]
        scores = torch.stack(  # a vector edits every row alike: the chat head runs once
            score_groups(model, gs, batch_size=batch_size, hidden=frozen, share_head=True)
        )  # (n, 1 + n_neg)
        diffs = scores[:, :1] - scores[:, 1:]  # (n, n_neg)
        out[intent] = {
            name: float(diffs[:, k].mean()) for k, name in enumerate(names[: diffs.shape[1]])
        }
    return out


def calibrate_strength(
    model: OysterModel,
    vector: SteeringVector,
    heldout: Any,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    *,
    target: str | None = None,
    n_per_intent: int = 24,
    kl_tokens: int = 8,
    max_prompt_tokens: int = 96,
    max_reply_tokens: int | None = 48,
    positions: str = "all",
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    cache: CalibrationCache | None = None,
) -> StrengthCurve:
    """Measure reply margins and benign KL of ``vector`` at each strength, on held-out prompts.

    Args:
        model: the model the vector was made for (any backend; scoring runs on its HF module).
        vector: the :class:`SteeringVector` to calibrate.
        heldout: a :class:`~oyster_steer.data.PromptSet` never used for training (e.g. the
            ``"validation"`` split to choose a strength, ``"test"`` to report).
        strengths: multipliers to try; 0 is always added.
        target: the contrast to score (default: the vector's ``meta["target"]``, else constructive).
        n_per_intent: prompts per intent (target intents and benign/borderline for the KL).
        kl_tokens: greedy tokens along which benign KL is measured (plus the last prompt token).
        max_prompt_tokens: skip longer prompts; max_reply_tokens: score replies on their first
            tokens (None: whole replies).
        cache: a :class:`CalibrationCache` shared by the calibrations of several vectors on the
            same prompts: the material that does not depend on the vector, and the unsteered
            margins, are computed by the first call only (same curves as without it).

    Returns:
        A :class:`StrengthCurve`; ``curve.recommend(kl_budget)`` gives a strength.

    Example:
        >>> curve = calibrate_strength(model, v, load_all().split("validation"))   # doctest: +SKIP
        >>> v = v.with_strength(curve.recommend(0.1))                              # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    target = target or vector.meta.get("target", "constructive")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    hfm = model.with_backend("hf")
    vector.check_model(hfm)
    grid = sorted({0.0, *(float(s) for s in strengths)})
    records = records_of(heldout)
    store = cache if cache is not None else CalibrationCache()
    # everything below but the steered strengths is the same for every vector of this model
    # calibrated on these prompts with these settings (see CalibrationCache)
    base = (hfm.fingerprint, tuple(r.id for r in records), n_per_intent, max_prompt_tokens, seed)
    tkey = (*base, target, max_reply_tokens)
    bkey = (*base, kl_tokens)
    groups = store.get(
        ("groups", *tkey),
        lambda: _target_groups(
            hfm, records, target, n_per_intent, max_prompt_tokens, max_reply_tokens, seed
        ),
    )
    kl_groups = store.get(
        ("benign", *bkey),
        lambda: _benign_groups(hfm, records, n_per_intent, kl_tokens, max_prompt_tokens, seed),
    )
    reference = store.get(
        ("reference", *bkey, batch_size),
        lambda: score_groups(hfm, kl_groups, full=True, batch_size=batch_size),
    )
    # blocks below the vector's first site are the same at every strength: run them once
    # (not for prompt/generated positions: their tracker sits on the first block)
    hidden, kl_hidden, layer = None, None, None
    if positions == "all" and supports_forward_from(hfm):
        layer = min(parse_site(site).layer for site in vector.directions)
        hidden = store.get(
            ("hidden", *tkey, layer, batch_size),
            lambda: {
                i: frozen_inputs(hfm, gs, layer, batch_size=batch_size) for i, gs in groups.items()
            },
        )
        kl_hidden = store.get(
            ("benign hidden", *bkey, layer, batch_size),
            lambda: frozen_inputs(hfm, kl_groups, layer, batch_size=batch_size),
        )
    names = NEGATIVE_NAMES[target]
    per_strength, kls = [], []
    for s in tqdm(grid, desc="calibrate", unit="strength", disable=not progress, leave=False):
        if not s:  # unsteered: the same for every vector
            per_strength.append(
                store.get(
                    ("margins at 0", *tkey, layer, batch_size),
                    lambda: _margins(hfm, groups, names, batch_size, hidden),
                )
            )
            kls.append(0.0)
            continue
        handle = patch(hfm, vector, strength=s, positions=positions)
        try:
            per_strength.append(_margins(hfm, groups, names, batch_size, hidden))
            kls.append(
                float(
                    kl_from(
                        hfm,
                        kl_groups,
                        reference,
                        batch_size=batch_size,
                        hidden=kl_hidden,
                        share_head=True,
                    ).mean()
                )
            )
        finally:
            handle.remove()
    margins = {
        i: {n: tuple(m[i][n] for m in per_strength) for n in per_strength[0][i]}
        for i in per_strength[0]
    }
    counts = {i: len(g) for i, g in groups.items()} | {"kl": len(kl_groups)}
    return StrengthCurve(
        tuple(grid), margins, tuple(kls), counts, target, vector.method, repr(vector)
    )
