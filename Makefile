# Tổng đài 1022 — the two commands: `make run` and `make test`.
SHELL := /bin/bash
# The venv's Python must be one the app's unprivileged user can run (`make run` as root drops to
# it): Debian's own, not one under root's 0700 home (pyenv).
PY ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the hotline needs on the machine (Asterisk itself comes from a debootstrap
# rootfs when it is not on PATH): debootstrap for that rootfs, redis-server for live state,
# espeak-ng + sox for Vietnamese prompts, sip-tester (SIPp) for benchmarks, kannel (bearerbox,
# smsbox) + kannel-extras (the test SMSC fakesmsc) for SMS, logrotate (its file in deploy/ is
# tested), postgresql-client (pg_dump/pg_restore for `callcenter backup`/`restore`), kamailio
# (the SIP edge of `make cluster`) and redis-sentinel for the cluster's Redis (docs/sentinel.md;
# `redis-server --sentinel` stands in), postgresql (the server binaries for the cluster's
# private database when DATABASE_URL is not set; Debian's own cluster is not needed).
# kamailio-tls-modules: tls.so, the cluster edge's SIP over TLS listener for operators (docs/scale-out.md).
DEB_PACKAGES := python3-venv debootstrap redis-server redis-sentinel espeak-ng sox sip-tester kannel kannel-extras chromium fonts-liberation2 logrotate postgresql postgresql-client systemd faketime kamailio kamailio-tls-modules

.PHONY: run test deps venv lock unit pbx-test bench lint clean cluster

run: deps venv
	$(BIN)/callcenter run

# Kamailio at 127.0.0.1:5060 in front of NODES Asterisk nodes, each with its app (docs/scale-out.md).
NODES ?= 2
cluster: deps venv
	$(BIN)/callcenter cluster run --nodes $(NODES)

test: deps venv
	bash scripts/run-tests.sh

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

# Every package from requirements.lock, each checked against its hashes (a tampered or
# substituted download fails the install), then the project itself without its dependencies.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Re-pin requirements.lock (versions and hashes) after a change of pyproject.toml's dependencies;
# pip-tools runs from a venv of its own. The project's own line (dev's hotline1022[tools]) is
# dropped: `make venv` installs the project itself, editable.
lock:
	$(PY) -m venv var/lock-venv
	var/lock-venv/bin/pip install -q pip-tools
	var/lock-venv/bin/pip-compile -q --allow-unsafe --extra=dev --extra=tools --generate-hashes \
	  --no-emit-index-url --no-emit-find-links \
	  --strip-extras --output-file=requirements.lock pyproject.toml
	$(PY) scripts/lock_drop_self.py requirements.lock

unit: venv
	$(BIN)/pytest -q tests/unit

pbx-test: deps venv
	$(BIN)/pytest -q -m pbx

bench: deps venv
	$(BIN)/python bench/answer_latency.py
	$(BIN)/python bench/burst.py
	$(BIN)/python bench/ivr_dtmf.py
	$(BIN)/python bench/ivr_capacity.py
	$(BIN)/python bench/queue_ring.py

lint: venv
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check callcenter tests bench
	$(BIN)/mypy callcenter

clean:
	rm -rf var test-artifacts .pytest_cache
