"""The analysis notebooks: stripped in git, in sync with their generator, and they run top to bottom.

The slow tests execute each notebook on a fresh ``python3`` kernel (nbclient) against the real
default model and check the plotly figures it shows for content, not just for presence.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
N_LAYERS = 30  # SmolLM2-135M-Instruct, the default model


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_notebooks", ROOT / "scripts" / "make_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_notebook_is_committed() -> None:
    assert sorted(_generator().NOTEBOOKS) == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], (
                f"{path.name}: a code cell has outputs; run scripts/make_notebooks.py"
            )
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_generator(path: Path) -> None:
    gen = _generator()
    assert path.read_text() == gen.render(gen.NOTEBOOKS[path.name]), "run scripts/make_notebooks.py"


# -- executing ---------------------------------------------------------------------------------


def _values(v: Any) -> list[Any]:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata", "shape"}`` (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        import numpy as np

        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return arr.reshape(v["shape"]).tolist() if "shape" in v else arr.tolist()
    return list(v)


def _figures(nb: Any) -> list[dict[str, Any]]:
    return [
        out["data"][PLOTLY_MIME]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if PLOTLY_MIME in out.get("data", {})
    ]


def _execute(path: Path) -> tuple[Any, float]:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    return nb, time.perf_counter() - start


def _check_01(figs: list[dict[str, Any]]) -> None:
    assert len(figs) == 2
    for fig, metric in zip(figs, ("auroc", "macro_f1"), strict=True):
        traces = fig["data"]
        assert [t["name"] for t in traces] == [
            f"{metric} ({s})" for s in ("train", "validation", "test")
        ]
        for t in traces:
            assert t["type"] == "scatter"
            assert _values(t["x"]) == list(range(N_LAYERS)), "one point per layer"
            ys = _values(t["y"])
            assert len(ys) == N_LAYERS and all(0.0 <= y <= 1.0 for y in ys)
    risk_val = _values(figs[0]["data"][1]["y"])
    assert max(risk_val) > 0.9, "malicious intent should be linearly readable at some layer"


def _check_02(figs: list[dict[str, Any]]) -> None:
    from oyster_steer.data import load_starter

    test = load_starter().split("test")
    (fig,) = figs
    counts = test.counts("intent")
    assert {t["name"]: len(_values(t["x"])) for t in fig["data"]} == counts, (
        "one point per test prompt"
    )
    assert all(t["type"] == "scatter" for t in fig["data"])
    mean_x = {t["name"]: sum(_values(t["x"])) / len(_values(t["x"])) for t in fig["data"]}
    assert mean_x["malicious"] > mean_x["benign"], (
        "malicious prompts lie further along the probe direction"
    )


def _check_03(figs: list[dict[str, Any]]) -> None:
    (fig,) = figs
    methods, intents = ("mean_diff", "pca", "learned"), ("vulnerable", "malicious")
    names = {f"{m} · {i}" for m in methods for i in intents}
    traces = fig["data"]
    assert {t["name"] for t in traces} == names and len(traces) == 2 * len(names), "two panels"
    for t in traces:
        x, gain = _values(t["x"]), _values(t["y"])
        assert t["type"] == "scatter" and len(x) == len(gain) == 4, "one point per strength"
        assert gain[0] == 0.0, "strength 0 changes nothing"
    by_strength = [t for t in traces if t.get("xaxis", "x") == "x"]
    assert all(_values(t["x"]) == [0.0, 1.0, 2.0, 4.0] for t in by_strength)
    by_kl = [t for t in traces if t.get("xaxis") == "x2"]
    assert len(by_kl) == len(names) and all(
        _values(t["x"])[0] == 0.0 < _values(t["x"])[-1] for t in by_kl
    )


def _check_04(figs: list[dict[str, Any]]) -> None:
    payoffs, decisions, trace = figs
    (heat,) = [t for t in payoffs["data"] if t["type"] == "heatmap"]
    assert len(_values(heat["z"])) == 3 and all(len(row) == 4 for row in _values(heat["z"]))
    bars = {t["name"]: _values(t["x"]) for t in decisions["data"]}
    intents, strategies = (
        ("benign", "borderline", "vulnerable", "malicious"),
        ("help", "guide", "redirect"),
    )
    assert set(bars) == set(intents) | set(strategies)
    assert all(len(v) == 4 for v in bars.values()), "one bar per prompt of the mixed batch"
    for row in range(4):
        assert abs(sum(bars[i][row] for i in intents) - 1) < 1e-3, "the posterior sums to one"
        assert abs(sum(bars[s][row] for s in strategies) - 1) < 1e-3, "hard gates pick one strategy"
    (tok,) = trace["data"]
    z = _values(tok["z"])
    assert tok["type"] == "heatmap" and len(z) == 4, "one row per intent class"
    assert len(_values(tok["x"])) == len(z[0]) > 24, "prompt tokens plus the 24 generated"


def _check_05(figs: list[dict[str, Any]]) -> None:
    (fig,) = figs
    bars = {t["name"]: _values(t["y"]) for t in fig["data"]}
    assert all(t["type"] == "bar" for t in fig["data"])
    gap, effect = bars["exported vs hooked source"], bars["steered vs unsteered"]
    assert len(gap) == len(effect) == 4, "one bar per prompt"
    assert max(gap) < 1e-3, "the plain exported checkpoint reproduces the hooked model's logits"
    assert min(effect) > 100 * max(gap), "steering moves the logits far more than export error does"


def _check_06(figs: list[dict[str, Any]]) -> None:
    applied, token_fig = figs
    colors = {"prompt": "#bdbdbd", "thinking": "#9575cd", "answer": "#66bb6a"}
    thinks, answers = applied["data"]
    for t in (thinks, answers):
        spans, ys = _values(t["text"]), _values(t["y"])
        assert len(spans) == len(ys) and _values(t["marker"]["color"]) == [colors[s] for s in spans]
        assert all(y == 0 for s, y in zip(spans, ys, strict=True) if s != "answer"), (
            "only the answer is steered"
        )
        assert any(y > 0 for s, y in zip(spans, ys, strict=True) if s == "answer"), (
            "the latched gate steers it"
        )
    assert "thinking" in _values(thinks["text"]) and "thinking" not in _values(answers["text"])
    (heat,) = [t for t in token_fig["data"] if t["type"] == "heatmap"]
    assert len(_values(heat["z"])) == 4, "one row per intent class"
    bands = [s["fillcolor"] for s in token_fig["layout"]["shapes"] if s["type"] == "rect"]
    assert bands == [colors["prompt"], colors["thinking"], colors["answer"]], "span bands in order"


CHECKS: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "01_capture_and_layer_sweep": _check_01,
    "02_risk_boundary": _check_02,
    "03_steering_vectors": _check_03,
    "04_control_plan": _check_04,
    "05_patch_for_serving": _check_05,
    "06_reasoning_control": _check_06,
}


def test_every_notebook_has_a_figure_check() -> None:
    assert sorted(CHECKS) == [p.stem for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_plots(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("plotly")
    # One intra-op thread in the kernel: pytest -n 2 runs two workers on two cores, and tiny ops
    # (probe LBFGS) slow down many-fold when OpenMP threads outnumber the free cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb, seconds = _execute(path)
    if os.environ.get("OYSTER_NOTEBOOK_OUT"):  # keep the executed copy to read its numbers
        out = Path(os.environ["OYSTER_NOTEBOOK_OUT"])
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / path.name)
    figs = _figures(nb)
    assert figs, f"{path.name} showed no plotly figure"
    for fig in figs:
        assert fig["data"], f"{path.name} showed an empty figure"
    CHECKS[path.stem](figs)
    print(f"{path.name}: {seconds:.0f} s")
