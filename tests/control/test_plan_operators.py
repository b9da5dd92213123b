"""Runtime operators inside a control plan: gated per row in the fused write hook.

A planted probe sends the vulnerable prompt to "guide" and the benign one to "help"; a vector
bound to "guide" with ``op="ablate"`` / ``"clamp"`` / ``"ablate_add"`` / a callable must edit the
vulnerable row only and leave the benign row exactly as the unpatched model has it.
"""

from __future__ import annotations

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

from oyster_steer.backends import position_ids
from oyster_steer.control import ControlPlan, bind, load_plan, patch_plan, save_plan
from oyster_steer.models._artifacts import model_meta
from oyster_steer.vectors import SteeringVector

SITE, NEXT = "blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture(scope="module")
def probe(model):
    """Planted: benign -> p(benign) ~ 1, vulnerable -> p(vulnerable) ~ 1 (guide)."""
    return planted_intent_probe(model, BENIGN, VULNERABLE, READ)


@pytest.fixture(scope="module")
def vector(model):
    gen = torch.Generator().manual_seed(3)
    return SteeringVector.from_tensors(model, {SITE: torch.randn(model.d_model, generator=gen)})


def _rows(model, plan=None):
    """{prompt: (T, d) residual after SITE} for both prompts, in one batch."""

    from oyster_steer.backends import Hook, get_backend
    from oyster_steer.core._sites import parse_site

    def run():  # one plain forward: capture may reuse a cached chat head (not a prompt pass)
        ids, mask = model.encode([BENIGN, VULNERABLE])
        found = {}
        hook = Hook(parse_site(NEXT), lambda x: found.setdefault("x", x.detach().clone()))
        get_backend(model.backend).forward(model, ids, mask, [hook], logits=False)
        return {p: found["x"][i][mask[i].bool()] for i, p in enumerate([BENIGN, VULNERABLE])}

    if plan is None:
        return run()
    with patch_plan(model, plan):
        return run()


def _plan(model, probe, vector, **kw):
    return ControlPlan(
        probe, [bind(vector, {"guide": 3.0}, name="op", **kw)], identity=model_meta(model)
    )


@pytest.mark.parametrize("op, value", [("ablate", None), ("clamp", 2.5), ("clamp", -1.0)])
def test_projection_operators_edit_the_gated_row_only(model, probe, vector, op, value):
    u = vector.directions[SITE] / vector.directions[SITE].norm()
    base = _rows(model)
    out = _rows(model, _plan(model, probe, vector, op=op, value=value))
    torch.testing.assert_close(out[BENIGN], base[BENIGN], atol=1e-6, rtol=0)  # not gated: untouched
    target = 0.0 if value is None else value
    assert (
        float((base[VULNERABLE] @ u - target).abs().mean()) > 5e-3
    )  # there was something to change
    torch.testing.assert_close(
        out[VULNERABLE] @ u, torch.full((len(base[VULNERABLE]),), target), atol=1e-5, rtol=0
    )
    orth = lambda x: x - (x @ u)[:, None] * u  # noqa: E731
    torch.testing.assert_close(orth(out[VULNERABLE]), orth(base[VULNERABLE]), atol=1e-5, rtol=1e-5)


def test_ablate_then_add_under_a_plan(model, probe, vector):
    v = vector.directions[SITE]
    base = _rows(model)
    out = _rows(model, _plan(model, probe, vector, op="ablate_add"))
    torch.testing.assert_close(out[BENIGN], base[BENIGN], atol=1e-6, rtol=0)
    proj = out[VULNERABLE] @ (v / v.norm())  # ablated (gain 1), then 3.0 * v added
    torch.testing.assert_close(
        proj, torch.full_like(proj, float(3.0 * v.norm())), atol=1e-4, rtol=1e-5
    )


def test_a_custom_operator_is_gated_and_scaled_by_the_strength(model, probe, vector):
    base = _rows(model)
    plan = _plan(model, probe, vector, op=lambda x, d: torch.tanh(x) * d)
    out = _rows(model, plan)
    torch.testing.assert_close(out[BENIGN], base[BENIGN], atol=1e-6, rtol=0)
    d = vector.directions[SITE]
    torch.testing.assert_close(
        out[VULNERABLE],
        base[VULNERABLE] + 3.0 * torch.tanh(base[VULNERABLE]) * d,
        atol=1e-5,
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match=r"custom operator, python code that a pack cannot hold"):
        save_plan(plan, "unused.safetensors")


def test_operators_survive_a_pack_round_trip(model, probe, vector, tmp_path):
    plan = _plan(model, probe, vector, op="clamp", value=2.5)
    path = save_plan(plan, tmp_path / "plan.safetensors")
    back = load_plan(path, model)
    assert back.bindings[0].op == "clamp"
    a, b = _rows(model, plan), _rows(model, back)
    torch.testing.assert_close(a[VULNERABLE], b[VULNERABLE], atol=1e-6, rtol=0)


def test_plan_operators_compile_without_graph_breaks(model, probe, vector):
    plan = ControlPlan(
        probe,
        [
            bind(vector, {"guide": 1.0}, name="ablate", op="ablate"),
            bind(vector, {"guide": 2.0}, name="custom", op=lambda x, d: x.sin() * d),
        ],
        identity=model_meta(model),
    )
    ids, mask = model.encode([BENIGN, VULNERABLE])
    pos = position_ids(mask)
    torch._dynamo.reset()
    with patch_plan(model, plan), torch.no_grad():
        eager = model.hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        compiled = torch.compile(
            lambda a, b, c: model.hf(input_ids=a, attention_mask=b, position_ids=c).logits,
            fullgraph=True,
            backend="eager",
        )
        torch.testing.assert_close(compiled(ids, mask, pos), eager, atol=1e-5, rtol=1e-5)


def test_bind_operator_errors(vector):
    with pytest.raises(ValueError, match=r"op='clamp' needs value="):
        bind(vector, {"guide": 1.0}, op="clamp")
    with pytest.raises(ValueError, match=r"needs a non-zero direction"):
        bind({SITE: torch.zeros(64)}, {"guide": 1.0}, op="ablate")
