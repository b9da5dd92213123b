"""forward_from: blocks L.. on cached resid_pre of block L equal the full forward, per family."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import SiteError
from oyster_steer.backends import Hook, get_backend, position_ids
from oyster_steer.core._sites import parse_site
from oyster_steer.models._forward import forward_from, supports_forward_from

FAMILIES = ["llama", "qwen2", "mistral", "gemma", "gemma2", "gemma3", "phi3", "gpt_neox"]
PROMPTS = ["Hi", "How do I bake bread at home without yeast?", "I feel alone."]


def _resid_pre(model, ids, mask, layer):
    found = {}
    hook = Hook(parse_site(f"blocks.{layer}.hook_resid_pre"), lambda x: found.update(x=x.clone()))
    with torch.no_grad():
        get_backend("hf").forward(model, ids, mask, [hook], logits=False)
    return found["x"]


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("layer", [0, 2])
def test_forward_from_equals_full_forward(tiny_models, arch, layer):
    model = tiny_models(arch, "hf")
    assert supports_forward_from(model)
    ids, mask = model.encode(PROMPTS)
    pos = position_ids(mask)
    with torch.no_grad():
        full = model.hf.base_model(input_ids=ids, attention_mask=mask, position_ids=pos)
        got = forward_from(model, layer, _resid_pre(model, ids, mask, layer), mask, pos)
    real = mask.bool()
    torch.testing.assert_close(got[real], full.last_hidden_state[real], atol=1e-5, rtol=1e-5)


def test_hooks_above_the_start_fire_and_stop_after(tiny_models):
    model = tiny_models("llama", "hf")
    ids, mask = model.encode(PROMPTS)
    pos = position_ids(mask)
    h1 = _resid_pre(model, ids, mask, 1)
    push = torch.full((model.d_model,), 0.5)
    site = parse_site("blocks.1.hook_resid_post")
    with (
        torch.no_grad(),
        get_backend("hf").add_hooks(model, [Hook(site, lambda h: h + push, True)]),
    ):
        steered = forward_from(model, 1, h1, mask, pos)
        full = model.hf.base_model(input_ids=ids, attention_mask=mask, position_ids=pos)
        plain = forward_from(model, 1, h1, mask, pos, stop_after=1)
    real = mask.bool()
    torch.testing.assert_close(steered[real], full.last_hidden_state[real], atol=1e-5, rtol=1e-5)
    unsteered = forward_from(model, 1, h1, mask, pos).detach()
    assert (steered - unsteered)[real].abs().max() > 1e-3  # the hook on block 1 ran
    torch.testing.assert_close(plain, _resid_pre(model, ids, mask, 2) + push, atol=1e-5, rtol=0)


def test_forward_from_refuses_unsupported_family_and_range(tiny_models):
    gpt2 = tiny_models("gpt2", "hf")
    assert not supports_forward_from(gpt2)
    x = torch.zeros(1, 2, gpt2.d_model)
    with pytest.raises(SiteError, match="full forward"):
        forward_from(gpt2, 1, x, torch.ones(1, 2), torch.arange(2)[None])
    llama = tiny_models("llama", "hf")
    with pytest.raises(SiteError, match="out of range"):
        forward_from(llama, 3, torch.zeros(1, 2, 64), torch.ones(1, 2), torch.arange(2)[None])
