"""Fuzzing what a user or a hostile file can hand over: the artifact loaders, the plan pack, the
command line and the data loaders. The property everywhere: a clean result or the library's own
error (ArtifactError, a ValueError subclass, DataError; exit code 2 on the CLI), never a raw
KeyError/TypeError/JSONDecodeError/torch error, never a traceback.

Kept fast: small ``max_examples``, one tiny model built once, no model forward in the loops.
"""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from oyster_steer import ArtifactError
from oyster_steer.control import ControlPlan, bind, load_plan, save_plan
from oyster_steer.data import DataError, PromptSet, load_starter, load_table
from oyster_steer.models._artifacts import model_meta
from oyster_steer.probes._probe import LinearProbe, load_probe, save_probe
from oyster_steer.vectors._vector import SteeringVector, load_vector, save_vector

SITE = "blocks.1.hook_resid_post"
INTENTS = ("benign", "borderline", "vulnerable", "malicious")
FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
meta_values = st.one_of(
    st.text(max_size=12),
    json_values.map(json.dumps),
    st.sampled_from(
        ["nan", "inf", "-1", "0", "1e309", "[]", "{}", "null", "none", "blocks.99.hook_resid_post"]
    ),
)


@pytest.fixture(scope="module")
def artifacts(tiny_models, tmp_path_factory):
    """A valid vector, probe and plan pack for the tiny model, read back as (tensors, meta)."""
    model = tiny_models("llama", "hf")
    root = tmp_path_factory.mktemp("fuzz")
    d = model.d_model
    g = torch.Generator().manual_seed(0)
    vector = SteeringVector.from_tensors(model, {SITE: torch.randn(d, generator=g)}, strength=2.0)
    probe = LinearProbe(
        "blocks.0.hook_resid_post", INTENTS, torch.randn(4, d, generator=g), torch.zeros(4),
        torch.zeros(d), torch.ones(d), threshold=0.5,
    )  # fmt: skip
    plan = ControlPlan(probe, [bind(vector, {"guide": 2.0}, name="v")], identity=model_meta(model))
    paths = {
        "vector": save_vector(vector, root / "v.safetensors"),
        "probe": save_probe(probe, root / "p.safetensors", model),
        "plan": save_plan(plan, root / "plan.safetensors"),
    }
    read = {}
    for kind, path in paths.items():
        with safe_open(str(path), "pt") as f:
            read[kind] = ({k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata()))  # noqa: SIM118
    return model, paths, read


LOADERS = {"vector": load_vector, "probe": load_probe, "plan": load_plan}


def _load_or_artifact_error(kind, path, model):
    with contextlib.suppress(ArtifactError):  # incl. ModelMismatchError: the one error allowed
        LOADERS[kind](path, model)


@FUZZ
@given(
    kind=st.sampled_from(sorted(LOADERS)),
    drop=st.lists(st.integers(0, 30), max_size=2),
    changes=st.dictionaries(st.integers(0, 30), meta_values, max_size=3),
)
def test_loaders_survive_hostile_metadata(artifacts, tmp_path, kind, drop, changes):
    model, _, read = artifacts
    tensors, meta = read[kind]
    keys = sorted(meta)
    meta = dict(meta)
    for i in drop:
        meta.pop(keys[i % len(keys)], None)
    for i, value in changes.items():
        meta[keys[i % len(keys)]] = value
    path = tmp_path / f"{kind}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    _load_or_artifact_error(kind, path, model)


@FUZZ
@given(
    kind=st.sampled_from(sorted(LOADERS)),
    which=st.integers(0, 30),
    action=st.sampled_from(["drop", "nan", "inf", "shape", "int", "empty", "extra"]),
)
def test_loaders_survive_hostile_tensors(artifacts, tmp_path, kind, which, action):
    model, _, read = artifacts
    tensors, meta = dict(read[kind][0]), read[kind][1]
    name = sorted(tensors)[which % len(tensors)]
    t = tensors[name]
    if action == "drop":
        del tensors[name]
    elif action in ("nan", "inf"):
        t = t.clone().float().reshape(-1)
        if t.numel():
            t[0] = math.nan if action == "nan" else math.inf
        tensors[name] = t.reshape(read[kind][0][name].shape)
    elif action == "shape":
        tensors[name] = torch.zeros(*(s + 1 for s in t.shape), 1)
    elif action == "int":
        tensors[name] = t.long()
    elif action == "empty":
        tensors[name] = torch.zeros(0)
    else:
        tensors["surprise"] = torch.zeros(3)
    path = tmp_path / f"{kind}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    _load_or_artifact_error(kind, path, model)


@FUZZ
@given(
    kind=st.sampled_from(sorted(LOADERS)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
)
def test_loaders_survive_corrupt_bytes(artifacts, tmp_path, kind, cut, flips):
    model, paths, _ = artifacts
    data = bytearray(paths[kind].read_bytes())
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    data = data[: max(0, int(cut * len(data)))] if cut < 0.999 else data
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(bytes(data))
    _load_or_artifact_error(kind, path, model)


def _paths_of(tree, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths_of(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths_of(v, (*prefix, i))


@FUZZ
@given(which=st.integers(0, 200), value=json_values, delete=st.booleans())
def test_plan_pack_manifest_survives_any_json_edit(artifacts, tmp_path, which, value, delete):
    """Replace or delete one node of the pack's JSON manifest anywhere in its tree."""
    model, _, read = artifacts
    tensors, meta = read["plan"]
    manifest = json.loads(meta["manifest"])
    nodes = [p for p, _ in _paths_of(manifest) if p]
    path_to = nodes[which % len(nodes)]
    parent = manifest
    for key in path_to[:-1]:
        parent = parent[key]
    if delete:
        del parent[path_to[-1]]
    else:
        parent[path_to[-1]] = value
    path = tmp_path / "plan.safetensors"
    save_file(tensors, str(path), metadata={**meta, "manifest": json.dumps(manifest)})
    _load_or_artifact_error("plan", path, model)


# -- the command line ------------------------------------------------------------------------

COMMANDS = ["capture", "train-probe", "train-vector", "build-plan", "eval", "export", "demo"]
OPTIONS = [
    "--batch-size", "--window", "--schedule", "--temperature", "--strength", "--n-per-intent",
    "--device", "--out", "--vector", "--monitor", "--probe", "--payoff", "--sites", "--positions",
    "--read", "--mode", "--steps", "--threads", "--seed", "--split", "--data", "--plan",
]  # fmt: skip
VALUES = ["0", "-3", "nan", "inf", "1e309", "abc", "", "x=y", "a=b:c=d", "cuda", "cuda:7",
          "blocks.99.hook_resid_post", "/dev/null/x", "/nonexistent/file.safetensors", "2x"]  # fmt: skip


@FUZZ
@given(
    command=st.sampled_from(COMMANDS),
    args=st.lists(st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)), max_size=3),
)
def test_cli_argument_space_gives_one_line_errors(command, args, capsys, monkeypatch, tmp_path):
    """Any mix of options and odd values: exit 0 or 2, never a traceback (fails before a model
    loads, as the model named is missing)."""
    from oyster_steer.cli import main

    monkeypatch.chdir(tmp_path)
    argv = [command, "--model", str(tmp_path / "no-such-model")]
    for option, value in args:
        argv += [option, value]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse
        code = exit_info.code
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, (argv, err)


# -- the data loaders -------------------------------------------------------------------------

cells = st.one_of(st.text(max_size=20), st.integers(-3, 3), st.none(), st.floats(allow_nan=True))


@FUZZ
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(["prompt", "intent", "risk", "category", "x"]), cells, max_size=5
        ),
        max_size=6,
    ),
    fmt=st.sampled_from(["jsonl", "json", "csv"]),
    garbage=st.booleans(),
)
def test_load_table_gives_a_set_or_a_data_error(tmp_path, rows, fmt, garbage):
    path = tmp_path / f"t.{fmt}"
    if garbage:
        path.write_bytes(b"\xff\xfe{not a table,\n\x00")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        import csv

        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, ["prompt", "intent", "risk", "category", "x"])
            writer.writeheader()
            writer.writerows(rows)
    try:
        out = load_table(path, "prompt")
    except (DataError, ValueError):  # DataError is a ValueError: one sentence naming the problem
        return
    assert isinstance(out, PromptSet)


@FUZZ
@given(lines=st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=15)), max_size=5))
def test_load_starter_format_gives_a_set_or_a_data_error(tmp_path, lines):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines))
    try:
        out = load_starter(path)
    except (DataError, ValueError):
        return
    assert isinstance(out, PromptSet)
