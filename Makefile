# The two commands in the README: `make demo` and `make test`. Each does all set-up first.
VENV := .venv/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint
setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/oyster-steer demo

test: setup
	$(VENV)/python -m pytest -q -n 2 --dist loadgroup tests

test-fast: setup
	$(VENV)/python -m pytest -q -n 2 -m "not slow" tests

lint: setup
	$(VENV)/ruff check oyster_steer tests && $(VENV)/ruff format --check oyster_steer tests
