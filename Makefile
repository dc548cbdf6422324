# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export SDL_VIDEODRIVER ?= dummy

.PHONY: demo test lint bench install clean

install: $(STAMP)

# Creates .venv when missing. On machines without an NVIDIA GPU, torch is pinned to the
# CPU build first (an unpinned torch pulls a multi-GB CUDA build).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	 else $(PY) -m pip install -q torch==2.13.0; fi
	@$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wmkit demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/ensemble_speed.py
	@if [ -d runs/demo/model ]; then $(PY) benchmarks/server_load.py; else echo "server_load: skipped (no runs/demo/model; run make demo first)"; fi

clean:
	rm -rf runs benchmarks/results
