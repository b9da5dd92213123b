"""scripts/monitor_veto.py: the per-row readings of a control handle's decisions, the veto of
"redirect" by the risk monitor, and its summary, on hand-made decisions (no model)."""

from __future__ import annotations

import pytest
import torch
from _scripts import load_script

from oyster_steer.control._runtime import Decisions

STRATEGIES = ("help", "guide", "redirect")
INTENTS = ("benign", "borderline", "vulnerable", "malicious")


@pytest.fixture(scope="module")
def script():
    return load_script("monitor_veto")


def _decisions() -> Decisions:
    gates = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    eu = torch.tensor([[0.1, 0.4, 0.9], [0.8, 0.2, 0.0], [0.1, 0.7, 0.3], [0.5, 0.2, 0.6]])
    flags = torch.tensor([0.2, 0.1, 0.9, 0.75])  # (B,) probability of "malicious"
    return Decisions(
        posterior=torch.full((4, 4), 0.25),
        expected_utility=eu,
        weights=gates,
        gates=gates,
        intents=INTENTS,
        strategies=STRATEGIES,
        monitors={"risk": torch.stack([1 - flags, flags], dim=1)},  # (B, 2)
        monitor_labels={"risk": ("not_malicious", "malicious")},
    )


def test_readings_follow_the_batch_indices(script):
    found = script.readings(_decisions(), [7, 3, 5, 0], "risk")  # batch rows in length order
    assert sorted(found) == [0, 3, 5, 7]
    assert [found[i]["strategy"] for i in (7, 3, 5, 0)] == ["redirect", "help", "guide", "redirect"]
    assert found[7]["eu"] == pytest.approx([0.1, 0.4, 0.9])
    assert found[0]["flag"] == pytest.approx(0.75) and found[3]["flag"] == pytest.approx(0.1)


def test_veto_keeps_a_flagged_redirect_and_moves_the_rest_to_the_best_other(script):
    def row(strategy, flag, eu=(0.1, 0.4, 0.9)):
        return {"strategy": strategy, "eu": list(eu), "flag": flag}

    assert script.vetoed(row("redirect", 0.8), STRATEGIES, 0.6) == "redirect"
    assert script.vetoed(row("redirect", 0.2), STRATEGIES, 0.6) == "guide"
    assert script.vetoed(row("redirect", 0.2, (0.5, 0.2, 0.9)), STRATEGIES, 0.6) == "help"
    assert (
        script.vetoed(row("redirect", 0.6), STRATEGIES, 0.6) == "guide"
    )  # flags: prob > threshold
    assert script.vetoed(row("help", 0.9), STRATEGIES, 0.6) == "help"  # only redirects move


def test_summary_counts_per_intent_and_lists_the_lost_malicious_redirects(script):
    found = script.readings(_decisions(), [0, 1, 2, 3], "risk")
    rows = [
        {"text": "a", "intent": "borderline", "source": "s1"},
        {"text": "b", "intent": "benign", "source": "s1"},
        {"text": "c", "intent": "vulnerable", "source": "s2"},
        {"text": "d", "intent": "malicious", "source": "s3"},
    ]
    out = [{**r, **found[i]} for i, r in enumerate(rows)]
    for o in out:
        o["veto"] = script.vetoed(o, STRATEGIES, 0.8)
    assert [o["veto"] for o in out] == ["guide", "help", "guide", "help"]
    lines, lost = script.summary(out)
    assert lines[1] == "borderline n=   1 plan {'redirect': 1} veto {'guide': 1}"
    assert lines[3] == "malicious  n=   1 plan {'redirect': 1} veto {'help': 1}"
    assert [o["text"] for o in lost] == ["d"]
    assert lines[4:] == [
        "malicious redirects lost: 1, by source Counter({'s3': 1})",
        "benign/borderline redirects removed: 1",
    ]
