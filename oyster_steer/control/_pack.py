"""The control pack: a whole :class:`~oyster_steer.ControlPlan` in ONE safetensors file.

Tensors (float32): ``probe/{weight,bias,mean,scale}``, ``monitors/{name}/{...}``,
``vectors/{binding}/{site}`` (d,), ``lowrank/{binding}/{site}/{R,W,b}`` (r, d), (r, d), (r,)
(version 2), ``policy/payoff`` (S, C) and ``schedule`` (L,), or with a schedule per strategy
(version 3, only then) ``schedule/{strategy}`` (L_s,) for the strategies the manifest's
``schedule_strategies`` names. String
metadata: the model identity (``model_fingerprint``, ``d_model``, ``n_layers``, ``model_name``)
and a JSON ``manifest`` naming every tensor and the configuration. The manifest is validated
against the tensors before anything is built; nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ..core._errors import ArtifactError, UnsafeBindingError
from ..models._artifacts import check_model, load_artifact, model_meta, save_artifact
from ..probes._probe import LinearProbe
from ._plan import Binding, ControlPlan
from ._policy import Policy

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "FORMAT",
    "VERSION",
    "load_plan",
    "read_pack",
    "retarget_plan",
    "save_plan",
    "write_pack",
]

FORMAT, VERSION = "oyster_steer.control", 3  # 2: low-rank bindings; 3: per-strategy schedules
_PROBE_TENSORS = ("weight", "bias", "mean", "scale")
_LOWRANK_TENSORS = ("R", "W", "b")
_REQUIRED = ("probe", "monitors", "policy", "bindings", "read", "window", "positions")


def _probe_entry(
    probe: LinearProbe, prefix: str, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    for key in _PROBE_TENSORS:
        tensors[f"{prefix}/{key}"] = getattr(probe, key).detach().float().cpu().clone()
    return {
        "site": probe.site.name,
        "labels": list(probe.labels),
        "temperature": probe.temperature,
        "threshold": probe.threshold,
        "meta": dict(probe.meta),
    }


def write_pack(plan: ControlPlan, path: str | Path) -> Path:
    """Save ``plan``; refuses a plan whose model identity is unknown."""

    identity = dict(plan.identity)
    if "model_fingerprint" not in identity:
        raise ArtifactError(
            "the plan does not know which model it is for (no model_fingerprint in its probe, vectors or identity): "
            "load its parts with the model (load_probe(path, model)) or pass identity=model_meta(model)"
        )
    tensors: dict[str, torch.Tensor] = {}
    policy = plan.policy
    assert policy is not None, "ControlPlan.__post_init__ always sets a policy"
    manifest: dict[str, Any] = {
        "probe": _probe_entry(plan.probe, "probe", tensors),
        "monitors": {
            name: _probe_entry(p, f"monitors/{name}", tensors) for name, p in plan.monitors.items()
        },
        "policy": policy.to_meta(),
        "bindings": [],
        "read": plan.read,
        "window": plan.window,
        "positions": plan.positions,
        "meta": dict(plan.meta),
        "allow_compliance_steering": plan.allow_compliance_steering,
    }
    tensors["policy/payoff"] = policy.payoff.float().clone()
    if plan.per_strategy_schedule:  # version 3; a plan-wide schedule keeps version 2
        per = cast("Mapping[str, Any]", plan.schedule)
        manifest["schedule_strategies"] = list(per)
        for strategy, values in per.items():
            tensors[f"schedule/{strategy}"] = torch.tensor(values, dtype=torch.float32)
    else:
        tensors["schedule"] = torch.tensor(plan.schedule, dtype=torch.float32)
    for b in plan.bindings:
        if b.custom:
            raise ValueError(
                f"binding {b.name!r} has a custom operator, python code that a pack cannot hold: "
                "save the plan without it and bind the operator again after load_plan"
            )
        manifest["bindings"].append(
            {
                "name": b.name,
                "sites": list(b.directions),
                "lowrank_sites": list(b.lowrank),
                "strengths": dict(b.strengths),
                "meta": dict(b.meta),
            }
        )
        for site, v in b.directions.items():
            tensors[f"vectors/{b.name}/{site}"] = v.float().clone()
        for site, part in b.lowrank.items():
            for key, t in zip(_LOWRANK_TENSORS, part, strict=True):
                tensors[f"lowrank/{b.name}/{site}/{key}"] = t.float().contiguous().clone()
    return save_artifact(
        path,
        tensors,
        {**identity, "manifest": json.dumps(manifest)},
        format=FORMAT,
        version=VERSION if plan.per_strategy_schedule else 2,
    )


def read_pack(
    path: str | Path,
    model: OysterModel | None = None,
    *,
    device: Any = None,
    allow_compliance_steering: bool = False,
    transfer: bool = False,
) -> ControlPlan:
    """Load and validate a pack; with ``model``, check identity and move tensors to its device.

    A pack whose bindings steer malicious users toward compliance is refused unless it was
    saved with, or is loaded with, ``allow_compliance_steering`` (see ``_plan_check``).
    ``transfer=True``: a deliberate transfer to a related model (warns what it skips; the plan
    comes back recorded as made for ``model``).
    """
    tensors, meta = load_artifact(path, format=FORMAT, max_version=VERSION)
    if model is not None:
        check_model(meta, model, what="control pack", transfer=transfer)
    manifest = _manifest(path, meta)
    try:  # any malformed part of the manifest (a wrong type, a missing key) is the file's fault
        _check_tensors(path, manifest, tensors)
        probe = _probe(manifest["probe"], "probe", tensors)
        monitors = {
            name: _probe(entry, f"monitors/{name}", tensors)
            for name, entry in manifest["monitors"].items()
        }
        policy = Policy.from_meta(manifest["policy"], tensors["policy/payoff"])
        bindings = [
            Binding(
                b["name"],
                {s: tensors[f"vectors/{b['name']}/{s}"] for s in b["sites"]},
                b["strengths"],
                b.get("meta", {}),
                {
                    s: _lowrank(tensors, f"lowrank/{b['name']}/{s}")
                    for s in b.get("lowrank_sites", [])
                },
            )
            for b in manifest["bindings"]
        ]
        identity: dict[str, str] = {
            k: meta[k]
            for k in ("model_name", "model_fingerprint", "model_weights", "d_model", "n_layers")
            if k in meta
        }
        plan = ControlPlan(
            probe,
            bindings,
            policy,
            read=manifest["read"],
            window=int(manifest["window"]),
            positions=manifest["positions"],
            schedule=(
                {s: tensors[f"schedule/{s}"].tolist() for s in manifest["schedule_strategies"]}
                if "schedule_strategies" in manifest
                else tensors["schedule"].tolist()
            ),
            monitors=monitors,
            identity=identity,
            meta=manifest.get("meta", {}),
            allow_compliance_steering=allow_compliance_steering
            or bool(manifest.get("allow_compliance_steering", False)),
        )
    except UnsafeBindingError as err:
        raise UnsafeBindingError(
            f"control pack {str(path)!r}: {err}; a pack built by an older build-plan can be rebuilt with "
            "`oyster-steer build-plan` (its defaults are safe)"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        if isinstance(err, ArtifactError):
            raise
        raise ArtifactError(
            f"{str(path)!r} has an invalid control manifest ({type(err).__name__}: {err}): rebuild it with save_plan"
        ) from err
    if transfer and model is not None:
        plan = retarget_plan(plan, model_meta(model))
    target = device if device is not None else (model.device if model is not None else None)
    return _moved(plan, target) if target is not None else plan


def _manifest(path: str | Path, meta: dict[str, str]) -> dict[str, Any]:
    try:
        manifest = json.loads(meta["manifest"])
    except (KeyError, json.JSONDecodeError) as err:
        raise ArtifactError(
            f"{str(path)!r} has no readable 'manifest' metadata: rebuild it with save_plan"
        ) from err
    if not isinstance(manifest, dict):
        raise ArtifactError(
            f"{str(path)!r}: the control manifest is a {type(manifest).__name__}, not a JSON object: rebuild it with save_plan"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise ArtifactError(
            f"{str(path)!r}: the control manifest lacks {missing}: rebuild it with save_plan"
        )
    return manifest


def _expected(manifest: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    """Tensor name -> expected shape (None: any length) from the manifest alone."""
    c = len(manifest["probe"]["labels"])
    want: dict[str, tuple[int, ...] | None] = {
        "policy/payoff": (len(manifest["policy"]["strategies"]), c),
    }
    if "schedule_strategies" in manifest:
        want.update({f"schedule/{s}": None for s in manifest["schedule_strategies"]})
    else:
        want["schedule"] = None
    for prefix, entry in [("probe", manifest["probe"])] + [
        (f"monitors/{k}", v) for k, v in manifest["monitors"].items()
    ]:
        want.update({f"{prefix}/{k}": None for k in _PROBE_TENSORS})
        want[f"{prefix}/bias"] = (len(entry["labels"]),)
    for b in manifest["bindings"]:
        want.update({f"vectors/{b['name']}/{s}": None for s in b["sites"]})
        want.update(
            {
                f"lowrank/{b['name']}/{s}/{k}": None
                for s in b.get("lowrank_sites", [])
                for k in _LOWRANK_TENSORS
            }
        )
    return want


def _check_tensors(
    path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    want = _expected(manifest)
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        what = (
            f"lacks tensors {missing}"
            if missing
            else f"holds tensors the manifest does not name {extra}"
        )
        raise ArtifactError(
            f"{str(path)!r} {what}: the pack is corrupt or hand-edited; rebuild it with save_plan"
        )
    for name, shape in want.items():
        if shape is not None and tuple(tensors[name].shape) != shape:
            raise ArtifactError(
                f"{str(path)!r}: tensor {name!r} has shape {tuple(tensors[name].shape)}, the manifest implies {shape}: rebuild it with save_plan"
            )


def _lowrank(
    tensors: dict[str, torch.Tensor], prefix: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (R, W, b) tensors of one low-rank site stored under ``prefix``."""
    R, W, b = (tensors[f"{prefix}/{k}"] for k in _LOWRANK_TENSORS)
    return R, W, b


def _probe(entry: dict[str, Any], prefix: str, tensors: dict[str, torch.Tensor]) -> LinearProbe:

    parts = [tensors[f"{prefix}/{k}"] for k in _PROBE_TENSORS]
    threshold = entry.get("threshold")
    weight, bias, mean, scale = parts
    return LinearProbe(
        entry["site"],
        tuple(entry["labels"]),
        weight,
        bias,
        mean,
        scale,
        temperature=float(entry["temperature"]),
        threshold=None if threshold is None else float(threshold),
        meta=dict(entry.get("meta", {})),
    )


def _moved(plan: ControlPlan, device: Any) -> ControlPlan:
    monitors = {k: p.to(device) for k, p in plan.monitors.items()}
    return plan.replace(probe=plan.probe.to(device), monitors=monitors)


def save_plan(plan: ControlPlan, path: str | Path) -> Path:
    """Write ``plan`` as one safetensors control pack (tensors + validated JSON manifest).

    Example:
        >>> save_plan(plan, "vectors/smollm2-135m-instruct/control.safetensors")  # doctest: +SKIP
    """
    return write_pack(plan, path)


def load_plan(
    path: str | Path,
    model: OysterModel | None = None,
    *,
    device: Any = None,
    allow_compliance_steering: bool = False,
    transfer: bool = False,
) -> ControlPlan:
    """Read a control pack; with ``model``, refuse a pack made for another model.

    ``transfer=True`` applies a pack made for a related model deliberately (base -> fine-tune):
    the fingerprint and weights checks are skipped with a warning naming them.

    Raises:
        ArtifactError: the file is not a valid control pack; ModelMismatchError: other model;
        UnsafeBindingError: its bindings steer malicious users toward compliance (pass
        ``allow_compliance_steering=True`` to load it anyway, for experiments).

    Example:
        >>> plan = load_plan("vectors/smollm2-135m-instruct/control.safetensors", model)  # doctest: +SKIP
    """
    return read_pack(
        path,
        model,
        device=device,
        allow_compliance_steering=allow_compliance_steering,
        transfer=transfer,
    )


def retarget_plan(plan: Any, identity: Mapping[str, str]) -> Any:
    """``plan`` with every part's recorded model fingerprint (and weights id) set to ``identity``'s."""

    def meta(part: Any) -> dict[str, str]:
        old = dict(part.meta)
        keys = [k for k in ("model_fingerprint", "model_weights") if k in old and k in identity]
        return {**old, **{k: identity[k] for k in keys}}

    return plan.replace(
        probe=dataclasses.replace(plan.probe, meta=meta(plan.probe)),
        bindings=[dataclasses.replace(b, meta=meta(b)) for b in plan.bindings],
        monitors={k: dataclasses.replace(p, meta=meta(p)) for k, p in plan.monitors.items()},
        identity={**plan.identity, **identity},
    )
