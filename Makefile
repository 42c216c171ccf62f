# The two commands of the quick start, `make run` and `make test`, set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps: the runtime an edge box needs (`make run`), and the dev extras on top
# (tests, linters, the browser driver) for everything else.
RUNTIME := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test check format bench clean

$(RUNTIME): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Serves http://127.0.0.1:8000 on ./data/sovd.db with the demo fleet, and the ECU emulator
# on a free loopback port behind the fleet's DoIP vehicle (SOVD_DEMO_EMULATOR=0: without).
# `exec`: the shell becomes the service, so the SIGTERM make forwards reaches it (no orphan).
run: $(RUNTIME)
	SOVD_DEMO_DATA=$${SOVD_DEMO_DATA:-1} SOVD_DEMO_EMULATOR=$${SOVD_DEMO_EMULATOR:-1} exec $(PY) -m app

# Every tier on three workers (pytest-xdist; a module stays on one worker), and the ten
# slowest tests (docs/development.md). Three on the 2-core machine: many tests wait
# (a browser page, a Prometheus scrape, a command's timeout, a server's start) and two
# workers left a third of the CPU idle: 204-212 s against 227 s on two, 2026-12-08.
# The fast inner loop, without the real-socket tier (983 tests, 23-24 s on the 2-core
# machine, 33-35 s of CPU; three workers were no faster there):
#   $(PY) -m pytest -m "not socket" -n 2 --dist loadfile
test: $(STAMP)
	$(PY) -m pytest -n 3 --dist loadfile --durations=10

check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Every benchmark scenario at full size; prints a table, writes bench/results/*.json.
bench: $(STAMP)
	$(PY) -m bench
