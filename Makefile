PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check bench worker clean chaos

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

# the chaos run at full size on both stores (chaos/run.py): 10 000 ledger events, 1 000 cards, 3 000 devices,
# 4 clients, processes SIGKILLed and restarted; every invariant checked, exit 1 on any FAIL (Redis db 11;
# `make chaos CHAOS="--store sqlite --kills 5"` passes other options)
chaos: $(STAMP)
	$(PY) -m chaos --store both $(CHAOS)

clean:
	rm -rf $(VENV) var
