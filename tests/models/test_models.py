"""Model loading: names, backends, encoding, fingerprints, backend switching, the conversion cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from oyster_steer import EmptyInputError, UnknownModelError, load_model
from oyster_steer.models._model import (
    KNOWN_MODELS,
    _assemble,
    _GGUFSource,
    cache_dir,
    converted_dir,
    file_lock,
    left_pad,
    model_fingerprint,
)
from oyster_steer.testing import tiny_hf_model, tiny_model

SMOLLM2_FINGERPRINT = "83f04128e0ba9b4c"  # artifacts made for the default model carry this id


def test_unknown_model_lists_the_embedded_models():
    with pytest.raises(
        UnknownModelError,
        match=r"unknown model 'no-such-model': use one of the embedded models "
        r"\(smollm2-135m-instruct, qwen2\.5-coder-0\.5b-instruct\), a local Hugging Face "
        r"directory, or a hub name like 'org/model' while online",
    ):
        load_model("no-such-model")


def test_hub_names_are_refused_offline():
    with pytest.raises(
        UnknownModelError, match=r"unknown model 'org/model': use one of the embedded models"
    ):
        load_model("org/model")


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown backend 'jax': use one of hf, tl, nnsight"):
        load_model(backend="jax")


def test_with_backend_refuses_unknown_backend(tiny):
    with pytest.raises(ValueError, match=r"unknown backend 'vllm': use one of hf, tl, nnsight"):
        tiny.with_backend("vllm")


# --- encode --------------------------------------------------------------------------------------


def test_encode_left_pads_chat_prompts(tiny, tokenizer):
    prompts = ["Hi", "Tell me three facts about octopuses, please."]
    ids, mask = tiny.encode(prompts)
    rows = [tokenizer(tiny.format_chat(p), add_special_tokens=False)["input_ids"] for p in prompts]
    assert ids.shape == mask.shape == (2, max(map(len, rows)))
    assert ids.dtype == mask.dtype == torch.long
    for i, row in enumerate(rows):
        pad = ids.shape[1] - len(row)
        assert mask[i].tolist() == [0] * pad + [1] * len(row)
        assert ids[i, pad:].tolist() == row
        assert (ids[i, :pad] == tiny.pad_id).all()
    assert not mask[0, 0] and mask[1].all()  # the short prompt was padded, the long one not


def test_encode_chat_template_and_plain_text(tiny, tokenizer):
    chat = tiny.format_chat("Hello")
    assert chat.startswith("<|im_start|>system\n") and chat.endswith(
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )
    ids, mask = tiny.encode("Hello", chat=False)  # a bare string is one prompt
    assert ids.tolist() == [tokenizer("Hello")["input_ids"]] and mask.all()


def test_encode_empty_list():
    with pytest.raises(
        EmptyInputError, match=r"the prompt list is empty: pass at least one prompt"
    ):
        tiny_model().encode([])


def test_encode_never_truncates(tiny):
    long = "word " * 50
    n = len(tiny.encode([long], chat=False)[0][0])
    with pytest.raises(
        ValueError,
        match=rf"prompt 1 has {n} tokens, over the limit of 20: shorten it or pass a larger max_length "
        r"\(prompts are never silently truncated\)",
    ):
        tiny.encode(["short", long], chat=False, max_length=20)
    assert tiny.encode([long], chat=False, max_length=n)[0].shape == (1, n)


def test_left_pad_rows():
    ids, mask = left_pad([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]


# --- fingerprints and backends -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_fingerprint_is_dtype_independent(seed):
    # seeds 6 and 10 of the tiny llama put an embedding weight right at a rounding edge
    hf = tiny_hf_model("llama", seed=seed)
    fp32 = model_fingerprint(hf)
    assert model_fingerprint(hf.to(torch.bfloat16)) == fp32


def test_fingerprint_differs_across_seeds_and_families():
    prints = {model_fingerprint(tiny_hf_model("llama", seed=s)) for s in range(4)}
    prints |= {model_fingerprint(tiny_hf_model(arch)) for arch in ("qwen2", "gpt2")}
    assert len(prints) == 6


def test_fingerprint_is_backend_independent(tiny_models):
    prints = {tiny_models("llama", b).fingerprint for b in ("hf", "tl", "nnsight")}
    assert prints == {tiny_models("llama", "hf").fingerprint}


def test_with_backend_shares_the_weights():
    model = tiny_model("llama")
    assert model.with_backend("hf") is model
    weights = {p.data_ptr() for p in model.hf.parameters()}
    for backend in ("nnsight", "tl"):
        other = model.with_backend(backend)
        assert other.backend == backend and other.hf is model.hf
        assert (other.n_layers, other.d_model, other.fingerprint) == (
            model.n_layers,
            model.d_model,
            model.fingerprint,
        )
    assert {
        p.data_ptr() for p in other.native.parameters()
    } == weights  # the bridge wraps, never copies
    with torch.no_grad():
        model.hf.get_input_embeddings().weight[0, 0] += 1.0  # one edit is seen by every backend
    assert other.native.embed.weight[0, 0] == model.hf.get_input_embeddings().weight[0, 0]


def test_device_and_dtype(tiny):
    assert tiny.device == torch.device("cpu") and tiny.dtype == torch.float32


# --- conversion cache ----------------------------------------------------------------------------


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OYSTER_STEER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("OYSTER_STEER_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "oyster_steer"


def test_file_lock_creates_its_folder_and_excludes_a_second_holder(tmp_path):
    import fcntl

    path = tmp_path / "locks" / "m.lock"
    # another open file (as in another process) cannot take it while it is held
    with file_lock(path), open(path) as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit


def test_conversion_writes_the_cache_once(monkeypatch, tmp_path, tokenizer):
    """The conversion path, with a tiny random model standing in for the GGUF."""
    import transformers

    source = tiny_hf_model("llama", seed=3)
    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def fake_from_pretrained(path, *args, **kwargs):
        if "gguf_file" not in kwargs:
            return real(path, *args, **kwargs)
        calls.append(kwargs["gguf_file"])
        return source

    fake_tok = lambda path, *a, **kw: tokenizer if "gguf_file" in kw else real_tok(path, *a, **kw)  # noqa: E731
    real_tok = transformers.AutoTokenizer.from_pretrained
    gguf = tmp_path / "wheel" / "tiny.gguf"
    monkeypatch.setenv("OYSTER_STEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(KNOWN_MODELS, "tiny-test", _GGUFSource(("x",), ("x",), "tiny.gguf"))
    monkeypatch.setattr(_GGUFSource, "locate", lambda self: gguf)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_tok)

    model = load_model("tiny-test", device="cpu")
    out = tmp_path / "cache" / "models" / "tiny-test"
    assert converted_dir("tiny-test") == out and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file() and list(out.glob("*.safetensors"))
    assert calls == ["tiny.gguf"]  # converted once; the second lookup hit the cache
    assert model.name == "tiny-test" and model.fingerprint == model_fingerprint(source)
    ids, mask = model.encode(["Hi there"])
    with torch.no_grad():
        torch.testing.assert_close(model.hf(input_ids=ids).logits, source(input_ids=ids).logits)


def test_missing_model_wheel_names_the_pip_command():
    source = _GGUFSource(("no-such-dist==1.0",), ("pkg/model.gguf",), "model.gguf")
    with pytest.raises(
        UnknownModelError,
        match=r"the model files are not installed \(missing no-such-dist\): run "
        r"`pip install --no-deps no-such-dist==1\.0`",
    ):
        source.locate()


def test_split_gguf_is_assembled_and_checked(tmp_path):
    parts = []
    for i, chunk in enumerate((b"abc", b"defg")):
        parts.append(tmp_path / f"part{i}")
        parts[-1].write_bytes(chunk)
    good = hashlib.sha256(b"abcdefg").hexdigest()
    _assemble(parts, tmp_path / "out" / "m.gguf", good)
    assert (tmp_path / "out" / "m.gguf").read_bytes() == b"abcdefg"
    with pytest.raises(
        UnknownModelError,
        match=rf"assembled bad\.gguf has sha256 {good}, expected 0+: reinstall its wheels",
    ):
        _assemble(parts, tmp_path / "out" / "bad.gguf", "0" * 64)
    assert not (tmp_path / "out" / "bad.gguf").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.gguf"]  # no temp file left


# --- the real default model ----------------------------------------------------------------------


def test_default_model(smollm):
    assert (smollm.n_layers, smollm.d_model, smollm.model_type) == (30, 576, "llama")
    assert smollm.name == "smollm2-135m-instruct" and smollm.backend == "hf"
    assert smollm.fingerprint == SMOLLM2_FINGERPRINT
    assert smollm.chat_template and "<|im_start|>user\nHi<|im_end|>" in smollm.format_chat("Hi")
    assert smollm.hf.config._name_or_path.endswith("smollm2-135m-instruct")


def test_default_model_offline_and_deterministic(smollm):
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest sets it before transformers loads
    ids, mask = smollm.encode(["What is the capital of France?"])
    with torch.no_grad():
        logits = smollm.hf(input_ids=ids, attention_mask=mask).logits[0, -1]  # (vocab,)
    assert smollm.tokenizer.decode(logits.argmax()).strip() == "The"
