"""Hugging Face transformers backend: plain PyTorch hooks on the modules named by the arch registry."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..models._arch import hook_point
from . import Hook, HookHandle, StopForward, checked_hooks, position_ids, stop_after_last

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["PrefixKV", "add_hooks", "forward", "generate", "prefix_kv"]


def _output_hook(fn: Any) -> Any:
    def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return fn(output)
        new = fn(output[0])  # older decoder layers and attention modules return tuples
        return None if new is None else (new, *output[1:])

    return hook


def _input_hook(fn: Any) -> Any:
    def hook(module: torch.nn.Module, args: Any, kwargs: Any) -> Any:
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = fn(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})

    return hook


def add_hooks(model: OysterModel, hooks: Sequence[Hook]) -> HookHandle:
    """Register every hook or none: a failure rolls back the ones already registered."""
    handle = HookHandle()
    try:
        for hook in checked_hooks(model, hooks):
            point = hook_point(
                model.spec, hook.site, write=hook.write, parallel=model.parallel_residual
            )
            module = model.hf.get_submodule(point.path)
            if point.io == "output":
                h = module.register_forward_hook(_output_hook(hook.fn))
            else:
                h = module.register_forward_pre_hook(_input_hook(hook.fn), with_kwargs=True)
            handle.add(h.remove)
    except BaseException:
        handle.remove()
        raise
    return handle


class PrefixKV:
    """The KV cache of a token prefix that every row of later batches shares (batch 1).

    Computed once by :func:`prefix_kv`; :func:`forward` with ``prefix=`` then runs only each
    row's own tokens after it. Nothing is steered or read inside the prefix by later passes:
    hooks see only the suffix tokens (the prefix pass ran the hooks given to :func:`prefix_kv`).
    """

    def __init__(self, cache: Any, length: int) -> None:
        self.cache, self.length = cache, length

    def expanded(self, batch: int) -> Any:
        """A fresh cache holding the prefix once per row (later passes append to it)."""
        import copy

        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch)
        return cache


def prefix_kv(model: OysterModel, prefix_ids: torch.Tensor, hooks: Sequence[Hook] = ()) -> PrefixKV:
    """Run ``prefix_ids`` (1, P) once with ``hooks`` and keep its KV cache (up to the last
    hooked block when there are hooks: a later pass with the same hooks stops there too)."""
    from transformers import DynamicCache

    hooks = checked_hooks(model, hooks)
    cache = DynamicCache(config=model.hf.config)
    mask = torch.ones_like(prefix_ids)
    kwargs = dict(
        input_ids=prefix_ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        past_key_values=cache,
        use_cache=True,
    )
    with add_hooks(model, stop_after_last(hooks)), contextlib.suppress(StopForward):
        model.hf.base_model(**kwargs)
    return PrefixKV(cache, int(prefix_ids.shape[1]))


def forward(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    logits: bool = True,
    prefix: PrefixKV | None = None,
) -> torch.Tensor | None:
    """One forward pass with hooks; without logits it stops after the last hooked block.

    With ``prefix`` (from :func:`prefix_kv`), ``input_ids`` (left-padded) are each row's tokens
    after that shared prefix: positions continue from it and every row attends to it.
    """
    hooks = checked_hooks(model, hooks)
    kwargs: dict[str, Any] = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
    )
    if prefix is not None:
        ones = attention_mask.new_ones(attention_mask.shape[0], prefix.length)
        kwargs.update(
            attention_mask=torch.cat([ones, attention_mask], dim=1),
            position_ids=position_ids(attention_mask) + prefix.length,
            past_key_values=prefix.expanded(input_ids.shape[0]),
            use_cache=True,
        )
    if logits:
        with add_hooks(model, hooks):
            return model.hf(**kwargs).logits
    # no LM head (a third of the cost on small models): stop before it, or after the last hooked
    # block. Through the top-level module, not ``base_model``: hooks on it (a control plan's
    # attention-mask and input-id grabs, which pooled reads need) must see the pass too.
    head = model.hf.get_output_embeddings()
    if head is model.hf.get_input_embeddings():
        head = None  # never stop at the first module; run the head instead
    stop = head.register_forward_pre_hook(_stop) if head is not None else None
    try:
        with add_hooks(model, stop_after_last(hooks)), contextlib.suppress(StopForward):
            model.hf(**kwargs)
    finally:
        if stop is not None:
            stop.remove()
    return None


def _stop(*_: Any) -> None:
    raise StopForward


def generate(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    max_new_tokens: int = 32,
    **kwargs: Any,
) -> torch.Tensor:
    """Greedy generation (B, T + new) with hooks active for the prompt pass and every decode step."""
    kwargs = {"do_sample": False, "pad_token_id": model.pad_id, **kwargs}
    with add_hooks(model, hooks):
        return model.hf.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            **kwargs,
        )
