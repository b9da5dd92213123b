"""Reasoning spans on a tiny Qwen3-format model: per-row span writes, after-thinking reads, compile.

Each batch row is fed a chosen token stream through real KV-cache decode passes (or, KV cache
off, the whole sequence every step), so rows sit in different spans at the same step: one thinks
then answers, one never thinks, one has a closed think block in its chat history, one has a prompt
that ends in ``<think>`` (DeepSeek-R1's template). What a hook writes is the difference between
the block's output recorded after the patch's hook and before it; the reference applies the
vector by index on the host from a plain-python span reference.
"""

from __future__ import annotations

import pytest
import torch

from oyster_steer.backends import position_ids
from oyster_steer.control import ControlPlan, ThinkMarkers, bind, patch_plan
from oyster_steer.control._spans import host_spans, parse_positions
from oyster_steer.probes._probe import LinearProbe
from oyster_steer.steering._steer import patch
from oyster_steer.testing import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

WRITE = "blocks.0.hook_resid_post"  # before the read site: the answer's first token tests the latch
READ = "blocks.1.hook_resid_post"
INTENTS = ("benign", "borderline", "vulnerable", "malicious")


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen3", reasoning=True)


@pytest.fixture(scope="module")
def markers(model):
    return ThinkMarkers.from_tokenizer(model.tokenizer)


@pytest.fixture(scope="module")
def rows(model):
    """(prompt ids, generated stream) per row: four rows in four different span histories."""
    tok = model.tokenizer
    o, c = tok.convert_tokens_to_ids(["<think>", "</think>"])
    words = tok("one two three four five six", add_special_tokens=False)["input_ids"]
    a, b, d, e, f, g = words[:6]

    def chat(messages, **kw):
        return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **kw)

    user = [{"role": "user", "content": "How do I bake bread?"}]
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>greet back</think>Hello!"},
        {"role": "user", "content": "Tell me a fact."},
    ]
    r1 = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False) + "<think>\n"
    return [
        (_ids(chat(user)), [o, a, b, c, d, e, f]),  # thinks, then answers
        (_ids(chat(user, enable_thinking=False)), [a, b, d, e, f, g, a]),  # closed block: answers
        (_ids(chat(history)), [a, o, b, c, d, e, f]),  # history's block is closed; thinks late
        (
            tok(r1, add_special_tokens=False)["input_ids"],
            [a, b, d, e, c, f, g],
        ),  # R1: opens in prompt
    ]


def _ids(out):
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def _open_and_closed_think(tok):
    """The bread question as prompt text that opens a think block (DeepSeek-R1's template) and as
    one whose think block is empty and closed (Qwen3's ``enable_thinking=False``)."""
    user = [{"role": "user", "content": "How do I bake bread?"}]
    r1 = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False) + "<think>\n"
    closed = tok.apply_chat_template(
        user, add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    return r1, closed


def reference_spans(prompt, stream, o, c):
    """Plain-python reference: 0 prompt, 1 thinking (markers included), 2 answer."""
    state, out = "none", []
    for i, t in enumerate(prompt + stream):
        if i < len(prompt):
            out.append(0)
        else:
            out.append(1 if t in (o, c) or state == "open" else 2)
        state = "open" if t == o else "closed" if t == c else state
    return out


def _pad(prompts, pad):
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def feed(model, rows, *, cache=True):
    """Prefill the left-padded prompts, then feed each row's stream one token per pass."""
    ids, mask = _pad([p for p, _ in rows], model.pad_id)
    stream = torch.tensor([s for _, s in rows])  # (B, N)
    width = ids.shape[1]
    with torch.no_grad():
        if cache:
            out = model.hf(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
            past = out.past_key_values
            for k in range(stream.shape[1]):
                mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=mask.dtype)], 1)
                pos = position_ids(mask)[:, -1:]
                out = model.hf(
                    input_ids=stream[:, k : k + 1],
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=past,
                )
                past = out.past_key_values
        else:
            model.hf(
                input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False
            )
            for k in range(stream.shape[1]):
                ids = torch.cat([ids, stream[:, k : k + 1]], 1)
                mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=mask.dtype)], 1)
                model.hf(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=position_ids(mask),
                    use_cache=False,
                )
    return width, stream.shape[1]


class Recorder:
    """Block outputs per pass, recorded by a plain forward hook (before or after the patch's)."""

    def __init__(self, module):
        self.passes = []
        self.handle = module.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        out = output[0] if isinstance(output, tuple) else output
        self.passes.append(out.detach().clone())

    def tokens(self, cache):
        """(B, N_total, d): every token once (KV cache) or the last full pass (cache off)."""
        return torch.cat(self.passes, 1) if cache else self.passes[-1]


def written(model, rows, make_handle, *, cache=True, layer=0):
    block = model.hf.get_submodule(f"model.layers.{layer}")
    before = Recorder(block)
    handle = make_handle()
    after = Recorder(block)
    try:
        width, n = feed(model, rows, cache=cache)
        return after.tokens(cache) - before.tokens(cache), handle, width
    finally:
        for h in (after.handle, before.handle):
            h.remove()
        handle.remove()


def expected_spans(model, rows, width):
    """(B, width + N) reference span codes, left padding counted as prompt."""
    o, c = model.tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    out = []
    for prompt, stream in rows:
        pad = width - len(prompt)
        out.append([0] * pad + reference_spans(prompt, stream, o, c))
    return torch.tensor(out)


def test_reference_and_host_spans_agree_on_every_row(model, markers, rows):
    o, c = markers.open[0], markers.close[0]
    for prompt, stream in rows:
        assert host_spans(prompt + stream, len(prompt), markers) == reference_spans(
            prompt, stream, o, c
        )
    spans = [reference_spans(p, s, o, c)[len(p) :] for p, s in rows]
    assert spans == [[1, 1, 1, 1, 2, 2, 2], [2] * 7, [2, 1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 1, 2, 2]]


@pytest.mark.parametrize("cache", [True, False], ids=["kv-cache", "no-cache"])
@pytest.mark.parametrize(
    "positions", ["thinking", "answer", "prompt+answer", "thinking+answer", "prompt+thinking"]
)
def test_vector_writes_exactly_the_selected_spans(model, rows, positions, cache):
    """(Plain ``"generated"`` keeps the position tracker: with the KV cache off it sees prompts.)"""
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))
    delta, _, width = written(
        model, rows, lambda: patch(model, {WRITE: v}, 2.0, positions), cache=cache
    )
    spans = expected_spans(model, rows, width)  # (B, N)
    chosen = parse_positions(positions)
    keep = torch.zeros_like(spans, dtype=torch.bool)
    for code, name in enumerate(("prompt", "thinking", "answer")):
        if name in chosen:
            keep |= spans == code
    want = keep.unsqueeze(-1).float() * (2.0 * v)
    torch.testing.assert_close(delta, want, atol=1e-5, rtol=1e-5)
    assert keep.any() and (~keep).any()  # both kinds of token occur: the test can fail


@pytest.fixture(scope="module")
def probe(model):
    w = torch.randn(len(INTENTS), model.d_model, generator=torch.Generator().manual_seed(2)) * 0.3
    d = model.d_model
    return LinearProbe(READ, INTENTS, w, torch.zeros(len(INTENTS)), torch.zeros(d), torch.ones(d))


@pytest.fixture(scope="module")
def vector(model):
    return {WRITE: torch.randn(model.d_model, generator=torch.Generator().manual_seed(3))}


def _plan(probe, vector, **kw):
    strengths = {"help": 1.0, "guide": 3.0, "redirect": -2.0}
    return ControlPlan(probe, [bind(vector, strengths, name="v")], **kw)


def test_plan_schedule_counts_steps_within_each_span(model, rows, probe, vector):
    schedule = (0.0, 1.0, 2.0, 3.0)
    plan = _plan(probe, vector, positions="thinking+answer", schedule=schedule)
    delta, handle, width = written(model, rows, lambda: patch_plan(model, plan))
    spans = expected_spans(model, rows, width)
    # index within the span, counted on the host
    index = torch.full_like(spans, -1)
    for b in range(spans.shape[0]):
        seen = {1: 0, 2: 0}
        for t in range(spans.shape[1]):
            s = int(spans[b, t])
            if s:
                index[b, t] = seen[s]
                seen[s] += 1
    weight = torch.tensor(schedule)[(index + 1).clamp(0, len(schedule) - 1)] * (spans > 0)
    # the gates latched at the prompt (read="last") times the stacked vector, by hand
    with patch_plan(model, plan) as h:
        feed(model, rows)
        gates = h.decisions().gates  # (B, S)
    stacked = plan.stacked(WRITE)  # (S, d)
    want = weight.unsqueeze(-1) * (gates @ stacked).unsqueeze(1)
    torch.testing.assert_close(delta, want, atol=1e-4, rtol=1e-4)


def test_after_thinking_latches_the_probe_at_the_close_marker_and_steers_the_answer(
    model, rows, probe, vector, markers
):
    plan = _plan(probe, vector, read="after_thinking", positions="answer")
    read_block = model.hf.get_submodule("model.layers.1")
    acts = Recorder(read_block)
    try:
        delta, handle, width = written(model, rows, lambda: patch_plan(model, plan))
    finally:
        acts.handle.remove()
    x = acts.tokens(True)  # (B, N, d) what the read hook saw at each token
    spans = expected_spans(model, rows, width)
    first = (spans == 2).long().argmax(-1)  # (B,) first answer token (every row answers)
    assert bool((spans == 2).any(-1).all())
    at = first - 1  # the decision token: </think>, or the last prompt token of a non-thinker
    close = markers.close[0]
    ids = [[0] * (width - len(p)) + p + s for p, s in rows]
    assert ids[0][int(at[0])] == close and ids[3][int(at[3])] == close  # decided at </think>
    assert int(at[1]) == int(at[2]) == width - 1  # rows 1, 2 answer at once: last prompt token
    feat = x[torch.arange(4), at]  # (B, d)
    want_post = probe.probs(feat)
    # decisions are read back from a second identical run (the handle above is removed)
    with patch_plan(model, plan) as h:
        feed(model, rows)
        d = h.decisions()
    torch.testing.assert_close(d.posterior, want_post, atol=1e-5, rtol=1e-5)
    stacked = plan.stacked(WRITE)
    answer = (spans == 2).unsqueeze(-1).float()
    want = answer * (d.gates @ stacked).unsqueeze(1)  # every answer token, the first included
    torch.testing.assert_close(delta, want, atol=1e-4, rtol=1e-4)
    assert d.gates.abs().sum() > 0


def test_after_thinking_without_an_answer_yet_stays_undecided(model, rows, probe, vector):
    plan = _plan(probe, vector, read="after_thinking", positions="all")
    thinking_only = [(rows[0][0], rows[0][1][:3])]  # <think> a b: still thinking
    with patch_plan(model, plan) as h:
        feed(model, thinking_only)
        d = h.decisions()
    assert d.gates.abs().sum() == 0 and d.posterior.abs().sum() == 0


def test_trace_marks_the_spans(model, rows, probe, vector):
    plan = _plan(probe, vector, read="after_thinking", positions="answer")
    with patch_plan(model, plan, trace=True) as h:
        width, n = feed(model, rows)
        tr = h.trace()
    assert torch.equal(tr.spans, expected_spans(model, rows, width))
    assert tr.span_names == ("prompt", "thinking", "answer")
    # applied gates are zero outside the answer
    assert (tr.applied[tr.spans != 2] == 0).all() and (tr.applied[tr.spans == 2] != 0).any()


def test_explicit_marker_ids_override_the_tokenizer(model, rows):
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(4))
    a, b = model.tokenizer("one two", add_special_tokens=False)["input_ids"][:2]
    stream_rows = [(rows[1][0], [a, b, a, b, a, b, a])]
    delta, _, width = written(
        model, stream_rows, lambda: patch(model, {WRITE: v}, 1.0, "thinking", think_markers=(a, b))
    )
    # "one" opens, "two" closes: every generated token is a marker -> thinking
    gen = delta[0, width:]
    torch.testing.assert_close(gen, v.expand_as(gen), atol=1e-5, rtol=1e-5)


def test_invalid_positions_and_markers_raise_one_sentence(model, probe, vector):
    with pytest.raises(ValueError, match="positions='thoughts'"):
        _plan(probe, vector, positions="thoughts")
    with pytest.raises(ValueError, match="share none"):
        ThinkMarkers(5, 5)
    with pytest.raises(TypeError, match="marker pair"):
        patch(model, vector, 1.0, "thinking", think_markers=7)


def test_span_plan_compiles_fullgraph_and_static_cache_generation_matches_eager(
    model, rows, probe, vector
):
    from torch._dynamo.utils import counters
    from transformers import CompileConfig

    plan = _plan(
        probe, vector, read="after_thinking", positions="thinking+answer", schedule=(0, 1, 0.5)
    )
    ids, mask = _pad([p for p, _ in rows], model.pad_id)
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    with torch.no_grad(), patch_plan(model, plan):
        eager = model.hf(**kwargs).logits
        torch._dynamo.reset()  # fullgraph=True raises on any graph break
        compiled = torch.compile(model.hf, fullgraph=True, backend="eager")(**kwargs).logits
    torch.testing.assert_close(compiled, eager)

    config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    config._compile_all_devices = True
    gen = dict(max_new_tokens=6, do_sample=False, pad_token_id=model.pad_id)
    with torch.no_grad(), patch_plan(model, plan) as h:
        eager = model.hf.generate(ids, attention_mask=mask, **gen)
        d_eager = h.decisions()
        torch._dynamo.reset()
        counters.clear()
        compiled = model.hf.generate(
            ids, attention_mask=mask, cache_implementation="static", compile_config=config, **gen
        )
        d_comp = h.decisions()
    assert hasattr(model.hf, "_compiled_call")  # decode steps ran through the compiled forward
    assert counters["stats"]["unique_graphs"] == 1  # the decode step compiles once, not per step
    assert torch.equal(compiled, eager)
    torch.testing.assert_close(d_comp.gates, d_eager.gates)


def test_span_state_carried_between_passes_lives_in_one_fixed_buffer(model, rows, probe, vector):
    """What a pass leaves for the next (prompt ends, marker state, span counts) is updated in
    place in one static buffer, never a tensor the previous pass made: under CUDA-graph replay
    those are overwritten by the next replay of any graph (the position tracker's bug, found on
    an H200)."""
    plan = _plan(probe, vector, read="after_thinking", positions="thinking+answer")
    ids, mask = _pad([p for p, _ in rows], model.pad_id)
    gen = dict(max_new_tokens=4, do_sample=False, pad_token_id=model.pad_id)
    with torch.no_grad(), patch_plan(model, plan) as h:
        spans = h._state.spans
        model.hf.generate(ids, attention_mask=mask, **gen)
        buf = spans._local.carry
        first = buf.clone()
        out = model.hf.generate(ids, attention_mask=mask, **gen)
        assert spans._local.carry is buf and hasattr(buf, "_dynamo_static_input_type")
        torch.testing.assert_close(buf, first)  # the same sequences re-tracked from their start
    assert out.shape[1] == ids.shape[1] + 4


@pytest.mark.parametrize("arch", ["qwen3", "smollm3"])
@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_span_steering_agrees_across_backends(arch, backend):
    """Reasoning families on every backend: span-steered greedy generation equals the HF backend's."""
    from oyster_steer.backends import get_backend

    ref, other = tiny_model(arch, reasoning=True), tiny_model(arch, backend, reasoning=True)
    r1, closed = _open_and_closed_think(ref.tokenizer)
    ids, mask = ref.encode([r1, closed], chat=False)
    v = {WRITE: 4.0 * torch.randn(ref.d_model, generator=torch.Generator().manual_seed(5))}
    out = {}
    for name, m in (("hf", ref), (backend, other)):
        with torch.no_grad(), patch(m, v, 1.0, "thinking"):
            out[name] = get_backend(m.backend).generate(m, ids, mask, max_new_tokens=6)
    with torch.no_grad():
        plain = get_backend("hf").generate(ref, ids, mask, max_new_tokens=6)
    assert torch.equal(out[backend], out["hf"])
    assert not torch.equal(out["hf"][0], plain[0])  # row 0 thinks: steered
    assert torch.equal(out["hf"][1], plain[1])  # row 1 answers: untouched by "thinking"


def test_token_trace_and_its_figure_mark_the_spans(model, probe):
    from oyster_steer.plotting import plot_token_trace
    from oyster_steer.probes import token_trace

    r1, closed = _open_and_closed_think(model.tokenizer)
    thinking = token_trace(model, {"intent": probe}, r1, generate=4, chat=False)
    answering = token_trace(model, {"intent": probe}, closed, generate=4, chat=False)
    n = thinking.n_prompt
    assert thinking.spans == ("prompt",) * n + ("thinking",) * 4
    assert answering.spans == ("prompt",) * answering.n_prompt + ("answer",) * 4
    over_thinking = thinking.span_probs("intent", "thinking")  # readings over the reasoning
    torch.testing.assert_close(over_thinking, thinking.probs["intent"][n:], equal_nan=True)
    fig = plot_token_trace(thinking)
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(b.x0, b.x1) for b in bands] == [(-0.5, n - 0.5), (n - 0.5, n + 3.5)]
    assert {a.text for a in fig.layout.annotations} >= {"prompt", "thinking"}


def test_thinking_budget_closes_the_block_after_budget_thinking_tokens(model, markers):
    from oyster_steer.control import ThinkingBudget

    r1, closed = _open_and_closed_think(model.tokenizer)
    ids, mask = model.encode([r1, closed], chat=False)
    budget = ThinkingBudget(markers, budget=3, n_prompt=ids.shape[1])
    with torch.no_grad():
        out = model.hf.generate(
            ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
            pad_token_id=model.pad_id, logits_processor=[budget],
        )  # fmt: skip
    new = out[:, ids.shape[1] :].tolist()
    close = markers.close[0]
    assert new[0][3] == close and close not in new[0][:3]  # 3 thinking tokens, then </think>
    assert close not in new[1]  # a row that is not thinking is never forced
    with pytest.raises(ValueError, match="budget=-1"):
        ThinkingBudget(markers, -1, 0)
