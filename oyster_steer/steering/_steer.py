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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import torch

from ..backends import Hook, HookHandle, get_backend
from ..control._operators import CustomFn, Edit, Operator, as_operator, make_edit
from ..control._plan import ControlPlan
from ..control._positions import PositionTracker, TokenSelection, token_selection
from ..control._runtime import ControlHandle, patch_plan
from ..control._spans import SpanTracker, resolve_markers, uses_spans
from ..core._sites import parse_site
from ..vectors._vector import SteeringVector

H = TypeVar("H", bound=HookHandle)
Positions = str | Sequence[int] | slice | torch.Tensor

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
        return torch.add(h, delta.to(h.dtype))  # follows a cast made after patch

    return hook


def _add_selected(
    delta: torch.Tensor, tracker: PositionTracker | SpanTracker, selection: TokenSelection
) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(h: torch.Tensor) -> torch.Tensor:  # (B, T, d) + (B, T, 1) * (d,)
        return torch.addcmul(h, selection.weights(tracker, h.dtype), delta.to(h.dtype))

    return hook


def _operate(
    edit: Edit, tracker: PositionTracker | SpanTracker | None, selection: TokenSelection
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Hook of a projection or custom operator: ``x + w * delta(x)``."""
    if tracker is None:

        def hook(h: torch.Tensor) -> torch.Tensor:
            return h + edit.delta(h)

        return hook

    def selected(h: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(h, selection.weights(tracker, h.dtype), edit.delta(h))

    return selected


Vectors = SteeringVector | Mapping[str, torch.Tensor]
"""A steering vector, or ``{site name: (d,) direction}``."""


@overload
def patch(
    model: OysterModel,
    target: ControlPlan,
    strength: float | None = ...,
    positions: Positions = ...,
    *,
    persistent: bool = ...,
    **kwargs: Any,
) -> ControlHandle: ...
@overload
def patch(
    model: OysterModel,
    target: Vectors,
    strength: float | None = ...,
    positions: Positions = ...,
    *,
    op: str | Operator | CustomFn = ...,
    value: float | None = ...,
    min_token_index: int | None = ...,
    persistent: bool = ...,
) -> HookHandle: ...
def patch(
    model: OysterModel,
    target: Vectors | ControlPlan,
    strength: float | None = None,
    positions: Positions = "all",
    *,
    op: str | Operator | CustomFn = "add",
    value: float | None = None,
    min_token_index: int | None = None,
    persistent: bool = True,
    **kwargs: Any,
) -> HookHandle:
    """Add a steering vector (or apply a control plan) to ``model`` until the handle is removed.

    Args:
        model: from :func:`oyster_steer.load_model`, on any backend.
        target: a :class:`SteeringVector`, ``{site: (d,) tensor}``, or a
            :class:`~oyster_steer.ControlPlan` (handed to ``oyster_steer.control._plan.patch_plan``
            with ``strength``, ``positions`` and ``kwargs``).
        strength: multiplier of the directions; default: the vector's recommended strength
            (the added part of ``add``/``ablate_add``, the direction given to a custom op).
        positions: ``"all"`` tokens, only ``"prompt"`` tokens, only ``"generated"`` tokens
            (tokens fed back during KV-cache decoding; see :mod:`oyster_steer.control._positions`),
            a list of token positions, a slice of positions, or a (B, W) bool mask over positions
            (0 = a row's first real token; the same tokens with and without a KV cache). For
            reasoning models ``"thinking"`` (inside ``<think> ... </think>``) or ``"answer"``
            (generated tokens outside it); names combine with ``+`` (``"prompt+answer"``); the
            think markers come from the tokenizer, or ``think_markers=(open_ids, close_ids)``.
        op: ``"add"`` (default), ``"ablate"`` (project the direction out), ``"ablate_add"``
            (project out, then add), ``"clamp"`` (set the projection on the unit direction to
            ``value``), or a callable ``(x (B, T, d), direction (d,)) -> delta`` (see
            :mod:`oyster_steer.control._operators`).
        value: the projection ``op="clamp"`` sets.
        min_token_index: only tokens at positions >= this.
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
    selection = token_selection(positions, min_token_index, model.device)
    operator = as_operator(op, value)
    vector = _as_vector(model, target)
    if vector is None:
        if not isinstance(positions, str) or min_token_index is not None:
            raise ValueError(
                "a ControlPlan selects tokens with positions='all', 'prompt' or 'generated': "
                "pass one of those and no min_token_index"
            )
        if operator.kind != "add":
            raise ValueError(
                f"op={operator.kind!r} applies to a steering vector; a ControlPlan takes its "
                "operators from its bindings (bind(vector, strengths, op=...))"
            )
        return _scoped(_patch_plan(model, target, strength, positions, kwargs), persistent)
    markers = kwargs.pop("think_markers", None)
    if kwargs:
        raise TypeError(f"patch() got unexpected arguments {sorted(kwargs)} for a steering vector")
    scale = vector.strength if strength is None else float(strength)
    edits = {
        name: make_edit(operator, t, scale, model.device, model.dtype)  # ready for the hook
        for name, t in vector.directions.items()
    }
    return _scoped(_install(model, edits, selection, markers), persistent)


def _scoped(handle: H, persistent: bool) -> H:
    """Non-persistent handles take their hooks with them when garbage-collected."""
    if not persistent:
        handle.remove_when_collected()
    return handle


def _hook(
    edit: Edit, tracker: PositionTracker | SpanTracker | None, selection: TokenSelection
) -> Callable[[torch.Tensor], torch.Tensor]:
    if edit.unit is None and edit.fn is None and edit.add is not None:  # add: one aten op
        return _add(edit.add) if tracker is None else _add_selected(edit.add, tracker, selection)
    return _operate(edit, tracker, selection)


def _install(
    model: OysterModel, edits: Mapping[str, Edit], selection: TokenSelection, markers: Any = None
) -> HookHandle:
    """Install one write hook per site (and the tracker they share), all or nothing."""
    handle = HookHandle()
    try:
        tracker: PositionTracker | SpanTracker | None = None
        if not selection.trivial:
            tracker = PositionTracker()
            handle.add(tracker.attach(model).remove)
            if uses_spans(selection.which):
                tracker = SpanTracker(resolve_markers(model, markers), tracker)
                handle.add(tracker.attach(model).remove)
        hooks = [
            Hook(parse_site(name), _hook(edit, tracker, selection), write=True)
            for name, edit in edits.items()
        ]
        handle.add(get_backend(model.backend).add_hooks(model, hooks).remove)
    except BaseException:
        handle.remove()
        raise
    return handle


def _patch_plan(
    model: OysterModel,
    target: object,
    strength: float | None,
    positions: str,
    kwargs: dict[str, Any],
) -> ControlHandle:
    if not isinstance(target, ControlPlan):
        raise TypeError(
            f"cannot steer with a {type(target).__name__}: pass a SteeringVector, {{site: (d,) tensor}} or a ControlPlan"
        )
    if strength is not None:
        kwargs["strength"] = strength
    if positions != "all":
        kwargs["positions"] = positions
    return patch_plan(model, target, **kwargs)


@overload
def steer(
    model: OysterModel,
    target: ControlPlan,
    strength: float | None = ...,
    positions: Positions = ...,
    **kwargs: Any,
) -> contextlib.AbstractContextManager[ControlHandle]: ...
@overload
def steer(
    model: OysterModel,
    target: Vectors,
    strength: float | None = ...,
    positions: Positions = ...,
    **kwargs: Any,
) -> contextlib.AbstractContextManager[HookHandle]: ...
def steer(
    model: OysterModel,
    target: Vectors | ControlPlan,
    strength: float | None = None,
    positions: Positions = "all",
    **kwargs: Any,
) -> contextlib.AbstractContextManager[HookHandle]:
    """Context-manager form of :func:`patch`: the hooks are removed when the block exits.

    Example:
        >>> with steer(model, v, strength=2.0, positions="generated"):        # doctest: +SKIP
        ...     out = get_backend(model.backend).generate(model, ids, mask, max_new_tokens=40)
        >>> with steer(model, v, op="ablate", min_token_index=3): ...        # doctest: +SKIP
    """
    return _steering(model, target, strength, positions, kwargs)


@contextlib.contextmanager
def _steering(
    model: OysterModel,
    target: Vectors | ControlPlan,
    strength: float | None,
    positions: Positions,
    kwargs: dict[str, Any],
) -> Iterator[HookHandle]:
    handle = patch(model, target, strength, positions, **kwargs)
    try:
        yield handle
    finally:
        handle.remove()
