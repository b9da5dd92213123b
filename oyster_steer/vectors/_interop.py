"""Interop with other steering libraries: repeng / llama.cpp control vectors, steering-vectors state.

* **repeng / llama.cpp** control vectors are GGUF files (architecture ``controlvector``) with one
  ``direction.{L}`` tensor per layer, added to the output of decoder block ``L``: our
  ``blocks.{L}.hook_resid_post``. :func:`save_control_vector` writes that format (readable by
  ``repeng.ControlVector.import_gguf`` and by ``llama.cpp --control-vector``), and
  :func:`load_control_vector` reads it into a :class:`SteeringVector`. llama.cpp numbers its
  control layers from 1 and refuses ``direction.0``, so a vector at block 0 is refused on write.
* **steering-vectors** saves its ``SteeringVector`` with ``torch.save`` (a pickle). Loading a
  pickle runs whatever code the file names, so :func:`load_steering_vectors` reads only a
  safetensors file holding ``{str(layer): (d,) tensor}`` (decoder-block outputs) and refuses
  ``.pt``/``.pth``/``.bin``/``.pkl`` files and anything that is not safetensors, saying how to
  convert.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core._errors import ArtifactError, ModelMismatchError, SiteError
from ..core._sites import parse_site
from ._vector import SteeringVector

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["load_control_vector", "load_steering_vectors", "save_control_vector"]

_ARCH = "controlvector"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
_CONVERT = (
    "convert it in a trusted session with safetensors.torch.save_file("
    "{str(layer): t.contiguous() for layer, t in sv.layer_activations.items()}, 'vector.safetensors')"
)


def save_control_vector(
    vector: SteeringVector, path: str | Path, *, model_hint: str | None = None
) -> Path:
    """Write ``vector`` as a repeng / llama.cpp control vector (GGUF).

    Every site must be a ``hook_resid_post`` (a block's output) at layer >= 1. The directions are
    written as stored (strength 1); scale at load time (``llama.cpp --control-vector-scaled file
    s``, ``repeng`` ``set_control(v, s)``). ``model_hint``: the ``controlvector.model_hint`` field
    (default: the model name the vector was made for).

    Example:
        >>> save_control_vector(v, "constructive.gguf")   # doctest: +SKIP
    """
    import gguf

    layers = {}
    for name, t in vector.directions.items():
        site = parse_site(name)
        if site.kind != "resid_post":
            raise SiteError(
                f"control vectors hold block outputs only, but {name!r} is a {site.kind}: "
                "train or move the vector to hook_resid_post sites"
            )
        if site.layer == 0:
            raise SiteError(
                f"{name!r}: llama.cpp numbers control-vector layers from 1 and refuses direction.0: "
                "use a site at layer 1 or later"
            )
        layers[site.layer] = t.detach().float().cpu().contiguous().numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), _ARCH)
    writer.add_string(f"{_ARCH}.model_hint", model_hint or vector.model_name)
    writer.add_uint32(f"{_ARCH}.layer_count", len(layers))
    writer.add_string("oyster_steer.model_fingerprint", vector.model_fingerprint)
    writer.add_float32("oyster_steer.strength", float(vector.strength))
    for layer in sorted(layers):
        writer.add_tensor(f"direction.{layer}", layers[layer])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _field_str(reader: object, key: str) -> str | None:
    field = reader.get_field(key)  # type: ignore[attr-defined]
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def load_control_vector(
    path: str | Path, model: OysterModel, *, strength: float = 1.0
) -> SteeringVector:
    """Read a repeng / llama.cpp control vector (GGUF) as a :class:`SteeringVector` for ``model``.

    ``direction.{L}`` becomes ``blocks.{L}.hook_resid_post``. Refuses a file that is not a control
    vector, one whose width differs from the model's, or layers the model does not have.

    Example:
        >>> v = load_control_vector("happy.gguf", model)          # doctest: +SKIP
        >>> with osteer.steer(model, v, strength=1.5): ...         # doctest: +SKIP
    """
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # noqa: BLE001 - any parse failure means "not a GGUF file"
        raise ArtifactError(
            f"{str(path)!r} is not a GGUF file ({err}): pass a control vector .gguf"
        ) from None
    arch = _field_str(reader, "general.architecture")
    if arch != _ARCH:
        raise ArtifactError(
            f"{str(path)!r} is a GGUF of architecture {arch!r}, not a control vector: pass a file "
            "written by repeng's export_gguf, llama.cpp's cvector-generator or save_control_vector"
        )
    directions: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        if not tensor.name.startswith("direction."):
            continue
        try:
            layer = int(tensor.name.split(".", 1)[1])
        except ValueError:
            raise ArtifactError(
                f"{str(path)!r}: tensor {tensor.name!r} has no layer number: re-create the file"
            ) from None
        t = torch.tensor(tensor.data.copy(), dtype=torch.float32).reshape(-1)
        if t.numel() != model.d_model:
            raise ModelMismatchError(
                f"{str(path)!r}: direction.{layer} has width {t.numel()}, the model {model.d_model}: "
                "load a control vector made for this model"
            )
        if not 0 <= layer < model.n_layers:
            raise ModelMismatchError(
                f"{str(path)!r}: direction.{layer} is beyond this model's {model.n_layers} layers: "
                "load a control vector made for this model"
            )
        directions[f"blocks.{layer}.hook_resid_post"] = t
    if not directions:
        raise ArtifactError(f"{str(path)!r} holds no direction.* tensors: re-create the file")
    hint = _field_str(reader, f"{_ARCH}.model_hint") or "?"
    return SteeringVector.from_tensors(
        model,
        directions,
        method="control_vector",
        strength=strength,
        meta={"source": str(path), "model_hint": hint},
    )


def load_steering_vectors(
    path: str | Path, model: OysterModel, *, strength: float = 1.0
) -> SteeringVector:
    """Read steering-vectors' state from a safetensors ``{str(layer): (d,) tensor}``; refuse pickles.

    steering-vectors' ``layer_type="decoder_block"`` vectors are added to decoder block outputs,
    so layer ``L`` becomes ``blocks.{L}.hook_resid_post``. Its ``torch.save`` files are pickles,
    which execute code when loaded: they are refused, never opened.

    Example:
        >>> v = load_steering_vectors("sv.safetensors", model)   # doctest: +SKIP
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    head = _head(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES or (
        head[8:9] != b"{" and head[:1] in (b"P", b"\x80")
    ):
        raise ArtifactError(
            f"{str(path)!r} is a pickle (torch.save), and loading a pickle runs arbitrary code: "
            f"oyster_steer reads steering-vectors state only from safetensors; {_CONVERT}"
        )
    try:
        tensors: Mapping[str, torch.Tensor] = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(
            f"{str(path)!r} is not a safetensors file ({err}): {_CONVERT}"
        ) from None
    directions = {}
    for key, t in tensors.items():
        layer = key.rsplit(".", 1)[-1]
        if not layer.lstrip("-").isdigit():
            raise ArtifactError(
                f"{str(path)!r}: key {key!r} is not a layer number: save {{str(layer): tensor}}"
            )
        directions[f"blocks.{int(layer)}.hook_resid_post"] = t.float().reshape(-1)
    if not directions:
        raise ArtifactError(f"{str(path)!r} holds no tensors: save {{str(layer): tensor}}")
    return SteeringVector.from_tensors(
        model, directions, method="steering_vectors", strength=strength, meta={"source": str(path)}
    )


def _head(path: Path) -> bytes:
    """The first bytes: safetensors has a u64 header size then ``{``; torch.save a zip (``PK``)
    and a raw pickle the protocol opcode ``\\x80``."""
    try:
        with path.open("rb") as fh:
            return fh.read(9)
    except OSError:
        return b""
