"""Linear probes over the residual stream: a frozen, device-agnostic classifier of one hook site.

A :class:`LinearProbe` standardises an activation, applies a linear map and divides by a
temperature; :meth:`LinearProbe.folded` folds all three into one ``(W, b)`` so a hook can read
it with a single ``x @ W.T + b``. ``logits`` is pure tensor code (no host syncs), so it runs inside
hooks, under ``torch.compile(fullgraph=True)`` and in CUDA graphs.

Example:
    >>> probe = train_probe(acts, "intent", site="blocks.20.hook_resid_post", val=(val_acts, "intent"))  # doctest: +SKIP
    >>> probe.probs(acts["blocks.20.hook_resid_post"][:2])  # doctest: +SKIP
    tensor([[0.97, 0.01, 0.01, 0.01], [0.02, 0.05, 0.90, 0.03]])
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from ..core._errors import ArtifactError, ModelMismatchError, WidthMismatchError, require_finite
from ..core._sites import Site, parse_site
from ..models._artifacts import check_model, load_artifact, meta_field, model_meta, save_artifact

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["LinearProbe", "load_probe", "save_probe"]

_FORMAT, _VERSION = "oyster_steer.probe", 1
_FIELDS = ("site", "labels", "temperature", "threshold", "format", "format_version")


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A calibrated linear classifier of the activation at one site.

    Attributes:
        site: where it reads; labels: class names (binary probes: ``(negative, positive)``).
        weight: (C, d) and bias: (C,) act on the standardised activation ``(x - mean) / scale``.
        temperature: logits are divided by it (temperature scaling on validation data).
        threshold: flag rule of binary probes, ``probs(x)[..., 1] > threshold``; None if uncalibrated.
        meta: provenance strings (task, data, metrics as JSON, ...); ``meta["pool"]`` names the
            features it was fit on (``"last"`` prompt token when absent, ``"mean"`` over the
            prompt, or ``"last+mean"``, both side by side: :attr:`pool`).
    """

    site: Site
    labels: tuple[str, ...]
    weight: torch.Tensor  # (C, d)
    bias: torch.Tensor  # (C,)
    mean: torch.Tensor  # (d,)
    scale: torch.Tensor  # (d,)
    temperature: float = 1.0
    threshold: float | None = None
    meta: dict[str, str] = field(default_factory=dict)
    _w: torch.Tensor = field(init=False, repr=False)  # (C, d) folded weight
    _b: torch.Tensor = field(init=False, repr=False)  # (C,) folded bias

    def __post_init__(self) -> None:
        for name in ("weight", "bias", "mean", "scale"):
            if not getattr(self, name).is_floating_point():
                raise TypeError(
                    f"the probe's {name} has dtype {getattr(self, name).dtype}: pass floating-point tensors"
                )
        c, d = self.weight.shape if self.weight.dim() == 2 else (-1, -1)
        if c < 2 or self.bias.shape != (c,) or self.mean.shape != (d,) or self.scale.shape != (d,):
            raise ValueError(
                f"probe tensors have inconsistent shapes (weight {tuple(self.weight.shape)}, bias {tuple(self.bias.shape)}, "
                f"mean {tuple(self.mean.shape)}, scale {tuple(self.scale.shape)}): expected (C, d), (C,), (d,), (d,) with C >= 2"
            )
        if len(self.labels) != c:
            raise ValueError(
                f"labels has {len(self.labels)} names for {c} classes: give one name per row of weight"
            )
        for name in ("weight", "bias", "mean", "scale"):
            require_finite(getattr(self, name), f"the probe's {name}")
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature={self.temperature} must be > 0 and finite")
        if self.threshold is not None:
            require_finite(self.threshold, f"threshold={self.threshold}")
        object.__setattr__(self, "site", parse_site(self.site))
        object.__setattr__(self, "labels", tuple(self.labels))
        w = self.weight / self.scale / self.temperature  # (C, d)
        b = (self.bias - w @ self.mean * self.temperature) / self.temperature  # (C,)
        object.__setattr__(self, "_w", w)
        object.__setattr__(self, "_b", b)

    @property
    def pool(self) -> Literal["last", "mean", "last+mean"]:
        """The prompt features it reads: ``"last"`` token (default), ``"mean"`` over the prompt,
        or ``"last+mean"`` (both side by side: a (C, 2d) weight) (``capture(pool=probe.pool)``
        gives them; a control plan reads them with ``read=probe.pool``)."""
        pool = self.meta.get("pool")
        return pool if pool in ("mean", "last+mean") else "last"  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_features(self) -> int:
        """Width of the features it reads: ``d_model``, or ``2 * d_model`` for ``"last+mean"``."""
        return int(self.weight.shape[1])

    @property
    def d_model(self) -> int:
        """Width of the model's residual stream it reads."""
        return self.n_features // 2 if self.pool == "last+mean" else self.n_features

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W (C, d), b (C,))`` with standardisation and temperature folded in: ``logits(x) == x @ W.T + b``."""
        return self._w, self._b

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) activations -> (..., C) calibrated logits; no host syncs.

        Example:
            >>> probe.logits(torch.zeros(2, 7, probe.d_model)).shape  # doctest: +SKIP
            torch.Size([2, 7, 4])
        """
        if x.shape[-1] != self.n_features:
            raise WidthMismatchError(
                f"activations have width {x.shape[-1]} but the probe for {self.site.name} expects {self.n_features}: capture at a model of the probe's width"
                + (" with pool='last+mean'" if self.pool == "last+mean" else "")
            )
        if x.device != self._w.device:
            raise ValueError(
                f"activations are on {x.device} but the probe is on {self._w.device}: move the probe once with probe.to({str(x.device)!r})"
            )
        return F.linear(x, self._w.to(x.dtype), self._b.to(x.dtype))

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., C) class probabilities (softmax of :meth:`logits`)."""
        return self.logits(x).softmax(-1)

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (...,) log-odds of the positive class (binary probes)."""
        if self.n_classes != 2:
            raise ValueError(
                f"margin needs a binary probe; this one has {self.n_classes} classes: use logits()"
            )
        z = self.logits(x)
        return z[..., 1] - z[..., 0]

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> LinearProbe:
        """A copy on ``device`` and/or in ``dtype`` (do this once, outside hooks)."""
        move = {
            k: getattr(self, k).to(device=device, dtype=dtype)
            for k in ("weight", "bias", "mean", "scale")
        }
        return replace(self, **move)

    def with_calibration(
        self,
        *,
        temperature: float | None = None,
        threshold: float | None = None,
        fpr: float | None = None,
    ) -> LinearProbe:
        """A copy with a new temperature and/or threshold (``fpr`` is recorded in ``meta``)."""
        meta = dict(self.meta) | ({"target_fpr": str(fpr)} if fpr is not None else {})
        return replace(
            self,
            temperature=self.temperature if temperature is None else float(temperature),
            threshold=self.threshold if threshold is None else float(threshold),
            meta=meta,
        )


def save_probe(probe: LinearProbe, path: str | Path, model: OysterModel | None = None) -> Path:
    """Write ``probe`` to safetensors with the identity of the model it reads.

    ``model`` is required unless ``probe.meta`` already records a ``model_fingerprint`` (a probe
    loaded from a file): a probe file that does not say which model it reads would be accepted
    by any model of its width.

    Example:
        >>> save_probe(probe, "probes/smollm2-135m-instruct/risk.safetensors", model)  # doctest: +SKIP
    """
    if model is None and "model_fingerprint" not in probe.meta:
        raise ArtifactError(
            "save_probe needs the model the probe reads: pass save_probe(probe, path, model) so the "
            "file records its fingerprint"
        )
    if model is not None and model.d_model != probe.d_model:
        raise ModelMismatchError(
            f"the probe has width {probe.d_model} but model {model.name!r} has d_model={model.d_model}: save it with the model it was trained on"
        )
    tensors = {"weight": probe.weight, "bias": probe.bias, "mean": probe.mean, "scale": probe.scale}
    meta: dict[str, Any] = {
        **probe.meta,
        "site": probe.site.name,
        "labels": json.dumps(list(probe.labels)),
    }
    meta.update(
        temperature=repr(probe.temperature),
        threshold="none" if probe.threshold is None else repr(probe.threshold),
    )
    meta.setdefault("d_model", str(probe.d_model))
    if model is not None:
        meta.update(model_meta(model))
    return save_artifact(
        path, {k: v.float() for k, v in tensors.items()}, meta, format=_FORMAT, version=_VERSION
    )


def load_probe(
    path: str | Path,
    model: OysterModel | None = None,
    *,
    device: str | torch.device | None = None,
    transfer: bool = False,
) -> LinearProbe:
    """Read a probe; with ``model``, refuse one made for another model and move it to its device.

    ``transfer=True`` applies a probe of a related model deliberately (see
    :func:`oyster_steer.load_vector`): the identity checks it skips are named in a warning, and
    the probe comes back recorded as reading ``model``.

    Raises:
        ModelMismatchError: the probe records another model's fingerprint, width or depth.

    Example:
        >>> probe = load_probe("probes/smollm2-135m-instruct/intent.safetensors", model)  # doctest: +SKIP
    """
    tensors, meta = load_artifact(path, format=_FORMAT, max_version=_VERSION)
    if model is not None:
        check_model(meta, model, what="probe", transfer=transfer)
        if transfer:
            meta.update(model_meta(model), transferred_from=meta.get("model_weights", "?"))
    missing = [k for k in ("weight", "bias", "mean", "scale") if k not in tensors]
    if missing:
        raise ArtifactError(f"{str(path)!r} lacks the probe tensors {missing}: re-create the file")
    labels = meta_field(path, meta, "labels", json.loads)
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ArtifactError(
            f"{str(path)!r}: metadata field 'labels' must be a JSON list of class names: re-create the file"
        )
    threshold = meta_field(path, meta, "threshold", str, "none")
    try:
        probe = LinearProbe(
            parse_site(meta_field(path, meta, "site")),
            tuple(labels),
            tensors["weight"],
            tensors["bias"],
            tensors["mean"],
            tensors["scale"],
            temperature=meta_field(path, meta, "temperature", float, "1.0"),
            threshold=None if threshold == "none" else meta_field(path, meta, "threshold", float),
            meta={k: v for k, v in meta.items() if k not in _FIELDS},
        )
    except ArtifactError:
        raise
    except (TypeError, ValueError) as err:  # SiteError and shape errors are ValueErrors
        raise ArtifactError(f"{str(path)!r} holds an invalid probe: {err}") from err
    target = device if device is not None else (model.device if model is not None else None)
    return probe.to(target) if target is not None else probe
