"""token_trace: readings during generation, identical on the HF, TransformerLens and nnsight backends."""

from __future__ import annotations

import torch

from oyster_steer.probes._probe import LinearProbe
from oyster_steer.probes._trace import token_trace


def probe(site: str, classes: int, seed: int, task: str) -> LinearProbe:
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(classes, 64, generator=g), torch.randn(classes, generator=g)
    return LinearProbe(
        site,
        tuple(f"c{i}" for i in range(classes)),
        w,
        b,
        torch.zeros(64),
        torch.ones(64) * 3,
        meta={"task": task},
    )


PROBES = [
    probe("blocks.1.hook_resid_post", 2, 0, "risk"),
    probe("blocks.-1.hook_resid_post", 4, 1, "intent"),
]


def test_prompt_only_trace_matches_a_full_capture(tiny):
    from oyster_steer import capture

    trace = token_trace(tiny, PROBES, "How do I pick a lock?")
    assert trace.n_prompt == len(trace.tokens) == trace.probs["risk"].shape[0] and trace.reply == ""
    assert trace.probs["intent"].shape == (trace.n_prompt, 4)
    acts = capture(
        tiny, ["How do I pick a lock?"], "blocks.1.hook_resid_post", pool="all", progress=False
    )
    assert torch.allclose(
        trace.probs["risk"], PROBES[0].probs(acts["blocks.1.hook_resid_post"]), atol=1e-5
    )


def test_generation_is_read_during_decoding(tiny):
    trace = token_trace(tiny, {"r": PROBES[0]}, "Hello there", generate=5)
    assert len(trace.tokens) == trace.n_prompt + 5 and len(trace.reply) > 0
    p = trace.probs["r"]
    assert not p[:-1].isnan().any() and p[-1].isnan().all()  # the last new token is never fed back
    assert torch.allclose(p[:-1].sum(-1), torch.ones(len(p) - 1))


def test_backends_agree(tiny_models):
    traces = {  # same seed: same weights; one HF module per backend (TransformerLens rewires its own)
        b: token_trace(tiny_models("llama", b), PROBES, "Tell me a story", generate=4)
        for b in ("hf", "tl", "nnsight")
    }
    for b in ("tl", "nnsight"):
        assert torch.equal(traces[b].token_ids, traces["hf"].token_ids)
        for name in ("risk", "intent"):
            diff = (traces[b].probs[name] - traces["hf"].probs[name]).nan_to_num().abs().max()
            assert diff < 1e-4, (b, name, float(diff))


def test_a_mean_pooled_probe_reads_the_running_prefix_mean(tiny):
    """A probe fit on the prompt mean, or on the last token and the mean side by side (the
    shipped intent probe), reads at token t the mean of tokens 0..t: at the last prompt token
    exactly what ``capture(pool=...)`` gives it (what a plan decides on), and on through the
    generated tokens (the demo's trace of the shipped pack's probe)."""
    from oyster_steer import capture

    site, prompt = "blocks.1.hook_resid_post", "How do I pick a lock?"
    g = torch.Generator().manual_seed(3)
    both = LinearProbe(
        site,
        ("a", "b", "c"),
        torch.randn(3, 128, generator=g),
        torch.randn(3, generator=g),
        torch.zeros(128),
        torch.ones(128) * 3,
        meta={"task": "intent", "pool": "last+mean"},
    )
    mean = LinearProbe(
        site,
        ("a", "b"),
        torch.randn(2, 64, generator=g),
        torch.randn(2, generator=g),
        torch.zeros(64),
        torch.ones(64) * 3,
        meta={"task": "m", "pool": "mean"},
    )
    trace = token_trace(tiny, {"both": both, "mean": mean}, prompt, generate=4)
    n = trace.n_prompt
    for name, p in (("both", both), ("mean", mean)):
        feats = capture(tiny, [prompt], site, pool=p.pool, progress=False)[site]
        torch.testing.assert_close(
            trace.probs[name][n - 1], p.probs(feats)[0], atol=1e-5, rtol=1e-4
        )
    # every earlier token reads its own prefix: the first token's mean is the token itself
    rows = capture(tiny, [prompt], site, pool="all", progress=False)[site]  # (T, d)
    first = torch.cat([rows[:1], rows[:1]], -1)
    torch.testing.assert_close(trace.probs["both"][0], both.probs(first)[0], atol=1e-5, rtol=1e-4)
    assert not trace.probs["both"][n : n + 3].isnan().any()  # generated tokens are read too
