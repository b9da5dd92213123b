"""Safetensors artifacts with validated string metadata, shared by probes, vectors and control packs.

Every artifact stores ``format`` (e.g. ``oyster_steer.probe``), ``format_version``, and the
``model_fingerprint``, ``d_model`` and ``n_layers`` of the model it was made for. Metadata is
validated before any tensor is read; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core._errors import ArtifactError, ModelMismatchError, require_finite

if TYPE_CHECKING:
    from ._model import OysterModel

__all__ = ["check_model", "load_artifact", "meta_field", "model_meta", "save_artifact"]

_MISSING: Any = object()


def model_meta(model: OysterModel) -> dict[str, str]:
    """The identity fields every artifact records about its model."""
    return {
        "model_name": model.name,
        "model_fingerprint": model.fingerprint,
        "d_model": str(model.d_model),
        "n_layers": str(model.n_layers),
    }


def save_artifact(
    path: str | Path,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    format: str,
    version: int,
) -> Path:
    """Write tensors and metadata; non-string metadata values are stored as JSON."""
    from safetensors.torch import save_file

    for name, tensor in tensors.items():
        require_finite(tensor, f"tensor {name!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    strings.update(format=format, format_version=str(version))
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=strings
    )
    path.chmod(0o644)  # safetensors writes 0600; artifacts are meant to be shared and shipped
    return path


def load_artifact(
    path: str | Path, *, format: str, max_version: int, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read and validate an artifact's header, then its tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"no artifact at {str(path)!r}: check the path (artifacts are .safetensors files)"
        )
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = dict(f.metadata() or {})
            _check_format(path, meta, format, max_version)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except ArtifactError:
        raise
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ArtifactError(
            f"{str(path)!r} is not a readable safetensors file ({err}): re-create it"
        ) from err
    for name, tensor in tensors.items():
        require_finite(tensor, f"{str(path)!r}: tensor {name!r}", ArtifactError)
    return tensors, meta


def _check_format(path: Path, meta: Mapping[str, str], format: str, max_version: int) -> None:
    found = meta.get("format")
    if found != format:
        raise ArtifactError(
            f"{str(path)!r} holds a {found or 'non-oyster_steer'} artifact, expected {format}: load it with the matching loader"
        )
    version = meta_field(path, meta, "format_version", int, "0")
    if not 1 <= version <= max_version:
        raise ArtifactError(
            f"{str(path)!r} has {format} format version {version}; this oyster_steer reads up to {max_version}: upgrade oyster_steer"
        )


def check_model(meta: Mapping[str, str], model: OysterModel, *, what: str) -> None:
    """Refuse an artifact made for another model; the error says which field differs."""
    for key, have in (
        ("d_model", str(model.d_model)),
        ("n_layers", str(model.n_layers)),
        ("model_fingerprint", model.fingerprint),
    ):
        want = meta.get(key)
        if want is not None and want != have:
            raise ModelMismatchError(
                f"this {what} was made for model {meta.get('model_name', '?')!r} ({key}={want}), but the loaded model "
                f"{model.name!r} has {key}={have}: load the model it was trained on, or retrain it for this one"
            )


def meta_json(meta: Mapping[str, str], key: str, default: Any = None) -> Any:
    """A JSON-encoded metadata field, or ``default`` when absent."""
    return json.loads(meta[key]) if key in meta else default


def meta_field(
    path: str | Path,
    meta: Mapping[str, str],
    key: str,
    kind: Any = str,
    default: Any = _MISSING,
) -> Any:
    """Metadata field ``key`` parsed by ``kind`` (``str``, ``int``, ``float`` or ``json.loads``).

    Raises ArtifactError naming the field when it is missing (and has no default), does not
    parse, or (``float``) is NaN or infinite.
    """
    if key not in meta:
        if default is _MISSING:
            raise ArtifactError(
                f"{str(path)!r} lacks the metadata field {key!r}: the file is truncated or hand-edited; re-create it"
            )
        if not isinstance(default, str):
            return default
    raw = meta.get(key, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ArtifactError(
            f"{str(path)!r}: metadata field {key!r} = {raw[:60]!r} is not a valid {getattr(kind, '__name__', kind)} "
            "value: re-create the file"
        ) from err
    if kind is float and not math.isfinite(value):
        raise ArtifactError(
            f"{str(path)!r}: metadata field {key!r} = {raw!r} is not finite: re-create the file with a finite value"
        )
    return value
