# The commands of the README: `make run` (100 iterations against the
# embedded reference server), `make test` (the whole test suite) and
# `make test-quick` (all but the tests marked network, browser or slow, in parallel).
# `make test` runs in two phases: the rest in parallel, then the tests held to the ground truth one at a time.
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

# test runs the whole suite in two phases, and fails if either does:
# 1. everything but the tests marked truth, in four pytest-xdist workers (worksteal: a worker left with long tests
#    hands some to an idle one; 154 s against 184 s with the default): none of these is held to a reference
#    server's ground truth within milliseconds, so they share the 2 cores safely;
# 2. the truth tests, one at a time: they hold runs to the ground truth (or to a link's delay) within 1 to 25 ms,
#    which other tests' processes on the same cores would disturb (issue 19's notes: 1 to 7 failures per run when
#    they run in parallel workers, even two at a time, at any niceness tried).
test: $(VENV)/.installed
	$(TEST_ENV) $(BIN)/python -m pytest -n 4 --dist worksteal -m "not truth"; parallel=$$?; \
	$(TEST_ENV) $(BIN)/python -m pytest -m truth; alone=$$?; \
	[ $$parallel -eq 0 ] && [ $$alone -eq 0 ]

# test-quick runs in three pytest-xdist workers: its tests start no reference server (those are `slow`).
test-quick: $(VENV)/.installed
	$(TEST_ENV) $(BIN)/python -m pytest -n 3 -m "not network and not browser and not slow"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) results .pytest_cache
