"""Per-architecture layout of Hugging Face causal LMs: where each hook site lives.

Every architecture is a row in :data:`ARCHITECTURES`, keyed by ``config.model_type``. Paths are
attribute paths from the ``*ForCausalLM`` object. Adding a family is adding a row, not a branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core._errors import SiteError
from ..core._sites import Site

__all__ = ["ARCHITECTURES", "ArchSpec", "HookPoint", "arch_spec", "hook_point"]


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
    """

    layers: str
    attn_out: str
    mlp_out: str
    mid_read: str | None
    embed: str
    final_norm: str
    attn_proj: str
    mlp_proj: str
    lm_head: str = "lm_head"


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
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "phi3": ArchSpec(
        layers="model.layers",
        attn_out="self_attn",
        mlp_out="mlp",
        mid_read="post_attention_layernorm",
        embed="model.embed_tokens",
        final_norm="model.norm",
        attn_proj="self_attn.o_proj",
        mlp_proj="mlp.down_proj",
    ),
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
