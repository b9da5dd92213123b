"""Tiny test models: reproducible per seed, and building one leaves the caller's RNG alone."""

from __future__ import annotations

import torch

from oyster_steer.testing import tiny_hf_model


def test_tiny_models_are_reproducible_and_leave_the_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b, c = tiny_hf_model("llama", seed=1), tiny_hf_model("llama", seed=1), tiny_hf_model(seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
