# The commands of the README: `make run` (100 iterations against the
# embedded reference server), `make test` (the whole test suite) and
# `make test-quick` (all but the tests marked network, browser or slow).
# They create ./.venv with everything installed the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-quick clean

run: $(VENV)/.installed
	$(BIN)/locust --headless -u 1 -i 100

test: $(VENV)/.installed
	$(BIN)/python -m pytest

test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not network and not browser and not slow"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) results .pytest_cache
