"""Per-architecture layout of Hugging Face causal LMs: where each hook site lives.

Every architecture is a row in :data:`ARCHITECTURES`, keyed by ``config.model_type``. Paths are
attribute paths from the ``*ForCausalLM`` object. Adding a family is adding a row, not a branch.

A decoder whose family has no row still works (:func:`resolve_spec`): its decoder blocks are
found by module discovery (the ``ModuleList`` of ``num_hidden_layers`` same-type blocks holding
the most parameters) or given as a layer path (``load_model(..., layers="model.layers")``). Such a
layout knows block boundaries only: ``hook_resid_pre`` and ``hook_resid_post`` work, sub-block
sites and export baking need a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core._errors import SiteError
from ..core._sites import Site

__all__ = ["ARCHITECTURES", "ArchSpec", "HookPoint", "arch_spec", "hook_point", "resolve_spec"]


@dataclass(frozen=True)
class ArchSpec:
    """Module paths of one architecture family.

    Attributes:
        layers: the ModuleList of decoder blocks.
        attn_out: submodule of a block whose output is what attention adds to the residual.
        mlp_out: submodule of a block whose output is what the MLP adds to the residual.
        mid_read: submodule of a block whose first input is ``resid_mid``; None for parallel blocks.
        embed: token embedding module; final_norm: the norm before the LM head.
        attn_proj, mlp_proj: the last linear layer of attention / MLP (export writes biases there).
        tl_supported: TransformerLens's bridge knows this family.
        source: ``"registry"``, ``"discovered"`` (blocks found by module name) or ``"given"`` (a
            user's layer path); the last two know block boundaries only (sub-block paths None).
    """

    layers: str
    attn_out: str | None
    mlp_out: str | None
    mid_read: str | None
    embed: str
    final_norm: str | None
    attn_proj: str | None
    mlp_proj: str | None
    lm_head: str = "lm_head"
    source: str = "registry"

    @property
    def blocks_only(self) -> bool:
        """True for a layout that knows where blocks are but not what is inside them."""
        return self.attn_out is None


_LLAMA = ArchSpec(
    layers="model.layers",
    attn_out="self_attn",
    mlp_out="mlp",
    mid_read="post_attention_layernorm",
    embed="model.embed_tokens",
    final_norm="model.norm",
    attn_proj="self_attn.o_proj",
    mlp_proj="mlp.down_proj",
)
# Gemma 2/3 norm each sublayer's output before it joins the residual ("sandwich" norms).
_GEMMA2 = ArchSpec(
    layers="model.layers",
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
    mid_read="pre_feedforward_layernorm",
    embed="model.embed_tokens",
    final_norm="model.norm",
    attn_proj="self_attn.o_proj",
    mlp_proj="mlp.down_proj",
)

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "smollm3": _LLAMA,  # Llama blocks, some without rotary embeddings (NoPE)
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "phi3": _LLAMA,  # the same module names as Llama
    "gpt2": ArchSpec(
        layers="transformer.h",
        attn_out="attn",
        mlp_out="mlp",
        mid_read="ln_2",
        embed="transformer.wte",
        final_norm="transformer.ln_f",
        attn_proj="attn.c_proj",
        mlp_proj="mlp.c_proj",
    ),
    # GPT-NeoX blocks are parallel by default (config.use_parallel_residual): then no resid_mid.
    "gpt_neox": ArchSpec(
        layers="gpt_neox.layers",
        attn_out="post_attention_dropout",
        mlp_out="post_mlp_dropout",
        mid_read="post_attention_layernorm",
        embed="gpt_neox.embed_in",
        final_norm="gpt_neox.final_layer_norm",
        attn_proj="attention.dense",
        mlp_proj="mlp.dense_4h_to_h",
    ),  # transformers 5 renamed the head from embed_out to lm_head
}
ARCHITECTURES["gemma3"] = _GEMMA2


def arch_spec(model_type: str) -> ArchSpec:
    """The layout of ``model_type``; an unknown family raises with the list of supported ones."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise SiteError(
            f"architecture {model_type!r} is not in oyster_steer's registry: supported are "
            f"{', '.join(sorted(ARCHITECTURES))}; add an ArchSpec row to oyster_steer.models._arch.ARCHITECTURES"
        ) from None


def _module_name(hf: Any, module: Any, default: str) -> str:
    for name, m in hf.named_modules():
        if m is module:
            return name
    return default


def _blocks_spec(hf: Any, layers: str, source: str) -> ArchSpec:
    embed = _module_name(hf, hf.get_input_embeddings(), "")
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    return ArchSpec(
        layers=layers,
        attn_out=None,
        mlp_out=None,
        mid_read=None,
        embed=embed,
        final_norm=None,
        attn_proj=None,
        mlp_proj=None,
        lm_head=_module_name(hf, head, "lm_head") if head is not None else "lm_head",
        source=source,
    )


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def discover_layers(hf: Any) -> str:
    """The path of ``hf``'s decoder blocks: the ModuleList of ``num_hidden_layers`` same-type blocks.

    Among candidates the one holding the most parameters wins; a runner-up with at least half as
    many makes the choice ambiguous. Raises :class:`SiteError` naming the ``layers`` argument.
    """
    want = getattr(hf.config, "num_hidden_layers", None)
    found = []
    for name, module in hf.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        kinds = {type(block) for block in module}
        if len(kinds) != 1 or (want is not None and len(module) != want):
            continue
        found.append((_n_params(module), name))
    found.sort(reverse=True)
    model_type = getattr(hf.config, "model_type", type(hf).__name__)
    if not found or found[0][0] == 0:
        raise SiteError(
            f"cannot find the decoder blocks of this {model_type!r} model (no ModuleList of "
            f"{want} same-type blocks): pass layers='path.to.blocks' (e.g. 'model.layers') to "
            "load_model or from_hf"
        )
    if len(found) > 1 and 2 * found[1][0] >= found[0][0]:
        raise SiteError(
            f"this {model_type!r} model has several candidate block lists ({found[0][1]!r}, "
            f"{found[1][1]!r}): pass layers= with the path of its decoder blocks to load_model or from_hf"
        )
    return found[0][1]


def resolve_spec(hf: Any, layers: str | None = None) -> ArchSpec:
    """The layout of ``hf``: its registry row, else discovered blocks, else ``layers`` (a path).

    Args:
        hf: a Hugging Face ``*ForCausalLM`` (or any module with ``config`` and input embeddings).
        layers: the attribute path of the ModuleList of decoder blocks; overrides discovery
            (and the registry, unless it names the registry row's own path).

    Example:
        >>> from oyster_steer.testing import tiny_hf_model
        >>> resolve_spec(tiny_hf_model("olmo2")).source  # doctest: +SKIP
        'discovered'
    """
    model_type = getattr(hf.config, "model_type", None)
    row = ARCHITECTURES.get(model_type) if model_type is not None else None
    if layers is not None:
        try:
            blocks = hf.get_submodule(layers)
        except AttributeError:
            raise SiteError(
                f"layers={layers!r} is not a submodule of this model: pass the path of its ModuleList "
                "of decoder blocks (e.g. 'model.layers')"
            ) from None
        if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
            raise SiteError(
                f"layers={layers!r} is a {type(blocks).__name__}, not a ModuleList of decoder blocks: "
                "pass the path of the ModuleList (e.g. 'model.layers')"
            )
        if row is not None and row.layers == layers:
            return row
        return _blocks_spec(hf, layers, "given")
    if row is not None:
        return row
    return _blocks_spec(hf, discover_layers(hf), "discovered")


@dataclass(frozen=True)
class HookPoint:
    """Where a site is read or written: a module path and whether its input or output carries it."""

    path: str
    io: str  # "input" | "output"


def hook_point(
    spec: ArchSpec, site: Site, *, write: bool = False, parallel: bool = False
) -> HookPoint:
    """The module input/output that carries ``site``; writes to resid_mid go through attn_out.

    Adding a vector to what attention writes is the same as adding it to ``resid_mid``, and
    unlike the norm's input it also reaches the residual that the MLP adds to.
    """
    block = f"{spec.layers}.{site.layer}"
    if site.kind == "resid_pre":
        return HookPoint(block, "input")
    if site.kind == "resid_post":
        return HookPoint(block, "output")
    if spec.blocks_only:
        raise SiteError(
            f"{site.name!r}: this model's blocks were {spec.source} ({spec.layers!r}) and its family has "
            "no ArchSpec row, so only hook_resid_pre and hook_resid_post are known: use one of those, "
            "or add a row to oyster_steer.models._arch.ARCHITECTURES"
        )
    assert spec.attn_out is not None and spec.mlp_out is not None
    if site.kind == "attn_out":
        return HookPoint(f"{block}.{spec.attn_out}", "output")
    if site.kind == "mlp_out":
        return HookPoint(f"{block}.{spec.mlp_out}", "output")
    if spec.mid_read is None or parallel:
        raise SiteError(
            f"{site.name!r}: this architecture computes attention and MLP in parallel, so it has no "
            "resid_mid; use hook_resid_pre or hook_resid_post"
        )
    if write:
        return HookPoint(f"{block}.{spec.attn_out}", "output")
    return HookPoint(f"{block}.{spec.mid_read}", "input")
