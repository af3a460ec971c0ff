PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check bench worker clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m cli serve

worker: $(STAMP)
	$(PY) -m cli worker

# axe-core for the browser tests' accessibility checks, from the npm registry
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --silent --no-audit --no-fund
	touch $(AXE)

test: $(STAMP) $(AXE)
	$(PY) -m pytest

# format, lint and types; settings in pyproject.toml ([tool.ruff], [tool.mypy])
check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# every bench/*.py in name order (bench/geo.py among them; it uses Redis db 13 when one answers);
# `make bench BENCH="geo sign"` runs only those
bench: $(STAMP)
	$(PY) -m bench $(BENCH)

clean:
	rm -rf $(VENV) var
