"""Shared fixtures: the tokenizer, tiny models per (arch, backend), the real default model, and a
check that fails any test which leaves a hook behind.

Fixtures:
    tokenizer    the default model's tokenizer (session).
    tiny         tiny random llama on the hf backend (session; 3 layers, d=64).
    tiny_models  factory ``tiny_models(arch="llama", backend="hf", seed=0)``, cached per session.
                 Each (arch, backend, seed) gets its own HF module: booting TransformerLens rewires
                 the HF model it wraps, so the plain-HF fixtures never share one with a bridge.
    smollm       the real default model (``oyster_steer.load_model()``, hf backend, session). A
                 test that uses it is marked ``slow`` and put in xdist group "smollm" here, so
                 ``pytest -n 2 --dist loadgroup`` loads it in one worker only.
    track        ``track(model_or_module)`` adds a model to the hook-leak check.
    one_thread   torch on one thread for a module (small full-batch fits are fastest that way,
                 and CI runs two workers on two cores); use it with
                 ``pytestmark = pytest.mark.usefixtures("one_thread")``.

Every model built through ``from_hf`` (``load_model``, ``tiny_model``, ``with_backend``) during
the session is tracked automatically (weakly: tracking keeps nothing alive).
"""

from __future__ import annotations

import os

# Offline before anything imports huggingface_hub / transformers.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import functools  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import oyster_steer  # noqa: E402
from oyster_steer import testing  # noqa: E402
from oyster_steer.data import default_data_dir  # noqa: E402
from oyster_steer.models import _model as _models  # noqa: E402
from oyster_steer.models._model import OysterModel  # noqa: E402

# ---------------------------------------------------------------------------------------------
# pytest configuration


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: runs on the real default model, or takes over ~30 s; still part of CI"
    )
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped where none is present")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # two workers on two cores: oversubscribed threads only slow both down
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "smollm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("smollm"))
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


# ---------------------------------------------------------------------------------------------
# hook-leak check

# Hooks that libraries install for their own bookkeeping (TransformerLens wires capture hooks
# into the modules it wraps on first use). Hooks on TransformerLens HookPoints are checked
# through ``HookPoint.fwd_hooks`` instead.
_LIBRARY_HOOKS = ("transformer_lens", "nnsight", "transformers", "accelerate", "torch")
_TRACKED: dict[int, weakref.ref] = {}


def track(obj: Any) -> Any:
    """Add an OysterModel or nn.Module to the hook-leak check; returns it unchanged."""
    modules = [obj.hf, obj.native] if isinstance(obj, OysterModel) else [obj]
    for module in modules:
        key = id(module)
        if isinstance(module, torch.nn.Module) and key not in _TRACKED:
            _TRACKED[key] = weakref.ref(module, functools.partial(_forget, key))
    return obj


def _forget(key: int, _: weakref.ref) -> None:
    _TRACKED.pop(key, None)


def _hook_owner(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__module__", None) or ""


def _user_hooks(module: torch.nn.Module) -> Iterator[tuple[int, str, int]]:
    for kind, table in (("forward", module._forward_hooks), ("pre", module._forward_pre_hooks)):
        for key, fn in table.items():
            if not _hook_owner(fn).startswith(_LIBRARY_HOOKS):
                yield (id(module), kind, key)
    for kind in ("fwd_hooks", "bwd_hooks"):  # TransformerLens HookPoint (a plain list attribute)
        for lens in module.__dict__.get(kind) or ():
            if not getattr(lens, "is_permanent", False):
                yield (id(module), kind, id(lens))


def _has_hooks(module: torch.nn.Module) -> bool:
    d = module.__dict__
    return bool(
        d["_forward_hooks"] or d["_forward_pre_hooks"] or d.get("fwd_hooks") or d.get("bwd_hooks")
    )


def _live_hooks() -> dict[tuple[int, str, int], str]:
    """Every user hook on every tracked module, with a readable location (a few ms per call)."""
    found: dict[tuple[int, str, int], str] = {}
    seen: set[int] = set()
    for ref in list(_TRACKED.values()):
        root = ref()
        if root is None:
            continue
        for module in root.modules():
            if id(module) in seen or not _has_hooks(module):
                continue
            seen.add(id(module))
            for key in _user_hooks(module):
                name = next((n for n, m in root.named_modules() if m is module), "?")
                found[key] = f"{type(root).__name__}:{name or '<root>'} ({key[1]})"
    for kind, table in (
        ("global forward", torch.nn.modules.module._global_forward_hooks),
        ("global pre", torch.nn.modules.module._global_forward_pre_hooks),
    ):
        for key in table:
            found[(0, kind, key)] = kind
    return found


@pytest.fixture(autouse=True)
def _no_hook_leaks() -> Iterator[None]:
    """Fail a test that leaves hooks on any tracked model (hooks present before it are fine)."""
    before = _live_hooks()
    yield
    leaked = {k: v for k, v in _live_hooks().items() if k not in before}
    if leaked:
        pytest.fail(
            f"test leaked {len(leaked)} hook(s): {sorted(set(leaked.values()))}", pytrace=False
        )


@pytest.fixture(scope="session", autouse=True)
def _track_every_model() -> Iterator[None]:
    """Route every OysterModel built this session through :func:`track`."""

    def tracked(fn: Callable[..., OysterModel]) -> Callable[..., OysterModel]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> OysterModel:
            return track(fn(*args, **kwargs))

        return wrapper

    patch = pytest.MonkeyPatch()
    wrapped = tracked(_models.from_hf)
    for module in (_models, testing, oyster_steer):
        patch.setattr(module, "from_hf", wrapped)
    patch.setattr(OysterModel, "with_backend", tracked(OysterModel.with_backend))
    yield
    patch.undo()


@pytest.fixture
def track_model() -> Callable[[Any], Any]:
    """``track_model(model)``: include a model built by hand in the hook-leak check."""
    return track


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public prompt sets (../shared/data or $OYSTER_STEER_DATA); skips where they are absent."""
    found = default_data_dir()
    if found is None:
        pytest.skip("../shared/data is absent; set OYSTER_STEER_DATA to run the real-data tests")
    return found


# ---------------------------------------------------------------------------------------------
# models


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return testing.default_tokenizer()


@pytest.fixture(scope="session")
def tiny_models() -> Callable[..., OysterModel]:
    """``tiny_models(arch="llama", backend="hf", seed=0)``: a cached tiny model per key."""
    cache: dict[tuple[str, str, int], OysterModel] = {}

    def get(arch: str = "llama", backend: str = "hf", seed: int = 0) -> OysterModel:
        key = (arch, backend, seed)
        if key not in cache:
            cache[key] = track(testing.tiny_model(arch, backend, seed=seed))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def tiny(tiny_models: Callable[..., OysterModel]) -> OysterModel:
    return tiny_models("llama", "hf")


@pytest.fixture(scope="session")
def smollm() -> OysterModel:
    """SmolLM2-135M-Instruct on the hf backend, CPU (~1 s from the converted cache)."""
    return track(oyster_steer.load_model(device="cpu"))
