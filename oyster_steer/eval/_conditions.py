"""Evaluation conditions: unsteered, a steering vector, a control plan, or raw write hooks.

Example:
    >>> conds = [Condition("unsteered"),  # doctest: +SKIP
    ...          Condition("constructive", "vector", "vectors/smollm2-135m-instruct/constructive.safetensors", 4.0),
    ...          Condition("control", "plan", plan)]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import get_backend
from ..control import load_plan, patch_plan
from ..steering._steer import patch
from ..vectors._vector import load_vector

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["KINDS", "Condition"]

KINDS = ("none", "vector", "plan", "hooks")


@dataclass(frozen=True)
class Condition:
    """How the model runs while it answers.

    Attributes:
        name: the label in tables and reports.
        kind: ``"none"`` (unsteered), ``"vector"`` (a SteeringVector or its path), ``"plan"`` (a
            ControlPlan or its path), or ``"hooks"`` (a sequence of write
            :class:`~oyster_steer.backends.Hook`, for experiments without artifacts).
        obj: the vector, plan, hooks, or a path to a saved vector or plan.
        strength: vector scale (None: the vector's calibrated default).
        positions: which token positions are steered (None: ``steer``'s default).
    """

    name: str
    kind: str = "none"
    obj: Any = None
    strength: float | None = None
    positions: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"Condition kind={self.kind!r} is unknown: use one of {', '.join(KINDS)}"
            )
        if (self.kind == "none") != (self.obj is None):
            raise ValueError(
                f"Condition {self.name!r}: kind {self.kind!r} needs obj={'None' if self.kind == 'none' else 'a vector, plan, hooks or path'}"
            )

    @property
    def steered(self) -> bool:
        return self.kind != "none"

    def resolve(self, model: OysterModel) -> Condition:
        """A copy whose ``obj`` is loaded (a path becomes a vector or plan checked against ``model``)."""
        if not isinstance(self.obj, (str, Path)):
            return self
        if self.kind == "vector":
            return replace(self, obj=load_vector(self.obj, model))
        if self.kind == "plan":
            return replace(self, obj=load_plan(self.obj, model))
        raise ValueError(
            f"Condition {self.name!r}: kind {self.kind!r} cannot load a path; pass the object"
        )

    @contextlib.contextmanager
    def applied(self, model: OysterModel) -> Iterator[Any]:
        """Steer ``model`` as this condition says for the block; yields the hook handle (or None).

        A control plan's handle has ``decisions()``: the strategy it chose for each row.
        """
        if self.kind == "none":
            yield None
            return
        obj = self.resolve(model).obj
        kwargs: dict[str, Any] = {}
        if self.strength is not None:
            kwargs["strength"] = self.strength
        if self.positions is not None:
            kwargs["positions"] = self.positions
        if self.kind == "hooks":
            handle = get_backend(model.backend).add_hooks(model, list(obj))
        elif self.kind == "plan":
            handle = patch_plan(model, obj, **kwargs)
        else:
            handle = patch(model, obj, **kwargs)
        try:
            yield handle
        finally:
            handle.remove()

    def describe(self) -> str:
        """A short human description for reports."""
        if self.kind == "none":
            return "no steering"
        what = _shown(self.obj) if isinstance(self.obj, (str, Path)) else type(self.obj).__name__
        extra = f", strength {self.strength:g}" if self.strength is not None else ""
        return f"{self.kind} {what}{extra}"


def _shown(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies under it (reports travel)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
