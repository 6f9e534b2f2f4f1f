# The two commands the README opens with. Each does its own set-up on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install bootstrap run test test-unit test-faults lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# What the tests need beyond Python (PostgreSQL's server, promtool, docker-compose): installed
# where it can be, else one line saying what to install (scripts/bootstrap-test-tools).
bootstrap: $(STAMP)
	scripts/bootstrap-test-tools $(PY)

run: $(STAMP)
	$(VENV)/bin/miniscan demo

# The whole suite against the real parts (Pub/Sub emulator, PostgreSQL, promtool,
# docker-compose), which `bootstrap` brings; one that is still missing stops the run with a
# line saying what to install, never a silent skip. .ci/run spells these same steps out: keep
# the two in step.
test: $(STAMP) bootstrap lint
	MINISCAN_REQUIRE_EMULATOR=1 $(PY) -m pytest

# The minute-long fault scenarios against the real emulator (about 4 minutes); .ci/run runs
# them as a step of their own.
test-faults: $(STAMP) bootstrap
	MINISCAN_REQUIRE_EMULATOR=1 $(PY) -m pytest -m long_fault

# Only the tests that need nothing but Python (no emulator, no external tools).
test-unit: $(STAMP)
	$(PY) -m pytest -m "not emulator"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
