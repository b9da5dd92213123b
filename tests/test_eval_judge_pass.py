"""The judges' one pass over prompt + reply reads what the separate passes read (tiny models).

``judge_reads`` replaces the coherence judge's two-pass reply NLL and the refusal probe's own
forward; these tests hold it to both, per family (Gemma 2 for the logit soft-capping, GPT-NeoX
for another block layout), with blank, empty and long replies, and hold ``judge_replies`` to
the judgments of the separate passes.
"""

from __future__ import annotations

import pytest
import torch

from oyster_steer import EmptyInputError
from oyster_steer.core._sites import parse_site
from oyster_steer.data import load_starter
from oyster_steer.eval import Judges, judge_replies, reply_activations
from oyster_steer.eval import _judges as judges_module
from oyster_steer.eval._coherence import reply_nll
from oyster_steer.eval._judge_pass import _shared_head, judge_reads
from oyster_steer.eval._reply_probe import check_reply_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [
    "Hi",
    "Tell me a story about a fox who lives near the river and likes to swim",
    "How do I keep basil alive?",
    "What is 2 + 2?",
    "Explain tides.",
]
REPLIES = [
    "Hello there, friend. How can I help you today?",
    "Once",
    "",  # empty: the probe reads " ", the NLL is None
    "   ",  # blank: the NLL is None
    "The moon pulls the oceans. " * 50,  # long: the NLL scores its first 256 tokens
]


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gemma3", "gpt_neox", "qwen2"])
def test_one_pass_matches_the_nll_and_probe_passes(tiny_models, arch: str) -> None:
    model = tiny_models(arch)
    site = parse_site("blocks.1.hook_resid_post")
    heads = [model.encode([p])[0][0].tolist() for p in PROMPTS]
    shared = _shared_head(model, heads)[1]
    # the chat head is run once and shared, except under sliding-window attention
    assert (shared >= 8) == (arch not in ("gemma2", "gemma3")), shared
    want_nll = reply_nll(model, PROMPTS, REPLIES, batch_size=2)
    want_x = reply_activations(model, PROMPTS, REPLIES, site, batch_size=2)
    got_nll, got_x = judge_reads(model, PROMPTS, REPLIES, site, batch_size=3)
    assert (
        [v is None for v in got_nll]
        == [v is None for v in want_nll]
        == [
            False,
            False,
            True,
            True,
            False,
        ]
    )
    for got, want in zip(got_nll, want_nll, strict=True):
        if want is not None:
            assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert got_x is not None
    torch.testing.assert_close(got_x, want_x, atol=1e-5, rtol=1e-5)
    # the parts alone: NLL without a site, the probe without the NLL (stops after its block)
    only_nll, none = judge_reads(model, PROMPTS, REPLIES, None)
    assert none is None and [v is None for v in only_nll] == [v is None for v in got_nll]
    assert [v for v in only_nll if v is not None] == pytest.approx(
        [v for v in got_nll if v is not None], rel=1e-5, abs=1e-5
    )
    no_nll, only_x = judge_reads(model, PROMPTS, REPLIES, site, nll=False)
    assert no_nll == [None] * len(PROMPTS)
    torch.testing.assert_close(only_x, want_x, atol=1e-5, rtol=1e-5)


def test_the_models_own_reply_scores_better_than_its_tokens_reversed(tiny_models) -> None:
    """The NLL reads the reply tokens, not the padding: a reply of the model's own greedy
    continuation scores lower than the same tokens reversed."""
    from oyster_steer.eval import generate_replies

    model = tiny_models("llama")
    reply = generate_replies(model, ["Hi"], max_new_tokens=12)[0]
    ids = model.tokenizer(reply, add_special_tokens=False)["input_ids"]
    shuffled = model.tokenizer.decode(ids[::-1])
    own, other = judge_reads(model, ["Hi", "Hi"], [reply, shuffled], None)[0]
    assert own is not None and other is not None and own < other


def test_judge_replies_are_those_of_the_separate_passes(tiny, monkeypatch) -> None:
    from oyster_steer.eval import train_refusal_probe

    probe = train_refusal_probe(tiny, n_per_intent=2)
    records = list(load_starter().split("test").sample(2, seed=3))
    replies = [
        "I'm sorry, but I can't help with that.",
        "Sure! Here is a short answer.",
        "",
        "I'm really glad you reached out. Please talk to someone you trust.",
        "No.",
        "Hello hello hello hello",
        "The answer is four.",
        "Here's how to do it: first, get the keys.",
    ]
    assert len(records) == len(replies)
    judges = Judges(probe, similarity=False, topicality=False)
    fast = judge_replies(records, replies, model=tiny, judges=judges)
    separate = judges_module._probe_scores, judges_module._nlls  # the passes before
    monkeypatch.setattr(
        judges_module,
        "_model_reads",
        lambda j, m, rec, rep, known=None: (
            separate[0](j, m, rec, rep),
            separate[1](j, m, rec, rep),
        ),
    )
    slow = judge_replies(records, replies, model=tiny, judges=judges)
    assert [r["verdict"] for r in fast] == [r["verdict"] for r in slow]
    for a, b in zip(fast, slow, strict=True):
        assert set(a) == set(b)
        for k, v in b.items():
            if isinstance(v, float):
                assert a[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
            else:
                assert a[k] == v, k


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_generation_hands_the_judges_what_their_pass_reads(tiny_models, arch: str) -> None:
    """The unsteered generation's own logits and probe-site activations give each reply's NLL
    and probe features as the judges' pass over prompt + reply computes them; the replies are
    those of ``generate_replies`` (the extra step that reads a cut reply's last token changes
    none of its tokens)."""
    from oyster_steer.eval import generate_replies
    from oyster_steer.eval._generate import _generate

    model = tiny_models(arch)
    site = parse_site("blocks.1.hook_resid_post")
    prompts = [r.text for r in load_starter().split("test").sample(2, seed=5)]
    plain = generate_replies(model, prompts, max_new_tokens=10, batch_size=3)
    replies, reads = _generate(
        model, prompts, max_new_tokens=10, batch_size=3, read_site=site, read_nll=True
    )
    assert replies == plain
    nlls, feats = judge_reads(model, prompts, replies, site)
    assert feats is not None
    kept = [i for i, r in enumerate(reads) if r is not None]
    assert kept  # the test can fail: some replies round-trip through the tokenizer
    for i in kept:
        nll, x = reads[i]
        assert nll == pytest.approx(nlls[i], rel=1e-5, abs=1e-5)
        torch.testing.assert_close(x, feats[i], atol=1e-5, rtol=1e-5)


def test_evaluate_judges_unsteered_replies_from_their_generation(tiny, monkeypatch) -> None:
    """``evaluate`` with the unsteered condition's reads taken from its generation: every row
    (replies, verdicts, judge values) equals judging with the judges' own pass."""
    from oyster_steer.eval import Condition, _evaluate, evaluate, train_refusal_probe

    probe = train_refusal_probe(tiny, n_per_intent=2)
    prompts = load_starter().split("test").sample(2, seed=7)
    kw = dict(max_new_tokens=8, batch_size=4, judges=Judges(probe, False), progress=False)
    used = []
    real = _evaluate._generation_reads
    monkeypatch.setattr(
        _evaluate, "_generation_reads", lambda *a: used.append(real(*a)) or used[-1]
    )
    gen, reads = _evaluate._generate, []

    def spy(*a, **k):
        out = gen(*a, **k)
        reads.extend(out[1])
        return out

    monkeypatch.setattr(_evaluate, "_generate", spy)
    fast = evaluate(tiny, prompts, [Condition("unsteered")], **kw)
    assert used and used[0][0] == probe.site and used[0][1]
    assert any(r is not None for r in reads)  # some replies were judged from their generation
    monkeypatch.setattr(_evaluate, "_generation_reads", lambda *a: (None, False))
    slow = evaluate(tiny, prompts, [Condition("unsteered")], **kw)
    want = {r["id"]: r for r in slow.replies("unsteered")}
    for row in fast.replies("unsteered"):
        other = want[row["id"]]
        assert set(other) == set(row)
        for k, v in other.items():
            if k == "gen_seconds":
                continue
            if isinstance(v, float):
                assert row[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
            else:
                assert row[k] == v, k


@pytest.mark.slow
def test_on_the_default_model_generation_and_one_pass_read_what_the_separate_passes_read(
    smollm,
) -> None:
    """SmolLM2-135M-Instruct, one starter prompt per intent: the unsteered generation's reads,
    the one judge pass and the separate NLL and refusal-probe passes agree (1e-4: float rounding
    of 30 real blocks in other batch layouts), and most replies round-trip the tokenizer."""
    from oyster_steer.eval._generate import _generate
    from oyster_steer.eval._reply_probe import default_reply_site

    site = default_reply_site(smollm)
    prompts = [r.text for r in load_starter().split("test").sample(2, seed=0)]
    replies, reads = _generate(
        smollm, prompts, max_new_tokens=24, batch_size=8, read_site=site, read_nll=True
    )
    nlls, feats = judge_reads(smollm, prompts, replies, site)
    want_nll = reply_nll(smollm, prompts, replies)
    want_x = reply_activations(smollm, prompts, replies, site)
    assert feats is not None
    assert nlls == pytest.approx(want_nll, rel=1e-4, abs=1e-4)
    torch.testing.assert_close(feats, want_x, atol=1e-4, rtol=1e-4)
    kept = [i for i, r in enumerate(reads) if r is not None]
    assert len(kept) >= len(prompts) // 2, replies
    for i in kept:
        nll, x = reads[i]
        assert nll == pytest.approx(want_nll[i], rel=1e-4, abs=1e-4)
        torch.testing.assert_close(x, want_x[i], atol=1e-4, rtol=1e-4)


def test_output_capturing_hooks_do_not_switch_off_the_shared_head() -> None:
    """transformers installs output-capturing hooks for good on the first
    ``output_hidden_states=True`` call; they only record outputs, so the shared chat head (and
    capture's, and the generation reads) stay on; a user's own hook switches them off."""
    from oyster_steer.models._model import carries_hooks
    from oyster_steer.testing import tiny_model

    model = tiny_model("llama")
    heads = [model.encode([p])[0][0].tolist() for p in PROMPTS]
    assert _shared_head(model, heads)[1] >= 8
    ids, mask = model.encode(PROMPTS[:2])
    with torch.no_grad():
        model.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert any(m._forward_hooks or m._forward_pre_hooks for m in model.hf.modules())
    assert not carries_hooks(model) and _shared_head(model, heads)[1] >= 8
    handle = model.hf.model.layers[0].register_forward_hook(lambda *a: None)
    try:
        assert carries_hooks(model) and _shared_head(model, heads)[1] == 0
    finally:
        handle.remove()


READERS = {
    "judge_reads": lambda model, p, r: judge_reads(model, p, r, "blocks.1.hook_resid_post"),
    "reply_activations": lambda model, p, r: reply_activations(
        model, p, r, "blocks.1.hook_resid_post"
    ),
    "check_reply_pairs": lambda model, p, r: check_reply_pairs(p, r),
}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_both_reply_readers_refuse_unpaired_or_empty_input_alike(tiny, read) -> None:
    """judge_reads and reply_activations share check_reply_pairs: the same two errors."""
    with pytest.raises(ValueError, match="got 2 prompts and 1 replies: pass one reply per prompt"):
        read(tiny, ["a", "b"], ["x"])
    with pytest.raises(EmptyInputError, match="no replies to read: pass at least one"):
        read(tiny, [], [])
    assert check_reply_pairs(["a"], [""]) is None  # an empty reply is still a reply
