# The two commands of the README: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CC := $(BIN)/callcenter
# Debian packages the product and its tests use (installed with apt-get when missing; needs root or sudo).
SYSTEM_PACKAGES ?= postgresql redis-server espeak-ng sox sip-tester kamailio kamailio-extra-modules baresip-core
DEMO_CUSTOMERS ?= 2000
DEMO_SECONDS ?= 90
# Every demo step uses one configuration: the loopback center, whose agents have phones and
# desks the demo can simulate on this machine, open around the clock. Checking, migrating (which
# syncs the agents), loading data, recording prompts and the overview then all describe the center
# that takes the calls, in one database. config/callcenter.toml stays the commented reference
# for a real installation.
DEMO_CONFIG ?= config/loopback.toml
# The suite runs on this many pytest workers; the tests on real SIP (front, e2e, telephony) stay
# together on one of them (their timing is real), the rest spread over the others.
TEST_WORKERS ?= 2
DEMO := $(CC) --config $(DEMO_CONFIG)

.PHONY: demo test install system-packages bench clean help

help:
	@echo "make demo   set up (venv, database, demo data) and run the loopback contact center with simulated callers and agents"
	@echo "make test   install what the tests need (pip and Debian packages) and run the whole suite"
	@echo "make bench  run the benchmarks in bench/"

$(VENV)/.installed: pyproject.toml
	@bash .ci/system-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

system-packages:
	@bash .ci/system-packages.sh $(SYSTEM_PACKAGES)

demo: install system-packages
	$(DEMO) config check
	$(DEMO) db upgrade
	$(DEMO) demo-data --customers $(DEMO_CUSTOMERS) --seed 42
	$(DEMO) prompts build
	$(DEMO) ivr check
	$(DEMO) overview
	$(DEMO) demo-calls --duration $(DEMO_SECONDS) --seed 42

test: install system-packages
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

bench: install
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache
