# The two commands a newcomer needs on a fresh machine (see README):
#   make demo   set up (.venv, CPU torch pin) and run the simulated low-light demo
#   make test   set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# the Triton server's environment: NumPy 1 for PyTriton (see constraints/serve.txt)
SERVE_VENV ?= .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed-stamp

.PHONY: setup serve-env demo test lint docs bench bench-viewer bench-focus bench-inference screenshot system-deps clean

# Debian/Ubuntu packages the napari window needs on a machine without a desktop (Xvfb, GL, xcb);
# `make test` skips the viewer tests when no X server can be started
SYSTEM_PACKAGES := xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-icccm4 \
	libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
	libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1

setup: $(STAMP)

# constraints/cpu.txt keeps pip on the CPU torch build (no multi-GB CUDA wheels)
$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[dev]"
	touch $(STAMP)

serve-env: $(SERVE_STAMP)

$(SERVE_STAMP): pyproject.toml constraints/cpu.txt constraints/serve.txt
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -c constraints/cpu.txt -r constraints/serve.txt
	$(SERVE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(SERVE_STAMP)

demo: setup
	$(BIN)/live-restore demo --headless --frames 40 --out demo-output --overwrite

# serve-env: the tests start a real Triton server on loopback
test: setup serve-env
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/mypy

# the documentation site in site/ (a broken link or reference fails the build)
docs: setup
	$(BIN)/mkdocs build --strict

system-deps:
	@if command -v Xvfb >/dev/null; then echo "Xvfb present"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES); fi

# the README's picture: the demo window, saved once its frames are restored (needs an X server)
screenshot: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/live-restore demo --frames 8 --out demo-screenshot-run \
		--overwrite --screenshot docs/demo-window.png

bench-inference: setup
	$(BIN)/live-restore bench --repeats 10 --csv benchmarks/inference.csv

bench-focus: setup
	$(BIN)/python benchmarks/bench_focus.py

bench-viewer: setup
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python benchmarks/bench_viewer.py

bench: setup
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_hook.py

clean:
	rm -rf $(VENV) $(SERVE_VENV) demo-output demo-screenshot-run .pytest_cache .ruff_cache .mypy_cache
