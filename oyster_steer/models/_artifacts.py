"""Safetensors artifacts with validated string metadata, shared by probes, vectors and control packs.

Every artifact stores ``format`` (e.g. ``oyster_steer.probe``), ``format_version``, and the
``model_fingerprint``, ``d_model`` and ``n_layers`` of the model it was made for. Metadata is
validated before any tensor is read; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core._errors import ArtifactError, ModelMismatchError, require_finite

if TYPE_CHECKING:
    from ._model import OysterModel

__all__ = [
    "check_model",
    "check_not_baked",
    "content_id",
    "load_artifact",
    "meta_field",
    "model_meta",
    "save_artifact",
]

_MISSING: Any = object()


def model_meta(model: OysterModel) -> dict[str, str]:
    """The identity fields every artifact records about its model."""
    return {
        "model_name": model.name,
        "model_fingerprint": model.fingerprint,
        "model_weights": model.weights_id,
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
    from safetensors.torch import save

    for name, tensor in tensors.items():
        require_finite(tensor, f"tensor {name!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strings = {
        k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()
    }
    strings.update(format=format, format_version=str(version))
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=strings)
    # A new file renamed into place, never rewritten in place: a reader (or a tensor loaded
    # from the old file, which safetensors may memory-map) never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(_canonical(blob))
        tmp.chmod(0o644)  # artifacts are meant to be shared and shipped
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _canonical(blob: bytes) -> bytes:
    """The safetensors bytes with the header's keys sorted: same content -> same file.

    safetensors writes its header from a hash map, so metadata order (and thus the bytes)
    changes from call to call; the data section and its offsets are unchanged by re-ordering.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | dict(
        sorted(header.items())
    )
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data section to 8 bytes
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


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


def check_model(
    meta: Mapping[str, str], model: OysterModel, *, what: str, transfer: bool = False
) -> None:
    """Refuse an artifact made for another model; the error says which field differs.

    ``model_weights`` (a hash of every weight) is compared when the artifact records it (files
    written before it existed are checked on the coarse ``model_fingerprint`` only).
    ``transfer=True`` is the deliberate override for applying an artifact to a related model
    (base -> fine-tune): it skips the fingerprint and weights checks, keeps the width and depth
    checks, and warns, naming what it skipped.
    """
    identity = (
        ("d_model", lambda: str(model.d_model)),
        ("n_layers", lambda: str(model.n_layers)),
        ("model_fingerprint", lambda: model.fingerprint),
        ("model_weights", lambda: model.weights_id),
    )
    skipped = []
    for key, have in identity:
        want = meta.get(key)
        if want is None or want == have():
            continue
        if transfer and key in _TRANSFERABLE:
            skipped.append(f"{key}={want} vs {have()}")
            continue
        raise ModelMismatchError(
            f"this {what} was made for model {meta.get('model_name', '?')!r} ({key}={want}), but the loaded model "
            f"{model.name!r} has {key}={have()}: load the model it was trained on, or retrain it for this one "
            "(or pass transfer=True to apply it to a related model, base -> fine-tune, deliberately)"
        )
    if skipped:
        warnings.warn(
            f"transfer=True skips the model_fingerprint and model_weights checks for this {what} "
            f"({'; '.join(skipped)}): it was made for {meta.get('model_name', '?')!r} and is applied to "
            f"{model.name!r} unverified (width and depth still match)",
            UserWarning,
            stacklevel=3,
        )


_TRANSFERABLE = ("model_fingerprint", "model_weights")


def content_id(directions: Mapping[str, torch.Tensor]) -> str:
    """A hash of a vector's sites and float32 directions: which artifact was baked where."""
    h = hashlib.sha256()
    for site in sorted(directions):
        h.update(site.encode())
        h.update(directions[site].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def check_not_baked(directions: Mapping[str, torch.Tensor], model: OysterModel, what: str) -> None:
    """Refuse re-applying a vector that ``export_patched`` already baked into ``model``."""
    if model.baked and content_id(directions) in model.baked:
        raise ModelMismatchError(
            f"this {what} is already baked into model {model.name!r} (its export manifest lists it): "
            "applying it again would double it; patch the source model instead, or bake another strength"
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
