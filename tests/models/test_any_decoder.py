"""Any decoder: registry rows first, then discovered decoder blocks, then a user's layer path."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import SiteError
from oyster_steer.activations import capture
from oyster_steer.models._arch import ARCHITECTURES, resolve_spec
from oyster_steer.models._model import from_hf
from oyster_steer.steering import steer
from oyster_steer.testing import TINY_UNREGISTERED, default_tokenizer, tiny_hf_model, tiny_model
from oyster_steer.vectors import train_vector

PAIRS = [("I am so happy today.", "I am so sad today."), ("What a joy!", "What a pity!")]


@pytest.mark.parametrize("arch", list(TINY_UNREGISTERED))
def test_a_family_outside_the_registry_is_found_by_its_blocks(arch):
    model = tiny_model(arch)
    assert model.model_type not in ARCHITECTURES  # a family oyster_steer has no row for
    assert model.spec.source == "discovered" and model.spec.layers == "model.layers"
    assert model.n_layers == 3
    ids, mask = model.encode(["Hello there"])
    out = model.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    site = "blocks.1.hook_resid_post"
    acts = capture(model, ["Hello there"], site, progress=False)
    torch.testing.assert_close(acts[site][0], out.hidden_states[2][0, -1], atol=1e-5, rtol=1e-5)
    # train on it and steer it: the vector lands on the block output and changes the logits
    v = train_vector(model, PAIRS, read="last", sites=site, progress=False)
    base = model.hf(input_ids=ids, attention_mask=mask).logits
    with steer(model, v, strength=8.0):
        steered = model.hf(input_ids=ids, attention_mask=mask).logits
        after = capture(model, ["Hello there"], "blocks.2.hook_resid_pre", progress=False)
    before = capture(model, ["Hello there"], "blocks.2.hook_resid_pre", progress=False)
    delta = (
        after["blocks.2.hook_resid_pre"] - before["blocks.2.hook_resid_pre"]
    )  # = block 1's output
    torch.testing.assert_close(delta[0], 8.0 * v.directions[site], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(steered, base)


def test_sub_block_sites_of_a_discovered_layout_name_the_fix():
    model = tiny_model("olmo2")
    with pytest.raises(SiteError, match=r"only hook_resid_pre and hook_resid_post are known"):
        capture(model, ["Hi"], "blocks.0.hook_attn_out", progress=False)


def test_a_user_layer_path_resolves_an_ambiguous_model():
    hf = tiny_hf_model("olmo2")
    hf.shadow = torch.nn.ModuleList(  # a second, same-size list of blocks: discovery cannot choose
        [type(hf.model.layers[0])(hf.config, i) for i in range(3)]
    )
    with pytest.raises(SiteError, match=r"several candidate block lists .*pass layers="):
        from_hf(hf, default_tokenizer())
    model = from_hf(hf, default_tokenizer(), layers="model.layers")
    assert model.spec.source == "given" and model.spec.layers == "model.layers"
    with pytest.raises(SiteError, match=r"layers='model.nope' is not a submodule"):
        resolve_spec(hf, "model.nope")
    with pytest.raises(SiteError, match=r"layers='model.norm' is a .*RMSNorm, not a ModuleList"):
        resolve_spec(hf, "model.norm")
    # the registry's own path keeps the full registry row
    llama = tiny_hf_model("llama")
    assert resolve_spec(llama, "model.layers") is ARCHITECTURES["llama"]


def test_an_unresolvable_model_names_the_argument():
    hf = tiny_hf_model("olmo2")
    hf.model.layers = torch.nn.ModuleList(list(hf.model.layers)[:2])  # 2 blocks, config says 3
    with pytest.raises(
        SiteError, match=r"cannot find the decoder blocks .*pass layers='path.to.blocks'"
    ):
        from_hf(hf, default_tokenizer())
