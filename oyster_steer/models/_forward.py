"""Run a decoder from block ``L`` upward, starting from activations cached at that block's input.

Nothing a steering hook at block ``L`` or above does can change what blocks below ``L`` compute.
Training, calibration and scoring loops that evaluate the same prompts many times under
different steering can therefore run the frozen lower blocks once, keep ``resid_pre`` of block
``L`` (the first steered block), and on every step run only blocks ``L..n-1`` and the final norm
with :func:`forward_from`. Hooks installed on those blocks (steering vectors, low-rank
interventions, read hooks) fire as in a full forward; hooks on lower blocks, and hooks that key
on the first block (the position tracker of ``positions="prompt"|"generated"`` steering), do not.

The supported families are those whose blocks take rotary ``position_embeddings`` from the base
model (Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3, GPT-NeoX); :func:`supports_forward_from`
says whether a model is one, and callers fall back to the full forward otherwise.

Example:
    >>> h = resid_pre_of_block_12                                  # doctest: +SKIP
    >>> out = forward_from(model, 12, h, mask, position_ids(mask))  # doctest: +SKIP
    >>> out.shape  # final-normed hidden states, as base_model(...).last_hidden_state  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from ..core._errors import SiteError

if TYPE_CHECKING:
    from ._model import OysterModel

__all__ = ["forward_from", "supports_forward_from"]


def supports_forward_from(model: OysterModel) -> bool:
    """Whether :func:`forward_from` can run ``model``'s family (else use the full forward)."""
    base = model.hf.base_model
    return hasattr(base, "rotary_emb") and (
        hasattr(base, "norm") or hasattr(base, "final_layer_norm")
    )


def _norm(base: Any) -> Any:
    return base.norm if hasattr(base, "norm") else base.final_layer_norm


def forward_from(
    model: OysterModel,
    layer: int,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    past_key_values: Any = None,
    stop_after: int | None = None,
) -> torch.Tensor:
    """Blocks ``layer..n-1`` and the final norm on ``hidden``, the (B, T, d) input of block ``layer``.

    Args:
        model: a model of a supported family (:func:`supports_forward_from`).
        layer: the first block to run (0 runs the whole decoder from the embeddings' output).
        hidden: (B, T, d) ``resid_pre`` of block ``layer`` (e.g. cached from an unsteered pass).
        attention_mask: (B, K + T) 2D mask over the cached tokens (K, from ``past_key_values``)
            and these T tokens; position_ids: (B, T) positions of these tokens.
        past_key_values: a ``transformers`` cache; blocks ``>= layer`` read and extend it
            (blocks below ``layer`` need no entries in it).
        stop_after: run blocks up to this one only and return its output (no final norm).

    Returns:
        (B, T, d) final-normed hidden states (what ``base_model(...).last_hidden_state`` holds),
        or the output of block ``stop_after``.
    """
    from transformers.masking_utils import (
        create_causal_mask,
        create_sliding_window_causal_mask,
    )

    if not supports_forward_from(model):
        raise SiteError(
            f"forward_from does not support the {model.model_type!r} family (its blocks do not take "
            "rotary position embeddings from the base model): run the full forward instead"
        )
    n = model.n_layers
    last = n - 1 if stop_after is None else stop_after
    if not 0 <= layer <= last < n:
        raise SiteError(
            f"forward_from(layer={layer}, stop_after={stop_after}) is out of range for a model with "
            f"{n} blocks: pass 0 <= layer <= stop_after < {n}"
        )
    base, cfg = model.hf.base_model, model.hf.config
    types = getattr(cfg, "layer_types", None) or (
        ["sliding_attention" if getattr(cfg, "sliding_window", None) else "full_attention"] * n
    )
    makers = {
        "full_attention": create_causal_mask,
        "sliding_attention": create_sliding_window_causal_mask,
    }
    masks: dict[str, Any] = {}
    for kind in dict.fromkeys(types[layer : last + 1]):
        first_of_kind = next(i for i in range(layer, last + 1) if types[i] == kind)
        masks[kind] = makers[kind](
            config=cfg,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
            layer_idx=first_of_kind if past_key_values is not None else None,
        )
    rotary = base.rotary_emb
    per_type = "layer_type" in inspect.signature(rotary.forward).parameters
    embeddings = {kind: rotary(hidden, position_ids, kind) if per_type else None for kind in masks}
    if not per_type:
        shared = rotary(hidden, position_ids)
        embeddings = dict.fromkeys(masks, shared)
    layers = model.hf.get_submodule(model.spec.layers)
    params = inspect.signature(layers[layer].forward).parameters
    cache_arg = "past_key_values" if "past_key_values" in params else "layer_past"  # GPT-NeoX
    for i in range(layer, last + 1):
        out = layers[i](
            hidden,
            attention_mask=masks[types[i]],
            position_embeddings=embeddings[types[i]],
            position_ids=position_ids,
            use_cache=past_key_values is not None,
            **{cache_arg: past_key_values},
        )
        hidden = out if isinstance(out, torch.Tensor) else out[0]
    return hidden if stop_after is not None else _norm(base)(hidden)
