# The two commands a newcomer needs on a fresh machine (see README):
#   make demo   set up (.venv, CPU torch pin) and run the simulated low-light demo
#   make test   set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# constraints/cpu.txt keeps pip on the CPU torch build (no multi-GB CUDA wheels)
$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/live-restore demo --headless --frames 40 --out demo-output --overwrite

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_hook.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache .mypy_cache
