"""Tiny random-init models for tests, examples and benchmarks (offline, seconds to build).

Example:
    >>> from oyster_steer.testing import tiny_model
    >>> model = tiny_model("llama")          # doctest: +SKIP
    >>> model.n_layers, model.d_model        # doctest: +SKIP
    (3, 64)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .models._model import DEFAULT_MODEL, KNOWN_MODELS, OysterModel, cache_dir, file_lock, from_hf
from .models._registry import BackendName

__all__ = [
    "REASONING_TEMPLATE",
    "TINY_ARCHITECTURES",
    "TINY_UNREGISTERED",
    "default_tokenizer",
    "reasoning_tokenizer",
    "tiny_hf_model",
    "tiny_model",
]

_COMMON: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=1024,
)


def _llama_like(config_cls: str, **extra: Any) -> Callable[[int], Any]:
    def make(vocab: int) -> Any:
        import transformers

        return getattr(transformers, config_cls)(
            vocab_size=vocab, num_key_value_heads=2, **_COMMON, **extra
        )

    return make


def _gpt2(vocab: int) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab, n_embd=64, n_layer=3, n_head=4, n_positions=1024, n_inner=128
    )


def _neox(parallel: bool) -> Callable[[int], Any]:
    def make(vocab: int) -> Any:
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            vocab_size=vocab,
            use_parallel_residual=parallel,
            rotary_pct=0.25,  # type: ignore[call-arg]  # accepted; missing from the config's stub
            **_COMMON,
        )

    return make


TINY_ARCHITECTURES: dict[str, Callable[[int], Any]] = {
    "llama": _llama_like("LlamaConfig"),
    "qwen2": _llama_like("Qwen2Config"),
    "mistral": _llama_like("MistralConfig", sliding_window=None),
    "gemma": _llama_like("GemmaConfig", head_dim=16),
    "gemma2": _llama_like("Gemma2Config", head_dim=16, sliding_window=64),
    "gemma3": _llama_like("Gemma3TextConfig", head_dim=16, sliding_window=64),
    "phi3": _llama_like("Phi3Config", pad_token_id=0),
    # reasoning families (<think> ... </think>): Qwen3 (q/k norms) and SmolLM3 (NoPE layers)
    "qwen3": _llama_like("Qwen3Config", head_dim=16),
    "smollm3": _llama_like("SmolLM3Config", pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "gpt2": _gpt2,
    "gpt_neox": _neox(parallel=True),
    "gpt_neox_sequential": _neox(parallel=False),
}


# Families outside the architecture registry: their blocks are found by module discovery.
TINY_UNREGISTERED: dict[str, Callable[[int], Any]] = {
    "olmo2": _llama_like("Olmo2Config"),
    "granite": _llama_like("GraniteConfig", residual_multiplier=0.5),
}


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> Any:
    """The default model's tokenizer, extracted once from its GGUF into the cache (~5 s the first time)."""
    from transformers import AutoTokenizer

    converted = cache_dir() / "models" / DEFAULT_MODEL
    if (converted / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(converted))
    target = cache_dir() / "tokenizers" / DEFAULT_MODEL
    with file_lock(cache_dir() / "locks" / f"{DEFAULT_MODEL}-tokenizer.lock"):
        if not (target / "tokenizer.json").exists():
            gguf: Path = KNOWN_MODELS[DEFAULT_MODEL].locate()
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tok.save_pretrained(target)
    return AutoTokenizer.from_pretrained(str(target))


# Qwen3's chat format: ChatML turns; the model thinks in <think> ... </think> before it answers,
# and enable_thinking=False pre-fills an empty, closed think block (the reply is then an answer).
REASONING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}"
)


def reasoning_tokenizer() -> Any:
    """The default tokenizer plus ``<think>``/``</think>`` tokens and a Qwen3-style chat template.

    A fresh copy each call (the markers get the two ids after the default vocabulary), for tiny
    reasoning-format models: ``tiny_model("qwen3", reasoning=True)``.
    """
    from transformers import AutoTokenizer

    base = default_tokenizer()
    tok = AutoTokenizer.from_pretrained(base.name_or_path)
    tok.add_tokens(["<think>", "</think>"], special_tokens=True)
    tok.chat_template = REASONING_TEMPLATE
    return tok


def tiny_hf_model(arch: str = "llama", *, seed: int = 0, vocab_size: int | None = None) -> Any:
    """A random-init ``*ForCausalLM`` of family ``arch`` (3 layers, width 64), in eval mode, fp32."""
    from transformers import AutoModelForCausalLM

    known = {**TINY_ARCHITECTURES, **TINY_UNREGISTERED}
    if arch not in known:
        raise ValueError(f"unknown tiny architecture {arch!r}: use one of {', '.join(known)}")
    config = known[arch](vocab_size or len(default_tokenizer()))
    # transformers initialises weights from the global generator: seed it inside a fork so the
    # caller's random state is left exactly as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def tiny_model(
    arch: str = "llama", backend: BackendName = "hf", *, seed: int = 0, reasoning: bool = False
) -> OysterModel:
    """A tiny random model with the default model's tokenizer and chat template, on ``backend``.

    ``reasoning=True``: the tokenizer of :func:`reasoning_tokenizer` (think markers, Qwen3 template).
    """
    tok = reasoning_tokenizer() if reasoning else default_tokenizer()
    return from_hf(
        tiny_hf_model(arch, seed=seed, vocab_size=len(tok)),
        tok,
        backend=backend,
        name=f"tiny-{arch}-{seed}" + ("-reasoning" if reasoning else ""),
    )
