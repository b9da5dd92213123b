"""Policy: the constructive-safety payoffs pick the intended strategy, rules threshold exactly."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer import DEFAULT_PAYOFF, Policy
from oyster_steer.control._policy import DEFAULT_INTENTS, decide


def _mix(q: float, a: str, b: str) -> torch.Tensor:
    """(1, 4) posterior with ``1 - q`` on intent ``a`` and ``q`` on intent ``b``."""
    p = torch.zeros(1, 4)
    p[0, DEFAULT_INTENTS.index(a)] += 1 - q
    p[0, DEFAULT_INTENTS.index(b)] += q
    return p


def _strategy(policy: Policy, posterior: torch.Tensor) -> str:
    return policy.strategies[int(policy.gates(posterior).argmax())]


def test_each_pure_intent_gets_its_constructive_strategy():
    policy = Policy()
    chosen = {intent: _strategy(policy, _mix(0.0, intent, intent)) for intent in DEFAULT_INTENTS}
    assert chosen == {
        "benign": "help",
        "borderline": "help",
        "vulnerable": "guide",
        "malicious": "redirect",
    }


def test_default_payoff_states_the_two_costs_explicitly():
    u = dict(zip(("help", "guide", "redirect"), DEFAULT_PAYOFF, strict=True))
    vulnerable, malicious = DEFAULT_INTENTS.index("vulnerable"), DEFAULT_INTENTS.index("malicious")
    assert u["redirect"][vulnerable] == pytest.approx(-0.8)  # refusing a vulnerable user
    assert u["help"][malicious] == pytest.approx(-2.0)  # complying with a malicious one
    assert (DEFAULT_PAYOFF.max(0).values == 1.0).all()  # the best reply to each type scores +1


@pytest.mark.parametrize(
    ("a", "b", "cuts", "order"),
    [
        ("benign", "malicious", (3 / 13, 7 / 12), ("help", "guide", "redirect")),
        ("vulnerable", "malicious", (9 / 14,), ("guide", "redirect")),
    ],
)
def test_crossovers_match_the_documented_thresholds(a, b, cuts, order):
    policy, eps = Policy(), 1e-3
    for cut, (before, after) in zip(cuts, zip(order, order[1:], strict=False), strict=True):
        assert _strategy(policy, _mix(cut - eps, a, b)) == before
        assert _strategy(policy, _mix(cut + eps, a, b)) == after


def test_expected_utility_is_posterior_times_payoff():
    post = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), -1)
    torch.testing.assert_close(Policy().expected_utility(post), post @ DEFAULT_PAYOFF.T)


def test_soft_gates_are_a_distribution_peaked_on_the_hard_choice():
    post = torch.softmax(torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * 3, -1)
    soft = Policy(mode="soft", temperature=0.05).gates(post)
    torch.testing.assert_close(soft.sum(-1), torch.ones(64))
    assert torch.equal(soft.argmax(-1), Policy().gates(post).argmax(-1))
    hard = Policy().gates(post)
    assert set(hard.unique().tolist()) <= {0.0, 1.0} and torch.equal(hard.sum(-1), torch.ones(64))


def test_decide_matches_the_policy_methods():
    post = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(2)), -1)
    policy = Policy(mode="soft", temperature=0.3)
    eu, weights, gates = decide(post, policy.payoff, policy.mode, policy.temperature)
    torch.testing.assert_close(eu, policy.expected_utility(post))
    torch.testing.assert_close(weights, policy.weights(post))
    torch.testing.assert_close(gates, policy.gates(post))


@settings(max_examples=60, deadline=None)
@given(p=st.floats(0.0, 1.0), t=st.floats(0.01, 0.99))
def test_rule_opens_iff_probability_exceeds_threshold(p, t):
    policy = Policy.rule(t, labels=("safe", "risky"))
    gate = policy.gates(torch.tensor([[1 - p, p]], dtype=torch.float64))
    expected = 1.0 if p - t > 1e-9 else 0.0
    if abs(p - t) > 1e-9:  # exactly at the threshold float rounding decides
        assert gate[0, 1].item() == expected


def test_reindex_follows_the_probe_label_order():
    policy = Policy()
    order = ("malicious", "benign", "vulnerable", "borderline")
    moved = policy.reindex(order)
    post = torch.softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(3)), -1)
    perm = [DEFAULT_INTENTS.index(n) for n in order]
    torch.testing.assert_close(moved.expected_utility(post[:, perm]), policy.expected_utility(post))


def test_meta_round_trip():
    policy = Policy(mode="soft", temperature=0.2)
    back = Policy.from_meta(policy.to_meta(), policy.payoff)
    assert back.to_meta() == policy.to_meta() and torch.equal(back.payoff, policy.payoff)


def test_gates_compile_without_graph_breaks():
    policy = Policy()
    fn = torch.compile(policy.gates, fullgraph=True, backend="eager")
    post = torch.softmax(torch.randn(2, 4), -1)
    torch.testing.assert_close(fn(post), policy.gates(post))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"payoff": torch.zeros(2, 4)}, r"payoff has shape \(2, 4\) but 3 strategies x 4 intents"),
        ({"strategies": ("a", "a", "b")}, r"must be non-empty and unique"),
        ({"payoff": torch.full((3, 4), float("nan"))}, r"NaN or infinite"),
        ({"mode": "greedy"}, r"mode='greedy' is not a policy mode"),
        ({"temperature": 0.0}, r"temperature=0.0 must be > 0"),
    ],
)
def test_invalid_policies_raise_one_sentence(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Policy(**kwargs)


def test_reindex_refuses_other_classes_and_rule_refuses_bad_threshold():
    with pytest.raises(ValueError, match=r"do not match the policy's intents"):
        Policy().reindex(("safe", "harmful"))
    with pytest.raises(ValueError, match=r"threshold=1.5 is not a probability"):
        Policy.rule(1.5)
