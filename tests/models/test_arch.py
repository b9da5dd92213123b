"""The architecture registry on every tiny family: residual algebra, the LM head, and writes.

Each site is read through the hf backend's hooks and checked against the residual stream's own
algebra; each write is checked against the same edit made by hand with plain torch hooks on other
modules (or, at the last block, by re-running the final norm and LM head).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from oyster_steer import SiteError
from oyster_steer.backends import Hook, get_backend, position_ids
from oyster_steer.core._sites import SITE_KINDS, Site
from oyster_steer.testing import TINY_ARCHITECTURES, tiny_model

ARCHS = list(TINY_ARCHITECTURES)
PROMPTS = ["The quick brown fox", "Hi!", "Why is the sky blue? Explain it to a child."]
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def runs(tiny_models) -> Callable[[str], dict[str, Any]]:
    """Per arch: the model, a left-padded batch, its logits and every site's (B, T, d) activation."""
    cache: dict[str, dict[str, Any]] = {}

    def get(arch: str) -> dict[str, Any]:
        if arch not in cache:
            model = tiny_models(arch, "hf")
            ids, mask = model.encode(PROMPTS, chat=False)  # short rows, still left-padded
            kinds = [k for k in SITE_KINDS if not (k == "resid_mid" and model.parallel_residual)]
            acts: dict[str, torch.Tensor] = {}
            hooks = [_reader(acts, Site(L, k)) for L in range(model.n_layers) for k in kinds]
            with torch.no_grad():
                logits = get_backend("hf").forward(model, ids, mask, hooks)
            cache[arch] = dict(model=model, ids=ids, mask=mask, logits=logits, acts=acts)
        return cache[arch]

    return get


def _reader(store: dict[str, torch.Tensor], site: Site) -> Hook:
    def fn(x: torch.Tensor) -> None:
        store[site.name] = x.detach().clone()

    return Hook(site, fn)


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_algebra(runs, arch):
    run = runs(arch)
    model, a = run["model"], run["acts"]
    for i in range(model.n_layers):
        pre, post = a[f"blocks.{i}.hook_resid_pre"], a[f"blocks.{i}.hook_resid_post"]
        attn, mlp = a[f"blocks.{i}.hook_attn_out"], a[f"blocks.{i}.hook_mlp_out"]
        if model.parallel_residual:
            torch.testing.assert_close(pre + attn + mlp, post, **TOL)
        else:
            mid = a[f"blocks.{i}.hook_resid_mid"]
            torch.testing.assert_close(pre + attn, mid, **TOL)
            torch.testing.assert_close(mid + mlp, post, **TOL)
        if i + 1 < model.n_layers:
            torch.testing.assert_close(post, a[f"blocks.{i + 1}.hook_resid_pre"], atol=0, rtol=0)
        assert attn.abs().max() > 1e-3 and mlp.abs().max() > 1e-3  # real sublayer outputs


def _head(model: Any, resid: torch.Tensor) -> torch.Tensor:
    """Final norm + LM head (+ Gemma's logit soft-cap) applied by hand. (B, T, vocab)"""
    hf = model.hf
    logits = hf.get_submodule(model.spec.lm_head)(hf.get_submodule(model.spec.final_norm)(resid))
    cap = getattr(hf.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@pytest.mark.parametrize("arch", ARCHS)
def test_last_resid_post_through_head_is_the_logits(runs, arch):
    run = runs(arch)
    model = run["model"]
    with torch.no_grad():
        manual = _head(model, run["acts"][f"blocks.{model.n_layers - 1}.hook_resid_post"])
    torch.testing.assert_close(manual, run["logits"], **TOL)


# --- writes ------------------------------------------------------------------------------------


def _add(v: torch.Tensor) -> Callable[..., Any]:
    """A raw torch output hook adding v to a module's (first) output."""

    def hook(module: torch.nn.Module, args: Any, out: Any) -> Any:
        return out + v if isinstance(out, torch.Tensor) else (out[0] + v, *out[1:])

    return hook


def _add_input(v: torch.Tensor) -> Callable[..., Any]:
    """A raw torch pre-hook adding v to a module's first input (positional or ``hidden_states``)."""

    def hook(module: torch.nn.Module, args: Any, kwargs: Any) -> Any:
        if args:
            return (args[0] + v, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + v}

    return hook


@contextmanager
def _raw(
    model: Any, outputs: list[tuple[str, Any]], inputs: list[tuple[str, Any]]
) -> Iterator[None]:
    hf, handles = model.hf, []
    try:
        handles += [hf.get_submodule(p).register_forward_hook(h) for p, h in outputs]
        handles += [
            hf.get_submodule(p).register_forward_pre_hook(h, with_kwargs=True) for p, h in inputs
        ]
        yield
    finally:
        for h in handles:
            h.remove()


def _manual_logits(run: dict[str, Any], site: Site, v: torch.Tensor) -> torch.Tensor:
    """Logits with v added to ``site``, made without the registry's hook points. (B, T, vocab)"""
    model, spec = run["model"], run["model"].spec
    block, last = f"{spec.layers}.{site.layer}", site.layer == model.n_layers - 1
    if site.kind == "resid_post" and last:
        return _head(model, run["acts"][site.name] + v)
    if site.kind == "resid_post":
        outputs, inputs = [], [(f"{spec.layers}.{site.layer + 1}", _add_input(v))]
    elif site.kind == "resid_pre" and site.layer == 0:
        outputs, inputs = [(spec.embed, _add(v))], []
    elif site.kind == "resid_pre":
        outputs, inputs = [(f"{spec.layers}.{site.layer - 1}", _add(v))], []
    elif site.kind == "mlp_out" or model.parallel_residual:  # the last thing added to the stream
        outputs, inputs = [(block, _add(v))], []
    else:  # attn_out / resid_mid of a sequential block: the MLP's input and the block's output
        outputs, inputs = [(block, _add(v))], [(f"{block}.{spec.mid_read}", _add_input(v))]
    ids, mask = run["ids"], run["mask"]
    with _raw(model, outputs, inputs):
        return model.hf(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", SITE_KINDS)
def test_write_equals_manual_edit(runs, arch, kind):
    run = runs(arch)
    model = run["model"]
    if kind == "resid_mid" and model.parallel_residual:
        pytest.skip("parallel blocks have no resid_mid (tested below)")
    gen = torch.Generator().manual_seed(1)
    for layer in range(model.n_layers):
        site = Site(layer, kind)
        v = torch.randn(model.d_model, generator=gen)  # (d,)
        with torch.no_grad():
            steered = get_backend("hf").forward(
                model, run["ids"], run["mask"], [Hook(site, lambda x, v=v: x + v, write=True)]
            )
            manual = _manual_logits(run, site, v)
        torch.testing.assert_close(
            steered, manual, atol=2e-5, rtol=1e-5, msg=lambda m, s=site: f"{s}: {m}"
        )
        assert (steered - run["logits"]).abs().max() > 1e-2, f"writing at {site} changed nothing"


@pytest.mark.parametrize("backend", ["hf", "tl", "nnsight"])
@pytest.mark.parametrize("write", [False, True])
def test_resid_mid_on_parallel_blocks_is_refused(tiny_models, backend, write):
    model = tiny_models("gpt_neox", backend)
    assert model.parallel_residual
    ids, mask = model.encode(["hi"])
    hook = Hook(Site(1, "resid_mid"), lambda x: x, write=write)
    with pytest.raises(
        SiteError,
        match=r"'blocks\.1\.hook_resid_mid': this architecture computes attention and MLP in "
        r"parallel, so it has no resid_mid; use hook_resid_pre or hook_resid_post",
    ):
        get_backend(backend).forward(model, ids, mask, [hook])


def test_sequential_neox_has_resid_mid(runs):
    model = runs("gpt_neox_sequential")["model"]
    assert not model.parallel_residual
    assert "blocks.0.hook_resid_mid" in runs("gpt_neox_sequential")["acts"]


def test_unknown_architecture_lists_the_registry():
    from oyster_steer.models._arch import arch_spec

    with pytest.raises(
        SiteError,
        match=r"architecture 'mamba' is not in oyster_steer's registry: supported are .*gpt2.*llama",
    ):
        arch_spec("mamba")


# --- older transformers: decoder layers that return tuples ---------------------------------------


class _TupleLayer(torch.nn.Module):
    """Wraps a decoder layer the way transformers 4 looked from a hook: the output is a tuple and,
    with ``keyword=True``, ``hidden_states`` arrives as a keyword. The parent still gets a tensor."""

    def __init__(self, layer: torch.nn.Module, keyword: bool) -> None:
        super().__init__()
        self.layer, self.keyword = layer, keyword

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor]:
        return (self.layer(*args, **kwargs),)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.keyword:
            (kwargs["hidden_states"], *args) = args
        return super().__call__(*args, **kwargs)[0]


@pytest.mark.parametrize(("arch", "keyword"), [("llama", True), ("llama", False), ("gpt2", False)])
def test_tuple_returning_layers(arch, keyword):
    model = tiny_model(arch)
    ids, mask = model.encode(PROMPTS, chat=False)
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(2))  # (d,)

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        acts: dict[str, torch.Tensor] = {}
        hooks = [_reader(acts, Site(1, "resid_pre")), _reader(acts, Site(1, "resid_post"))]
        hooks.append(Hook(Site(0, "resid_post"), lambda x: x + v, write=True))
        with torch.no_grad():
            return get_backend("hf").forward(model, ids, mask, hooks), acts

    want_logits, want = run()
    layers = model.hf.get_submodule(model.spec.layers)
    originals = [layers[0], layers[1]]
    layers[0], layers[1] = _TupleLayer(layers[0], keyword), _TupleLayer(layers[1], keyword)
    try:
        got_logits, got = run()
    finally:
        layers[0], layers[1] = originals
    torch.testing.assert_close(got_logits, want_logits, atol=0, rtol=0)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=0, rtol=0)
