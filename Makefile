# Course tasks. Every target creates the local virtual environment (.venv) on first use and
# reuses it afterwards; it is rebuilt when pyproject.toml or constraints.txt change.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 2
SWEEP ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.DEFAULT_GOAL := help
.PHONY: help venv test lint unit browser report sweep lab bench format clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,browser]'
	@touch $@

venv: $(STAMP)  ## create/update the virtual environment

test: lint unit browser  ## everything: lint, unit tests + every notebook (nbval), browser tests

lint: $(STAMP)  ## ruff lint and format check (code and notebooks)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)  ## unit tests and every notebook through nbval, in parallel
	COURSE_LIB_METRICS=$$(mktemp -d)/metrics.json OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	  $(BIN)/python -m pytest -n $(WORKERS) --dist loadscope -m "not browser" \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	  --ignore=tests/data --ignore=tests/browser tests notebooks

browser: $(STAMP)  ## JupyterLab + Chromium end-to-end tests (screenshots in test-artifacts/)
	$(BIN)/python -m pytest -m browser tests/browser
	$(BIN)/python -m pytest -m browser tests/test_report.py

report: $(STAMP)  ## run every notebook through papermill into reports/ (prints index.html)
	$(BIN)/python -m course_lib.report

sweep: $(STAMP)  ## run a parameter sweep: make sweep SWEEP=notebooks/sweeps/<file>.toml
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=notebooks/sweeps/<file>.toml"; exit 2; }
	$(BIN)/python -m course_lib.report $(SWEEP)

lab: $(STAMP)  ## JupyterLab on 127.0.0.1 with a token
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	echo "JupyterLab: http://127.0.0.1:8888/lab?token=$$token"; \
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.token=$$token \
	  --ServerApp.root_dir=notebooks $(ROOT_FLAG)

bench: $(STAMP)  ## run benchmarks/ and print a table of ratios
	$(BIN)/python benchmarks/run.py

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove reports, test artefacts and caches (keeps .venv and data/)
	rm -rf reports test-artifacts .pytest_cache .ruff_cache benchmarks/results.json
