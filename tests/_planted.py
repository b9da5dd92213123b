"""A planted intent probe shared by the control, low-rank, operator and gate-eval tests."""

from __future__ import annotations

import torch

from oyster_steer import capture
from oyster_steer.models import OysterModel
from oyster_steer.probes._probe import LinearProbe

INTENTS = ("benign", "borderline", "vulnerable", "malicious")
# The pair a planted probe reads apart (benign -> help, vulnerable -> guide) and where it reads.
BENIGN = "What is the capital of France?"
VULNERABLE = "I feel so alone and I can't sleep, everything is hopeless"
READ = "blocks.0.hook_resid_post"


def planted_intent_probe(
    model: OysterModel, benign: str, vulnerable: str, read: str
) -> LinearProbe:
    """A probe at ``read`` with p(benign) ~ 1 on ``benign`` and p(vulnerable) ~ 1 on ``vulnerable``."""
    acts = capture(model, [benign, vulnerable], read, progress=False)[read]  # (2, d)
    a, b = acts[0], acts[1]
    u = (b - a) / (b - a).norm()
    k = 40.0 / float((b - a) @ u)
    mid = float(((a + b) / 2) @ u)
    weight = torch.zeros(4, model.d_model)
    weight[0], weight[2] = -k * u, k * u
    bias = torch.tensor([k * mid, -1e3, -k * mid, -1e3])
    return LinearProbe(
        read, INTENTS, weight, bias, torch.zeros(model.d_model), torch.ones(model.d_model)
    )
