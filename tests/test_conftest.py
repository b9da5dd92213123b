"""The hook-leak check in conftest.py sees user hooks on every backend and ignores library ones."""

from __future__ import annotations

import conftest
import torch


def _new_hooks(before: dict) -> set:
    return set(conftest._live_hooks()) - set(before)


def test_sees_a_plain_torch_hook(tiny):
    before = conftest._live_hooks()
    handle = tiny.hf.get_submodule("model.layers.1.mlp").register_forward_pre_hook(
        lambda m, a: None
    )
    try:
        (leak,) = _new_hooks(before)
        assert "model.layers.1.mlp" in conftest._live_hooks()[leak]
    finally:
        handle.remove()
    assert not _new_hooks(before)


def test_sees_a_transformer_lens_hook_point_hook(tiny_models):
    bridge = tiny_models("llama", "tl").native
    ids, mask = tiny_models("llama", "tl").encode(["hi"])
    with torch.no_grad():
        bridge(ids, attention_mask=mask)  # lets the bridge wire its own capture hooks first
    before = conftest._live_hooks()
    lens = bridge.hook_dict["blocks.0.hook_resid_post"].add_hook(lambda x, hook: None)
    try:
        assert {kind for _, kind, _ in _new_hooks(before)} >= {"fwd_hooks"}
    finally:
        lens.hook.remove()
        bridge.hook_dict["blocks.0.hook_resid_post"].fwd_hooks.remove(lens)
    assert not _new_hooks(before)
    with torch.no_grad():
        bridge(ids, attention_mask=mask)
    assert not _new_hooks(before)  # the bridge's own bookkeeping hooks are not leaks


def test_every_model_built_is_tracked(tiny):
    from oyster_steer.testing import tiny_model

    model = tiny_model("qwen2")  # built by hand, never passed to track()
    assert id(model.hf) in conftest._TRACKED
    assert id(tiny.hf) in conftest._TRACKED
