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
    [_plan, _lowrank_plan, _per_strategy_plan],
    ids=["vectors", "with-low-rank", "per-strategy-schedule"],
)
def test_hot_path_compiles_without_graph_breaks(make):
    state = _state(make())
    state.prepare(["a", "b"], np.array([0, 3, 4]), np.array([3, 2]), np.array([0, 1]))
    x, positions = torch.randn(4, D), torch.tensor([0, 1, 2, 1])
    want = _step(state, positions, x)
    torch._dynamo.reset()
    got = torch.compile(lambda p, h: _step(state, p, h), fullgraph=True, backend="eager")(
        positions, x
    )
    assert all(torch.allclose(g, w) for g, w in zip(got, want, strict=True))


def test_unsupported_read_is_refused():
    with pytest.raises(ValueError, match="read='running', which the vLLM plugin does not support"):
        _state(_plan(read="running"))
    for read in ("mean", "last+mean"):  # prompt-pooled reads: the plugin reads one token
        with pytest.raises(ValueError, match=re.escape(f"read='{read}', which") + ".*read='last'"):
            _state(_plan(read=read))


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
