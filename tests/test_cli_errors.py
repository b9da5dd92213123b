"""User errors on the command line: one line on stderr, exit code 2, never a traceback.

Each case is something a new user types or a file they hand over; every one printed a Python
traceback (or silently did the wrong thing) before the fix.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from oyster_steer.cli import build_parser, main
from oyster_steer.probes._probe import LinearProbe, save_probe
from oyster_steer.testing import default_tokenizer, tiny_hf_model

SITE = "blocks.1.hook_resid_post"
INTENTS = ["benign", "borderline", "vulnerable", "malicious"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model directory, its intent probe and a steering vector file."""
    from oyster_steer.models._model import load_model
    from oyster_steer.vectors._vector import SteeringVector, save_vector

    root = tmp_path_factory.mktemp("cli-errors")
    model_dir = root / "m"
    tiny_hf_model("llama").save_pretrained(model_dir)
    default_tokenizer().save_pretrained(model_dir)
    model = load_model(str(model_dir), device="cpu")
    d = model.d_model
    probe = LinearProbe(
        SITE, tuple(INTENTS), torch.randn(4, d), torch.zeros(4), torch.zeros(d), torch.ones(d)
    )
    probe_path = save_probe(probe, root / "intent.safetensors", model)
    vector = SteeringVector.from_tensors(model, {SITE: torch.ones(d)})
    vector_path = save_vector(vector, root / "v.safetensors")
    return root, model_dir, probe_path, vector_path


def _plan_args(setup, *extra):
    root, model_dir, probe_path, vector_path = setup
    return [
        "build-plan", "--model", str(model_dir), "--probe", str(probe_path), "--monitor",
        f"risk={probe_path}", "--vector", f"c={vector_path}:guide=2", "--out",
        str(root / "plan.safetensors"), *extra,
    ]  # fmt: skip


def _no_d_model(setup):
    root, _, _, vector_path = setup
    from safetensors import safe_open

    with safe_open(str(vector_path), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "d_model"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    path = root / "no-d-model.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _cases(setup):
    root, model_dir, probe_path, vector_path = setup
    export = ["export", "--model", str(model_dir), "--vector", str(vector_path)]
    no_config = root / "no-config"
    no_config.mkdir(exist_ok=True)
    (root / "payoff.json").write_text("{not json")
    (root / "payoff-keys.json").write_text(json.dumps({"payoff": [[1.0]]}))
    (root / "afile").write_text("x")
    cases = {
        "vector without d_model": [
            "export", "--model", str(model_dir), "--vector", str(_no_d_model(setup)),
            "--out", str(root / "e1"),
        ],
        "--out is a file": [*export, "--out", str(root / "afile")],
        "--out under a file": ["capture", "--model", str(model_dir), "--out", str(root / "afile" / "x.safetensors")],
        "--window 0": _plan_args(setup, "--read", "window", "--window", "0"),
        "--schedule nan": _plan_args(setup, "--schedule", "nan"),
        "--temperature nan": _plan_args(setup, "--mode", "soft", "--temperature", "nan"),
        "bad --vector spec": [*_plan_args(setup)[:6], "--vector", "nonsense"],
        "bad --monitor spec": [*_plan_args(setup)[:4], "--monitor", "nonsense"],
        "payoff not JSON": _plan_args(setup, "--payoff", str(root / "payoff.json")),
        "payoff missing keys": _plan_args(setup, "--payoff", str(root / "payoff-keys.json")),
        "probe is a vector": [*_plan_args(setup)[:4], "--probe", str(vector_path)],
        "capture --batch-size 0": ["capture", "--model", str(model_dir), "--batch-size", "0"],
        "model dir without config.json": ["capture", "--model", str(no_config)],
        "unknown device": ["capture", "--model", str(model_dir), "--device", "gpu9"],
        "export --strength nan": [*export, "--strength", "nan", "--out", str(root / "e2")],
        "train-vector --n-per-intent -3": [
            "train-vector", "--model", str(model_dir), "--n-per-intent", "-3",
        ],
        "missing --data dir": ["capture", "--model", str(model_dir), "--data", str(root / "nope")],
    }  # fmt: skip
    if not torch.cuda.is_available():
        cases["--device cuda without CUDA"] = [
            "capture",
            "--model",
            str(model_dir),
            "--device",
            "cuda",
        ]
    return cases


CASES = [
    "vector without d_model", "--out is a file", "--out under a file", "--window 0",
    "--schedule nan", "--temperature nan", "bad --vector spec", "bad --monitor spec",
    "payoff not JSON", "payoff missing keys", "probe is a vector", "capture --batch-size 0",
    "model dir without config.json", "unknown device", "export --strength nan",
    "train-vector --n-per-intent -3", "missing --data dir", "--device cuda without CUDA",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_user_errors_print_one_line_and_exit_2(setup, case, capsys):
    cases = _cases(setup)
    if case not in cases:
        pytest.skip("CUDA is present here")
    try:
        code = main(cases[case])
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip() and "Loading weights" not in x]  # bars
    assert code == 2, (case, err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("oyster-steer"), err


def test_capture_help_advertises_only_real_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["capture", "--help"])
    text = capsys.readouterr().out
    assert "--prompts" not in text


def test_build_plan_never_overwrites_an_artifact_without_force(setup, capsys):
    """`build-plan --model <export dir>` used to overwrite the export's control.safetensors."""
    root, model_dir, probe_path, vector_path = setup
    target = root / "plan-keep.safetensors"
    target.write_bytes(b"precious")
    argv = _plan_args(setup)
    argv[argv.index("--out") + 1] = str(target)
    assert main(argv) == 2
    assert target.read_bytes() == b"precious"
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert target.read_bytes() != b"precious"


def test_build_plan_default_out_of_an_export_dir_is_refused(setup, tmp_path, capsys):
    root, model_dir, probe_path, vector_path = setup
    import shutil

    export_dir = tmp_path / "export"
    shutil.copytree(model_dir, export_dir)
    (export_dir / "control.safetensors").write_bytes(b"the export's own pack")
    argv = _plan_args(setup)[:-2]
    argv[argv.index("--model") + 1] = str(export_dir)
    assert main(argv) == 2
    assert (export_dir / "control.safetensors").read_bytes() == b"the export's own pack"
