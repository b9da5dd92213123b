"""patch/steer: backend parity, token positions under left padding + KV cache, cleanup, compile."""

from __future__ import annotations

import os

import pytest
import torch

from oyster_steer import ModelMismatchError, from_hf
from oyster_steer.backends import Hook, get_backend, position_ids
from oyster_steer.control._positions import PositionTracker
from oyster_steer.steering import _steer
from oyster_steer.steering._steer import patch, steer
from oyster_steer.testing import default_tokenizer, tiny_hf_model, tiny_model
from oyster_steer.vectors._vector import SteeringVector

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["Hi there, how are you today? Tell me about bread.", "Hello"]  # left padding on row 1
SITES = (
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.1.hook_resid_post",
    "blocks.1.hook_mlp_out",
    "blocks.2.hook_resid_mid",
)
BACKENDS = ("hf", "tl", "nnsight")


@pytest.fixture(scope="module")
def models():
    """One tiny llama on all three backends; weights scaled so greedy tokens depend on the input."""
    hf = tiny_hf_model("llama", seed=0)
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    base = from_hf(hf, default_tokenizer(), name="tiny-llama-lively")
    return {b: base.with_backend(b) for b in BACKENDS}


@pytest.fixture(scope="module")
def batch(models):
    return models["hf"].encode(PROMPTS)


def _vector(model, sites=SITES, seed=0, scale=1.0) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector.from_tensors(
        model, {s: scale * torch.randn(model.d_model, generator=gen) for s in sites}, strength=1.5
    )


def _hook_count(model) -> int:
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())
    return n


def _real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x[mask.bool()]


def test_steered_logits_match_on_all_backends(models, batch):
    ids, mask = batch
    vec = _vector(models["hf"])
    base = get_backend("hf").forward(models["hf"], ids, mask)
    out = {}
    for name, model in models.items():
        with steer(model, vec):
            out[name] = get_backend(name).forward(model, ids, mask)
    assert (_real(out["hf"] - base, mask).abs().max()) > 1e-2  # the vector does something
    for name in ("tl", "nnsight"):
        assert torch.allclose(_real(out[name], mask), _real(out["hf"], mask), atol=1e-4), name


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_steered_greedy_tokens_match_on_all_backends(models, batch, positions):
    ids, mask = batch
    vec = _vector(models["hf"], scale=2.0)
    plain = get_backend("hf").generate(models["hf"], ids, mask, max_new_tokens=6)
    out = {}
    for name, model in models.items():
        with steer(model, vec, positions=positions):
            out[name] = get_backend(name).generate(model, ids, mask, max_new_tokens=6)
    assert torch.equal(out["tl"], out["hf"]) and torch.equal(out["nnsight"], out["hf"])
    new, plain_new = out["hf"][:, ids.shape[1] :], plain[:, ids.shape[1] :]
    assert not torch.equal(new, plain_new)
    if positions == "generated":  # the first new token comes from unsteered prompt logits
        assert torch.equal(new[:, 0], plain_new[:, 0])


def _prefill_decode(model, ids, mask, next_ids):
    """Prompt pass with a KV cache, then one decode step: (prefill logits, decode logits)."""
    out = model.hf(
        input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True
    )
    mask2 = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    pos2 = position_ids(mask2)[:, -1:]
    step = model.hf(
        input_ids=next_ids,
        attention_mask=mask2,
        position_ids=pos2,
        past_key_values=out.past_key_values,
        use_cache=True,
    )
    return out.logits, step.logits[:, -1]


def _masked_forward(model, vec, ids, mask, column_mask):
    """Reference: a full forward that adds the vector only where ``column_mask`` (T,) is 1."""
    hooks = [
        Hook(
            site,
            (lambda d: lambda h: h + column_mask.view(1, -1, 1) * d)(
                vec.strength * vec.directions[site.name]
            ),
            write=True,
        )
        for site in vec.sites
    ]
    return get_backend("hf").forward(model, ids, mask, hooks)


@torch.no_grad()
@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_positions_under_left_padding_and_kv_cache(models, batch, positions):
    model = models["hf"]
    ids, mask = batch
    vec = _vector(model)
    next_ids = torch.tensor([[11], [42]])
    plain_prefill, _ = _prefill_decode(model, ids, mask, next_ids)
    with steer(model, vec, positions=positions):
        prefill, decode = _prefill_decode(model, ids, mask, next_ids)
    full_ids = torch.cat([ids, next_ids], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    last = torch.zeros(full_ids.shape[1])
    last[-1] = 1.0
    cols = last if positions == "generated" else 1.0 - last
    reference = _masked_forward(model, vec, full_ids, full_mask, cols)
    steered_all = _masked_forward(model, vec, ids, mask, torch.ones(ids.shape[1]))
    expected_prefill = plain_prefill if positions == "generated" else steered_all
    assert torch.allclose(_real(prefill, mask), _real(expected_prefill, mask), atol=1e-4)
    assert torch.allclose(decode, reference[:, -1], atol=1e-4)
    assert not torch.allclose(
        _real(prefill, mask),
        _real(plain_prefill if positions == "prompt" else steered_all, mask),
        atol=1e-3,
    )


def test_tracker_latches_each_rows_prompt_end(models, batch):
    model = models["hf"]
    ids, mask = batch
    tracker = PositionTracker()
    seen = []
    with tracker.attach(model):
        probe = get_backend("hf").add_hooks(
            model,
            [
                Hook(
                    SiteOf(1),
                    lambda h: seen.append((tracker.prompt_end.clone(), tracker.gen_index.clone())),
                )
            ],
        )
        with probe:
            get_backend("hf").generate(model, ids, mask, max_new_tokens=3)
    lengths = mask.sum(1)
    (end0, idx0), (end1, idx1), (end2, idx2) = seen
    assert torch.equal(end0, lengths) and torch.equal(end1, lengths) and torch.equal(end2, lengths)
    assert (
        (idx0[mask.bool()] < 0).all()
        and idx1.flatten().tolist() == [0, 0]
        and idx2.flatten().tolist() == [1, 1]
    )
    assert torch.equal(tracker.mask("generated")[:, :, 0], (idx2 >= 0).float()[:, :, 0])


def SiteOf(layer: int):  # noqa: N802
    from oyster_steer import parse_site

    return parse_site(f"blocks.{layer}.hook_resid_post")


@pytest.mark.parametrize("backend", BACKENDS)
def test_remove_leaves_no_hooks(models, backend):
    model = models[backend]
    before = _hook_count(model)
    tl_before = sum(len(hp.fwd_hooks) for hp in models["tl"].native.hook_dict.values())
    handle = patch(model, _vector(model), positions="generated")
    assert _hook_count(model) > before or backend == "tl"
    handle.remove()
    handle.remove()  # idempotent
    assert _hook_count(model) == before
    assert sum(len(hp.fwd_hooks) for hp in models["tl"].native.hook_dict.values()) == tl_before
    with pytest.raises(RuntimeError, match="boom"), steer(model, _vector(model)):
        raise RuntimeError("boom")
    assert _hook_count(model) == before


def test_persistent_patch_outlives_its_handle_and_scoped_one_does_not():
    """Serving: a persistent patch stays on ``model.hf`` when the handle is dropped (a pipeline
    or server only sees the HF module), yet the handle can still remove it; ``persistent=False``
    takes its hooks with it when garbage-collected."""
    import gc

    model = from_hf(tiny_hf_model("llama", seed=0), default_tokenizer(), name="tiny-llama")
    ids, mask = model.encode(PROMPTS)  # HF only: the shared fixture's TL bridge wraps model.hf
    before, plain = _hook_count(model), model.hf(ids, attention_mask=mask).logits
    handle = patch(model, _vector(model), persistent=True)
    steered = model.hf(ids, attention_mask=mask).logits
    assert not torch.allclose(steered, plain)
    keep, handle = handle, None
    gc.collect()
    assert torch.equal(model.hf(ids, attention_mask=mask).logits, steered)  # still patched
    keep.remove()
    assert _hook_count(model) == before
    assert torch.equal(model.hf(ids, attention_mask=mask).logits, plain)

    patch(model, _vector(model), persistent=False)  # handle dropped at once
    gc.collect()
    assert _hook_count(model) == before
    scoped = patch(model, _vector(model), persistent=False)
    scoped.remove()  # explicit removal first; the finalizer then finds nothing left to do
    del scoped
    gc.collect()
    assert _hook_count(model) == before


def test_default_strength_is_the_vectors(models, batch):
    model, (ids, mask) = models["hf"], batch
    vec = _vector(model)
    with steer(model, vec):
        a = get_backend("hf").forward(model, ids, mask)
    with steer(model, vec.with_strength(1.0), strength=vec.strength):
        b = get_backend("hf").forward(model, ids, mask)
    assert torch.equal(a, b)


def test_plain_mapping_is_accepted(models, batch):
    model, (ids, mask) = models["hf"], batch
    vec = _vector(model, sites=SITES[:1])
    with steer(model, dict(vec.directions), strength=vec.strength):
        a = get_backend("hf").forward(model, ids, mask)
    with steer(model, vec):
        b = get_backend("hf").forward(model, ids, mask)
    assert torch.equal(a, b)


def test_errors(models):
    model = models["hf"]
    before = _hook_count(model)
    other = tiny_model("llama", seed=3)
    with pytest.raises(
        ModelMismatchError, match=r"this steering vector was made for model 'tiny-llama-3'"
    ):
        patch(model, _vector(other))
    with pytest.raises(
        ValueError,
        match=r"positions='last' is not supported: use one of all, prompt, generated, thinking, answer",
    ):
        patch(model, _vector(model), positions="last")
    with pytest.raises(TypeError, match=r"cannot steer with a str: pass a SteeringVector"):
        patch(model, "constructive.safetensors")
    with pytest.raises(TypeError, match=r"unexpected arguments \['schedule'\]"):
        patch(model, _vector(model), schedule="decay")
    assert _hook_count(model) == before


def test_control_plans_are_dispatched(models, monkeypatch):
    calls = []

    class ControlPlan:
        pass

    def patch_plan(model, plan, **kwargs):
        calls.append((model, plan, kwargs))
        return "handle"

    monkeypatch.setattr(_steer, "ControlPlan", ControlPlan)
    monkeypatch.setattr(_steer, "patch_plan", patch_plan)
    plan = ControlPlan()
    assert patch(models["hf"], plan, strength=2.0, positions="generated", gate_bias=0.5) == "handle"
    assert calls == [
        (models["hf"], plan, {"strength": 2.0, "positions": "generated", "gate_bias": 0.5})
    ]


def test_patched_forward_compiles_without_graph_breaks(batch):
    """fullgraph=True fails on any host sync or python branch on tensor values inside the hooks."""
    model = tiny_model("llama")
    ids, mask = batch
    pos = position_ids(mask)
    everywhere, generated = _vector(model, SITES[:2]), _vector(model, SITES[2:], seed=1)
    torch._dynamo.reset()
    with steer(model, everywhere), steer(model, generated, positions="generated"), torch.no_grad():
        eager = model.hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        compiled = torch.compile(
            lambda a, b, c: model.hf(input_ids=a, attention_mask=b, position_ids=c).logits,
            fullgraph=True,
            backend="eager",
        )
        assert torch.allclose(compiled(ids, mask, pos), eager, atol=1e-5)


SHIPPED = "vectors/smollm2-135m-instruct/constructive.safetensors"


@pytest.fixture(scope="module")
def smollm_backends():
    """A private SmolLM2 on all three backends (booting TransformerLens rewires the HF module,
    so the session's shared ``smollm`` fixture is left alone)."""
    import oyster_steer

    base = oyster_steer.load_model(device="cpu")
    return {b: base.with_backend(b) for b in BACKENDS}


@pytest.mark.slow
@pytest.mark.xdist_group("smollm")
def test_shipped_vector_parity_on_smollm(smollm_backends):
    from pathlib import Path

    from oyster_steer.vectors._vector import load_vector

    path = Path(__file__).resolve().parents[2] / SHIPPED
    hf = smollm_backends["hf"]
    vec = load_vector(path, hf)
    ids, mask = hf.encode(
        ["I feel like nobody would notice if I disappeared.", "How do I whittle a spoon?"]
    )
    logits, tokens = {}, {}
    for name, model in smollm_backends.items():
        with steer(model, vec):
            logits[name] = get_backend(name).forward(model, ids, mask)
            tokens[name] = get_backend(name).generate(model, ids, mask, max_new_tokens=8)
    for name in ("tl", "nnsight"):
        assert torch.allclose(_real(logits[name], mask), _real(logits["hf"], mask), atol=1e-4), name
        assert torch.equal(tokens[name], tokens["hf"]), name
