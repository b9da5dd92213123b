"""Random-init models built from real configs, for the GPU benchmarks.

No model weights travel to the GPU machine (its working tree is capped at 64 MiB and it reaches no
hub), so throughput there is measured on random-init Llama shapes: the cost of a forward pass, a
capture or a training step does not depend on the weights' values. ``llama-tiny`` runs the same
code path on a CPU in seconds (the scripts' smoke tests).
"""

from __future__ import annotations

from typing import Any

import torch

SHAPES: dict[str, dict[str, int]] = {
    "llama-1b": dict(  # Llama-3.2-1B
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
    ),
    "llama-8b": dict(  # Llama-3.1-8B
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
    ),
    "llama-tiny": dict(  # the same code path on a CPU, for smoke tests
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
}


def random_llama(shape: str, device: str = "cpu", dtype: torch.dtype | None = None) -> Any:
    """An :class:`~oyster_steer.OysterModel` of a random-init Llama of ``shape``, seeded (every
    call gives the same weights), bf16 on CUDA and fp32 on CPU unless ``dtype`` says otherwise,
    initialised directly on ``device`` (an 8B fp32 init on the CPU would be 32 GB), with the
    default model's tokenizer (its ids fit Llama 3's vocabulary)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import oyster_steer as osteer
    from oyster_steer.testing import default_tokenizer

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: pass one of {sorted(SHAPES)}")
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    config = LlamaConfig(vocab_size=128256, max_position_embeddings=4096, **SHAPES[shape])
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            hf = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return osteer.from_hf(hf, default_tokenizer(), name=f"random-{shape}")
