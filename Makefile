# The commands of the README: `make run` (100 iterations against the
# embedded reference server), `make test` (the whole test suite) and
# `make test-quick` (all but the tests marked network, browser or slow, in parallel).
# They create ./.venv with everything installed the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-quick clean

run: $(VENV)/.installed
	$(BIN)/locust --headless -u 1 -i 100

# The tests' interpreters (pytest and the ~300 Locust runs and servers it starts) keep their compiled bytecode
# under .venv: with PYTHONDONTWRITEBYTECODE set (as in this project's container and CI shells) each of them would
# compile bootbench again, 0.3 to 0.5 s of CPU apiece; the tree stays free of __pycache__ either way.
TEST_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache

test: $(VENV)/.installed
	$(TEST_ENV) $(BIN)/python -m pytest

# test-quick runs in three pytest-xdist workers: its tests hold nothing to the ground truth within
# milliseconds (those start a reference server and are `slow`), so they share the cores safely.
# `make test` stays one process: its timing tests do not (issue 19's note: 8 to 12 failures with -n 4).
test-quick: $(VENV)/.installed
	$(TEST_ENV) $(BIN)/python -m pytest -n 3 -m "not network and not browser and not slow"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) results .pytest_cache
