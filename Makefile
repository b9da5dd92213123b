# The two commands in the README: `make demo` and `make test`. Each does all set-up first.
VENV := .venv/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-vllm demo test test-fast lint
setup:
	bash scripts/setup.sh

# The vLLM venv (.venv-vllm, its own transformers pin) for the tests marked vllm. Exit status 3
# means it cannot be built here (no PyPI): those tests then skip, saying so.
setup-vllm:
	bash scripts/setup_vllm.sh || [ $$? -eq 3 ]

demo: setup
	$(VENV)/oyster-steer demo

test: setup setup-vllm
	$(VENV)/python -m pytest -q -n 2 --dist loadgroup --durations=15 tests

test-fast: setup
	$(VENV)/python -m pytest -q -n 2 -m "not slow" tests

lint: setup
	$(VENV)/ruff check oyster_steer tests && $(VENV)/ruff format --check oyster_steer tests
	$(VENV)/python -m mypy oyster_steer
