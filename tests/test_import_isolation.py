"""``import oyster_steer`` stays light, and a missing optional backend says how to install it.

Both run in a fresh interpreter: the test process has long since imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

OPTIONAL = ("transformer_lens", "nnsight", "plotly")

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    OPTIONAL = {optional!r}
    loaded = lambda: sorted(m for m in OPTIONAL if m in sys.modules)
    out = {{}}
    import oyster_steer, oyster_steer.data, oyster_steer.testing, oyster_steer.backends
    out["import"] = loaded()
    # every public name resolves without the optional libraries
    culprits = {{}}
    for name in oyster_steer._LAZY:
        getattr(oyster_steer, name)
        if loaded():
            culprits[name] = loaded()
            break
    out["lazy"] = culprits
    # a missing backend: the import fails and the error names the pip command
    from oyster_steer import BackendUnavailableError
    from oyster_steer.testing import tiny_model
    model = tiny_model("llama")
    for backend, module in (("nnsight", "nnsight"), ("tl", "transformer_lens")):
        sys.modules[module] = None  # what `import` sees when the package is absent
        try:
            model.with_backend(backend)
            out[backend] = None
        except BackendUnavailableError as err:
            out[backend] = [str(err), isinstance(err, ImportError)]
    print("RESULT" + json.dumps(out))
    """
).format(optional=OPTIONAL)


@pytest.fixture(scope="module")
def fresh() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_import_loads_no_optional_library(fresh):
    assert fresh["import"] == []


def test_public_names_load_no_optional_library(fresh):
    assert fresh["lazy"] == {}, (
        f"resolving these names imported optional libraries: {fresh['lazy']}"
    )


def test_missing_nnsight_names_the_pip_command(fresh):
    message, is_import_error = fresh["nnsight"]
    assert is_import_error
    assert (
        message
        == "nnsight is not installed; install it with: pip install 'oyster-steer[nnsight]'  (nnsight>=0.8)"
    )


def test_missing_transformer_lens_names_the_pip_command(fresh):
    message, is_import_error = fresh["tl"]
    assert is_import_error
    assert message == (
        "transformer_lens is not installed; install it with: pip install 'oyster-steer[tl]'  (transformer-lens>=4.3)"
    )
