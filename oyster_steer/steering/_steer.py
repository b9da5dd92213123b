"""Applying steering vectors: ``patch`` returns a handle, ``steer`` is the context-manager form.

Both work on every backend through its persistent hooks. Everything a hook needs is prepared at
patch time (``strength * direction`` on the model's device and dtype, the position tracker), so
the hook itself is one out-of-place ``add``/``addcmul`` with no host synchronisation; it compiles
with ``torch.compile(fullgraph=True)``.

Example:
    >>> v = osteer.load_vector("vectors/smollm2-135m-instruct/constructive.safetensors", model)  # doctest: +SKIP
    >>> with osteer.steer(model, v, positions="generated"):                                      # doctest: +SKIP
    ...     ids = get_backend(model.backend).generate(model, *model.encode(["I feel alone."]))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ..backends import Hook, HookHandle, get_backend
from ..control._plan import ControlPlan
from ..control._positions import WHICH, PositionTracker
from ..control._runtime import patch_plan
from ..core._sites import parse_site
from ..vectors._vector import SteeringVector

H = TypeVar("H", bound=HookHandle)

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["patch", "steer"]


def _as_vector(model: OysterModel, target: Any) -> SteeringVector | None:
    """A SteeringVector for ``target`` (vector or ``{site: tensor}``), or None for anything else."""
    if isinstance(target, SteeringVector):
        target.check_model(model)
        return target
    if isinstance(target, Mapping):
        return SteeringVector.from_tensors(model, target)
    return None


def _add(delta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(h: torch.Tensor) -> torch.Tensor:  # (B, T, d) + (d,)
        return torch.add(h, delta)

    return hook


def _add_masked(
    delta: torch.Tensor, tracker: PositionTracker, which: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(h: torch.Tensor) -> torch.Tensor:  # (B, T, d) + (B, T, 1) * (d,)
        return torch.addcmul(h, tracker.mask(which, h.dtype), delta)

    return hook


def patch(
    model: OysterModel,
    target: SteeringVector | Mapping[str, torch.Tensor] | Any,
    strength: float | None = None,
    positions: str = "all",
    *,
    persistent: bool = True,
    **kwargs: Any,
) -> HookHandle:
    """Add a steering vector (or apply a control plan) to ``model`` until the handle is removed.

    Args:
        model: from :func:`oyster_steer.load_model`, on any backend.
        target: a :class:`SteeringVector`, ``{site: (d,) tensor}``, or a
            :class:`~oyster_steer.ControlPlan` (handed to ``oyster_steer.control._plan.patch_plan``
            with ``strength``, ``positions`` and ``kwargs``).
        strength: multiplier of the directions; default: the vector's recommended strength.
        positions: ``"all"`` tokens, only ``"prompt"`` tokens, or only ``"generated"`` tokens
            (tokens fed back during KV-cache decoding; see :mod:`oyster_steer.control._positions`).
        persistent: ``True`` (the default, for serving): the hooks live on the model's own
            modules until ``handle.remove()``, even when the handle itself is dropped, so the
            patched ``model.hf`` can be handed to a pipeline or server. ``False``: the hooks are
            also removed when the handle is garbage-collected (scoped use without ``with``).

    Returns:
        A :class:`~oyster_steer.backends.HookHandle`; ``handle.remove()`` undoes the patch.

    Example:
        >>> handle = patch(model, v, strength=4.0)          # doctest: +SKIP
        >>> logits = get_backend(model.backend).forward(model, ids, mask)  # doctest: +SKIP
        >>> handle.remove()                                  # doctest: +SKIP
    """
    if positions not in WHICH:
        raise ValueError(f"positions={positions!r} is not supported: use one of {', '.join(WHICH)}")
    vector = _as_vector(model, target)
    if vector is None:
        return _scoped(_patch_plan(model, target, strength, positions, kwargs), persistent)
    if kwargs:
        raise TypeError(f"patch() got unexpected arguments {sorted(kwargs)} for a steering vector")
    scale = vector.strength if strength is None else float(strength)
    deltas = {
        name: (scale * t.to(model.device, torch.float32)).to(model.dtype)  # (d,) ready for the hook
        for name, t in vector.directions.items()
    }
    return _scoped(_install(model, deltas, positions), persistent)


def _scoped(handle: H, persistent: bool) -> H:
    """Non-persistent handles take their hooks with them when garbage-collected."""
    if not persistent:
        handle.remove_when_collected()
    return handle


def _install(model: OysterModel, deltas: Mapping[str, torch.Tensor], positions: str) -> HookHandle:
    """Install one write hook per site (and the tracker they share), all or nothing."""
    handle = HookHandle()
    try:
        tracker = None
        if positions != "all":
            tracker = PositionTracker()
            handle.add(tracker.attach(model).remove)
        hooks = [
            Hook(
                parse_site(name),
                _add(delta) if tracker is None else _add_masked(delta, tracker, positions),
                write=True,
            )
            for name, delta in deltas.items()
        ]
        handle.add(get_backend(model.backend).add_hooks(model, hooks).remove)
    except BaseException:
        handle.remove()
        raise
    return handle


def _patch_plan(
    model: OysterModel, target: Any, strength: float | None, positions: str, kwargs: dict[str, Any]
) -> HookHandle:
    if not isinstance(target, ControlPlan):
        raise TypeError(
            f"cannot steer with a {type(target).__name__}: pass a SteeringVector, {{site: (d,) tensor}} or a ControlPlan"
        )
    if strength is not None:
        kwargs["strength"] = strength
    if positions != "all":
        kwargs["positions"] = positions
    return patch_plan(model, target, **kwargs)


@contextlib.contextmanager
def steer(
    model: OysterModel,
    target: SteeringVector | Mapping[str, torch.Tensor] | Any,
    strength: float | None = None,
    positions: str = "all",
    **kwargs: Any,
) -> Iterator[HookHandle]:
    """Context-manager form of :func:`patch`: the hooks are removed when the block exits.

    Example:
        >>> with steer(model, v, strength=2.0, positions="generated"):        # doctest: +SKIP
        ...     out = get_backend(model.backend).generate(model, ids, mask, max_new_tokens=40)
    """
    handle = patch(model, target, strength, positions, **kwargs)
    try:
        yield handle
    finally:
        handle.remove()
