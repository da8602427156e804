# Three targets a newcomer needs: `make run` starts the emulator, `make test` runs the suite as CI
# does, `make quick` runs what needs nothing beyond Python.
# `make run` installs what serving needs; `make test` adds the test extra and checks the system
# packages the suite needs (scripts/check-test-system) before running it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# Test processes at once (pytest-xdist): two per core, at most four (each starts its own servers).
# Most of a test's time is spent waiting for a server it started, so two per core finish sooner
# than one (on 2 cores: 4 m 04 s against 4 m 51 s, the same run of the whole suite).
JOBS   ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 1) * 2 )); [ "$$n" -gt 4 ] && n=4; echo $$n)
# Each process starts with an even, contiguous share of the tests and one that runs dry takes
# from the other's rest (worksteal): a module's tests mostly stay on one process, so its
# module-scoped servers start about once; where a module is split each process starts its own,
# and no test relies on what another left behind.
PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist worksteal
# What `make quick` leaves out: the tests marked (tests/conftest.py, from the fixture they take)
# as needing chromium, PostgreSQL, wrk or Node; pyproject.toml's markers say why each.
WITHOUT_SYSTEM_PACKAGES := not browser and not postgres and not wrk and not node

.PHONY: run test quick install check-system clean

# One stamp per install, so that `make run` on a fresh clone installs no test tool and `make test`
# after it adds the extra; each is redone when pyproject.toml changes.
$(VENV)/.installed-serve: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed-serve $@

install: $(VENV)/.installed-test

run: $(VENV)/.installed-serve
	$(BIN)/payletter-emulator serve $(ARGS)

# The system packages first: a missing one is named before the long install.
check-system:
	@./scripts/check-test-system

# Everything, nothing skipped (what .ci/run runs): a missing system package fails, never skips.
test: check-system $(VENV)/.installed-test
	$(PYTEST)

# Everything that needs no system package beyond Python; the run's header names each part left
# out and why. Before a commit on a laptop without them; `make test` is the check that counts.
quick: $(VENV)/.installed-test
	$(PYTEST) -m "$(WITHOUT_SYSTEM_PACKAGES)"

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis test-artifacts
