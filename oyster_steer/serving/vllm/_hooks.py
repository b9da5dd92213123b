"""Where the plan's sites are on vLLM's decoder layers, and the torch hooks that put it there.

vLLM's Llama-family decoder layers (``LlamaDecoderLayer`` and the families exported as Llama)
keep the residual stream in two tensors, ``hidden_states`` and ``residual``, and add them inside
the next fused add-RMSNorm. The residual stream at a layer boundary is therefore their sum:

==================  ==================================================  ========================
site (block L)      read                                                write (adds ``delta``)
==================  ==================================================  ========================
``resid_pre``       pre-hook of layer L: ``hidden + residual``          to ``hidden`` there
``attn_out``        hook of ``layers[L].self_attn``: its output         to that output
``resid_mid``       pre-hook of ``post_attention_layernorm``: sum       to attention's output
``mlp_out``         hook of ``layers[L].mlp``: its output               to that output
``resid_post``      hook of layer L: ``hidden + residual``              to the returned ``hidden``
==================  ==================================================  ========================

Adding ``delta`` to either of the two tensors adds it to their sum, which is all later layers
(and the final norm) ever see. A low-rank edit depends on the value it edits, so it is computed
from the sum (the full residual stream), as the library's hook sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._state import PlanState

__all__ = ["SUPPORTED_LAYERS", "install_hooks"]

SUPPORTED_LAYERS = ("LlamaDecoderLayer", "Qwen2DecoderLayer", "MistralDecoderLayer")


def _decoder_layers(model: torch.nn.Module, n_layers: int) -> torch.nn.ModuleList:
    for name, module in model.named_modules():
        if (
            name.endswith("layers")
            and isinstance(module, torch.nn.ModuleList)
            and len(module) == n_layers
        ):
            return module
    raise ValueError(
        f"no list of {n_layers} decoder layers found in the served {type(model).__name__}: "
        "the vLLM plugin supports Llama-family models (oyster-steer export writes Llama for "
        "Llama, Mistral, Qwen2 and Phi-3)"
    )


def _sum(hidden: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return hidden if residual is None else hidden + residual


def install_hooks(model: torch.nn.Module, state: PlanState) -> list[Any]:
    """Register the begin pre-hook, the read hooks and the fused write hooks; returns handles."""
    layers = _decoder_layers(model, state.n_layers)
    kinds = {type(layer).__name__ for layer in layers}
    if not kinds <= set(SUPPORTED_LAYERS):
        raise ValueError(
            f"the served model's decoder layers are {sorted(kinds)}; the vLLM plugin supports "
            f"{', '.join(SUPPORTED_LAYERS)}: export the model as Llama or serve the plan with transformers"
        )
    # (module, "pre" | "post") -> ops in forward order: reads first, then writes
    points: dict[tuple[int, str], list[tuple[int, str, Any]]] = {}
    modules: dict[int, torch.nn.Module] = {}

    def point(module: Any, when: str, order: int, op: str, arg: Any) -> None:
        modules[id(module)] = module
        points.setdefault((id(module), when), []).append((order, op, arg))

    for site, (gate, names) in state.reads.items():
        point(*_read_points(layers[site.layer])[site.kind], 0, "read", (gate, names))
    for index, site in enumerate(state.sites):
        point(*_write_points(layers[site.layer])[site.kind], 1, "write", index)

    handles = [layers[0].register_forward_pre_hook(_begin(state), with_kwargs=True)]
    for (mid, when), ops in points.items():
        ops = sorted(ops, key=lambda o: o[0])
        module = modules[mid]
        if when == "pre":
            handles.append(
                module.register_forward_pre_hook(
                    _pre(
                        state,
                        ops,
                        module is not layers[0] and type(module).__name__ not in SUPPORTED_LAYERS,
                    ),
                    with_kwargs=True,
                )
            )
        else:
            handles.append(module.register_forward_hook(_post(state, ops)))
    return handles


def _read_points(layer: Any) -> dict[str, tuple[Any, str]]:
    """Site kind -> (module of decoder ``layer``, "pre" | "post") where it is read (module table)."""
    return {
        "resid_pre": (layer, "pre"),
        "attn_out": (layer.self_attn, "post"),
        "resid_mid": (layer.post_attention_layernorm, "pre"),
        "mlp_out": (layer.mlp, "post"),
        "resid_post": (layer, "post"),
    }


def _write_points(layer: Any) -> dict[str, tuple[Any, str]]:
    """Site kind -> where it is written: where it is read, except ``resid_mid``, which is
    written to attention's output (module table)."""
    return {**_read_points(layer), "resid_mid": (layer.self_attn, "post")}


def _begin(state: PlanState) -> Callable[..., None]:
    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        positions = args[0] if args else kwargs["positions"]
        hidden = args[1] if len(args) > 1 else kwargs["hidden_states"]
        state.begin(positions, hidden.shape[0])

    return hook


def _apply(
    state: PlanState,
    ops: list[tuple[int, str, Any]],
    hidden: torch.Tensor,
    residual: torch.Tensor | None,
) -> torch.Tensor | None:
    """One hook point's ops in order on the stream ``hidden + residual``: the shifted ``hidden``,
    or None where every op only reads."""
    changed = False
    for _, op, arg in ops:
        if op == "read":
            state.read(_sum(hidden, residual), *arg)
        else:  # low-rank edits read the full residual value; the sum is what gets shifted
            hidden, changed = hidden + state.delta(_sum(hidden, residual), arg), True
    return hidden if changed else None


def _pre(state: PlanState, ops: list[tuple[int, str, Any]], is_norm: bool) -> Callable[..., Any]:
    """Pre-hook of a decoder layer (args: positions, hidden, residual) or of a fused add-norm
    (args: hidden, residual)."""
    h_at = 0 if is_norm else 1

    def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> Any:
        args = list(args)
        hidden = args[h_at] if len(args) > h_at else kwargs["hidden_states"]
        residual = args[h_at + 1] if len(args) > h_at + 1 else kwargs.get("residual")
        hidden = _apply(state, ops, hidden, residual)
        if hidden is None:
            return None
        if len(args) > h_at:
            args[h_at] = hidden
        else:
            kwargs["hidden_states"] = hidden
        return tuple(args), kwargs

    return hook


def _post(state: PlanState, ops: list[tuple[int, str, Any]]) -> Callable[..., Any]:
    """Forward hook of a decoder layer (output: hidden, residual) or of attention / MLP (tensor)."""

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        pair = isinstance(output, tuple)
        hidden, residual = (output[0], output[1]) if pair else (output, None)
        hidden = _apply(state, ops, hidden, residual)
        if hidden is None:
            return None
        return (hidden, residual, *output[2:]) if pair else hidden

    return hook
