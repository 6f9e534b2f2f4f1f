# The two commands the README opens with. Each does its own set-up on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install bootstrap run test test-unit test-faults test-lowest lint clean

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
# docker-compose, kubectl), which `bootstrap` brings; one that is still missing stops the run
# with a line saying what to install, never a silent skip. .ci/run spells these same steps
# out: keep the two in step.
test: $(STAMP) bootstrap lint
	MINISCAN_REQUIRE_EMULATOR=1 $(PY) -m pytest

# The minute-long fault scenarios against the real emulator (about 4 minutes); .ci/run runs
# them as a step of their own.
test-faults: $(STAMP) bootstrap
	MINISCAN_REQUIRE_EMULATOR=1 $(PY) -m pytest -m long_fault

# The lowest versions pyproject.toml allows (constraints/lowest.txt) in a venv of their own:
# the unit tests and one end-to-end test prove the lower bounds (issue 28); .ci/run runs it.
LOWEST := .venv-lowest
LOWEST_E2E := tests/e2e/test_pipeline_e2e.py::test_stores_newest_per_key_dead_letters_poison_and_acks_everything
test-lowest: bootstrap
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q -c constraints/lowest.txt -e '.[dev]'
	MINISCAN_REQUIRE_EMULATOR=1 $(LOWEST)/bin/python -m pytest -q -p no:cacheprovider \
		tests/unit $(LOWEST_E2E)

# Only the tests that need nothing but Python (no emulator, no external tools).
test-unit: $(STAMP)
	$(PY) -m pytest -m "not emulator"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .ruff_cache build *.egg-info
