"""Runtime operators (add, ablate, ablate_add, clamp, custom) and token selection (index lists,
slices, masks, min_token_index), on planted directions in tiny models, with and without KV cache."""

from __future__ import annotations

import pytest
import torch

from oyster_steer.activations import capture
from oyster_steer.backends import position_ids
from oyster_steer.control._operators import Operator, as_operator
from oyster_steer.steering._steer import steer
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._vector import SteeringVector

SITE, NEXT = "blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"  # NEXT reads what SITE wrote
PROMPTS = ["Hi there, how are you today? Tell me about bread.", "Hello"]  # row 1 left-padded


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def planted(model):
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(model.d_model, generator=gen)
    return SteeringVector.from_tensors(model, {SITE: v}), v / v.norm()


def _acts(model, **steering):
    """(tokens, d) residual after SITE, every real token of both prompts.

    A large component along the planted direction is put in first (5 units along u added
    before block 1, carried by the residual), so there is something to ablate or clamp.
    """
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(model.d_model, generator=gen)
    plant = {"blocks.1.hook_resid_pre": 5.0 * v / v.norm()}
    with steer(model, plant):
        if not steering:
            return capture(model, PROMPTS, NEXT, positions="all", progress=False)[NEXT]
        vector = steering.pop("vector")
        with steer(model, vector, **steering):
            return capture(model, PROMPTS, NEXT, positions="all", progress=False)[NEXT]


def test_ablate_leaves_no_projection_and_keeps_the_rest(model, planted):
    v, u = planted
    base, out = _acts(model), _acts(model, vector=v, op="ablate")
    assert (base @ u).abs().min() > 4.0  # the planted component is there to remove
    assert (out @ u).abs().max() < 1e-5
    torch.testing.assert_close(out, base - (base @ u)[:, None] * u, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("value", [3.0, -1.5])
def test_clamp_sets_the_projection(model, planted, value):
    v, u = planted
    base, out = _acts(model), _acts(model, vector=v, op="clamp", value=value)
    torch.testing.assert_close(out @ u, torch.full((len(out),), value), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out - (out @ u)[:, None] * u, base - (base @ u)[:, None] * u, atol=1e-5, rtol=1e-5
    )


def test_ablate_then_add_and_plain_add(model, planted):
    v, u = planted
    norm = v.directions[SITE].norm()
    base = _acts(model)
    both = _acts(model, vector=v, op="ablate_add", strength=2.0)
    torch.testing.assert_close(
        both @ u, torch.full((len(both),), float(2.0 * norm)), atol=1e-4, rtol=1e-5
    )
    added = _acts(model, vector=v, strength=2.0)
    torch.testing.assert_close(
        added - base, (2.0 * v.directions[SITE]).expand_as(base), atol=1e-5, rtol=1e-5
    )


def test_a_custom_operator_gets_the_activation_and_the_scaled_direction(model, planted):
    v, _ = planted
    seen = {}

    def halve_and_shift(x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        seen["direction"] = direction
        return -0.5 * x + direction

    base, out = _acts(model), _acts(model, vector=v, op=halve_and_shift, strength=3.0)
    torch.testing.assert_close(seen["direction"], 3.0 * v.directions[SITE])
    torch.testing.assert_close(out, 0.5 * base + 3.0 * v.directions[SITE], atol=1e-5, rtol=1e-5)


def test_operator_errors():
    with pytest.raises(ValueError, match=r"op='clamp' needs value="):
        as_operator("clamp")
    with pytest.raises(ValueError, match=r"value= is only for op='clamp'"):
        as_operator("ablate", 1.0)
    with pytest.raises(ValueError, match=r"op='scale' is not an operator"):
        Operator("scale")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not finite"):
        as_operator("clamp", float("nan"))


def _per_row(model, flat: torch.Tensor) -> list[torch.Tensor]:
    lengths = [len(r) for r in model.token_rows(PROMPTS)]
    return list(torch.split(flat, lengths))


@pytest.mark.parametrize(
    "positions, min_index, chosen",
    [
        ([0, 2, 5], None, lambda p: p in (0, 2, 5)),
        (slice(3, 9, 2), None, lambda p: p in (3, 5, 7)),
        ("all", 4, lambda p: p >= 4),
        (slice(2, None), 6, lambda p: p >= 6),
    ],
)
def test_token_selection_by_position_under_left_padding(
    model, planted, positions, min_index, chosen
):
    v, _ = planted
    base = _per_row(model, _acts(model))
    out = _per_row(model, _acts(model, vector=v, positions=positions, min_token_index=min_index))
    d = v.directions[SITE]
    for row_base, row_out in zip(base, out, strict=True):
        for p in range(len(row_base)):  # position p = the row's p-th real token
            want = row_base[p] + d if chosen(p) else row_base[p]
            torch.testing.assert_close(row_out[p], want, atol=1e-5, rtol=1e-5)


def _batch_acts(model, **steering) -> torch.Tensor:
    """(B, T, d) residual after SITE for the left-padded batch in PROMPTS' order (no sorting)."""
    from oyster_steer.backends import Hook, get_backend
    from oyster_steer.core._sites import parse_site

    ids, mask = model.encode(PROMPTS)
    found = {}
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(model.d_model, generator=gen)
    with steer(model, {"blocks.1.hook_resid_pre": 5.0 * v / v.norm()}):
        vector = steering.pop("vector", None)
        with steer(model, vector, **steering) if vector is not None else torch.no_grad():
            hook = Hook(parse_site(NEXT), lambda x: found.setdefault("x", x.detach().clone()))
            get_backend(model.backend).forward(model, ids, mask, [hook], logits=False)
    return found["x"], mask


def test_a_mask_selects_per_row_positions(model, planted):
    v, u = planted
    rows = model.token_rows(PROMPTS)
    sel = torch.zeros(2, max(len(r) for r in rows), dtype=torch.bool)  # column j = position j
    sel[0, [1, 4]] = True
    sel[1, 0] = True
    base, pad = _batch_acts(model)
    out, _ = _batch_acts(model, vector=v, positions=sel, op="ablate")
    for b in range(2):
        real = pad[b].nonzero().flatten()  # columns of the row's real tokens, position p = real[p]
        for p, col in enumerate(real.tolist()):
            proj = float(out[b, col] @ u)
            if sel[b, p]:
                assert abs(proj) < 1e-4, (b, p)
            else:
                assert abs(proj - float(base[b, col] @ u)) < 1e-4, (b, p)
    assert int(sel.sum()) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(positions=[2, 30, 31, 33]),
        dict(positions=slice(28, None, 3)),
        dict(min_token_index=30),
        dict(positions=torch.tensor([[False] * 29 + [True] * 20] * 2), op="clamp", value=4.0),
    ],
)
def test_selection_is_the_same_with_and_without_a_kv_cache(model, planted, kwargs):
    """Positions are absolute, so a decode step (one token, KV cache) and a full re-forward agree."""
    v, _ = planted
    ids, mask = model.encode(PROMPTS)
    with steer(model, v, strength=6.0, **kwargs), torch.no_grad():
        cached = model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=model.pad_id,
        )
        full = model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=model.pad_id,
            use_cache=False,
        )
    plain = model.hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=model.pad_id,
    )
    assert torch.equal(cached, full)
    assert not torch.equal(cached, plain)  # the selected generated positions were steered


def test_selection_errors(model, planted):
    v, _ = planted
    for bad, msg in (
        (slice(-3, None), r"slice of non-negative positions"),
        ([-1], r"non-empty list of non-negative int"),
        ("generated_only", r"positions='generated_only' is not supported"),
        (torch.ones(3, dtype=torch.bool), r"\(batch, tokens\) bool"),
    ):
        with pytest.raises(ValueError, match=msg), steer(model, v, positions=bad):
            pass
    with (
        pytest.raises(ValueError, match=r"min_token_index=-2 must be a non-negative int"),
        steer(model, v, min_token_index=-2),
    ):
        pass


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(op="ablate"),
        dict(op="clamp", value=2.0, positions=[1, 3]),
        dict(op="ablate_add", min_token_index=2),
        dict(op=lambda x, d: torch.tanh(x) * d, positions=slice(1, None, 2)),
        dict(positions=torch.ones(2, 64, dtype=torch.bool)),
    ],
)
def test_operator_hooks_compile_without_graph_breaks(model, planted, kwargs):
    """fullgraph=True fails on any host sync or python branch on tensor values inside the hooks."""
    v, _ = planted
    ids, mask = model.encode(PROMPTS)
    pos = position_ids(mask)
    torch._dynamo.reset()
    with steer(model, v, **kwargs), torch.no_grad():
        eager = model.hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        compiled = torch.compile(
            lambda a, b, c: model.hf(input_ids=a, attention_mask=b, position_ids=c).logits,
            fullgraph=True,
            backend="eager",
        )
        torch.testing.assert_close(compiled(ids, mask, pos), eager, atol=1e-5, rtol=1e-5)
