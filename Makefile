# These commands do all set-up on a fresh machine: `make demo-quick` (a first look), `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch (a plain `torch` pulls a multi-GB CUDA build). GPU users: see README.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo demo-quick test test-fast test-slow lint test-torchvision test-lmms-eval

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/vskip demo --out runs/demo

# The same pipeline at the size the tests use: every file and the report, in minutes, its figures from a few items.
demo-quick: setup
	$(BIN)/vskip demo --quick --out runs/demo-quick

test: setup lint test-fast test-slow

lint: setup
	$(BIN)/ruff check src tests benchmarks

test-fast: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow

# The Auto-class load test (tests/test_models.py) and videos end to end (tests/test_video.py) need
# torchvision, and no torchvision imports beside the CPU pin torch==2.13.0: a second venv takes the pair
# pip finds on this machine (a CUDA build that runs on the CPU; about 2 minutes and 6 GB the first time).
# CI runs it after `make test`.
TV_VENV := .venv-torchvision
TV_SPEC ?= torch==2.14.1 torchvision==0.29.1

$(TV_VENV)/.installed: pyproject.toml
	test -d $(TV_VENV) || $(PYTHON) -m venv $(TV_VENV)
	$(TV_VENV)/bin/pip install -q --upgrade pip
	$(TV_VENV)/bin/pip install -q $(TV_SPEC)
	$(TV_VENV)/bin/pip install -q -e ".[test]"
	touch $@

test-torchvision: $(TV_VENV)/.installed
	$(TV_VENV)/bin/python -c "from transformers.utils import is_torchvision_available as ok; assert ok(), 'no torchvision'"
	$(TV_VENV)/bin/pytest -q -rs tests/test_models.py tests/test_video.py

# lmms-eval runs a merged student on a task `vskip data export` wrote (tests/test_lmms_eval.py). Its own dependency
# list pulls wandb, sentence-transformers and more; this venv has lmms-eval without them, plus exactly what its CLI
# and its qwen2_vl class import, pinned: av below 16 (lmms-eval's bound; qwen-vl-utils would take 18), filelock
# below 4 (lmms-eval imports filelock._api, gone in 4). Its torch is TV_SPEC's, for torchvision, which lmms-eval needs.
# About 4 minutes the first time (most of it torch). CI runs it after `make test-torchvision`.
LMMS_VENV := .venv-lmms
LMMS_SPEC ?= lmms-eval==0.7.3
LMMS_DEPS ?= loguru==0.7.3 decord==0.6.0 pytz==2026.6 evaluate==0.4.6 sacrebleu==2.6.0 tenacity==9.2.1 \
	qwen-vl-utils==0.0.14 av==15.1.0 filelock==3.32.7 pytablewriter==1.2.1

$(LMMS_VENV)/.installed: pyproject.toml
	test -d $(LMMS_VENV) || $(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_VENV)/bin/pip install -q --upgrade pip
	$(LMMS_VENV)/bin/pip install -q $(TV_SPEC)
	$(LMMS_VENV)/bin/pip install -q -e ".[test]"
	$(LMMS_VENV)/bin/pip install -q $(LMMS_DEPS)
	$(LMMS_VENV)/bin/pip install -q --no-deps "$(LMMS_SPEC)"
	touch $@

test-lmms-eval: $(LMMS_VENV)/.installed
	$(LMMS_VENV)/bin/python -c "import lmms_eval.models.simple.qwen2_vl, lmms_eval.__main__"
	$(LMMS_VENV)/bin/pytest -q -rs tests/test_lmms_eval.py
