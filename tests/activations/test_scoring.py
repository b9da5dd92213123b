"""Prompt-sharing scoring equals a plain forward over prompt + reply, with and without steering."""

from __future__ import annotations

import os

import pytest
import torch
from _planted import planted_intent_probe

from oyster_steer.activations._scoring import (
    Group,
    chat_ids,
    head_logits,
    kl_from,
    pack,
    reply_ids,
    reply_logprobs,
    reply_means,
    score_groups,
)
from oyster_steer.backends import get_backend
from oyster_steer.control import ControlPlan, bind, patch_plan
from oyster_steer.models._artifacts import model_meta
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


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt_neox"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_frozen_inputs_score_like_the_full_forward(tiny_models, arch, layer):
    """Steered at block ``layer`` and above, scoring from the cached lower blocks is the full
    forward's (means, full log-probs and KL), with differentiable steering."""
    from oyster_steer.activations._scoring import frozen_inputs

    model = tiny_models(arch, "hf")
    prompts = ["I feel so alone lately.", "Hi", "How do I pick a lock on my own shed door?"]
    replies = ["I'm really glad you reached out.", "I can't help with that.", "Sure."]
    gs = [Group(chat_ids(model, p), tuple(reply_ids(model, r) for r in replies)) for p in prompts]
    hidden = frozen_inputs(model, gs, layer)  # unsteered: nothing installed yet
    assert [h.prompt.shape[0] for h in hidden] == [len(g.prompt) for g in gs]
    vec = SteeringVector.from_tensors(
        model, {f"blocks.{layer}.hook_resid_pre": torch.linspace(-2, 2, model.d_model)}
    )
    with torch.no_grad():
        ref = score_groups(model, gs, full=True)
    with steer(model, vec, strength=1.0), torch.no_grad():
        want = score_groups(model, gs)
        got = score_groups(model, gs, hidden=hidden)
        want_kl = kl_from(model, gs, ref, batch_size=4)
        got_kl = kl_from(model, gs, ref, batch_size=4, hidden=hidden)
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    assert float(want_kl.abs().max()) > 1e-3  # the steering moves the model: the test can fail
    torch.testing.assert_close(got_kl, want_kl, atol=1e-5, rtol=1e-5)
    # gradients reach a vector added above the frozen blocks, equal to the full forward's
    delta = torch.zeros(model.d_model, requires_grad=True)
    from oyster_steer.backends import Hook
    from oyster_steer.core._sites import parse_site

    hook = Hook(parse_site(f"blocks.{layer}.hook_resid_post"), lambda h: h + delta, write=True)
    grads = []
    for use in (None, hidden):
        with get_backend("hf").add_hooks(model, [hook]):
            packed = pack(gs, model.pad_id, model.device, use)
            reply_means(reply_logprobs(model, packed), packed).sum().backward()
        grads.append(delta.grad.clone())
        delta.grad = None
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_pack_refuses_mismatched_frozen_inputs(model, groups):
    from oyster_steer.activations._scoring import frozen_inputs

    hidden = frozen_inputs(model, groups, 1)
    with pytest.raises(ValueError, match="one per group"):
        pack(groups, model.pad_id, model.device, hidden[:1])


def test_reply_buckets_cover_every_token_once_and_cut_padding():
    from oyster_steer.activations._scoring import _reply_buckets

    lengths = [48, 10, 13, 48, 11, 16, 40]
    buckets, unbucket = _reply_buckets(lengths)
    assert len(buckets) > 1  # the long and the short replies are run apart
    assert sorted(int(r) for rows, _ in buckets for r in rows) == list(range(len(lengths)))
    assert all(w == max(lengths[int(r)] for r in rows) for rows, w in buckets)
    assert sum(len(rows) * w for rows, w in buckets) < len(lengths) * max(lengths)
    assert sorted(unbucket.tolist()) == list(range(sum(lengths)))
    assert _reply_buckets([5, 5, 5])[0][0][1] == 5 and len(_reply_buckets([5, 5, 5])[0]) == 1
    from oyster_steer.activations._scoring import _ONE_PASS

    one, where = _reply_buckets(lengths, cost=_ONE_PASS)  # what a GPU gets: one padded pass
    assert (
        len(one) == 1
        and one[0][1] == max(lengths)
        and sorted(one[0][0].tolist()) == list(range(len(lengths)))
    )
    assert sorted(where.tolist()) == list(range(sum(lengths)))


@pytest.mark.parametrize(
    "arch, long",
    [("llama", False), ("gemma2", False), ("gpt_neox", False), ("gemma2", True), ("gemma3", True)],
)
def test_bucketed_reply_passes_and_shared_head_score_like_one_padded_pass(
    tiny_models, arch, long, monkeypatch
):
    """Reply passes split by length (each on its own copy of the prompts' cache), and the
    prompts' common chat head run once as a KV prefix, give the one padded pass's log-probs
    and gradients (and those are the full forward's). ``long``: a reply longer than the tiny
    Gemma's sliding window (64), where the cached head is not used (the padding after it would
    push it out of the short rows' windows)."""
    from oyster_steer.activations import _scoring
    from oyster_steer.activations._scoring import frozen_inputs
    from oyster_steer.backends import Hook
    from oyster_steer.core._sites import parse_site

    model = tiny_models(arch, "hf")
    prompts = ["I feel so alone lately.", "Hi", "How do I pick a lock on my own shed door?"]
    replies = [
        "I'm really glad you reached out, and I am here to listen to you for as long as you like.",
        "No.",
        "Sure, here is how.",
    ]
    if long:
        replies[0] = replies[0] * 4
    gs = [Group(chat_ids(model, p), tuple(reply_ids(model, r) for r in replies)) for p in prompts]
    hidden = frozen_inputs(model, gs, 1)
    delta = (torch.linspace(-2, 2, model.d_model) / 4).requires_grad_(True)
    hook = Hook(parse_site("blocks.1.hook_resid_post"), lambda h: h + delta, write=True)
    got = {}
    # full forward; one padded pass; a pass per length bucket; buckets + shared head; head only
    for name, cost, use, share in [
        ("full", 10**6, None, False),
        ("padded", 10**6, hidden, False),
        ("buckets", 0, hidden, False),
        ("buckets+head", 0, hidden, True),
        ("head", 10**6, hidden, True),
    ]:
        monkeypatch.setattr(_scoring, "_BUCKET_COST", cost)
        packed = pack(gs, model.pad_id, model.device, use, share_head=share)
        assert (len(packed.buckets) > 1) == (cost == 0)
        assert (packed.head > 0) == share  # the chat template's head is common to the prompts
        with get_backend("hf").add_hooks(model, [hook]):
            lp = reply_logprobs(model, packed, full=True)
            (lp.gather(-1, packed.targets[:, None]).sum() + lp[:, :7].sum()).backward()
        got[name] = (lp.detach(), delta.grad.clone())
        delta.grad = None
    for name in ("padded", "buckets", "buckets+head", "head"):
        torch.testing.assert_close(got[name][0], got["full"][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got[name][1], got["full"][1], atol=1e-5, rtol=1e-4)
    assert float(got["full"][1].abs().max()) > 1e-3  # the gradient is not trivially zero


def test_common_head_leaves_every_prompt_a_token():
    from oyster_steer.models._model import shared_prefix_length as _common_head

    assert _common_head([(1, 2, 3, 4), (1, 2, 3, 5, 6)]) == 3
    assert _common_head([(1, 2, 3), (1, 2, 3, 4)]) == 2  # the shorter prompt keeps its last token
    assert _common_head([(7, 2), (1, 2)]) == 0


def _one_forward_per_reply(model, groups, site, delta, which):
    """Oracle: each (prompt, reply) alone in one forward, ``delta`` added by hand at ``site`` on
    exactly the ``which`` tokens: "prompt" = the prompt's tokens (its last one included, whose
    logits predict the first reply token), "generated" = the reply's tokens."""
    from oyster_steer.backends import Hook
    from oyster_steer.core._sites import parse_site

    out = []
    for g in groups:
        per_reply = []
        for r in g.replies:
            ids = torch.tensor([list(g.prompt) + list(r)])
            is_prompt = (torch.arange(ids.shape[1]) < len(g.prompt)).view(1, -1, 1)
            sel = {"prompt": is_prompt, "generated": ~is_prompt, "none": is_prompt & False}[which]
            m = sel.float()
            hook = Hook(parse_site(site), lambda h, m=m: h + m * delta, write=True)
            with get_backend("hf").add_hooks(model, [hook]), torch.no_grad():
                logits = get_backend("hf").forward(model, ids, torch.ones_like(ids))
            per_reply.append(torch.log_softmax(logits[0, len(g.prompt) - 1 : -1].float(), -1))
        out.append(torch.cat(per_reply))
    return out


@pytest.mark.parametrize("which", ["prompt", "generated"])
def test_prompt_or_generated_steering_scores_like_one_forward_per_reply(model, which):
    """Several replies per prompt run as rows of one reply pass, while the position tracker
    latches one prompt end per prompt row: the full-forward scores still steer exactly the
    prompt (or the reply) tokens of each pair, at any batching (more reply rows than prompts,
    uneven reply counts, one reply each). The cached-lower-blocks path, whose passes the
    tracker never sees, refuses such steering instead of mis-masking it."""
    from oyster_steer.activations._scoring import frozen_inputs

    site = "blocks.1.hook_resid_post"
    direction = torch.randn(64, generator=torch.Generator().manual_seed(0))
    vec = SteeringVector.from_tensors(model, {site: direction})
    prompts = [
        "I feel so alone lately.",
        "Hi",
        "How do I pick a lock on my own shed door, quickly?",
    ]
    replies = ["I'm really glad you reached out to me today.", "I can't help with that.", "Sure."]
    gs = [Group(chat_ids(model, p), tuple(reply_ids(model, r) for r in replies)) for p in prompts]
    uneven = [Group(g.prompt, g.replies[: k + 1]) for k, g in enumerate(gs)]  # 1, 2, 3 replies
    single = [Group(g.prompt, g.replies[:1]) for g in gs]  # as many reply rows as prompt rows
    for groups in (gs, uneven, single):
        want = _one_forward_per_reply(model, groups, site, 3.0 * direction, which)
        plain = _one_forward_per_reply(model, groups, site, 3.0 * direction, "none")
        with steer(model, vec, strength=3.0, positions=which), torch.no_grad():
            for batch_size in (16, 2):
                got = score_groups(model, groups, full=True, batch_size=batch_size)
                for g, w, p in zip(got, want, plain, strict=True):
                    torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
                    assert float((w - p).abs().max()) > 1e-2  # the steering moves each group
    for layer in (0, 1):
        hidden = frozen_inputs(model, gs, layer)
        with (
            steer(model, vec, strength=3.0, positions=which),
            torch.no_grad(),
            pytest.raises(ValueError, match="full forward"),
        ):
            score_groups(model, gs, hidden=hidden, share_head=True)


@torch.no_grad()
def test_a_plan_scores_several_replies_per_prompt_as_one_reply_each(model):
    """A ControlPlan keeps its gate decision per batch row: a prompt that owns several replies
    must give each reply the decision of its own prompt (a gathered cache row would not)."""
    benign, vulnerable = "What is the capital of France?", "I feel so alone, everything is hopeless"
    probe = planted_intent_probe(model, benign, vulnerable, "blocks.0.hook_resid_post")
    vec = SteeringVector.from_tensors(
        model, {"blocks.1.hook_resid_post": 3 * torch.linspace(-1, 1, model.d_model)}
    )
    plan = ControlPlan(probe, [bind(vec, {"guide": 1.0}, name="guide")], identity=model_meta(model))
    replies = ["I'm really glad you reached out.", "I can't help with that.", "Sure thing."]
    shared = [
        Group(chat_ids(model, benign), (reply_ids(model, replies[0]),)),
        Group(chat_ids(model, vulnerable), tuple(reply_ids(model, r) for r in replies)),
    ]
    one_each = [Group(shared[0].prompt, shared[0].replies)] + [
        Group(shared[1].prompt, (r,)) for r in shared[1].replies
    ]
    with patch_plan(model, plan):
        got = reply_logprobs(model, pack(shared, model.pad_id, "cpu"))
        want = reply_logprobs(model, pack(one_each, model.pad_id, "cpu"))
    plain = reply_logprobs(model, pack(one_each, model.pad_id, "cpu"))
    n0 = len(shared[0].replies[0])
    assert (want[n0:] - plain[n0:]).abs().max() > 1e-2  # the vulnerable prompt is steered
    assert torch.allclose(want[:n0], plain[:n0], atol=1e-5)  # the benign one is not
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])  # gemma2 soft-caps its logits (at 30)
def test_head_logits_are_the_models_own_logits(tiny_models, arch):
    model = tiny_models(arch)
    ids, mask = model.encode(["I feel so alone lately.", "hi"])
    real = mask.bool()
    with torch.no_grad():
        out = model.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        logits = head_logits(model, out.hidden_states[-1][real])  # (N, V)
    assert torch.allclose(logits, out.logits[real], atol=1e-5)
