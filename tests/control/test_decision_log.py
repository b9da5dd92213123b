"""DecisionLog: every prompt's decisions of a batched generation, in input order.

``generate_replies`` runs prompts in length order, in batches; ``handle.decisions()`` afterwards
is only the last batch, in batch-row order. The log's row ``i`` must be what the plan decides for
prompt ``i`` when that prompt runs alone.
"""

from __future__ import annotations

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

import oyster_steer as osteer
from oyster_steer.control import ControlPlan, DecisionLog, Decisions, bind, patch_plan
from oyster_steer.eval import generate_replies
from oyster_steer.models._artifacts import model_meta
from oyster_steer.probes._probe import LinearProbe

# not in length order, so that batch rows and input order differ
PROMPTS = [
    VULNERABLE,
    "Hi",
    "Could you explain, step by step and with an example, how compound interest grows?",
    BENIGN,
    "Tell me a joke",
]


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture(scope="module")
def plan(model):
    probe = planted_intent_probe(model, BENIGN, VULNERABLE, READ)
    g = torch.Generator().manual_seed(1)
    vector = {"blocks.1.hook_resid_post": torch.randn(model.d_model, generator=g)}
    # a monitor on a random direction, scaled so that its readings spread over (0, 1): they
    # differ from prompt to prompt (the planted probe's saturate at 0 or 1)
    site = "blocks.1.hook_resid_post"
    acts = osteer.capture(model, PROMPTS, site, progress=False)[site]  # (5, d)
    u = torch.randn(model.d_model, generator=g)
    along = acts @ u
    weight = torch.stack([torch.zeros_like(u), u * 2 / float(along.std())])
    risk = LinearProbe(
        site,
        ("low", "high"),
        weight,
        torch.zeros(2),
        acts.mean(0),
        torch.ones(model.d_model),
    )
    return ControlPlan(
        probe,
        [bind(vector, {"guide": 3.0, "redirect": 3.0}, name="random")],
        policy=osteer.Policy(mode="soft", temperature=0.5),
        monitors={"risk": risk},
        identity=model_meta(model),
    )


def _alone(model, handle, prompt: str) -> Decisions:
    generate_replies(model, [prompt], max_new_tokens=3)
    return handle.decisions()


def test_rows_follow_the_prompts_not_the_batches(model, plan):
    rows = [len(r) for r in model.token_rows(PROMPTS)]
    assert sorted(range(len(rows)), key=rows.__getitem__) != list(range(len(rows)))
    with patch_plan(model, plan) as handle:
        log = DecisionLog(handle)
        generate_replies(model, PROMPTS, max_new_tokens=3, batch_size=3, decisions=log)
        last = handle.decisions()
        alone = [_alone(model, handle, p) for p in PROMPTS]
    got = log.result()
    assert len(last) == 2  # the footgun: only the second batch's rows
    assert len(got) == len(PROMPTS)
    assert got.intents == plan.probe.labels and got.strategies == tuple(plan.strategies)
    assert got.strategy == [a.strategy[0] for a in alone]
    assert got.intent[0] == "vulnerable" and got.intent[3] == "benign"
    for name in ("posterior", "expected_utility", "weights", "gates"):
        want = torch.cat([getattr(a, name) for a in alone])
        torch.testing.assert_close(getattr(got, name), want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.monitors["risk"], torch.cat([a.monitors["risk"] for a in alone]))
    assert got.fault is not None and not got.fault.any()
    assert got.step == 2  # three tokens: the prompt pass then two decode steps
    # the monitor's rows differ from one another, so a row put in the wrong place would show
    assert len({round(float(p), 2) for p in got.monitors["risk"][:, 1]}) == len(PROMPTS)


def test_a_log_can_be_the_after_batch_of_any_loop(model, plan):
    with patch_plan(model, plan) as handle:
        log, again = DecisionLog(handle), DecisionLog(handle)
        generate_replies(model, PROMPTS, max_new_tokens=1, batch_size=2, after_batch=log)
        generate_replies(model, PROMPTS, max_new_tokens=1, batch_size=4, decisions=again)
        generate_replies(model, PROMPTS[:2], max_new_tokens=1, decisions=again)  # starts over
    torch.testing.assert_close(log.result().posterior[:2], again.result().posterior)
    assert len(again.result()) == 2


def test_misuse_says_what_went_wrong(model, plan, tiny_models):
    other = tiny_models("llama", "hf", seed=1)
    with patch_plan(model, plan) as handle:
        log = DecisionLog(handle)
        with pytest.raises(ValueError, match="nothing logged yet"):
            log.result()
        with pytest.raises(ValueError, match="not on the model that generates"):
            generate_replies(other, PROMPTS, max_new_tokens=1, decisions=log)
        generate_replies(model, PROMPTS[:2], max_new_tokens=1)
        with pytest.raises(ValueError, match="holds 2 decision rows but the batch had 3"):
            log([0, 1, 2])
        log([1, 0])
        log.start(model, 3)
        log([2, 0])
        with pytest.raises(IndexError, match="outside the 3 prompts"):
            log([0, 3])
        with pytest.raises(ValueError, match=r"no decisions for prompts \[1\] of 3"):
            log.result()
    with pytest.raises(ValueError, match="was removed"):
        generate_replies(model, PROMPTS, max_new_tokens=1, decisions=log)
    with (
        osteer.patch(model, {READ: torch.zeros(model.d_model)}) as vector_handle,
        pytest.raises(TypeError, match="control plan's handle"),
    ):
        DecisionLog(vector_handle)  # type: ignore[arg-type]
