"""Where each baked edit goes in a stock checkpoint, per architecture family (a registry, not branches).

An additive vector ``v`` at a residual site becomes a bias on the projection that writes the
residual at that point; a removed direction becomes orthogonalised writer weights. Everything is
expressed with parameters and config switches the family already has, so the result loads with
plain ``transformers`` (and engines that read the same switches) without custom code.

Which projection takes a site's vector (``L`` is the site's block)::

    resid_post, mlp_out       -> bias of block L's MLP output projection      ("mlp")
    attn_out, resid_mid       -> bias of block L's attention output projection ("attn")
    resid_pre (L > 0)         -> bias of block L-1's MLP output projection    ("mlp")
    resid_pre (L = 0)         -> added to every row of the embedding           ("embed")
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..core._errors import OysterError, SiteError
from ..core._sites import Site

__all__ = [
    "ROUTES",
    "ExportError",
    "Route",
    "export_route",
    "orthonormal",
    "relabel_llama",
    "site_target",
]


class ExportError(OysterError, ValueError):
    """A control cannot be expressed in a stock checkpoint of this architecture."""


StateDict = dict[str, torch.Tensor]
Relabel = Callable[[Any, StateDict], tuple[Any, StateDict]]


@dataclass(frozen=True)
class Route:
    """How one family takes baked edits.

    Attributes:
        mlp_bias, attn_bias: the config field that gives the MLP / attention output projection a
            bias ("" = it always has one; None = no stock route). Turning on a field may also
            create other biases (gate/up, q/k/v); those are written as zeros.
        relabel: convert the checkpoint to an equivalent family that has the switches (used only
            when a bias is needed); None when the family is used as is.
        embed: module whose rows take a ``blocks.0.hook_resid_pre`` vector (default: token embedding).
        extra_writers: other modules that write to the residual stream (position embeddings).
        post_norms: norms applied to the attention / MLP output before it joins the residual
            (Gemma 2/3); they have no bias, so attn/mlp sites have no additive route, and removing
            a direction orthogonalises each writer against the norm-scaled direction.
        norm_offset: the post norm multiplies by ``norm_offset + weight`` (Gemma: 1 + weight).
        note: what serving engines other than transformers do with these parameters.
    """

    mlp_bias: str | None
    attn_bias: str | None
    relabel: Relabel | None = None
    embed: str | None = None
    extra_writers: tuple[str, ...] = ()
    post_norms: tuple[str, str] | None = None
    norm_offset: float = 0.0
    note: str = ""


# Fields carried over when a Llama-compatible family is relabelled as llama.
_LLAMA_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range",
    "rms_norm_eps", "use_cache", "pad_token_id", "bos_token_id", "eos_token_id",
    "tie_word_embeddings", "rope_parameters", "attention_dropout", "dtype",
)  # fmt: skip


def _llama_config(src: Any, **switches: bool) -> Any:
    from transformers import LlamaConfig

    fields: dict[str, Any] = {
        k: getattr(src, k) for k in _LLAMA_KEYS if getattr(src, k, None) is not None
    }
    return LlamaConfig(**fields | switches)


def _refuse_window(cfg: Any) -> None:
    window = getattr(cfg, "sliding_window", None)
    windowed = "sliding_attention" in (getattr(cfg, "layer_types", None) or [])
    if windowed or (window is not None and window < cfg.max_position_embeddings):
        raise ExportError(
            f"{cfg.model_type} uses sliding-window attention (sliding_window={window}), which "
            "the llama layout needed for a bias cannot express: bake only blocks.0.hook_resid_pre "
            "or ablations, or serve with oyster_steer.patch(model, vector, persistent=True)"
        )


def relabel_llama(cfg: Any, sd: StateDict) -> tuple[Any, StateDict]:
    """Mistral / Qwen2 -> Llama: identical blocks, plus the bias switches Llama has."""
    _refuse_window(cfg)
    has_qkv_bias = any(k.endswith("self_attn.q_proj.bias") for k in sd)
    return _llama_config(cfg, attention_bias=has_qkv_bias), dict(sd)


def _relabel_phi3(cfg: Any, sd: StateDict) -> tuple[Any, StateDict]:
    """Phi-3 -> Llama: split the fused qkv and gate_up projections."""
    _refuse_window(cfg)
    if (cfg.rope_parameters or {}).get("partial_rotary_factor", 1.0) != 1.0:
        raise ExportError(
            "phi3 with partial_rotary_factor < 1 has no llama equivalent: bake only "
            "blocks.0.hook_resid_pre or ablations, or serve with oyster_steer.patch(..., persistent=True)"
        )
    head = cfg.hidden_size // cfg.num_attention_heads
    sizes = [
        cfg.num_attention_heads * head,
        cfg.num_key_value_heads * head,
        cfg.num_key_value_heads * head,
    ]
    out: StateDict = {}
    for key, value in sd.items():
        if key.endswith("self_attn.qkv_proj.weight"):
            stem = key.removesuffix("qkv_proj.weight")
            for name, part in zip(
                ("q_proj", "k_proj", "v_proj"), value.split(sizes, dim=0), strict=True
            ):
                out[f"{stem}{name}.weight"] = part
        elif key.endswith("mlp.gate_up_proj.weight"):
            stem = key.removesuffix("gate_up_proj.weight")
            gate, up = value.chunk(2, dim=0)  # Phi3MLP: gate first, then up
            out[f"{stem}gate_proj.weight"], out[f"{stem}up_proj.weight"] = gate, up
        else:
            out[key] = value
    return _llama_config(cfg), out


_VLLM_NO_O_BIAS = (
    "vLLM's {0} has no o_proj bias (checked in its source): serve this export with transformers"
)
_GEMMA_NORMS = ("post_attention_layernorm", "post_feedforward_layernorm")

ROUTES: dict[str, Route] = {
    "llama": Route(mlp_bias="mlp_bias", attn_bias="attention_bias"),
    "mistral": Route(mlp_bias="mlp_bias", attn_bias="attention_bias", relabel=relabel_llama),
    "qwen2": Route(mlp_bias="mlp_bias", attn_bias="attention_bias", relabel=relabel_llama),
    "phi3": Route(mlp_bias="mlp_bias", attn_bias="attention_bias", relabel=_relabel_phi3),
    "qwen3": Route(mlp_bias=None, attn_bias="attention_bias", note=_VLLM_NO_O_BIAS.format("Qwen3")),
    # SmolLM3's NoPE layers have no Llama equivalent, but it has Llama's bias switches itself
    "smollm3": Route(mlp_bias="mlp_bias", attn_bias="attention_bias"),
    "gemma": Route(mlp_bias=None, attn_bias="attention_bias", note=_VLLM_NO_O_BIAS.format("Gemma")),
    "gemma2": Route(mlp_bias=None, attn_bias=None, post_norms=_GEMMA_NORMS, norm_offset=1.0),
    "gemma3_text": Route(mlp_bias=None, attn_bias=None, post_norms=_GEMMA_NORMS, norm_offset=1.0),
    "gpt2": Route(
        mlp_bias="", attn_bias="", embed="transformer.wpe", extra_writers=("transformer.wpe",)
    ),
    "gpt_neox": Route(mlp_bias="", attn_bias="attention_bias"),
}


def export_route(model_type: str) -> Route:
    """The export route of ``model_type``; an unknown family raises with the supported ones."""
    try:
        return ROUTES[model_type]
    except KeyError:
        raise ExportError(
            f"export has no route for architecture {model_type!r}: supported are "
            f"{', '.join(sorted(ROUTES))}; serve with oyster_steer.patch(model, vector, persistent=True)"
        ) from None


_KIND_TARGET = {"resid_post": "mlp", "mlp_out": "mlp", "attn_out": "attn", "resid_mid": "attn"}


def site_target(site: Site) -> tuple[str, int]:
    """Which writer takes an additive vector at ``site``: ("mlp"|"attn", block) or ("embed", 0)."""
    if site.kind == "resid_pre":
        return ("embed", 0) if site.layer == 0 else ("mlp", site.layer - 1)
    return _KIND_TARGET[site.kind], site.layer


def check_target(route: Route, model_type: str, site: Site, target: str) -> None:
    """Refuse a site whose writer has no stock bias in this family; the message names a way out."""
    switch = {"mlp": route.mlp_bias, "attn": route.attn_bias, "embed": ""}[target]
    if switch is not None:
        return
    if route.post_norms is not None:
        why = (
            f"{model_type} normalises each sublayer's output ({' / '.join(route.post_norms)}, which "
            "have no bias) before it joins the residual stream, so no stock parameter adds a constant there"
        )
    else:
        why = f"{model_type} has no config switch that gives its {target.upper()} output projection a bias"
    raise SiteError(
        f"cannot bake {site.name!r}: {why}; bake at 'blocks.0.hook_resid_pre' or another site, or "
        "serve with oyster_steer.patch(model, vector, persistent=True)"
    )


def switch_config(cfg: Any, route: Route, targets: set[str]) -> dict[str, bool]:
    """Turn on the bias switches the targets need (on a copy); returns the fields changed."""
    changed: dict[str, bool] = {}
    for target, field in (("mlp", route.mlp_bias), ("attn", route.attn_bias)):
        if target in targets and field and not getattr(cfg, field, False):
            setattr(cfg, field, True)
            changed[field] = True
    return changed


def fresh_config(cfg: Any) -> Any:
    """A deep copy of a config (export never mutates the caller's model)."""
    return copy.deepcopy(cfg)


def fill_zero_biases(sd: StateDict, expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Add zero tensors for biases the switched config creates; anything else missing is a bug."""
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    wrong = [k for k in missing if not k.endswith(".bias")]
    if wrong or extra:
        raise ExportError(
            f"the exported layout does not match the weights (missing {wrong[:3]}, unexpected {extra[:3]}): "
            "please report this with the model's config"
        )
    for key in missing:
        weight = sd[key.removesuffix("bias") + "weight"]
        sd[key] = torch.zeros(expected[key].shape, dtype=weight.dtype, device=weight.device)
    return missing


def orthonormal(directions: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis (d, k) of the span of ``directions`` (k', d); near-dependent rows merge."""
    u, s, _ = torch.linalg.svd(directions.double().T, full_matrices=False)  # (d, k'), (k',)
    keep = s > s.max() * 1e-6
    return u[:, keep]
