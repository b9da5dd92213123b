"""Runtime operators: what a steering hook does with a direction ``v`` at a site.

Every operator is the same small edit of the residual ``x`` (B, T, d), made of an additive vector
and a projection edit along unit directions ``U`` (k, d)::

    x' = x + w * ( a  +  ((t - x @ U.T) * g) @ U  +  fn(x, v) )

=================  ==================  ==================  ===============  ==================
operator           a (additive)        U (projection)      t (target)       what it does
=================  ==================  ==================  ===============  ==================
``add``            ``s * v``           --                  --               shift along v
``ablate``         --                  ``v / |v|``         0                remove the v part
``ablate_add``     ``s * v``           ``v / |v|``         0                remove, then shift
``clamp(c)``       --                  ``v / |v|``         ``c``            set ``x . v/|v| = c``
``custom(fn)``     --                  --                  --               ``fn(x, s * v)``
=================  ==================  ==================  ===============  ==================

``w`` is the token selection (and a plan's schedule), ``g`` the projection gain (1: exact ablation
or clamp; a plan's per-row gate). The projection edit is the low-rank form ``R^T (W h + b - R h)``
with ``R = U``, ``W = 0``, ``b = t``: the same affine edit as a ReFT-style intervention, so plans
fuse ablation and clamping with their low-rank parts. Everything is prepared at patch time; the
hook is tensor code only (no host synchronisation) and compiles with ``fullgraph=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["OPERATORS", "Edit", "Operator", "as_operator", "make_edit"]

OpKind = Literal["add", "ablate", "ablate_add", "clamp", "custom"]
OPERATORS: tuple[str, ...] = ("add", "ablate", "ablate_add", "clamp", "custom")
CustomFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(x (B, T, d), direction (d,)) -> (B, T, d)`` delta, tensor code only."""


@dataclass(frozen=True)
class Operator:
    """What a hook does with a direction: ``add``, ``ablate``, ``ablate_add``, ``clamp``, ``custom``.

    Attributes:
        kind: the operator.
        value: the projection ``clamp`` sets (in units of the activation, along the unit direction).
        fn: the ``custom`` callable ``(x, direction) -> delta``.

    Example:
        >>> Operator("clamp", value=2.0).kind
        'clamp'
    """

    kind: OpKind = "add"
    value: float = 0.0
    fn: CustomFn | None = None

    def __post_init__(self) -> None:
        if self.kind not in OPERATORS:
            raise ValueError(
                f"op={self.kind!r} is not an operator: use one of {', '.join(OPERATORS)} or a callable"
            )
        if (self.kind == "custom") != (self.fn is not None):
            raise ValueError(
                "op='custom' needs fn=(x, direction) -> delta, and only it takes one: pass a callable as op"
            )
        if not torch.isfinite(torch.tensor(float(self.value))):
            raise ValueError(f"clamp value {self.value!r} is not finite: pass a finite number")

    @property
    def projects(self) -> bool:
        """Whether it edits the projection onto the direction (ablate, ablate_add, clamp)."""
        return self.kind in ("ablate", "ablate_add", "clamp")

    @property
    def adds(self) -> bool:
        return self.kind in ("add", "ablate_add")


def as_operator(op: str | Operator | CustomFn, value: float | None = None) -> Operator:
    """``"ablate"``, ``"clamp"`` (with ``value``), an :class:`Operator`, or a callable (custom)."""
    if isinstance(op, Operator):
        return op
    if isinstance(op, str):
        if op == "clamp" and value is None:
            raise ValueError("op='clamp' needs value=: the projection to set along the direction")
        if op != "clamp" and value is not None:
            raise ValueError(f"value= is only for op='clamp', not op={op!r}")
        return Operator(op, value=float(value or 0.0))  # type: ignore[arg-type]
    if callable(op):
        return Operator("custom", fn=op)
    raise TypeError(
        f"op must be an operator name, an Operator or a callable, got {type(op).__name__}"
    )


@dataclass
class Edit:
    """The device tensors of one site's operator, ready for a hook (see the module docstring).

    Attributes:
        add: (d,) additive vector or None; unit: (1, d) unit direction or None; target: (1,)
        projection target; fn, direction: the custom callable and its (d,) argument.
    """

    add: torch.Tensor | None = None
    unit: torch.Tensor | None = None
    target: torch.Tensor | None = None
    fn: CustomFn | None = None
    direction: torch.Tensor | None = None

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) or (d,): what the operator adds to ``x`` (in ``x``'s dtype: a no-op cast
        unless the model was cast after patch)."""
        dt = x.dtype
        out: torch.Tensor | None = None if self.add is None else self.add.to(dt)
        if self.unit is not None and self.target is not None:
            unit = self.unit.to(dt)
            proj = x @ unit.T  # (B, T, 1)
            edit = (self.target.to(dt) - proj) @ unit  # (B, T, d)
            out = edit if out is None else edit + out
        if self.fn is not None and self.direction is not None:
            custom = self.fn(x, self.direction.to(dt))
            out = custom if out is None else custom + out
        assert out is not None
        return out


def make_edit(
    op: Operator, direction: torch.Tensor, strength: float, device: torch.device, dtype: torch.dtype
) -> Edit:
    """Prepare ``op`` for one (d,) direction at ``strength`` on the model's device and dtype."""
    v = direction.to(device, torch.float32)
    edit = Edit()
    if op.adds:
        edit.add = (strength * v).to(dtype)
    if op.projects:
        norm = v.norm()
        if float(norm) == 0.0:  # at patch time, never in the hook
            raise ValueError(f"op={op.kind!r} needs a non-zero direction to project onto")
        edit.unit = (v / norm).unsqueeze(0).to(dtype)  # (1, d)
        edit.target = torch.tensor([op.value], device=device, dtype=dtype)  # (1,)
    if op.kind == "custom":
        edit.fn, edit.direction = op.fn, (strength * v).to(dtype)
    return edit
