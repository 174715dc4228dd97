# The two commands: `make demo` and `make test`. Everything installs into .venv from pinned versions.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test bench lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[demo]'
	touch $@

$(VENV)/.test-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(PY) examples/demo.py

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Types (mypy) and the layering of the packages (import-linter's contracts in pyproject.toml).
lint: $(VENV)/.test-installed
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache build src/*.egg-info
