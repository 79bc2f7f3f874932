# netalert — every target works from a fresh clone on Debian with nothing installed.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBS := snmpd snmp snmptrapd libsnmp-base

.PHONY: test lint typecheck pytest venv debs bench fuzz soak clean

test: venv debs lint typecheck pytest

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests talk to: net-snmp's snmpd (the device), snmptrap/snmpinform (the senders).
debs:
	@missing=""; for p in snmpd snmptrap snmptrapd; do \
	  command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBS) >/dev/null || \
	    { $$SUDO apt-get update -q >/dev/null && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBS) >/dev/null; }; \
	  else echo "net-snmp (snmpd, snmptrap, snmptrapd) is missing and apt-get is not usable" >&2; exit 1; fi; \
	fi

lint: venv
	$(BIN)/ruff check netalert tests bench
	$(BIN)/ruff format --check netalert tests bench

typecheck: venv
	$(BIN)/mypy --strict netalert

pytest: venv debs
	NETALERT_REQUIRE_SNMPD=1 $(BIN)/pytest -q

bench: venv debs
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
