# The README's two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
TIERS := unit contract api integration e2e faults browser deploy package

.PHONY: run demo test test-lowest lint format bench clean $(TIERS:%=test-%)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# axe-core, for the browser tests' accessibility checks, and @asyncapi/parser, which checks the
# live channels' AsyncAPI document (tests/api/test_asyncapi.py): the versions pinned in
# package-lock.json. Without npm the recipe says so and the stamp stays missing (those checks
# skip; CI installs npm).
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else \
	  echo "npm not found: the accessibility and AsyncAPI parser checks will skip"; \
	fi

run: $(STAMP)
	$(BIN)/scoreboard serve

# The example boards (examples/boards.toml: all time, this week, today, a season, the fastest lap)
# on a database of their own, fed by the demo: watch http://127.0.0.1:8000/. Ctrl-C stops both.
DEMO_ENV := SCOREBOARD_BOARDS=examples/boards.toml \
	SCOREBOARD_DATABASE_URL=sqlite:///data/demo/scoreboard.db
DEMO_ARGS ?= --metric points --metric lap_ms --duration 600
demo: $(STAMP)
	mkdir -p data/demo
	$(DEMO_ENV) $(BIN)/scoreboard serve & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server' EXIT INT TERM; \
	$(DEMO_ENV) $(BIN)/scoreboard demo --wait 30 $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite runs on TEST_JOBS workers (pytest-xdist). Most of its time is spent waiting on real
# servers, browsers and databases, not computing, so more workers than CPUs pays. A file's tests
# stay on one worker (--dist loadfile): their module fixtures are built once, and the one file
# that flushes a Redis database (FLUSHABLE_REDIS_DB) never races another. TEST_JOBS=0: one process.
TEST_JOBS ?= 4
test: lint $(NODE_STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# One tier at a time (tests/<tier>/), e.g. `make test-unit`; `make test` runs them all.
$(TIERS:%=test-%): test-%: $(STAMP)
	$(BIN)/python -m pytest tests/$* $(PYTEST_ARGS)

test-browser: $(NODE_STAMP)

# The unit and contract tiers on the LOWEST versions pyproject.toml allows (each dependency at its
# lower bound, tools/lowest_constraints.py), in a virtualenv of their own made afresh each time:
# the lower bounds are claims, and this tests them. The test tools come at the lock's versions.
# .ci/run runs it after `make test`; the two tiers run on TEST_JOBS workers like the suite.
LOWEST := .venv-lowest
LOWEST_TOOLS := pytest pytest-asyncio pytest-xdist hypothesis jsonschema-rs
test-lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(PYTHON) tools/lowest_constraints.py $(LOWEST_TOOLS:%=--with %) > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet --disable-pip-version-check \
	  -c $(LOWEST)/constraints.txt . $(LOWEST_TOOLS)
	$(LOWEST)/bin/python -m pytest -n $(TEST_JOBS) --dist loadfile tests/unit tests/contract $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(LOWEST) node_modules .mypy_cache .pytest_cache .ruff_cache
