"""The vLLM plugin's per-token plan state, without vLLM: latching per request slot, and no host
syncs in the hot path (``torch.compile(fullgraph=True)``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from oyster_steer import ControlPlan, LinearProbe, bind
from oyster_steer.serving.vllm._state import PlanState

D, INTENTS = 8, ("benign", "borderline", "vulnerable", "malicious")


def _plan(site="blocks.1.hook_resid_post", **kw):
    w = torch.zeros(4, D)
    w[0, 0], w[2, 1], w[3, 2] = (
        50.0,
        50.0,
        50.0,
    )  # feature axis 0 -> benign, 1 -> vulnerable, 2 -> malicious
    probe = LinearProbe(site, INTENTS, w, torch.zeros(4), torch.zeros(D), torch.ones(D))
    vec = {"blocks.0.hook_resid_post": torch.ones(D), "blocks.2.hook_resid_post": torch.ones(D)}
    return ControlPlan(probe, [bind(vec, {"guide": 1.0, "redirect": 2.0})], **kw)


def _state(plan):
    return PlanState(
        plan,
        n_layers=3,
        d_model=D,
        device=torch.device("cpu"),
        dtype=torch.float32,
        max_tokens=16,
        max_slots=2,
    )


def _step(state, positions, x):
    """One flattened step: begin, a write before the read, the read, a write after it."""
    state.begin(positions, x.shape[0])
    before = state.write(x, 0)
    state.read(x, True, ())
    return before, state.write(x, 1)


def test_decisions_latch_per_request_at_its_last_prompt_token():
    state = _state(_plan())
    # step 1: request a (prompt of 3, whole) and the first 2 tokens of request b (prompt of 4)
    deciding = state.prepare(["a", "b"], np.array([0, 3, 5]), np.array([3, 4]), np.array([0, 0]))
    assert [r for r, _ in deciding] == ["a"]
    x = torch.zeros(5, D)
    x[2, 1] = 1.0  # a's last prompt token reads "vulnerable" -> guide
    x[3:, 2] = 1.0  # b's tokens read "malicious", but none is b's last prompt token yet
    before, after = _step(state, torch.tensor([0, 1, 2, 0, 1]), x)
    assert torch.equal(before, x)  # prompt tokens: nothing before the read
    assert torch.allclose(after[:3], x[:3] + 1.0)  # a: guide (strength 1) on all its tokens
    assert torch.equal(after[3:], x[3:])  # b: undecided
    sa, sb = state.slots["a"], state.slots["b"]
    # step 2: a decodes (position 3), b finishes its prompt (positions 2, 3): chunked prefill
    deciding = state.prepare(["a", "b"], np.array([0, 1, 3]), np.array([3, 4]), np.array([3, 2]))
    assert [r for r, _ in deciding] == ["b"]
    x = torch.zeros(3, D)
    x[2, 2] = 1.0  # b's last prompt token: malicious -> redirect
    before, after = _step(state, torch.tensor([3, 2, 3]), x)
    assert torch.allclose(before[0], x[0] + 1.0) and torch.equal(before[1:], x[1:])
    assert torch.allclose(after[0], x[0] + 1.0) and torch.allclose(after[1:], x[1:] + 2.0)
    assert state.gates[sa].tolist() == [0.0, 1.0, 0.0] and state.gates[sb].tolist() == [
        0.0,
        0.0,
        1.0,
    ]
    # a finishes; a new request c reuses its slot and starts undecided
    state.release("a")
    state.prepare(["b", "c"], np.array([0, 1, 3]), np.array([4, 5]), np.array([4, 0]))
    assert state.slots["c"] == sa and state.gates[sa].tolist() == [0.0, 0.0, 0.0]
    pending = state.collect([("b", sb)])
    (rec,) = state.records(pending)
    assert rec["strategy"] == "redirect" and rec["intent"] == "malicious"


def test_neutral_inputs_touch_no_request():
    state = _state(_plan())
    state.prepare(["a"], np.array([0, 2]), np.array([2]), np.array([0]))
    x = torch.zeros(2, D)
    x[1, 1] = 1.0
    _step(state, torch.tensor([0, 1]), x)
    gates = state.gates.clone()
    state.neutral()  # a dummy run (profiling, graph capture) with arbitrary positions
    before, after = _step(state, torch.tensor([0, 1, 2, 3]), torch.ones(4, D))
    assert torch.equal(state.gates[:-1], gates[:-1])
    assert torch.equal(before, torch.ones(4, D)) and torch.equal(after, torch.ones(4, D))


def _lowrank_plan():
    from oyster_steer.vectors import LowRankIntervention

    g = torch.Generator().manual_seed(1)
    part = (torch.randn(2, D, generator=g), torch.randn(2, D, generator=g), torch.ones(2))
    iv = LowRankIntervention({"blocks.2.hook_resid_post": part})
    plan = _plan()
    return plan.replace(bindings=[*plan.bindings, bind(iv, {"redirect": 1.0}, name="lr")])


def _per_strategy_plan():
    return _lowrank_plan().replace(schedule={"guide": (1.0, 0.5), "redirect": (1.0, 1.0, 0.25)})


@pytest.mark.parametrize(
    "make",
    [
        _plan,
        _lowrank_plan,
        _per_strategy_plan,
        lambda: _pooled_plan("mean"),
        lambda: _pooled_plan("last+mean"),
    ],
    ids=["vectors", "with-low-rank", "per-strategy-schedule", "mean", "last+mean"],
)
def test_hot_path_compiles_without_graph_breaks(make):
    def prepared():  # the same state twice: a step's reads change it (running sums, latches)
        state = _state(make())
        state.prepare(["a", "b"], np.array([0, 3, 4]), np.array([3, 2]), np.array([0, 1]))
        return state

    x = torch.randn(4, D, generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([0, 1, 2, 1])
    state = prepared()
    want = [*_step(state, positions, x), state.posterior.clone()]
    torch._dynamo.reset()
    state = prepared()
    got = torch.compile(lambda p, h: _step(state, p, h), fullgraph=True, backend="eager")(
        positions, x
    )
    got = [*got, state.posterior]
    assert all(torch.allclose(g, w) for g, w in zip(got, want, strict=True))


def test_unsupported_read_is_refused():
    for read in ("running", "window", "after_thinking"):
        with pytest.raises(
            ValueError, match=re.escape(f"read='{read}', which") + ".*read='last', 'mean' or"
        ):
            _state(_plan(read=read))
    for read in ("last", "mean", "last+mean"):  # served
        assert _state(_plan(read=read)).read_mode == read


def test_low_rank_bindings_are_applied_like_the_library():
    """A learned low-rank action adds strength * ((x @ (W - R).T + b) * gate) @ R per token."""
    from oyster_steer.control._plan import Binding

    g = torch.Generator().manual_seed(0)
    R, W, b = (
        torch.randn(2, D, generator=g),
        torch.randn(2, D, generator=g),
        torch.randn(2, generator=g),
    )
    site = "blocks.2.hook_resid_post"
    base = _plan()
    low = Binding("guide-lowrank", {}, {"guide": 2.0}, lowrank={site: (R, W, b)})
    plan = ControlPlan(base.probe, [*base.bindings, low])
    state = _state(plan)
    assert [s.name for s in state.sites] == ["blocks.0.hook_resid_post", site]
    state.prepare(["a"], np.array([0, 2]), np.array([2]), np.array([0]))
    x = torch.randn(2, D, generator=g)
    x[:, :3] = 0.0
    x[1, 1] = 1.0  # the last prompt token reads "vulnerable" -> guide
    _, after = _step(state, torch.tensor([0, 1]), x)
    edit = 2.0 * ((x @ (W - R).T + b) @ R)
    assert torch.allclose(after, x + 1.0 + edit, atol=1e-5)  # vector (guide 1.0) + low-rank edit


def test_per_strategy_schedules_scale_each_requests_own_strategy():
    """Decode tokens of a guided and a redirected request: each gets its strategy's multiplier."""
    plan = _plan(schedule={"guide": (1.0, 0.5), "redirect": (1.0, 1.0, 0.25)})
    state = _state(plan)
    # step 1: both prompts whole (a: 2 tokens -> guide, b: 2 tokens -> redirect)
    state.prepare(["a", "b"], np.array([0, 2, 4]), np.array([2, 2]), np.array([0, 0]))
    x = torch.zeros(4, D)
    x[1, 1], x[3, 2] = 1.0, 1.0
    _, after = _step(state, torch.tensor([0, 1, 0, 1]), x)
    assert torch.allclose(after, x + torch.tensor([1.0, 1.0, 2.0, 2.0])[:, None])  # prompt: 1
    for positions, guide, redirect in (
        ([2, 2], 0.5, 1.0),
        ([3, 3], 0.5, 0.25),
        ([4, 4], 0.5, 0.25),
    ):
        # a decode step: one token each, the i-th generated token fed back
        plen = np.array([2, 2])
        state.prepare(["a", "b"], np.array([0, 1, 2]), plen, np.array(positions))
        x = torch.zeros(2, D)
        before, after = _step(state, torch.tensor(positions), x)
        want = torch.tensor([1.0 * guide, 2.0 * redirect])[:, None].expand(2, D)
        assert torch.allclose(before, want) and torch.allclose(after, want)


# -- read="mean" / "last+mean": a per-slot running sum over each request's prompt tokens ----------


def _pooled_plan(read, mon_pool="last"):
    """A plan whose gate reads ``read`` ("mean" or "last+mean") and a monitor fit on the last
    token (under "last+mean" it reads its own half of the feature, as in the library), or on
    both (``mon_pool="last+mean"``: a risk monitor fit like the gate)."""
    g = torch.Generator().manual_seed(3)
    width = 2 * D if read == "last+mean" else D
    meta = {"pool": read}
    probe = LinearProbe(
        "blocks.1.hook_resid_post",
        INTENTS,
        torch.randn(4, width, generator=g),
        torch.randn(4, generator=g),
        torch.randn(width, generator=g) * 0.1,
        torch.rand(width, generator=g) + 0.5,
        meta=meta,
    )
    mw = 2 * D if mon_pool == "last+mean" else D
    mon = LinearProbe(
        "blocks.0.hook_resid_post",
        INTENTS,
        torch.randn(4, mw, generator=g),
        torch.zeros(4),
        torch.zeros(mw),
        torch.ones(mw),
        meta={"pool": mon_pool},
    )
    vec = {"blocks.0.hook_resid_post": torch.ones(D), "blocks.2.hook_resid_post": torch.ones(D)}
    return ControlPlan(
        probe,
        [bind(vec, {"guide": 1.0, "redirect": 2.0})],
        read=read,
        monitors={"m": mon},
    )


def _want(plan, prompt):
    """The library's reading of one whole prompt (T, d): posterior of the gate and the monitor."""
    last, mean = prompt[-1], prompt.mean(0)
    feature = torch.cat([last, mean]) if plan.read == "last+mean" else mean
    w, b = plan.probe.folded()
    mw, mb = plan.monitors["m"].folded()
    mon = last if plan.read == "last+mean" else mean  # a last-token monitor reads its own half
    if plan.monitors["m"].pool == "last+mean":
        mon = feature
    return (feature @ w.T + b).softmax(-1), (mon @ mw.T + mb).softmax(-1)


def _pooled_step(state, positions, x0, x1):
    """begin; the monitor's read (block 0) and the gate's read (block 1) of one flattened step."""
    state.begin(positions, x0.shape[0])
    state.read(x0, False, ("m",))
    state.read(x1, True, ())


@pytest.mark.parametrize(
    ("read", "mon_pool"), [("mean", "last"), ("last+mean", "last"), ("last+mean", "last+mean")]
)
def test_pooled_reads_latch_the_prompt_mean_across_chunks_batches_and_preemption(
    read, mon_pool, caplog
):
    plan = _pooled_plan(read, mon_pool)
    state = _state(plan)
    g = torch.Generator().manual_seed(5)
    pa, pb, pc = (torch.randn(n, 2, D, generator=g) for n in (7, 3, 4))  # (T, site, d)
    # step 1: a's first chunk (3 of 7 prompt tokens) beside b's whole prompt (3 tokens)
    deciding = state.prepare(["a", "b"], np.array([0, 3, 6]), np.array([7, 3]), np.array([0, 0]))
    assert [r for r, _ in deciding] == ["b"]
    x = torch.cat([pa[:3], pb])
    _pooled_step(state, torch.tensor([0, 1, 2, 0, 1, 2]), x[:, 0], x[:, 1])
    sa, sb = state.slots["a"], state.slots["b"]
    assert torch.equal(state.posterior[sa], torch.zeros(4))  # a: undecided after its first chunk
    # step 2: b decodes (position 3) between a's second chunk (3 tokens) and c's start
    deciding = state.prepare(
        ["b", "a", "c"], np.array([0, 1, 4, 5]), np.array([3, 7, 4]), np.array([3, 3, 0])
    )
    assert deciding == []
    x = torch.cat([torch.randn(1, 2, D, generator=g), pa[3:6], pc[:1]])
    _pooled_step(state, torch.tensor([3, 3, 4, 5, 0]), x[:, 0], x[:, 1])
    # step 3: a's last prompt token, then c's remaining three
    deciding = state.prepare(["a", "c"], np.array([0, 1, 4]), np.array([7, 4]), np.array([6, 1]))
    assert [r for r, _ in deciding] == ["a", "c"]
    x = torch.cat([pa[6:], pc[1:]])
    _pooled_step(state, torch.tensor([6, 1, 2, 3]), x[:, 0], x[:, 1])
    sc = state.slots["c"]
    logged = state.records(state.collect(deciding))  # the log, after the step
    assert [r["request_id"] for r in logged] == ["a", "c"]
    for slot, prompt in ((sa, pa), (sb, pb), (sc, pc)):
        gate, mon = _want(plan, prompt[:, 1]), _want(plan, prompt[:, 0])
        assert torch.allclose(state.posterior[slot], gate[0], atol=1e-5)
        assert torch.allclose(state.monitor_post["m"][slot], mon[1], atol=1e-5)
    # a is preempted and recomputes its prompt from position 0 (plus its one generated token):
    # the sum starts afresh, the decision is the same; a fresh request in b's old slot
    # counts only its own prompt
    state.release("b")
    deciding = state.prepare(["a", "d"], np.array([0, 8, 10]), np.array([7, 2]), np.array([0, 0]))
    assert [r for r, _ in deciding] == ["a", "d"]
    assert state.slots["d"] == sb
    pd = torch.randn(2, 2, D, generator=g)
    x = torch.cat([pa, torch.randn(1, 2, D, generator=g), pd])
    _pooled_step(state, torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 0, 1]), x[:, 0], x[:, 1])
    for slot, prompt in ((sa, pa), (sb, pd)):
        assert torch.allclose(state.posterior[slot], _want(plan, prompt[:, 1])[0], atol=1e-5)
    with caplog.at_level("WARNING", logger="vllm.oyster_steer"):
        logged = state.records(state.collect(deciding))  # a's re-read: checked, not logged
    assert [r["request_id"] for r in logged] == ["d"] and not caplog.records
    # a re-read that does differ (other residuals) is reported
    deciding = state.prepare(["a"], np.array([0, 7]), np.array([7]), np.array([0]))
    x = torch.randn(7, 2, D, generator=g) * 5
    _pooled_step(state, torch.arange(7), x[:, 0], x[:, 1])
    with caplog.at_level("WARNING", logger="vllm.oyster_steer"):
        assert state.records(state.collect(deciding)) == []
    assert "a re-read after preemption gave a different decision" in caplog.text
    # a dummy run (profiling, graph capture) leaves every request's decision as it was
    post = state.posterior.clone()
    state.neutral()
    _pooled_step(state, torch.tensor([0, 1, 2, 0]), torch.ones(4, D), torch.ones(4, D))
    assert torch.equal(state.posterior[:-1], post[:-1])


def _chunked_steps(lengths, budget):
    """vLLM-like chunked prefill: each step gives ``budget`` tokens to the requests in order (a
    request whose prompt is done decodes one token); yields (order, starts, computed, counts)."""
    done = [0] * len(lengths)
    while any(c < n for c, n in zip(done, lengths, strict=True)):
        left, order, counts, computed = budget, [], [], []
        for i, n in enumerate(lengths):
            take = min(left, n - done[i]) if done[i] < n else min(left, 1)
            if take:
                order.append(i), counts.append(take), computed.append(done[i])
                left -= take
        yield order, counts, computed
        for i, k in zip(order, counts, strict=True):
            done[i] += k if done[i] < lengths[i] else 0


@pytest.mark.parametrize("read", ["mean", "last+mean"])
def test_pooled_reads_decide_like_the_librarys_hooks_under_chunked_prefill(read):
    """The plugin's per-slot sums, fed a tiny model's real residuals in 4-token steps, against the
    library's own read on the HF backend (one left-padded batch of chat-templated prompts)."""
    from oyster_steer import patch
    from oyster_steer.backends import get_backend
    from oyster_steer.testing import tiny_model

    model = tiny_model(seed=0)
    d, g = model.d_model, torch.Generator().manual_seed(7)
    width = 2 * d if read == "last+mean" else d
    probe = LinearProbe(
        "blocks.1.hook_resid_post",
        INTENTS,
        torch.randn(4, width, generator=g) * 2,
        torch.zeros(4),
        torch.zeros(width),
        torch.ones(width),
        meta={"pool": read},
    )
    mon = LinearProbe(
        "blocks.0.hook_resid_post", INTENTS, torch.randn(4, d, generator=g), torch.zeros(4),
        torch.zeros(d), torch.ones(d),
    )  # fmt: skip
    vec = {"blocks.0.hook_resid_post": torch.randn(d, generator=g)}
    plan = ControlPlan(
        probe, [bind(vec, {"guide": 1.0, "redirect": 2.0})], read=read, monitors={"m": mon}
    )
    prompts = ["Hello there, how are you today?", "Hi", "Write a haiku about autumn leaves."]
    with patch(model, plan) as handle, torch.no_grad():
        get_backend("hf").forward(model, *model.encode(prompts))
        want = handle.decisions()
    # each prompt alone, unpadded: its residuals at blocks 0 and 1 (what vLLM's layers see)
    rows, acts = model.token_rows(prompts), []
    layers = [model.hf.get_submodule(f"{model.spec.layers}.{i}") for i in (0, 1)]
    got: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, a, o: got.append(o)) for m in layers]
    with torch.no_grad():
        for ids in rows:
            got.clear()
            model.hf(torch.tensor([ids]))
            acts.append(torch.stack([t[0] if isinstance(t, tuple) else t for t in got], 2)[0])
    for h in handles:
        h.remove()
    state = PlanState(
        plan, n_layers=model.n_layers, d_model=d, device=torch.device("cpu"),
        dtype=torch.float32, max_tokens=8, max_slots=1,
    )  # fmt: skip
    lengths, names = [len(r) for r in rows], ["a", "b", "c"]
    assert max(lengths) > 4  # prompts longer than a step: chunked over several steps
    for order, counts, computed in _chunked_steps(lengths, budget=4):
        starts = np.concatenate([[0], np.cumsum(counts)])
        state.prepare([names[i] for i in order], starts, np.array([lengths[i] for i in order]),
                      np.array(computed))  # fmt: skip
        pos = torch.cat([torch.arange(c, c + k) for c, k in zip(computed, counts, strict=True)])
        x = torch.cat(
            [
                acts[i][c : c + k] if c < lengths[i] else torch.randn(1, 2, d, generator=g)
                for i, c, k in zip(order, computed, counts, strict=True)
            ]
        )
        _pooled_step(state, pos, x[:, 0], x[:, 1])
    slots = [state.slots[n] for n in names]
    assert torch.allclose(state.posterior[slots], want.posterior, atol=1e-5)
    assert torch.allclose(state.monitor_post["m"][slots], want.monitors["m"], atol=1e-5)
    assert torch.equal(state.gates[slots], want.gates)
    assert len({tuple(p.tolist()) for p in want.posterior.round(decimals=3)}) == 3


@pytest.mark.parametrize("read", ["mean", "last+mean"])
def test_pooled_reads_refuse_prefix_caching_at_load(read, tmp_path, monkeypatch):
    """Prefix caching skips the cached prompt tokens' forward pass: a mean read would miss them."""
    from types import SimpleNamespace

    from oyster_steer import save_plan
    from oyster_steer.serving.vllm._runner import PLAN_ENV, _install

    plan = _pooled_plan(read)
    identity = {"model_fingerprint": "tiny-test", "n_layers": "3"}
    save_plan(plan.replace(identity=identity), tmp_path / "control.safetensors")
    monkeypatch.delenv(PLAN_ENV, raising=False)
    runner = SimpleNamespace(
        model_config=SimpleNamespace(
            model=str(tmp_path),
            hf_text_config=SimpleNamespace(num_hidden_layers=3, hidden_size=D),
        ),
        parallel_config=SimpleNamespace(pipeline_parallel_size=1),
        cache_config=SimpleNamespace(enable_prefix_caching=True),
    )
    with pytest.raises(ValueError, match=re.escape("--no-enable-prefix-caching")):
        _install(runner)
