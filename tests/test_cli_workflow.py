"""The whole CLI workflow end to end on the real default model (SmolLM2), small data slices:
capture -> train-probe -> train-vector -> build-plan -> eval -> export (demo: tests/test_demo.py).

Every subcommand loads SmolLM2 itself (its default ``--model``); only the data is cut down, to a
sample of the package's starter set, so the test needs neither ../shared nor much time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oyster_steer.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smollm")]
SITE = "blocks.12.hook_resid_post"


@pytest.fixture(autouse=True)
def small_data(monkeypatch):
    """Every subcommand reads a 10-per-intent sample of the starter set instead of all data."""
    from oyster_steer.cli import _capture, _common, _plan, _probe, _vector
    from oyster_steer.data import load_starter

    small = load_starter().sample(10, seed=0)
    for module in (_common, _capture, _probe, _vector, _plan):
        if hasattr(module, "data_from_args"):
            monkeypatch.setattr(module, "data_from_args", lambda args, **kw: small)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield small
    torch.set_num_threads(before)


def test_every_subcommand_runs_on_the_default_model(tmp_path: Path, capsys) -> None:
    from oyster_steer import load_model
    from oyster_steer.control import load_plan
    from oyster_steer.probes._probe import load_probe
    from oyster_steer.vectors._vector import load_vector

    q = ["--quiet", "--device", "cpu"]
    acts = tmp_path / "acts.safetensors"
    assert main(["capture", "--sites", SITE, "--out", str(acts), *q]) == 0
    assert "saved 40 prompts x 1 sites" in capsys.readouterr().out

    probes = tmp_path / "probes"
    argv = [
        "train-probe",
        "--out",
        str(probes),
        "--cache",
        str(tmp_path / "cache"),
        "--no-baseline",
        # the lookalike and jailbreak sets come from ../shared, not from the monkeypatched
        # data: with ../shared beside the repo (CI) they made this test capture thousands of
        # prompts at every sweep site (33 min); tests/test_data_shift.py covers probe_splits with them
        "--no-shift-data",
    ]
    assert main([*argv, *q]) == 0
    model = load_model(device="cpu")
    intent = load_probe(probes / "intent.safetensors", model)
    assert intent.labels == ("benign", "borderline", "vulnerable", "malicious")

    vector = tmp_path / "constructive.safetensors"
    argv = ["train-vector", "--method", "mean_diff", "--sites", SITE, "--n-per-intent", "4"]
    assert main([*argv, "--out", str(vector), *q]) == 0
    v = load_vector(vector, model)
    assert v.method == "mean_diff" and [s.name for s in v.sites] == [SITE]
    assert torch.isfinite(v.directions[SITE]).all() and float(v.directions[SITE].norm()) > 0

    pack = tmp_path / "control.safetensors"
    argv = ["build-plan", "--probe", str(probes / "intent.safetensors")]
    argv += ["--monitor", f"risk={probes / 'risk.safetensors'}"]
    argv += ["--vector", f"constructive={vector}:guide=1x", "--out", str(pack)]
    assert main([*argv, *q]) == 0
    plan = load_plan(pack, model)
    assert [b.name for b in plan.bindings] == ["constructive"] and plan.probe.site == intent.site

    table = tmp_path / "eval.json"
    argv = ["eval", "--starter", "--split", "all", "--n-per-class", "1", "--max-new-tokens", "4"]
    argv += ["--vector", str(vector), "--plan", str(pack), "--no-similarity", "--out", str(table)]
    assert main([*argv, *q]) == 0
    result = json.loads(table.read_text())
    assert result["conditions"] == ["unsteered", "constructive", "plan:control"]
    assert {c["condition"] for c in result["table"]} == set(result["conditions"])

    exported = tmp_path / "exported"
    assert main(["export", "--vector", str(vector), "--out", str(exported), *q]) == 0
    # The baked checkpoint loads with plain transformers in a fresh process (no oyster_steer).
    code = (
        "import sys, transformers; "
        f"m = transformers.AutoModelForCausalLM.from_pretrained({str(exported)!r}); "
        "assert 'oyster_steer' not in sys.modules; print(type(m).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "LlamaForCausalLM"
