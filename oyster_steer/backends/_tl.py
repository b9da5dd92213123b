"""TransformerLens backend (4.x ``TransformerBridge``): hook points named exactly like our sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .._sites import Site
from . import Hook, HookHandle

if TYPE_CHECKING:
    from .._models import OysterModel

__all__ = ["add_hooks", "forward", "generate"]


def _name(site: Site, write: bool) -> str:
    # The bridge's resid_mid is the norm's input; an edit there never reaches the residual sum.
    if write and site.kind == "resid_mid":
        return f"blocks.{site.layer}.hook_attn_out"
    return site.name


def _fwd_hooks(hooks: Sequence[Hook]) -> list[tuple[str, Any]]:
    def wrap(fn: Any) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> torch.Tensor | None:
            return fn(x)

        return hook

    return [(_name(h.site, h.write), wrap(h.fn)) for h in hooks]


def add_hooks(model: OysterModel, hooks: Sequence[Hook]) -> HookHandle:
    """Install persistent bridge hooks; the handle removes exactly these."""
    bridge = model.native
    installed: list[tuple[str, Any]] = []
    handle = HookHandle()
    try:
        for name, fn in _fwd_hooks(hooks):
            hook_point = bridge.hook_dict[name]
            hook_point.add_hook(fn, dir="fwd")
            installed.append((name, fn))
            handle._removers.append(_remover(hook_point, fn))
    except BaseException:
        handle.remove()
        raise
    return handle


def _remover(hook_point: Any, fn: Any) -> Any:
    def remove() -> None:
        for h in list(hook_point.fwd_hooks):
            if getattr(h, "hook", None) is not None and _inner(h) is fn:
                h.hook.remove()
                hook_point.fwd_hooks.remove(h)

    return remove


def _inner(handle: Any) -> Any:
    return getattr(handle, "fn", None) or getattr(handle, "hook_fn", None)


def forward(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    logits: bool = True,
) -> torch.Tensor | None:
    """A bridge forward pass with temporary hooks; stops after the last hooked block without logits."""
    bridge = model.native
    stop = None if logits or not hooks else max(h.site.layer for h in hooks) + 1
    stop = None if stop is not None and stop >= model.n_layers else stop
    with bridge.hooks(fwd_hooks=_fwd_hooks(hooks)):
        out = bridge(input_ids, attention_mask=attention_mask, return_type="logits" if logits else None, stop_at_layer=stop)
    return out if logits else None


def generate(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    max_new_tokens: int = 32,
    **kwargs: Any,
) -> torch.Tensor:
    """Greedy bridge generation with KV cache and hooks; (B, T + new) token ids."""
    bridge = model.native
    with bridge.hooks(fwd_hooks=_fwd_hooks(hooks)):
        return bridge.generate(
            input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_at_eos=False,
            use_past_kv_cache=True,
            verbose=False,
            return_type="tokens",
            **kwargs,
        )
