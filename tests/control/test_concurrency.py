"""Concurrent requests through one patched model: each thread gets its own decisions and text.

A web server (FastAPI, Gradio) runs each request's ``generate`` in its own worker thread on the
same patched ``model.hf``. The plan's per-row state (latched gates, prompt ends, write weights)
and a ``positions="generated"`` vector's position tracker are kept per thread, so interleaved
forward passes never read another request's state. Each test compares every threaded generation
with the same request run alone.
"""

from __future__ import annotations

import threading

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

from oyster_steer.control._plan import ControlPlan, bind
from oyster_steer.models._artifacts import model_meta
from oyster_steer.steering._steer import patch

PROMPTS = [BENIGN, VULNERABLE, "How do I bake bread at home?", "Nobody would notice if I left."]


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf", seed=7)


@pytest.fixture(scope="module")
def plan(model):
    """A planted probe (benign -> help, vulnerable -> guide) and a strong guide vector."""
    probe = planted_intent_probe(model, BENIGN, VULNERABLE, READ)
    g = torch.Generator().manual_seed(3)
    vector = {
        f"blocks.{i}.hook_resid_post": 4 * torch.randn(model.d_model, generator=g) for i in (1, 2)
    }
    return ControlPlan(
        probe, [bind(vector, {"guide": 3.0, "redirect": 3.0})], identity=model_meta(model)
    )


def _generate(model, prompt, n=8):
    ids, mask = model.encode([prompt])
    with torch.no_grad():
        out = model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=model.tokenizer.pad_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


def _run_threads(work, jobs, rounds=3):
    """Run ``work(job)`` for every job in its own thread, ``rounds`` times; returns results, errors."""
    results: dict[tuple[int, int], object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(i, job):
        try:
            barrier.wait()
            for r in range(rounds):
                results[(i, r)] = work(job)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def test_threads_through_one_patched_plan_get_their_own_text_and_decisions(model, plan):
    handle = patch(model, plan)
    try:
        alone = {}
        for p in PROMPTS:
            tokens = _generate(model, p)
            alone[p] = (tokens, handle.decisions().strategy)

        def work(p):
            tokens = _generate(model, p)
            return tokens, handle.decisions().strategy

        results, errors = _run_threads(work, PROMPTS)
    finally:
        handle.remove()
    assert not errors, errors
    assert {alone[BENIGN][1][0], alone[VULNERABLE][1][0]} == {"help", "guide"}  # the test bites
    for (i, _), got in results.items():
        assert got == alone[PROMPTS[i]], f"thread {i} ({PROMPTS[i]!r}) got another request's state"


def test_threads_through_a_generated_positions_vector_match_a_sequential_run(model):
    g = torch.Generator().manual_seed(5)
    vector = {"blocks.1.hook_resid_post": 6 * torch.randn(model.d_model, generator=g)}
    handle = patch(model, vector, positions="generated")
    try:
        alone = {p: _generate(model, p) for p in PROMPTS}
        results, errors = _run_threads(lambda p: _generate(model, p), PROMPTS)
    finally:
        handle.remove()
    assert not errors, errors
    for (i, _), got in results.items():
        assert got == alone[PROMPTS[i]]


def test_decisions_are_per_thread(model, plan):
    """A thread that ran nothing sees no decisions, not another thread's."""
    handle = patch(model, plan)
    try:
        _generate(model, VULNERABLE)
        seen = []
        t = threading.Thread(target=lambda: seen.append(len(handle.decisions())))
        t.start()
        t.join()
    finally:
        handle.remove()
    assert seen == [0]
