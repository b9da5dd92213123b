"""The three backends behind one protocol: persistent hooks, rollback, site checks, generation."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import SiteError
from oyster_steer.backends import (
    Hook,
    HookHandle,
    StopForward,
    get_backend,
    guard_hooks_in_compiled_code,
    position_ids,
    stop_after_last,
)
from oyster_steer.core._sites import Site

BACKENDS = ["hf", "tl", "nnsight"]
PROMPTS = ["Hello there", "What is two plus two? Answer briefly."]


def _logits(model, ids, mask) -> torch.Tensor:
    with torch.no_grad():
        return get_backend(model.backend).forward(model, ids, mask)


def _hook_count(model) -> int:
    """Hooks on every module of the model, plus TransformerLens hook-point registrations."""
    roots = {id(m): m for m in (model.hf, model.native) if isinstance(m, torch.nn.Module)}
    modules = {id(m): m for root in roots.values() for m in root.modules()}.values()
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules)
    return n + sum(len(getattr(m, "fwd_hooks", ())) for m in modules)


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_hooks_persist_until_removed(tiny_models, backend):
    model = tiny_models("llama", backend)
    ids, mask = model.encode(PROMPTS)
    plain, before = _logits(model, ids, mask), _hook_count(model)
    seen: list[tuple[int, ...]] = []
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))  # (d,)
    hooks = [
        Hook(Site(0, "resid_post"), lambda x: seen.append(tuple(x.shape))),
        Hook(Site(-1, "resid_pre"), lambda x: x + v, write=True),  # negative layers resolve
    ]
    handle = get_backend(backend).add_hooks(model, hooks)
    assert handle.active and _hook_count(model) > before
    steered, again = _logits(model, ids, mask), _logits(model, ids, mask)
    handle.remove()
    assert not handle.active and _hook_count(model) == before
    handle.remove()  # removing twice is harmless
    assert seen == [tuple(ids.shape) + (model.d_model,)] * 2  # fired on every pass
    torch.testing.assert_close(steered, again, atol=0, rtol=0)
    assert (steered - plain).abs().max() > 1e-2
    torch.testing.assert_close(_logits(model, ids, mask), plain, atol=0, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_handle_is_a_context_manager(tiny_models, backend):
    model = tiny_models("llama", backend)
    ids, mask = model.encode(PROMPTS[:1])
    calls: list[int] = []
    with get_backend(backend).add_hooks(
        model, [Hook(Site(1, "mlp_out"), lambda x: calls.append(1))]
    ):
        _logits(model, ids, mask)
    _logits(model, ids, mask)
    assert calls == [1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("arch", "bad", "message"),
    [
        (
            "llama",
            Site(7, "resid_post"),
            r"layer 7 in 'blocks\.7\.hook_resid_post' is out of range",
        ),
        (
            "gpt_neox",
            Site(1, "resid_mid"),
            r"'blocks\.1\.hook_resid_mid': this architecture computes",
        ),
    ],
)
def test_add_hooks_is_all_or_nothing(tiny_models, backend, arch, bad, message):
    model = tiny_models(arch, backend)
    before = _hook_count(model)
    good = Hook(Site(0, "resid_post"), lambda x: x + 1, write=True)
    with pytest.raises(SiteError, match=message):
        get_backend(backend).add_hooks(model, [good, Hook(bad, lambda x: None)])
    assert _hook_count(model) == before  # the first hook was rolled back


def test_hook_handle_removes_in_reverse_order():
    order: list[int] = []
    handle = HookHandle([lambda: order.append(1), lambda: order.append(2)])
    with handle:
        assert handle.active
    assert order == [2, 1] and not handle.active


def test_hook_handle_add_takes_ownership_and_removes_once():
    order: list[str] = []
    handle = HookHandle([lambda: order.append("first")])
    handle.add(lambda: order.append("added"))
    handle.remove()
    handle.remove()
    assert order == ["added", "first"]


def test_a_dropped_handle_removes_its_hooks_when_collected():
    import gc

    order: list[str] = []
    handle = HookHandle([lambda: order.append("removed")])
    handle.remove_when_collected()
    del handle
    gc.collect()
    assert order == ["removed"]


def test_stop_after_last_ends_the_pass_after_the_last_hook_in_execution_order():
    seen: list[int] = []
    hooks = [Hook(Site(layer, "resid_post"), lambda x, n=layer: seen.append(n)) for layer in (2, 0)]
    wrapped = stop_after_last(hooks)
    wrapped[1].fn(torch.zeros(1))  # layer 0: runs on
    with pytest.raises(StopForward):
        wrapped[0].fn(torch.zeros(1))  # layer 2 is the last to fire
    assert seen == [0, 2] and stop_after_last([]) == []


def test_compiled_code_guards_on_hooks_while_held_and_the_flag_is_restored():
    config = torch._dynamo.config
    before = config.skip_nnmodule_hook_guards
    try:
        config.skip_nnmodule_hook_guards = True
        first, second = guard_hooks_in_compiled_code(), guard_hooks_in_compiled_code()
        assert config.skip_nnmodule_hook_guards is False
        first()
        first()  # a second call of one release counts once
        assert config.skip_nnmodule_hook_guards is False
        second()
        assert config.skip_nnmodule_hook_guards is True
    finally:
        config.skip_nnmodule_hook_guards = before


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_without_logits_stops_early(tiny_models, backend):
    model = tiny_models("llama", backend)
    ids, mask = model.encode(PROMPTS)
    got: dict[str, torch.Tensor] = {}
    hook = Hook(Site(1, "resid_post"), lambda x: got.__setitem__("x", x.clone()))
    with torch.no_grad():
        assert get_backend(backend).forward(model, ids, mask, [hook], logits=False) is None
        hf = model.hf(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids(mask),
            output_hidden_states=True,
        )
    real = mask.bool()
    torch.testing.assert_close(got["x"][real], hf.hidden_states[2][real], atol=1e-5, rtol=0)


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'jax': use one of hf, tl, nnsight"):
        get_backend("jax")


def test_position_ids_ignore_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]


@pytest.fixture(scope="module")
def generations(tiny_models) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per backend: (plain tokens, steered tokens, prompt ids) from greedy generation."""
    v = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 2  # (d,)
    out = {}
    for backend in BACKENDS:
        model = tiny_models("llama", backend)
        ids, mask = model.encode(PROMPTS, chat=False)
        gen = get_backend(backend).generate
        steer = [Hook(Site(1, "resid_post"), lambda x: x + v, write=True)]
        with torch.no_grad():
            out[backend] = (
                gen(model, ids, mask, max_new_tokens=6),
                gen(model, ids, mask, steer, max_new_tokens=6),
                ids,
            )
    return out


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_generation_matches_across_backends(generations, backend):
    plain, steered, ids = generations[backend]
    want_plain, want_steered, _ = generations["hf"]
    assert plain.shape == steered.shape == (ids.shape[0], ids.shape[1] + 6)
    assert torch.equal(plain[:, : ids.shape[1]], ids)
    assert torch.equal(plain, want_plain)
    assert torch.equal(steered, want_steered)


def test_steering_changes_generation(generations):
    plain, steered, ids = generations["hf"]
    assert not torch.equal(plain[:, ids.shape[1] :], steered[:, ids.shape[1] :])
