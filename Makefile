# Tessera: self-bootstrapping targets. `make test` and `make demo` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 7860
# Reinstall only when the dependency declaration changes.
STAMP := $(VENV)/.setup-$(shell cat pyproject.toml setup.py | sha256sum | cut -c1-16)

.PHONY: setup system-deps test test-fast demo bench lint format checkpoints clean

setup: $(STAMP) system-deps

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.setup-*
	@touch $@

# Debian packages the tests use (browser tests, speech synthesis for test data).
# Missing packages are reported, never fatal: the tests that need them skip with the reason.
system-deps:
	@bash scripts/system-deps.sh chromium espeak-ng flite festival festival-hi festival-mr festival-te festvox-ca-ona-hts festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph festvox-hi-nsk festvox-italp16k festvox-itapc16k festvox-kallpc16k festvox-kdlpc16k festvox-mr-nsk festvox-ru festvox-suopuhe-lj festvox-suopuhe-mv festvox-te-nsk festvox-us-slt-hts

test: setup
	$(BIN)/pytest

# Unit tests only (no slow training, no browser): the quick loop while developing.
test-fast: setup
	$(BIN)/pytest -m "not slow and not e2e"

demo: setup
	$(BIN)/tessera demo --host $(HOST) --port $(PORT)

bench: setup
	$(BIN)/python -m benchmarks run

# On a CUDA machine: every GPU test + the GPU benchmarks, one markdown report (docs/kernels.md).
# Without a GPU it says so and exits 0.
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks gpu

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-trains every shipped demo checkpoint on its synthetic world (apps add their recipes).
checkpoints: setup
	$(BIN)/python -m tessera.apps.checkpoints

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
