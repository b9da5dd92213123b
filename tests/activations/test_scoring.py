"""Prompt-sharing scoring equals a plain forward over prompt + reply, with and without steering."""

from __future__ import annotations

import os

import pytest
import torch

from oyster_steer.activations._scoring import (
    Group,
    chat_ids,
    kl_from,
    pack,
    reply_ids,
    reply_logprobs,
    reply_means,
    score_groups,
)
from oyster_steer.backends import get_backend
from oyster_steer.steering._steer import steer
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._vector import SteeringVector

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def groups(model):
    prompts = ["I feel so alone lately.", "How do I pick a lock on someone else's door right now?"]
    replies = [
        "I'm really glad you reached out.",
        "I can't help with that.",
        "Sure, here are the steps: [details withheld]",
    ]
    return [Group(chat_ids(model, p), tuple(reply_ids(model, r) for r in replies)) for p in prompts]


def _plain(model, groups):
    """Reference: one full forward per (prompt, reply), log-probs of the reply tokens."""
    out = []
    for g in groups:
        for r in g.replies:
            ids = torch.tensor([list(g.prompt) + list(r)])
            logits = get_backend("hf").forward(model, ids, torch.ones_like(ids))
            lp = torch.log_softmax(logits[0, len(g.prompt) - 1 : -1].float(), -1)
            out.append(lp.gather(-1, torch.tensor(r).unsqueeze(-1)).squeeze(-1))
    return torch.cat(out)


@torch.no_grad()
@pytest.mark.parametrize("steered", [False, True])
def test_shared_prompt_scoring_matches_full_forwards(model, groups, steered):
    vec = SteeringVector.from_tensors(
        model, {"blocks.1.hook_resid_post": torch.linspace(-1, 1, 64)}
    )
    packed = pack(groups, model.pad_id, "cpu")
    assert (
        packed.prompt_mask[0].sum() < packed.prompt_mask.shape[1]
    )  # the first prompt is left-padded
    handle = steer(model, vec, strength=3.0) if steered else None
    with handle if handle is not None else torch.no_grad():
        got, want = reply_logprobs(model, packed), _plain(model, groups)
        scored = torch.cat(score_groups(model, groups))
    assert got.shape == packed.targets.shape and torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(scored, reply_means(got, packed), atol=1e-5)


def test_kl_is_zero_against_itself_and_positive_when_steered(model, groups):
    single = [Group(g.prompt, g.replies[:1]) for g in groups]
    ref = score_groups(model, single, full=True)
    assert ref[0].shape == (len(single[0].replies[0]), len(model.tokenizer))
    assert torch.allclose(kl_from(model, single, ref), torch.zeros(2), atol=1e-5)
    with steer(model, {"blocks.0.hook_resid_post": torch.ones(64)}):
        assert (kl_from(model, single, ref) > 1e-4).all()
