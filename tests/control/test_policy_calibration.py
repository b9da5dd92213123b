"""The policy's guide operating point chosen on validation (issue 15 item 4)."""

from __future__ import annotations

import json

import pytest
import torch

from oyster_steer.control import Policy
from oyster_steer.control._policy_calibration import (
    calibrate_guide,
    decision_table,
    guide_policy,
    load_policy,
)


def _rows(p, n):
    return torch.tensor([p] * n, dtype=torch.float32)


def test_guide_policy_moves_only_the_benign_and_borderline_guide_cells():
    base, cut = Policy(), guide_policy(0.3)
    diff = (base.payoff - cut.payoff).abs() > 1e-6
    g = base.strategies.index("guide")
    assert diff.nonzero().tolist() == [[g, 0], [g, 1]]
    # a reading split between vulnerable and malicious still guides, never redirects (9/14 holds)
    mixed = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.4, 0.6]])
    assert cut.gates(mixed).argmax(-1).tolist() == [g, g]
    with pytest.raises(ValueError, match="delta"):
        guide_policy(-1.0)


def test_calibrate_guide_cuts_benign_guides_within_the_vulnerable_budget():
    # benign rows the probe is a little unsure about (p(vulnerable) 0.3): the default guides them
    benign = _rows([0.7, 0.0, 0.3, 0.0], 50)
    vulnerable = torch.cat([_rows([0.0, 0.0, 1.0, 0.0], 45), _rows([0.0, 0.0, 0.45, 0.55], 5)])
    post = torch.cat([benign, vulnerable])
    intents = ["benign"] * 50 + ["vulnerable"] * 50
    before = decision_table(Policy(), post, intents)
    assert before["benign"]["guide"] == 1.0
    cal = calibrate_guide(post, intents)
    after = decision_table(cal.policy, post, intents)
    assert cal.delta > 0 and after["benign"]["help"] == 1.0
    assert after["vulnerable"]["guide"] == before["vulnerable"]["guide"] == 1.0
    assert after["vulnerable"]["redirect"] == 0.0
    # a vulnerable reading close to benign caps the cut: it must not be pushed to help
    close = _rows([0.72, 0.0, 0.28, 0.0], 10)  # would flip to help at delta > 0.18
    cal2 = calibrate_guide(torch.cat([post, close]), intents + ["vulnerable"] * 10)
    assert decision_table(cal2.policy, close, ["vulnerable"] * 10)["vulnerable"]["guide"] == 1.0
    assert cal2.delta < cal.delta


def test_load_policy_round_trips_and_rejects_a_bad_file(tmp_path):
    pol = guide_policy(0.25)
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps(
            {
                "strategies": list(pol.strategies),
                "intents": list(pol.intents),
                "payoff": pol.payoff.tolist(),
            }
        )
    )
    assert torch.equal(load_policy(path).payoff, pol.payoff)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="does not read as a policy"):
        load_policy(tmp_path / "bad.json")


def test_guide_malicious_keeps_a_sure_malicious_reading_redirected():
    pol = guide_policy(0.0, guide_malicious=0.5)
    g, r = pol.strategies.index("guide"), pol.strategies.index("redirect")
    assert pol.gates(torch.tensor([[0.0, 0.0, 0.0, 1.0]])).argmax(-1).tolist() == [r]
    # vulnerable-or-malicious doubt: guides further toward malicious than gm = 0 (9/14 = 0.643)
    doubt = torch.tensor([[0.0, 0.0, 0.33, 0.67]])
    assert guide_policy(0.0).gates(doubt).argmax(-1).tolist() == [r]
    assert guide_policy(0.0, guide_malicious=0.2).gates(doubt).argmax(-1).tolist() == [g]
    with pytest.raises(ValueError, match="guide_malicious"):
        guide_policy(0.0, guide_malicious=1.0)


def test_calibrate_guide_never_buys_benign_help_with_a_self_harm_row():
    # benign rows with some malicious doubt: any delta > 0.1 helps them...
    benign = _rows([0.62, 0.0, 0.0, 0.38], 40)
    vulnerable = _rows([0.0, 0.0, 1.0, 0.0], 40)
    # ...but the same cut would send this self-harm reading (benign-looking wording) to help
    self_harm = _rows([0.5, 0.2, 0.04, 0.26], 4)
    post = torch.cat([benign, vulnerable, self_harm])
    intents = ["benign"] * 40 + ["vulnerable"] * 44
    free = calibrate_guide(post, intents, max_vulnerable_loss=0.1)
    mask = torch.tensor([False] * 80 + [True] * 4)
    held = calibrate_guide(post, intents, max_vulnerable_loss=0.1, self_harm=mask)
    sh = ["vulnerable"] * 4
    assert decision_table(free.policy, self_harm, sh)["vulnerable"]["help"] == 1.0
    assert decision_table(held.policy, self_harm, sh)["vulnerable"]["guide"] == 1.0
    assert held.delta + held.guide_malicious < free.delta + free.guide_malicious


def test_calibrate_guide_keeps_malicious_help_within_budget():
    # helping this benign doubt needs delta > 0.34; that cut helps these malicious rows (> 0.26)
    benign = _rows([0.68, 0.0, 0.0, 0.32], 40)
    malicious = _rows([0.7, 0.0, 0.0, 0.3], 20)
    vulnerable = _rows([0.0, 0.0, 1.0, 0.0], 20)
    post = torch.cat([benign, malicious, vulnerable])
    intents = ["benign"] * 40 + ["malicious"] * 20 + ["vulnerable"] * 20
    free = decision_table(
        calibrate_guide(post, intents, max_malicious_help_gain=1.0).policy, post, intents
    )
    held = decision_table(
        calibrate_guide(post, intents, max_malicious_help_gain=0.0).policy, post, intents
    )
    assert free["benign"]["help"] == 1.0 and free["malicious"]["help"] == 1.0
    assert held["malicious"]["help"] == 0.0 and held["benign"]["help"] == 0.0


def test_calibrate_guide_budgets_against_a_reference_gate():
    # a new probe: benign rows a little unsure (default guides them), 5 vulnerable rows that a
    # cut above delta 0.18 would help
    benign = _rows([0.7, 0.0, 0.3, 0.0], 50)
    vulnerable = torch.cat([_rows([0.0, 0.0, 1.0, 0.0], 45), _rows([0.72, 0.0, 0.28, 0.0], 5)])
    post = torch.cat([benign, vulnerable])
    intents = ["benign"] * 50 + ["vulnerable"] * 50
    alone = calibrate_guide(post, intents)  # against the default payoff on these posteriors
    # the gate it replaces already helped those 5 vulnerable rows (read them benign)
    ref_post = torch.cat([benign, _rows([0.0, 0.0, 1.0, 0.0], 45), _rows([1.0, 0, 0, 0], 5)])
    ref = calibrate_guide(post, intents, reference=(Policy(), ref_post))
    before = decision_table(Policy(), ref_post, intents)["vulnerable"]
    after = decision_table(ref.policy, post, intents)
    assert (
        after["vulnerable"]["guide"] >= before["guide"] - 0.01 and abs(before["guide"] - 0.9) < 1e-6
    )
    assert after["benign"]["help"] == 1.0 and ref.delta > alone.delta
    assert decision_table(alone.policy, post, intents)["vulnerable"]["guide"] == 1.0
    with pytest.raises(ValueError, match="reference posteriors have 3 rows for 100"):
        calibrate_guide(post, intents, reference=(Policy(), ref_post[:3]))


def test_help_vulnerable_moves_only_the_help_vulnerable_cell():
    base, costly = Policy(), guide_policy(0.0, help_vulnerable=2.0)
    diff = (base.payoff - costly.payoff).abs() > 1e-6
    assert diff.nonzero().tolist() == [[base.strategies.index("help"), 2]]
    assert float(costly.payoff[0, 2]) == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="help_vulnerable"):
        guide_policy(0.2, help_vulnerable=-1.0)


def test_max_vulnerable_help_buys_benign_help_with_a_costlier_help_on_vulnerable():
    # benign rows with malicious doubt (the default guides them: its abstention), and a few calm
    # disclosures the probe reads mostly benign (p(vulnerable) 0.25): the delta that helps the
    # benign rows (> 0.26) also helps the disclosures unless helping a vulnerable user costs more
    benign = _rows([0.7, 0.0, 0.0, 0.3], 40)
    calm = _rows([0.75, 0.0, 0.25, 0.0], 5)
    vulnerable = torch.cat([calm, _rows([0.0, 0.0, 1.0, 0.0], 45)])
    malicious = _rows([0.0, 0.0, 0.0, 1.0], 20)
    post = torch.cat([benign, vulnerable, malicious])
    intents = ["benign"] * 40 + ["vulnerable"] * 50 + ["malicious"] * 20
    assert decision_table(Policy(), post, intents)["benign"]["guide"] == 1.0
    loose = calibrate_guide(post, intents, max_vulnerable_loss=0.2)
    t = decision_table(loose.policy, post, intents)
    assert t["benign"]["help"] == 1.0 and t["vulnerable"]["help"] == pytest.approx(0.1)
    # the same grid of help_vulnerable, but no budget on vulnerable help: the smallest knob wins
    free = calibrate_guide(post, intents, max_vulnerable_loss=0.2, help_vulnerable=(0.0, 1.0, 2.0))
    assert free.help_vulnerable == 0.0
    strict = calibrate_guide(
        post,
        intents,
        max_vulnerable_loss=0.2,
        help_vulnerable=(0.0, 1.0, 2.0),
        max_vulnerable_help=0,
    )
    t = decision_table(strict.policy, post, intents)
    assert t["benign"]["help"] == 1.0
    assert t["vulnerable"]["help"] == 0.0 and t["vulnerable"]["guide"] == 1.0
    assert strict.help_vulnerable > 0 and strict.delta > 0.25
    assert float(strict.policy.payoff[0, 2]) == pytest.approx(-1.0 - strict.help_vulnerable)
    # without the knob the budget can only be kept by not cutting: benign rows stay guided
    none = calibrate_guide(post, intents, max_vulnerable_loss=0.2, max_vulnerable_help=0)
    assert decision_table(none.policy, post, intents)["benign"]["help"] == 0.0
    with pytest.raises(ValueError, match="max_vulnerable_help"):
        calibrate_guide(post, intents, max_vulnerable_help=-1)


def test_max_vulnerable_help_counts_rows_not_totals_against_the_reference():
    # the reference gate helps 5 vulnerable rows (it reads them benign); the new reading is sure of
    # those but reads 5 calm disclosures mostly benign: the same number helped, other users
    benign = _rows([0.7, 0.0, 0.0, 0.3], 40)
    calm = _rows([0.75, 0.0, 0.25, 0.0], 5)
    post = torch.cat([benign, calm, _rows([0.0, 0.0, 1.0, 0.0], 45)])
    ref = torch.cat([benign, _rows([0.0, 0.0, 1.0, 0.0], 5), _rows([1.0, 0.0, 0.0, 0.0], 5)])
    ref = torch.cat([ref, _rows([0.0, 0.0, 1.0, 0.0], 40)])
    intents = ["benign"] * 40 + ["vulnerable"] * 50
    kw = dict(max_vulnerable_loss=0.2, help_vulnerable=(0.0, 1.0, 2.0), reference=(Policy(), ref))
    swap = calibrate_guide(post, intents, **kw)
    assert swap.help_vulnerable == 0.0
    assert decision_table(swap.policy, calm, ["vulnerable"] * 5)["vulnerable"]["help"] == 1.0
    chosen = next(
        g
        for g in swap.grid
        if (g["delta"], g["guide_malicious"], g["help_vulnerable"])
        == (swap.delta, swap.guide_malicious, swap.help_vulnerable)
    )
    # as many vulnerable rows helped as the reference helps, but all five are new ones
    assert chosen["table"]["vulnerable"]["help"] == pytest.approx(0.1)
    assert chosen["vulnerable_help_gain"] == 5
    strict = calibrate_guide(post, intents, max_vulnerable_help=0, **kw)
    assert decision_table(strict.policy, calm, ["vulnerable"] * 5)["vulnerable"]["help"] == 0.0
    assert decision_table(strict.policy, benign, ["benign"] * 40)["benign"]["help"] == 1.0


def test_max_benign_redirect_gain_keeps_guides_from_turning_into_refusals():
    # helping B (a little vulnerable doubt) needs delta > 0.477; above delta 0.4 the guide of A
    # (an even benign/malicious doubt) loses to redirect: a benign user refused
    a = _rows([0.5, 0.0, 0.0, 0.5], 10)
    b = _rows([0.65, 0.0, 0.35, 0.0], 20)
    vulnerable = _rows([0.0, 0.0, 1.0, 0.0], 20)
    post = torch.cat([a, b, vulnerable])
    intents = ["benign"] * 30 + ["vulnerable"] * 20
    kw = {"guide_malicious": (0.0,)}
    free = calibrate_guide(post, intents, **kw)
    held = calibrate_guide(post, intents, max_benign_redirect_gain=0.0, **kw)
    g, h, r = (Policy().strategies.index(s) for s in ("guide", "help", "redirect"))
    assert free.delta > 0.47 and free.policy.gates(a).argmax(-1).tolist() == [r] * 10
    assert free.policy.gates(b).argmax(-1).tolist() == [h] * 20
    assert held.delta <= 0.4 and held.policy.gates(a).argmax(-1).tolist() == [g] * 10
    # the budget is a share of the benign + borderline rows: 10 of 30 redirected is 1/3
    some = calibrate_guide(post, intents, max_benign_redirect_gain=0.34, **kw)
    assert some.delta == free.delta
