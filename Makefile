# Two targets a newcomer needs: `make run` starts the emulator, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install clean

$(BIN)/payletter-emulator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/payletter-emulator

run: install
	$(BIN)/payletter-emulator serve

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis test-artifacts
