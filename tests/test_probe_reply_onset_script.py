"""scripts/probe_reply_onset.py (issue 15 item 3, reading the model's own reply onset): its
features match the library's own prompt reads, and the whole script runs on a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _scripts import load_script

from oyster_steer import capture
from oyster_steer.testing import tiny_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "probe_reply_onset.py"


class _Row:
    def __init__(self, text: str) -> None:
        self.text = text


def test_prompt_reads_ignore_the_appended_reply_and_onsets_average_reply_tokens() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    mod = load_script("probe_reply_onset")
    prompts = [
        "Write a poem about sleep.",
        "I feel like nobody would notice if I was gone, honestly.",
    ]
    onsets = [[1000, 1001, 1002, 1003], [1004]]  # the second reply ended after one token
    feats = mod._features(model, [_Row(p) for p in prompts], onsets, [1, 2], [1, 4], batch_size=2)
    site = "blocks.1.hook_resid_post"
    alone = capture(model, prompts, site, pool="last+mean", progress=False)[site]
    # the model is causal: the prompt read over prompt + reply equals the prompt read alone
    torch.testing.assert_close(feats["last+mean"][1], alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(feats["last"][1], alone[:, : model.d_model], atol=1e-4, rtol=1e-4)
    # onset4 of the first row is the mean of its 4 reply tokens' activations at that layer
    # (HF's hidden_states[2] is the output of block 1)
    rows = model.token_rows(prompts[:1])[0] + onsets[0]
    with torch.no_grad():
        hidden = model.hf(torch.tensor([rows]), output_hidden_states=True).hidden_states[2][0]
    torch.testing.assert_close(feats["onset4"][1][0], hidden[-4:].mean(0), atol=1e-4, rtol=1e-4)
    # a one-token reply: onset1 == onset4, and the concatenation is the shipped read then onset
    torch.testing.assert_close(feats["onset1"][1][1], feats["onset4"][1][1])
    both = feats["last+mean|onset4"][2]
    assert both.shape == (2, 3 * model.d_model)
    torch.testing.assert_close(both[:, : 2 * model.d_model], feats["last+mean"][2])
    assert not torch.allclose(feats["onset4"][1][0], feats["last"][1][0])


@pytest.mark.slow
def test_the_script_runs_on_a_tiny_model_and_reuses_its_onsets(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(SCRIPT),
        *("--model", "tiny", "--layers", "1", "2", "--ks", "1", "2", "--limit", "40"),
        *("--train-limit", "40", "--out", str(tmp_path), "--prompts", "Write a poem about sleep."),
    ]
    runs = []
    for _ in range(2):
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(done.stdout)
    assert "| last+mean|onset2 | 2 | validation |" in runs[0]
    assert "| last+mean | 1 | test |" in runs[0] or "| last+mean | 2 | test |" in runs[0]
    assert "'Write a poem about sleep.' -> onset" in runs[0]
    result = json.loads((tmp_path / "reply_onset.json").read_text())
    # last, last+mean, onset1, onset2, last+mean|onset1, last+mean|onset2; at 2 layers each
    assert len(result["rows"]) == 6 * 2
    onsets = json.loads((tmp_path / "onsets-validation.json").read_text())
    (stored,) = onsets.values()
    assert len(stored) == 40 and all(1 <= len(ids) <= 2 for ids in stored.values())
    # the second run generated nothing: every onset came from the cache
    second = [json.loads(line) for line in runs[1].splitlines() if line.startswith('{"split"')]
    assert [t["generate_s"] for t in second] == [0, 0, 0]
