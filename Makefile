# Two commands do all set-up on a fresh clone: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

# A benchmark should not phone home (DVC's analytics are off in .dvc/config).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

# `dvc exp save` makes a git commit; give it an identity where git has none.
ifeq ($(shell git config user.email),)
export GIT_AUTHOR_NAME := prunebench
export GIT_AUTHOR_EMAIL := prunebench@localhost
export GIT_COMMITTER_NAME := prunebench
export GIT_COMMITTER_EMAIL := prunebench@localhost
endif

.PHONY: install run lint docs docs-check test test-all ui clean

install: $(STAMP)

# torch goes first: on a CPU-only machine `pip install torch==2.13.0` takes the local CPU
# build, and then nothing else pulls the multi-GB CUDA wheel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,lint,docs]'
	$(BIN)/python -m prunebench.report.offline_plots
	touch $(STAMP)

# After the run, the result is saved as the DVC experiment `make-run` (replaced on every run),
# so `dvc exp show` keeps it next to the experiments run afterwards.
# DVC_EXP_NAME: the name `dvc exp run` gives its stages, here the experiment `dvc exp save` makes (MLflow's run names)
run: install
	$(BIN)/prunebench check
	DVC_EXP_NAME=make-run PATH="$(abspath $(BIN)):$$PATH" dvc repro
	PATH="$(abspath $(BIN)):$$PATH" dvc exp save --force --name make-run --quiet
	$(BIN)/prunebench table

# What CI checks before the tests (and the pre-commit hooks before a commit): format, lint, types.
lint: install
	$(BIN)/ruff format --check src tests benchmarks stages examples docs .ci
	$(BIN)/ruff check src tests benchmarks stages examples docs .ci
	$(BIN)/mypy

# The documentation site from docs/ (params reference and method pages generated from the code)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

docs-check: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m 'not gpu'

# MLflow 3.17's UI opens experiments on its GenAI overview: the compare stage prints the link to
# the training runs (…/#/experiments/<id>?workflowType=machine_learning).
ui: install
	@echo "The training runs: the link the compare stage printed, or 'Model training' in the UI's sidebar"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf $(VENV)
