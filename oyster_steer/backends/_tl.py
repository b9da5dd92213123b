"""TransformerLens backend (4.x ``TransformerBridge``): hook points named exactly like our sites."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core._sites import Site
from . import Hook, HookHandle, StopForward, checked_hooks, stop_after_last

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["add_hooks", "forward", "generate"]


def _name(site: Site, write: bool) -> str:
    # The bridge's resid_mid is the norm's input; an edit there never reaches the residual sum.
    if write and site.kind == "resid_mid":
        return f"blocks.{site.layer}.hook_attn_out"
    return site.name


def _fwd_hooks(model: OysterModel, hooks: Sequence[Hook]) -> list[tuple[str, Any]]:
    hooks = checked_hooks(
        model, hooks
    )  # the registry's checks, e.g. no resid_mid in parallel blocks

    def wrap(fn: Any) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> torch.Tensor | None:
            return fn(x)

        return hook

    return [(_name(h.site, h.write), wrap(h.fn)) for h in hooks]


def add_hooks(model: OysterModel, hooks: Sequence[Hook]) -> HookHandle:
    """Install persistent bridge hooks; the handle removes exactly these."""
    bridge = model.native
    handle = HookHandle()
    try:
        for name, fn in _fwd_hooks(model, hooks):
            point = bridge.hook_dict[name]
            lens = point.add_hook(fn, dir="fwd")
            handle.add(_remover(point, lens))
    except BaseException:
        handle.remove()
        raise
    return handle


def _remover(point: Any, lens: Any) -> Any:
    def remove() -> None:
        lens.hook.remove()
        if lens in point.fwd_hooks:
            point.fwd_hooks.remove(lens)

    return remove


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
    hooks = checked_hooks(model, hooks)
    if logits:
        with bridge.hooks(fwd_hooks=_fwd_hooks(model, hooks)):
            return bridge(input_ids, attention_mask=attention_mask, return_type="logits")
    # The bridge computes the LM head even with return_type=None or stop_at_layer=n_layers, so the
    # last hook ends the pass instead (as on hf): the head is a third of a small model's forward.
    with (
        bridge.hooks(fwd_hooks=_fwd_hooks(model, stop_after_last(hooks))),
        contextlib.suppress(StopForward),
    ):
        bridge(input_ids, attention_mask=attention_mask, return_type=None)
    return None


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
    with bridge.hooks(fwd_hooks=_fwd_hooks(model, hooks)):
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
