# The two commands of the README: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install system-deps bench check clean-state

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[embedded,dev]'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

install: $(VENV)/.installed node_modules/.package-lock.json

# tmux (terminals that survive a disconnect), bubblewrap (sandbox isolation) and, for the tests,
# Chromium, from Debian's packages.
system-deps:
	@./scripts/install-system-deps.sh test

run: install
	@./scripts/install-system-deps.sh run
	$(PY) -m fullstackagent.devtools.launcher

# The suite runs on TEST_WORKERS pytest-xdist workers, each with its own test database, Redis and
# sandboxes (fullstackagent.testing.plugin), handed tests as they free up (worksteal): with 4 on 2
# CPUs, 2.0 to 2.5 minutes and the serial part 12-16 s in the runs of December 2's afternoon (2 workers,
# before the changes of that day: 3.4 minutes; much of a test is waiting on real processes). Tests
# marked serial (time bounds of a second or so) run afterwards, alone.
TEST_WORKERS ?= 4
# The modules of the serial tests (their source says pytest.mark.serial; fullstackagent.testing.plugin
# refuses a serial test marked otherwise): the serial part collects only them.
SERIAL_MODULES = $(shell grep -rlE --include='test_*.py' 'pytest\.mark\.serial' tests)
# With PYTHONDONTWRITEBYTECODE (set on some machines) nothing is cached between the suite's
# processes: each pytest process rewrote every test module's assertions again (5 s of its 15 s of
# collection here), each web process and Celery worker compiled the platform's modules again.
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE

test: install system-deps
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not serial"
	$(TEST_ENV) $(PY) -m pytest -m serial $(SERIAL_MODULES)

bench: install
	$(PY) bench/reconcile.py
	$(PY) bench/terminal.py
	$(PY) bench/api.py

check: install
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(VENV)/bin/lint-imports

clean-state:
	$(PY) -m fullstackagent.devtools.embedded down; rm -rf .state
