"""A plan's parts as device tensors (``oyster_steer.control._tensors``): the low-rank stack and
the widened monitors that the library's hooks and the vLLM plugin share."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import ControlPlan, LinearProbe, bind
from oyster_steer.control._plan import Binding
from oyster_steer.control._tensors import stacked_lowrank, widened_probe

D, INTENTS = 6, ("benign", "borderline", "vulnerable", "malicious")
SITES = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post")


def _probe(pool: str = "last", width: int = D) -> LinearProbe:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, width, generator=g)
    meta = {} if pool == "last" else {"pool": pool}
    return LinearProbe(
        SITES[1],
        INTENTS,
        w,
        torch.randn(4, generator=g),
        torch.zeros(width),
        torch.ones(width),
        meta=meta,
    )


def _lowrank(rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(rank, D, generator=g),
        torch.randn(rank, D, generator=g),
        torch.randn(rank, generator=g),
    )


def test_stacked_lowrank_concatenates_each_sites_components_in_site_order():
    """A vector at block 0, rank 2 at block 1, rank 3 at block 2: columns [0, 2) and [2, 5)."""
    (R1, W1, b1), (R2, W2, b2) = _lowrank(2, 1), _lowrank(3, 2)
    plan = ControlPlan(
        _probe(),
        [
            bind({SITES[0]: torch.ones(D)}, {"guide": 1.0}),
            Binding("one", {}, {"guide": 2.0}, lowrank={SITES[1]: (R1, W1, b1)}),
            Binding("two", {}, {"redirect": 0.5}, lowrank={SITES[2]: (R2, W2, b2)}),
        ],
    )
    low, gain = stacked_lowrank(plan, torch.device("cpu"), torch.float64)
    assert low[0] is None
    A, c, R, k0, k1 = low[1]
    assert (k0, k1) == (0, 2) and A.dtype == torch.float64
    assert torch.allclose(A, (W1 - R1).double()) and torch.allclose(R, R1.double())
    assert torch.allclose(c, b1.double())
    assert low[2][3:] == (2, 5) and torch.allclose(low[2][2], R2.double())
    assert gain.dtype == torch.float32 and gain.shape == (len(plan.strategies), 5)
    rows = {s: i for i, s in enumerate(plan.strategies)}
    assert torch.equal(gain[rows["guide"]], torch.tensor([2.0, 2.0, 0.0, 0.0, 0.0]))
    assert torch.equal(gain[rows["redirect"]], torch.tensor([0.0, 0.0, 0.5, 0.5, 0.5]))


def test_stacked_lowrank_of_a_vectors_only_plan_is_empty():
    plan = ControlPlan(_probe(), [bind({SITES[0]: torch.ones(D)}, {"guide": 1.0})])
    low, gain = stacked_lowrank(plan, torch.device("cpu"), torch.float32)
    assert low == [None] and gain.shape == (len(plan.strategies), 0)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_widened_probe_reads_its_own_half_of_last_and_mean(pool):
    probe = _probe(pool)
    w, b = probe.folded()
    assert all(map(torch.equal, widened_probe(probe, both=False), (w, b)))
    wide, wide_b = widened_probe(probe, both=True)
    assert wide.shape == (4, 2 * D) and torch.equal(wide_b, b)
    last, mean = torch.randn(3, D), torch.randn(3, D)
    own = last if pool == "last" else mean
    assert torch.allclose(torch.cat([last, mean], 1) @ wide.T, own @ w.T)


def test_widened_probe_keeps_a_last_plus_mean_probe_as_it_is():
    probe = _probe("last+mean", width=2 * D)
    assert all(map(torch.equal, widened_probe(probe, both=True), probe.folded()))
