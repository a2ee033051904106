# The two commands of the README: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CC := $(BIN)/callcenter
# Debian packages the product and its tests use (installed with apt-get when missing; needs root or sudo).
SYSTEM_PACKAGES ?= postgresql redis-server espeak-ng sox sip-tester kamailio
DEMO_CUSTOMERS ?= 2000
DEMO_SECONDS ?= 90

.PHONY: demo test install system-packages bench clean help

help:
	@echo "make demo   set up (venv, database, demo data) and run the contact center on embedded defaults"
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
	$(CC) config check
	$(CC) db upgrade
	$(CC) demo-data --customers $(DEMO_CUSTOMERS) --seed 42
	$(CC) prompts build
	$(CC) ivr check
	$(CC) overview
	$(CC) --config config/loopback.toml demo-calls --duration $(DEMO_SECONDS)

test: install system-packages
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache
