"""Backends: Hugging Face transformers, TransformerLens and nnsight, as siblings behind one protocol.

Each backend module (``_hf``, ``_tl``, ``_nnsight``) exposes the same three functions; the heavy
libraries are imported inside them, never by ``import oyster_steer``.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..core._sites import Site, resolve_site
from ..models._arch import hook_point
from ..models._registry import backend_spec

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "Backend",
    "Hook",
    "HookFn",
    "HookHandle",
    "StopForward",
    "get_backend",
    "guard_hooks_in_compiled_code",
    "stop_after_last",
]

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
    """Removes hooks it was given, once, last added first; usable as a context manager."""

    def __init__(self, removers: Sequence[Callable[[], None]] = ()) -> None:
        self._removers = list(removers)

    def add(self, remover: Callable[[], None]) -> None:
        """Take one more hook (its remover) into this handle; it is removed before earlier ones."""
        self._removers.append(remover)

    def remove(self) -> None:
        _remove_all(self._removers)

    def remove_when_collected(self) -> None:
        """Also remove the hooks when this handle is garbage-collected (a dropped handle)."""
        # The finalizer holds the removers list, not the handle; remove() empties that same list.
        weakref.finalize(self, _remove_all, self._removers)

    @property
    def active(self) -> bool:
        return bool(self._removers)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _remove_all(removers: list[Callable[[], None]]) -> None:
    while removers:
        removers.pop()()


class StopForward(Exception):
    """Raised by the last read hook to skip the rest of a forward pass nobody needs."""


def stop_after_last(hooks: Sequence[Hook]) -> list[Hook]:
    """``hooks`` with the last one (in execution order) raising :class:`StopForward` after it ran.

    Example:
        >>> with add_hooks(model, stop_after_last(hooks)), contextlib.suppress(StopForward):  # doctest: +SKIP
        ...     model.hf.base_model(input_ids)
    """
    if not hooks:
        return list(hooks)
    last = max(hooks, key=lambda h: h.site.order)

    def fn(x: torch.Tensor) -> None:
        last.fn(x)
        raise StopForward

    return [h if h is not last else Hook(h.site, fn, h.write) for h in hooks]


_GUARDS_LOCK = threading.Lock()
_GUARDS: dict[str, Any] = {"holders": 0, "saved": None}


def guard_hooks_in_compiled_code() -> Callable[[], None]:
    """Make ``torch.compile`` guard on module hooks until the returned release is called.

    By default dynamo does not guard on module hooks: code compiled before a patch (e.g. HF's
    cached compiled generate step) would silently run without it, or with it after ``remove()``.
    The flag is process-wide, so holders are counted: the first sets it, the last release
    restores the value it had before. Each release counts once.
    """
    with _GUARDS_LOCK:
        if _GUARDS["holders"] == 0:
            _GUARDS["saved"] = torch._dynamo.config.skip_nnmodule_hook_guards
            torch._dynamo.config.skip_nnmodule_hook_guards = False
        _GUARDS["holders"] += 1
    released = threading.Event()

    def release() -> None:
        with _GUARDS_LOCK:
            if released.is_set():
                return
            released.set()
            _GUARDS["holders"] -= 1
            if _GUARDS["holders"] == 0:
                torch._dynamo.config.skip_nnmodule_hook_guards = _GUARDS["saved"]

    return release


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


def get_backend(name: str) -> Backend:
    """The backend module for ``"hf"``, ``"tl"`` or ``"nnsight"`` (see the models registry)."""
    return importlib.import_module(backend_spec(name).module)


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
