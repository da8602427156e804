# Two targets a newcomer needs: `make run` starts the emulator, `make test` runs the suite.
# `make run` installs what serving needs; `make test` adds the test extra and checks the system
# packages the suite needs (scripts/check-test-system) before running it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test install check-system clean

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

test: check-system $(VENV)/.installed-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis test-artifacts
