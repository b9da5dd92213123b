"""Backends: Hugging Face transformers, TransformerLens and nnsight, as siblings behind one protocol.

Each backend module (``_hf``, ``_tl``, ``_nnsight``) exposes the same three functions; the heavy
libraries are imported inside them, never by ``import oyster_steer``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..core._sites import Site, resolve_site
from ..models._arch import hook_point

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["Backend", "Hook", "HookFn", "HookHandle", "get_backend"]

HookFn = Callable[[torch.Tensor], "torch.Tensor | None"]
"""Receives a (B, T, d) activation; returns a replacement, or None to leave it unchanged."""


@dataclass(frozen=True)
class Hook:
    """A function at a site. ``write=True`` hooks return a replacement (steering); reads return None.

    A write at ``resid_mid`` is applied to what attention adds to the residual (the same thing
    for additive edits, and the only point where an edit reaches the MLP's residual input).
    """

    site: Site
    fn: HookFn
    write: bool = False


class HookHandle:
    """Removes hooks it was given, once; usable as a context manager."""

    def __init__(self, removers: Sequence[Callable[[], None]] = ()) -> None:
        self._removers = list(removers)

    def remove(self) -> None:
        while self._removers:
            self._removers.pop()()

    @property
    def active(self) -> bool:
        return bool(self._removers)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Backend(Protocol):
    """What each backend module provides."""

    def forward(
        self,
        model: OysterModel,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        hooks: Sequence[Hook] = (),
        *,
        logits: bool = True,
    ) -> torch.Tensor | None:
        """Run a forward pass with hooks; (B, T, vocab) logits, or None when ``logits=False``
        (then the pass may stop after the last hooked block)."""
        ...

    def add_hooks(self, model: OysterModel, hooks: Sequence[Hook]) -> HookHandle:
        """Install hooks that stay until the handle is removed (all-or-nothing)."""
        ...

    def generate(
        self,
        model: OysterModel,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        hooks: Sequence[Hook] = (),
        *,
        max_new_tokens: int = 32,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Greedy generation with hooks active at every step; (B, T + new) token ids."""
        ...


_MODULES = {"hf": "._hf", "tl": "._tl", "nnsight": "._nnsight"}


def get_backend(name: str) -> Backend:
    """The backend module for ``"hf"``, ``"tl"`` or ``"nnsight"``."""
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}: use one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name], __name__)  # type: ignore[return-value]


def checked_hooks(model: OysterModel, hooks: Sequence[Hook]) -> list[Hook]:
    """``hooks`` with sites resolved for ``model`` (``-1`` is the last block), refusing at patch
    time, with a SiteError, a layer out of range or a site this architecture lacks."""
    out = []
    for h in hooks:
        site = resolve_site(h.site, model.n_layers)
        hook_point(model.spec, site, write=h.write, parallel=model.parallel_residual)
        out.append(h if site == h.site else Hook(site, h.fn, h.write))
    return out


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding: 0 at each row's first real token. (B, T)"""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
