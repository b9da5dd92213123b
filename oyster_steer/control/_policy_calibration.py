"""Choosing the policy's "guide" operating point on validation (issue 15 item 4, issue 14).

Under :data:`~oyster_steer.control.DEFAULT_PAYOFF` a benign reading has to beat a vulnerable
one by a wide margin before the policy helps (guide wins while p(vulnerable) > 0.23 of the
benign/vulnerable mass), and guide is also the policy's abstention between benign and malicious
(it guides while 3/13 < p(malicious) < 7/12 of that mass): every benign or borderline prompt the
intent probe is a little unsure about is steered toward "guide", whose learned action answers
with crisis guidance ("I'm sorry you're facing this ... a counsellor can help") to questions with
no danger in them. Two knobs, both moving only the guide row:

* ``delta``: how much less a guided reply is worth to a benign or borderline user than the
  default says (``U[guide, benign] = 0.4 - delta``, ``U[guide, borderline] = 0.6 - delta``);
* ``guide_malicious`` (``gm``): how much more a guided reply is worth against a malicious
  reading (``U[guide, malicious] = 0 + gm``; it stays below redirect's 1, so a sure malicious
  reading is still redirected). It keeps guide as the abstention for the *vulnerable-or-malicious*
  doubt that matters (guide beats redirect up to p(malicious) = (1.8 / (1.8 + 1 - gm)) of that
  mass: 9/14 at gm = 0, 0.69 at gm = 0.2) while ``delta`` takes it away from benign doubts.
* ``help_vulnerable`` (``hv``): how much more answering a vulnerable user as if nothing were
  wrong costs than the default says (``U[help, vulnerable] = -1 - hv``). It is the price of the
  failure the mission exists to prevent (a calm suicide disclosure answered by the unsteered
  model, "I wrote a goodbye letter last night" -> help writing it): the costlier it is, the less
  vulnerable mass a reading needs before help loses to guide, so ``delta`` can take guide away
  from benign doubts without handing vulnerable doubts to help.

All three are chosen on validation posteriors: the most benign + borderline rows helped (ties: fewer
of them redirected, then the smaller knobs) among the operating points where, against the
default payoff, vulnerable rows lose at most ``max_vulnerable_loss`` of their guide share and
gain no redirects, at most ``max_vulnerable_help`` vulnerable rows are sent to help that the
reference does not help (when given: a count of rows, not a share, so a new gate cannot trade
the vulnerable users it helps for others; 0 is the hard constraint that no vulnerable user who
was guided or redirected gets "help"), self-directed harm rows (when marked) gain no redirects and no help, malicious rows
helped rise by at most ``max_malicious_help_gain`` and malicious rows redirected do not fall
(guide must not become the answer to a reading the default would redirect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._policy import Policy

__all__ = ["GuideCalibration", "calibrate_guide", "decision_table", "guide_policy", "load_policy"]

DELTAS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(17))  # 0 .. 0.8
GUIDE_MALICIOUS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(6))  # 0 .. 0.5
HELP_VULNERABLE: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)


def guide_policy(
    delta: float,
    base: Policy | None = None,
    *,
    guide_malicious: float = 0.0,
    help_vulnerable: float = 0.0,
) -> Policy:
    """``base`` (default :class:`Policy`) with guide worth ``delta`` less to benign and borderline
    users and ``guide_malicious`` more against a malicious reading, and help costing
    ``help_vulnerable`` more against a vulnerable reading.

    Example:
        >>> [round(v, 2) for v in guide_policy(0.2, guide_malicious=0.1).payoff[1].tolist()]
        [0.2, 0.4, 1.0, 0.1]
        >>> guide_policy(0.2, help_vulnerable=2.0).payoff[0].tolist()
        [1.0, 1.0, -3.0, -2.0]
    """
    base = base or Policy()
    if not 0 <= delta < 5:
        raise ValueError(f"delta={delta} must be in [0, 5): a utility cut for guiding benign users")
    payoff = base.payoff.clone()
    g, r = base.strategies.index("guide"), base.strategies.index("redirect")
    m = base.intents.index("malicious")
    if not 0 <= guide_malicious < float(payoff[r, m] - payoff[g, m]):
        raise ValueError(
            f"guide_malicious={guide_malicious} must be in [0, {float(payoff[r, m] - payoff[g, m]):g}): "
            "guide has to stay worth less than redirect against a sure malicious reading"
        )
    if not 0 <= help_vulnerable < 100:
        raise ValueError(
            f"help_vulnerable={help_vulnerable} must be in [0, 100): an extra cost of helping a "
            "vulnerable user as if nothing were wrong"
        )
    for intent in ("benign", "borderline"):
        payoff[g, base.intents.index(intent)] -= delta
    payoff[g, m] += guide_malicious
    payoff[base.strategies.index("help"), base.intents.index("vulnerable")] -= help_vulnerable
    return base.replace(payoff=payoff)


def decision_table(
    policy: Policy, posterior: torch.Tensor, intents: Sequence[str]
) -> dict[str, dict[str, float]]:
    """intent -> strategy -> share of that intent's rows the policy sends there (+ ``"n"``)."""
    gates = policy.gates(posterior.float())  # (N, S) one-hot (hard mode)
    choice = gates.argmax(-1)
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(intents):
        sel = torch.tensor([i == name for i in intents])
        n = int(sel.sum())
        row = {s: float((choice[sel] == k).float().mean()) for k, s in enumerate(policy.strategies)}
        out[name] = row | {"n": float(n)}
    return out


@dataclass(frozen=True)
class GuideCalibration:
    """The chosen ``delta``, ``guide_malicious`` and ``help_vulnerable``, their policy, and the
    validation table of every operating point tried."""

    delta: float
    policy: Policy
    grid: list[dict[str, Any]]
    guide_malicious: float = 0.0
    help_vulnerable: float = 0.0


def calibrate_guide(
    posterior: torch.Tensor,
    intents: Sequence[str],
    *,
    base: Policy | None = None,
    deltas: Sequence[float] = DELTAS,
    guide_malicious: Sequence[float] = GUIDE_MALICIOUS,
    help_vulnerable: Sequence[float] = (0.0,),
    max_vulnerable_loss: float = 0.01,
    max_vulnerable_help: int | None = None,
    max_malicious_help_gain: float = 0.04,
    max_benign_redirect_gain: float | None = None,
    self_harm: torch.Tensor | None = None,
    reference: tuple[Policy, torch.Tensor] | None = None,
) -> GuideCalibration:
    """The ``delta``, ``guide_malicious`` and ``help_vulnerable`` (see module doc) that help the
    most benign and borderline rows within the vulnerable, self-harm and malicious budgets, on
    validation posteriors (N, C) in the policy's intent order; ``self_harm`` is an optional (N,)
    bool mask of self-directed harm rows that must gain no redirects; ``max_vulnerable_help``
    (None: no such budget) is how many vulnerable rows the reference does not help may be sent to
    help (0: none); ``max_benign_redirect_gain`` (None: no such budget) is how much the share of
    benign + borderline rows redirected may rise (0: not at all), so that guides are not traded
    for refusals. The budgets are measured against
    ``base`` on ``posterior``, or against ``reference`` = (policy, its (N, C) posteriors of the same
    rows), e.g. the gate a new probe replaces."""
    base = base or Policy()
    if posterior.shape[0] != len(intents) or posterior.shape[1] != base.n_intents:
        raise ValueError(
            f"posterior is {tuple(posterior.shape)} for {len(intents)} intents of "
            f"{base.n_intents} classes: pass one (C,) posterior per row, in the policy's intent order"
        )
    if "vulnerable" not in intents:
        raise ValueError("no vulnerable rows to check the guide cut on: include vulnerable prompts")
    if self_harm is not None and tuple(self_harm.shape) != (len(intents),):
        raise ValueError(
            f"self_harm has shape {tuple(self_harm.shape)} for {len(intents)} rows: pass one bool per row"
        )
    sh_names = list(intents)
    if self_harm is not None:
        sh_names = ["self-harm" if bool(f) else "-" for f in self_harm.tolist()]
    if max_vulnerable_help is not None and max_vulnerable_help < 0:
        raise ValueError(
            f"max_vulnerable_help={max_vulnerable_help} is negative: pass how many more vulnerable "
            "rows may be helped than with the reference (0: none)"
        )
    ref_policy, ref_post = reference if reference is not None else (base, posterior)
    if ref_post.shape[0] != posterior.shape[0]:
        raise ValueError(
            f"reference posteriors have {ref_post.shape[0]} rows for {posterior.shape[0]}: pass the "
            "reference gate's reading of the same rows"
        )
    # vulnerable rows the reference does not help: a candidate helping any of them "gains" one
    h = base.strategies.index("help")
    vulnerable = torch.tensor([i == "vulnerable" for i in intents])
    ref_helped = ref_policy.gates(ref_post.float()).argmax(-1) == h
    grid: list[dict[str, Any]] = []
    points = [(hv, gm, d) for hv in help_vulnerable for gm in guide_malicious for d in deltas]
    for hv, gm, d in points:
        policy = guide_policy(d, base, guide_malicious=gm, help_vulnerable=hv)
        table = decision_table(policy, posterior, intents)
        bb = [table[i] for i in ("benign", "borderline") if i in table]
        n = max(sum(r["n"] for r in bb), 1.0)
        row = {
            "delta": d,
            "guide_malicious": gm,
            "help_vulnerable": hv,
            "benign_borderline_guide": sum(r["guide"] * r["n"] for r in bb) / n,
            "benign_borderline_help": sum(r["help"] * r["n"] for r in bb) / n,
            "benign_borderline_redirect": sum(r["redirect"] * r["n"] for r in bb) / n,
            "table": table,
        }
        if self_harm is not None:
            row["self_harm"] = decision_table(policy, posterior, sh_names).get("self-harm")
        helped = policy.gates(posterior.float()).argmax(-1) == h
        row["vulnerable_help_gain"] = int((helped & vulnerable & ~ref_helped).sum())
        grid.append(row)
    ref_table = decision_table(ref_policy, ref_post, intents)  # the budgets: default or reference
    ref_sh = (
        None
        if self_harm is None
        else decision_table(ref_policy, ref_post, sh_names).get("self-harm")
    )
    v0, m0 = ref_table["vulnerable"], ref_table.get("malicious")
    bb0 = [ref_table[i] for i in ("benign", "borderline") if i in ref_table]
    bb_redirect0 = sum(r["redirect"] * r["n"] for r in bb0) / max(sum(r["n"] for r in bb0), 1.0)

    def ok(g: dict[str, Any]) -> bool:
        v, m, sh = g["table"]["vulnerable"], g["table"].get("malicious"), g.get("self_harm")
        return (
            v["guide"] >= v0["guide"] - max_vulnerable_loss - 1e-9
            and v["redirect"] <= v0["redirect"] + 1e-9
            and (max_vulnerable_help is None or g["vulnerable_help_gain"] <= max_vulnerable_help)
            and (
                max_benign_redirect_gain is None
                or g["benign_borderline_redirect"] <= bb_redirect0 + max_benign_redirect_gain + 1e-9
            )
            and (
                sh is None
                or ref_sh is None
                or (
                    sh["redirect"] <= ref_sh["redirect"] + 1e-9
                    and sh["help"] <= ref_sh["help"] + 1e-9
                )
            )
            and (
                m is None
                or m0 is None
                or (
                    m["help"] <= m0["help"] + max_malicious_help_gain + 1e-9
                    and m["redirect"] >= m0["redirect"] - 1e-9
                )
            )
        )

    feasible = [g for g in grid if ok(g)] or [grid[0]]
    best = min(
        feasible,
        key=lambda g: (
            -round(g["benign_borderline_help"], 6),
            round(g["benign_borderline_redirect"], 6),
            g["delta"] + g["guide_malicious"] + g["help_vulnerable"],
        ),
    )
    return GuideCalibration(
        best["delta"],
        guide_policy(
            best["delta"],
            base,
            guide_malicious=best["guide_malicious"],
            help_vulnerable=best["help_vulnerable"],
        ),
        grid,
        best["guide_malicious"],
        best["help_vulnerable"],
    )


def load_policy(path: Any) -> Policy:
    """A hard-gated :class:`Policy` from a payoff JSON file (``{"strategies", "intents", "payoff"}``,
    as written by ``scripts/calibrate_policy.py --write`` and read by ``build-plan --payoff``)."""
    import json
    from pathlib import Path

    try:
        spec = json.loads(Path(path).read_text())
        return Policy(
            torch.tensor(spec["payoff"], dtype=torch.float32),
            tuple(spec["strategies"]),
            tuple(spec["intents"]),
        )
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"payoff file {str(path)!r} does not read as a policy ({type(err).__name__}: {err}): "
            'write JSON {"strategies": [...], "intents": [...], "payoff": [[...], ...]}'
        ) from None
