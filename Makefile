# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch (a plain `torch` pulls a multi-GB CUDA build). GPU users: see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast test-slow lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/vskip demo --out runs/demo

test: setup lint test-fast test-slow

lint: setup
	$(BIN)/ruff check src tests benchmarks

test-fast: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow
