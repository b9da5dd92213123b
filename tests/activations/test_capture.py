"""capture(): pooling, padding-correctness, backend parity, shards, save/load, labels, errors."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import EmptyInputError, SiteError
from oyster_steer.activations._capture import Activations, ShardedActivations, capture, resolve_pool
from oyster_steer.backends import Hook, get_backend, position_ids
from oyster_steer.data import INTENTS, RISKS, load_starter

BACKENDS = ["hf", "tl", "nnsight"]
PROMPTS = [
    "Hi",
    "How do I kill a python process that hangs?",
    "I feel like nobody would notice if I disappeared.",
    "Write a haiku about autumn leaves falling on a quiet pond at dusk.",
    "ok",
]
SITES = [
    "blocks.0.hook_resid_pre",
    "blocks.1.hook_attn_out",
    "blocks.1.hook_resid_mid",
    "blocks.2.hook_mlp_out",
    "blocks.-1.hook_resid_post",
]


def _alone(model, prompt: str, site: str) -> torch.Tensor:
    """(T, d) activations of one prompt, run alone through plain hf hooks (no padding at all)."""
    from oyster_steer.core._sites import resolve_site

    ids, mask = model.encode([prompt])
    found: dict[str, torch.Tensor] = {}
    hook = Hook(resolve_site(site, model.n_layers), lambda x: found.__setitem__("x", x[0].clone()))
    with torch.no_grad():
        get_backend("hf").forward(model, ids, mask, [hook])
    return found["x"]


def test_positions_shapes_and_values(tiny):
    sites = ["blocks.1.hook_resid_post", "blocks.2.hook_mlp_out"]
    last, mean, full = (
        capture(tiny, PROMPTS, sites, pool=p, batch_size=2, progress=False)
        for p in ("last", "mean", "all")
    )
    lengths = [len(tiny.encode([p])[0][0]) for p in PROMPTS]
    assert full.token_offsets.tolist() == [sum(lengths[:i]) for i in range(len(PROMPTS) + 1)]
    for site in sites:
        assert last[site].shape == mean[site].shape == (len(PROMPTS), tiny.d_model)
        assert (
            full[site].shape == (sum(lengths), tiny.d_model) and last[site].dtype == torch.float32
        )
        for i, prompt in enumerate(PROMPTS):
            alone = _alone(tiny, prompt, site)  # (T_i, d)
            torch.testing.assert_close(full.prompt_acts(site, i), alone, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(last[site][i], alone[-1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(mean[site][i], alone.mean(0), atol=1e-5, rtol=1e-5)
            assert full.prompt_ids(i).tolist() == tiny.encode([prompt])[0][0].tolist()


def test_bare_kind_captures_every_layer_in_order(tiny):
    acts = capture(tiny, PROMPTS[:2], "resid_post", progress=False)
    assert acts.sites == [f"blocks.{i}.hook_resid_post" for i in range(tiny.n_layers)]
    assert acts.stack().shape == (2, tiny.n_layers, tiny.d_model)
    assert acts.meta == {
        "model_name": "tiny-llama-0",
        "model_fingerprint": tiny.fingerprint,
        "n_layers": str(tiny.n_layers),
        "backend": "hf",
        "chat": "True",
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_does_not_change_activations(tiny_models, backend):
    """Each prompt alone (batch_size=1) vs inside left-padded batches of mixed lengths."""
    model = tiny_models("llama", backend)
    alone = capture(model, PROMPTS, SITES, pool="all", batch_size=1, progress=False)
    batched = capture(model, PROMPTS, SITES, pool="all", batch_size=len(PROMPTS), progress=False)
    lengths = torch.diff(batched.token_offsets)
    assert lengths.min() < lengths.max()  # the batch really was padded
    for site in alone.sites:
        torch.testing.assert_close(batched[site], alone[site], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
@pytest.mark.parametrize("positions", ["last", "all"])
def test_backend_parity(tiny_models, backend, positions):
    reference = capture(tiny_models("llama", "hf"), PROMPTS, SITES, pool=positions, progress=False)
    other = capture(tiny_models("llama", backend), PROMPTS, SITES, pool=positions, progress=False)
    assert other.sites == reference.sites and other.meta["backend"] == backend
    for site in reference.sites:
        torch.testing.assert_close(other[site], reference[site], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "gemma2"])
def test_backend_parity_other_families(tiny_models, arch):
    sites = ["resid_pre", "attn_out", "mlp_out", "blocks.-1.hook_resid_post"]
    reference = capture(tiny_models(arch, "hf"), PROMPTS[:3], sites, progress=False)
    for backend in ("tl", "nnsight"):
        other = capture(tiny_models(arch, backend), PROMPTS[:3], sites, progress=False)
        for site in reference.sites:
            torch.testing.assert_close(
                other[site], reference[site], atol=1e-5, rtol=0, msg=f"{backend} {site}"
            )


def test_capture_stops_early_and_keeps_no_batch_alive(tiny, monkeypatch):
    """Only blocks up to the last hooked one run; pooled rows are copies, not views of (B, T, d)."""
    ran: list[int] = []
    layers = tiny.hf.get_submodule(tiny.spec.layers)
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
        for i, layer in enumerate(layers)
    ]
    try:
        acts = capture(tiny, PROMPTS, "blocks.0.hook_resid_post", batch_size=8, progress=False)
    finally:
        for h in handles:
            h.remove()
    # block 0 only; one pass: a model with forward hooks of its own (these counters) is captured
    # without the cached chat head, since a hook may steer (see the patched-model test below)
    assert ran == [0]
    row = acts["blocks.0.hook_resid_post"]
    assert row.untyped_storage().nbytes() == row.numel() * row.element_size()


def test_sharded_capture_equals_in_memory(tiny, tmp_path):
    ps = load_starter().sample(2, seed=1)  # 8 prompts with labels
    memory = capture(
        tiny,
        ps,
        ["blocks.0.hook_resid_post", "blocks.2.hook_resid_pre"],
        pool="all",
        progress=False,
    )
    sharded = capture(
        tiny,
        ps,
        ["blocks.0.hook_resid_post", "blocks.2.hook_resid_pre"],
        pool="all",
        out_dir=tmp_path,
        shard_size=3,
        progress=False,
    )
    assert isinstance(sharded, ShardedActivations)
    assert [p.name for p in sharded.shard_paths] == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    assert [len(part) for part in sharded] == [3, 3, 2]
    _assert_same(sharded.load(), memory)
    subset = sharded.load(sites=["blocks.2.hook_resid_pre"])
    assert subset.sites == ["blocks.2.hook_resid_pre"]
    torch.testing.assert_close(
        subset["blocks.2.hook_resid_pre"], memory["blocks.2.hook_resid_pre"], atol=1e-6, rtol=0
    )


def _assert_same(got: Activations, want: Activations) -> None:
    assert got.prompts == want.prompts and got.positions == want.positions
    assert got.sites == want.sites and got.meta == want.meta and got.label_names == want.label_names
    assert torch.equal(got.token_ids, want.token_ids) and torch.equal(
        got.token_offsets, want.token_offsets
    )
    assert got.labels.keys() == want.labels.keys()
    for key in want.labels:
        assert torch.equal(got.labels[key], want.labels[key])
    for site in want.sites:  # different batch compositions: equal up to float noise
        torch.testing.assert_close(got[site], want[site], atol=1e-6, rtol=0)


@pytest.mark.parametrize("positions", ["last", "all"])
def test_save_load_round_trip(tiny, tmp_path, positions):
    prompts = ["naïve café ☕", "", "多语言提示", "plain"]
    acts = capture(
        tiny,
        prompts,
        "resid_post",
        pool=positions,
        labels={"intent": [0, 1, 2, 3]},
        label_names={"intent": list(INTENTS)},
        progress=False,
    )
    path = acts.save(tmp_path / "sub" / "acts.safetensors")
    back = Activations.load(path)
    _assert_same(back, acts)
    for site in acts.sites:
        assert torch.equal(back[site], acts[site])


def test_labels_come_from_a_prompt_set(tiny):
    ps = load_starter().sample(1, seed=0)
    acts = capture(tiny, ps, "blocks.0.hook_resid_post", progress=False)
    assert acts.prompts == ps.texts
    assert torch.equal(acts.labels["intent"], ps.label_ids("intent"))
    assert torch.equal(acts.labels["risk"], ps.label_ids("risk"))
    assert acts.label_names["intent"] == list(INTENTS) and acts.label_names["risk"] == list(RISKS)
    assert acts.label_names["category"] == sorted({r.category for r in ps})
    assert acts.label_names["source"] == ["starter"]
    assert sorted(acts.labels["intent"].tolist()) == [0, 1, 2, 3]


def test_labels_are_whatever_fields_the_records_have(tiny):
    records = [
        {"text": "Hi there", "tone": "warm", "topic": "greeting", "score": 3},
        {"text": "Go away", "tone": "cold", "topic": "greeting", "score": 1},
        {"text": "Thanks!", "tone": "warm"},
    ]
    acts = capture(tiny, records, "blocks.0.hook_resid_post", chat=False, progress=False)
    assert acts.prompts == ["Hi there", "Go away", "Thanks!"]
    assert acts.label_names == {"tone": ["cold", "warm"]}  # topic is missing once, score not a str
    assert acts.labels["tone"].tolist() == [1, 0, 1]


def test_concat_and_accessors(tiny):
    a = capture(tiny, PROMPTS[:2], "blocks.1.hook_resid_post", pool="all", progress=False)
    b = capture(tiny, PROMPTS[2:], "blocks.1.hook_resid_post", pool="all", progress=False)
    both = Activations.concat([a, b])
    whole = capture(tiny, PROMPTS, "blocks.1.hook_resid_post", pool="all", progress=False)
    _assert_same(both, whole)
    with pytest.raises(
        KeyError,
        match=r"site 'blocks\.0\.hook_resid_post' was not captured; captured sites: blocks\.1\.hook_resid_post",
    ):
        both["blocks.0.hook_resid_post"]
    with pytest.raises(
        EmptyInputError, match=r"nothing to concatenate: pass at least one Activations"
    ):
        Activations.concat([])
    last = capture(tiny, PROMPTS[:1], "blocks.1.hook_resid_post", progress=False)
    with pytest.raises(
        ValueError, match=r"per-token activations need positions='all', this capture used 'last'"
    ):
        last.prompt_acts("blocks.1.hook_resid_post", 0)


# --- errors --------------------------------------------------------------------------------------


def test_unknown_site(tiny):
    with pytest.raises(SiteError, match=r"unknown hook site 'blocks\.0\.resid_post'"):
        capture(tiny, ["hi"], "blocks.0.resid_post", progress=False)
    with pytest.raises(SiteError, match=r"unknown hook kind 'resid'"):
        capture(tiny, ["hi"], ["blocks.0.hook_resid"], progress=False)


def test_layer_out_of_range(tiny):
    with pytest.raises(
        SiteError,
        match=r"layer 3 in 'blocks\.3\.hook_resid_post' is out of range for a model with 3 layers",
    ):
        capture(tiny, ["hi"], "blocks.3.hook_resid_post", progress=False)


def test_empty_prompt_list(tiny):
    with pytest.raises(
        EmptyInputError, match=r"the prompt list is empty: pass at least one prompt"
    ):
        capture(tiny, [], progress=False)
    with pytest.raises(EmptyInputError, match=r"the prompt list is empty"):
        capture(
            tiny, load_starter().filter(intent="no-such-intent") if False else [], progress=False
        )


def test_empty_prompt_without_chat_template(tiny):
    with pytest.raises(
        EmptyInputError, match=r"prompt 1 has no tokens: pass non-empty text, or chat=True"
    ):
        capture(tiny, ["hi", ""], chat=False, progress=False)


@pytest.mark.parametrize("bad", [{"a": "hi"}, 3, [1, 2], ["hi", None]])
def test_wrong_prompt_type(tiny, bad):
    with pytest.raises(
        TypeError,
        match=r"prompts must be a list of str, a PromptSet, or records with a text field, got (dict|int|list)",
    ):
        capture(tiny, bad, progress=False)


def test_bad_pool(tiny):
    with pytest.raises(
        ValueError, match=r"pool='first' is not supported: use one of last, mean, last\+mean, all"
    ):
        capture(tiny, ["hi"], pool="first", progress=False)


def test_resolve_pool_defaults_to_last_and_names_its_caller_in_the_warning():
    assert resolve_pool(None, None) == "last"
    assert resolve_pool("last+mean", None) == "last+mean"
    with pytest.warns(DeprecationWarning, match=r"sweep_layers\(positions=\.\.\.\) is deprecated"):
        assert resolve_pool(None, "mean", "sweep_layers") == "mean"
    with pytest.raises(ValueError, match="pool='first' is not supported: use one of last, mean"):
        resolve_pool("first", None)


def test_positions_is_a_deprecated_alias_of_pool(tiny):
    site = "blocks.1.hook_resid_post"
    with pytest.warns(DeprecationWarning, match=r"capture\(positions=\.\.\.\) is deprecated"):
        old = capture(tiny, PROMPTS[:2], site, positions="mean", progress=False)
    new = capture(tiny, PROMPTS[:2], site, pool="mean", progress=False)
    assert old.positions == new.positions == "mean" and torch.equal(old[site], new[site])
    with pytest.raises(TypeError, match="pass pool= only"):
        capture(tiny, ["hi"], pool="last", positions="last", progress=False)


def test_bad_batch_size(tiny):
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        capture(tiny, ["hi"], batch_size=0, progress=False)


def test_labels_length_mismatch(tiny):
    with pytest.raises(
        ValueError,
        match=r"labels\['intent'\] has 1 entries for 2 prompts: give one label per prompt",
    ):
        capture(tiny, ["a", "b"], labels={"intent": torch.tensor([0])}, progress=False)


# --- the real default model ----------------------------------------------------------------------

SLOW_PROMPTS = PROMPTS[:4]
SLOW_SITES = ["blocks.0.hook_resid_post", "blocks.14.hook_resid_mid", "blocks.-1.hook_resid_post"]


def _close(got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    """Max abs difference within ``rel`` of the largest value (residuals reach ~1e4 on SmolLM2)."""
    scale = want.abs().max()
    assert (got - want).abs().max() <= rel * scale, (
        f"max diff {(got - want).abs().max():.3g}, scale {scale:.3g}"
    )


def test_smollm_padding_and_backend_parity(smollm):
    import oyster_steer

    alone = capture(smollm, SLOW_PROMPTS, SLOW_SITES, pool="all", batch_size=1, progress=False)
    batched = capture(smollm, SLOW_PROMPTS, SLOW_SITES, pool="all", batch_size=4, progress=False)
    nn = capture(
        smollm.with_backend("nnsight"),
        SLOW_PROMPTS,
        SLOW_SITES,
        pool="all",
        batch_size=4,
        progress=False,
    )
    tl = capture(
        oyster_steer.load_model(backend="tl", device="cpu"),
        SLOW_PROMPTS,
        SLOW_SITES,
        pool="all",
        batch_size=4,
        progress=False,
    )
    for site in alone.sites:
        _close(batched[site], alone[site], 1e-6)
        _close(nn[site], batched[site], 1e-6)
        _close(tl[site], batched[site], 1e-6)
    assert (
        type(smollm.hf.get_submodule("model.layers.0")).__name__ == "LlamaDecoderLayer"
    )  # not rewired


def test_smollm_capture_matches_a_plain_forward(smollm):
    acts = capture(smollm, SLOW_PROMPTS, "blocks.-1.hook_resid_post", progress=False)
    ids, mask = smollm.encode(SLOW_PROMPTS)
    with torch.no_grad():
        out = smollm.hf.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
        logits = smollm.hf(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)
        ).logits[:, -1]
    head = smollm.hf.lm_head(smollm.hf.model.norm(acts["blocks.29.hook_resid_post"]))  # (B, vocab)
    _close(head, logits, 1e-5)
    assert out.last_hidden_state.shape[:2] == ids.shape


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma", "gemma3", "phi3", "gpt2", "gpt_neox"])
def test_shared_chat_head_runs_once_and_changes_nothing(tiny_models, arch):
    """The chat template's shared head runs once (its KV reused); every position still matches
    the prompt run alone, for last/mean/all, in left-padded batches of mixed lengths."""
    from oyster_steer.activations._capture import _shared_prefix

    model = tiny_models(arch, "hf")
    rows = model.token_rows(PROMPTS)
    assert _shared_prefix(model, rows) >= 8  # the path under test is taken
    sites = ["blocks.0.hook_resid_pre", "blocks.1.hook_mlp_out", "blocks.-1.hook_resid_post"]
    got = {
        p: capture(model, PROMPTS, sites, positions=p, batch_size=3, progress=False)
        for p in ("last", "mean", "all")
    }
    for site in got["last"].sites:
        for i, prompt in enumerate(PROMPTS):
            alone = _alone(model, prompt, site)
            torch.testing.assert_close(got["all"].prompt_acts(site, i), alone, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got["mean"][site][i], alone.mean(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got["last"][site][i], alone[-1], atol=1e-5, rtol=1e-5)


def test_shared_prefix_length():
    from oyster_steer.activations._capture import _shared_prefix
    from oyster_steer.testing import tiny_model

    model = tiny_model("llama")
    head = list(range(100, 110))
    assert _shared_prefix(model, [head + [1, 2], head + [1, 3]]) == 11
    assert _shared_prefix(model, [head, head + [5]]) == 9  # every row keeps a token of its own
    assert _shared_prefix(model, [head[:5] + [1], head[:5] + [2]]) == 0  # too short to pay
    assert _shared_prefix(model, [head + [1]]) == 0  # one prompt: nothing to share
    assert _shared_prefix(model.with_backend("tl"), [head + [1], head + [2]]) == 0


@pytest.mark.parametrize("positions", ["prompt", "generated", "all"])
def test_capture_under_a_patch_matches_each_prompt_alone(positions):
    """A patched model (here a vector on prompt or generated tokens only) is captured without the
    cached chat head: with it, the rows' own tokens followed a KV cache and were taken for
    generated ones, so a prompt-only patch was skipped (found: a 2.7 max difference)."""
    import oyster_steer as osteer
    from oyster_steer.testing import tiny_model

    model = tiny_model("llama")
    site = f"blocks.{model.n_layers - 1}.hook_resid_post"
    prompts = ["How do I bake bread at home today?", "What is the capital of France?", "Hi"]
    vector = {
        "blocks.0.hook_resid_post": torch.randn(
            model.d_model, generator=torch.Generator().manual_seed(0)
        )
    }
    handle = osteer.patch(model, vector, strength=3.0, positions=positions)
    try:
        together = capture(model, prompts, site, pool="mean", progress=False)
        alone = [capture(model, [p], site, pool="mean", progress=False) for p in prompts]
    finally:
        handle.remove()
    unpatched = capture(model, prompts, site, pool="mean", progress=False)
    for i in range(len(prompts)):
        torch.testing.assert_close(together[site][i], alone[i][site][0], atol=1e-5, rtol=1e-5)
    if positions != "generated":  # the patch acted on the prompt, so the check above is not vacuous
        assert (together[site] - unpatched[site]).abs().max() > 0.1


def test_cached_capture_takes_pool_and_positions_is_its_deprecated_alias(tiny, tmp_path):
    from oyster_steer.activations._cache import cached_capture

    site = "blocks.1.hook_resid_post"
    new = cached_capture(tiny, PROMPTS[:2], site, pool="mean", root=tmp_path, progress=False)
    with pytest.warns(
        DeprecationWarning, match=r"cached_capture\(positions=\.\.\.\) is deprecated"
    ):
        old = cached_capture(
            tiny, PROMPTS[:2], site, positions="mean", root=tmp_path, progress=False
        )
    assert old.positions == new.positions == "mean" and torch.equal(old[site], new[site])
    with pytest.raises(ValueError, match="cached_capture keeps one row per prompt: use pool="):
        cached_capture(tiny, ["hi"], site, pool="all", root=tmp_path, progress=False)


def test_last_mean_pool_is_last_and_mean_side_by_side_and_the_cache_serves_it(tiny, tmp_path):
    from oyster_steer.activations._cache import cached_capture

    sites = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    texts = PROMPTS[:3]  # different lengths: left padding in one batch
    acts = {p: capture(tiny, texts, sites, pool=p, progress=False) for p in ("last", "mean")}
    both = capture(tiny, texts, sites, pool="last+mean", progress=False)
    for site in sites:
        assert both[site].shape == (3, 2 * tiny.d_model)
        want = torch.cat([acts["last"][site], acts["mean"][site]], -1)
        torch.testing.assert_close(both[site], want, atol=1e-5, rtol=1e-5)
    # the cache composes it from its last and mean rows; rows captured at more sites serve a
    # narrower request without a new capture
    wide = cached_capture(tiny, texts, sites, pool="last+mean", root=tmp_path, progress=False)
    assert wide.positions == "last+mean" and wide.meta["captured_now"] == "6"  # 3 last + 3 mean
    torch.testing.assert_close(wide[sites[1]], both[sites[1]], atol=1e-5, rtol=1e-5)
    narrow = cached_capture(tiny, texts, sites[1:], pool="last+mean", root=tmp_path, progress=False)
    assert narrow.meta["captured_now"] == "0"
    assert torch.equal(narrow[sites[1]], wide[sites[1]])
    again = cached_capture(
        tiny, [*texts, "new"], sites[1:], pool="mean", root=tmp_path, progress=False
    )
    assert again.meta["captured_now"] == "1"  # only the prompt no directory holds


def test_negative_layers_index_from_the_last_block(tiny, tmp_path):
    from oyster_steer.activations._cache import cached_capture

    acts = capture(tiny, ["hi", "there"], "resid_post", progress=False)
    last = tiny.n_layers - 1
    assert torch.equal(acts["blocks.-1.hook_resid_post"], acts[f"blocks.{last}.hook_resid_post"])
    assert torch.equal(
        acts["blocks.-2.hook_resid_post"], acts[f"blocks.{last - 1}.hook_resid_post"]
    )
    back = Activations.load(acts.save(tmp_path / "acts.safetensors"))
    assert torch.equal(back["blocks.-1.hook_resid_post"], acts[f"blocks.{last}.hook_resid_post"])
    cached = cached_capture(tiny, ["hi"], ["blocks.-1.hook_resid_post"], root=tmp_path / "c")
    assert torch.equal(
        cached["blocks.-1.hook_resid_post"], acts[f"blocks.{last}.hook_resid_post"][:1]
    )
    with pytest.raises(KeyError, match=r"blocks\.0\.hook_attn_out' was not captured"):
        acts["blocks.0.hook_attn_out"]
    with pytest.raises(SiteError, match="out of range"):
        acts[f"blocks.-{tiny.n_layers + 1}.hook_resid_post"]
    acts.meta.pop("n_layers")  # saved by an older version
    with pytest.raises(KeyError, match="do not record the model's layer count"):
        acts["blocks.-1.hook_resid_post"]


@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_shared_chat_head_keeps_out_of_a_sliding_window_it_does_not_fit(tiny_models, arch):
    """A sliding window counts cache slots: with the chat head cached before left-padded rows,
    a short row batched with one longer than the window lost the head from its window (last
    activations off by ~3-5 on the tiny Gemma 2 / 3, window 64). The head is shared only while
    every row fits; the batch matches each prompt alone either way."""
    from oyster_steer.activations._capture import _shared_prefix
    from oyster_steer.models._model import sliding_window

    model = tiny_models(arch, "hf")
    window = sliding_window(model)
    assert window == 64
    long = "Tell me a long story about a fox who swims in the river " * 6
    short = ["Hi", "What is 2+2?"]
    assert _shared_prefix(model, model.token_rows(short)) >= 8  # rows that fit share the head
    texts = [*short, long]
    rows = model.token_rows(texts)
    assert max(len(r) for r in rows) > window and _shared_prefix(model, rows) == 0
    site = "blocks.1.hook_resid_post"
    got = capture(model, texts, [site], pool="last", batch_size=3, progress=False)[site]
    for i, prompt in enumerate(texts):
        torch.testing.assert_close(got[i], _alone(model, prompt, site)[-1], atol=1e-5, rtol=1e-5)
