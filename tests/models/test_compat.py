"""Legacy config and tokenizer fields: what transformers 4.x reads, next to what 5 writes."""

from __future__ import annotations

import json

import torch

from oyster_steer.export import export_patched
from oyster_steer.models._compat import legacy_config, legacy_tokenizer_config, write_legacy_fields
from oyster_steer.testing import tiny_model
from oyster_steer.vectors import SteeringVector


def test_legacy_config_fields():
    plain = legacy_config(
        {"rope_parameters": {"rope_theta": 1e5, "rope_type": "default"}, "dtype": "float32"}
    )
    assert (
        plain["rope_theta"] == 1e5
        and "rope_scaling" not in plain
        and plain["torch_dtype"] == "float32"
    )
    scaled = legacy_config(
        {"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}}
    )
    assert scaled["rope_theta"] == 5e5
    assert scaled["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0, "type": "llama3"}
    gemma = legacy_config(
        {
            "rope_parameters": {
                "full_attention": {"rope_theta": 1e6},
                "sliding_attention": {"rope_theta": 1e4},
            }
        }
    )
    assert gemma["rope_theta"] == 1e6 and gemma["rope_local_base_freq"] == 1e4
    assert (
        legacy_config({"rope_theta": 7.0, "rope_parameters": {"rope_theta": 7.0}})["rope_theta"]
        == 7.0
    )
    tok = legacy_tokenizer_config(
        {"tokenizer_class": "TokenizersBackend", "extra_special_tokens": ["<a>"]}
    )
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok["additional_special_tokens"] == ["<a>"] and "extra_special_tokens" not in tok
    assert (
        legacy_tokenizer_config({"tokenizer_class": "GPT2Tokenizer"})["tokenizer_class"]
        == "GPT2Tokenizer"
    )


def test_an_export_writes_them_and_still_loads_the_same_in_transformers_5(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tiny_model("llama")
    v = SteeringVector.from_tensors(model, {"blocks.1.hook_resid_post": torch.ones(64)})
    export_patched(model, v, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"]
    tok_cfg = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "Hello there, how are you?"
    assert tok(text)["input_ids"] == model.tokenizer(text)["input_ids"]
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert hf.config.rope_parameters["rope_theta"] == cfg["rope_theta"]
    before = (tmp_path / "out" / "config.json").read_text()
    write_legacy_fields(tmp_path / "out")  # idempotent
    assert (tmp_path / "out" / "config.json").read_text() == before
