# netalert — every target works from a fresh clone on Debian with nothing installed.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Bytecode caches are written even where the environment says not to: `make test` starts
# hundreds of Python processes (agents, CLI commands, pytest workers), and each would
# compile netalert's modules (and pytest its rewritten tests) from source again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test check lint typecheck pytest venv debs bench fuzz soak clean demo run docs test-cluster

test: venv debs lint typecheck pytest

# The fast tier: lint, types and the unit tests (in-process, no Debian package, no daemon;
# tests/support/tiers.py), spread over the cores. `make test` runs every tier.
check: venv lint typecheck
	$(BIN)/pytest -q -m unit -n auto

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Recorded walks of real devices for tests/test_poll_recordings.py (data only; its own
# requirements pin a pysmi older than netalert's, so without them).
RECORDINGS := $(VENV)/.snmpsim-data-1.0.1
$(RECORDINGS): | $(STAMP)
	$(BIN)/python -m pip install -q --no-deps 'snmpsim-data==1.0.1'
	touch $@

venv: $(STAMP) $(RECORDINGS)

# Debian packages the tests talk to: net-snmp's snmpd (the device), snmptrap/snmpinform
# (the senders), snmptrapd (the bench's reference receiver) and headless Chromium for
# the status page test and tcpdump (captures replayed by the replay test); PostgreSQL and
# nats-server for the cluster tests (Debian keeps initdb/postgres in
# /usr/lib/postgresql/<version>/bin, off PATH: hence a pattern); Dovecot for the [ack]
# tests. Installed with apt-get
# only when a file is missing (each entry: a path or glob pattern, a colon, the package).
NEEDED := /usr/sbin/snmpd:snmpd /usr/bin/snmpget:snmp /usr/sbin/snmptrapd:snmptrapd \
	/usr/share/snmp/mibs/UCD-SNMP-MIB.txt:libsnmp-base \
	/usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
	/usr/bin/tcpdump:tcpdump \
	'/usr/lib/postgresql/*/bin/initdb':postgresql /usr/sbin/nats-server:nats-server \
	/usr/sbin/dovecot:dovecot-core /usr/lib/dovecot/imap:dovecot-imapd
debs:
	@missing=""; for pair in $(NEEDED); do \
	  compgen -G "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "missing:$$missing and apt-get is not usable; install them by hand" >&2; exit 1; fi; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	fi

lint: venv
	$(BIN)/ruff check netalert tests bench fuzz
	$(BIN)/ruff format --check netalert tests bench fuzz

typecheck: venv
	$(BIN)/mypy --strict netalert

# Every tier, in two passes: every test but the `timing` ones over PYTEST_WORKERS
# pytest-xdist workers (the daemon and e2e tests mostly wait on sockets and child
# processes, so more workers than cores pay; tests marked xdist_group("...") run one
# after another on one worker, and tests/support/order.py hands out the longest modules
# first), then the tests marked `timing` (bounded by wall time: loop lag, /healthz
# latency, sub-second SNMP timeouts, leases) with nothing else beside them, over
# TIMING_WORKERS workers: one lane (xdist group) each, the CPU-loading tests in one lane
# of their own; only the modules that mark timing tests are collected. Both passes
# run even when the first fails; the exit status is the first failure's.
# PYTEST_WORKERS=0 runs everything in one process (see docs/development.md). Both passes share one folder
# (tests/support/shared.py): ports, MIB facts, the compiled MIB cache.
PYTEST_WORKERS ?= 6
TIMING_WORKERS ?= 6
pytest: venv debs
	@shared=$$(mktemp -d -t netalert-tests-XXXXXX) && trap 'rm -rf "$$shared"' EXIT && \
	export NETALERT_REQUIRE_SNMPD=1 NETALERT_TEST_SHARED="$$shared" && \
	if [ "$(PYTEST_WORKERS)" = 0 ]; then \
	  set -x; $(BIN)/pytest -q; \
	else \
	  status=0; set -x; \
	  $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not timing" || status=$$?; \
	  $(BIN)/pytest -q -n $(TIMING_WORKERS) --dist loadgroup -m timing \
	    $$($(BIN)/python -m tests.support.order timing-modules) || { [ $$status != 0 ] || status=$$?; }; \
	  exit $$status; \
	fi

# The bench also builds bench/nsbench.c (the net-snmp C library reference): it needs
# libsnmp-dev and a C compiler, installed like `debs` does, only when missing.
# `make bench QUICK=1` is a short run; BENCH_ARGS passes more (e.g. --only traps,latency).
# BENCH_ARGS=--instructions counts instructions instead, under perf stat or, where the
# kernel exposes no hardware counter, valgrind's callgrind (hence valgrind).
BENCH_DEBS := /usr/include/net-snmp/net-snmp-config.h:libsnmp-dev /usr/bin/cc:gcc \
	/usr/include/valgrind/callgrind.h:valgrind
bench: venv debs
	@$(MAKE) --no-print-directory debs NEEDED="$(BENCH_DEBS)"
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

# atheris harnesses over the trap decoders, pysnmp's v3 path and the receiver's access
# control, FUZZ_SECONDS each (all at once); see fuzz/run.py
FUZZ_SECONDS ?= 60
fuzz: venv debs
	$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[fuzz]'
	$(BIN)/python fuzz/run.py $(FUZZ_SECONDS)

# the cluster tests alone (real PostgreSQL and nats-server; `make test` runs them too)
test-cluster: venv debs
	NETALERT_REQUIRE_SNMPD=1 $(BIN)/pytest -q tests/test_cluster_*.py

# the slow fault tests (tests/soak/, minutes); `make test` does not collect them
soak: venv debs
	NETALERT_SOAK=1 NETALERT_REQUIRE_SNMPD=1 $(BIN)/pytest -q -s tests/soak

demo: venv
	$(BIN)/netalert demo

run: venv
	$(BIN)/netalert run -c config.toml

# the generated pages: docs/configuration.md from the config models (and
# docs/configuration.md.in), docs/performance.md from bench/results/ (and
# docs/performance.md.in); tests/test_docs.py fails when either is out of date
docs: venv
	$(BIN)/python -m netalert.config.docs
	$(BIN)/python -m bench.docs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
