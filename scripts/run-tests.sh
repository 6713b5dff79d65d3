#!/usr/bin/env bash
# The test command behind `make test`: every layer (pure, adapters, end to end on a real Asterisk).
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
#
# With no arguments the end-to-end tests (a real Asterisk, mostly waiting on SIP timers) run in
# three pytest workers (pytest-xdist, whole files per worker: each worker its own hotline, module
# fixtures start once) while the pure and adapter tests run in two more: on 2 cores the
# CPU-bound half uses what the waiting half leaves, and the whole suite takes about as long as
# its longer half. With one e2e worker it took ~20 min (fewer tests), with two ~14-16 min (the
# e2e half ~1600 s of tests, the pure and adapter half ~7-10 min). Two e2e workers once made an
# app stopped during its start ignore SIGTERM until its start finished (30 s): `serve` now
# cancels a start that a stop overtakes (tests/adapters/test_serve_cleanup.py). Each half has
# its own temporary folder and junit file in test-artifacts/. With arguments, one pytest runs
# exactly what was asked.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts

check() {  # name rc -> rc, with "no tests" turned into a failure
  if [ "$2" -eq 5 ]; then
    echo "error: pytest collected no tests ($1)" >&2
    return 1
  fi
  return "$2"
}

if [ "$#" -gt 0 ]; then
  .venv/bin/pytest -q -rs --junitxml=test-artifacts/junit.xml "$@"
  check "$*" $?
  exit $?
fi

# The house rules first (seconds): pure rules do no I/O and import no adapter; nothing but the
# entry points imports the composition root (pyproject.toml [tool.importlinter]).
if ! .venv/bin/lint-imports --no-cache > test-artifacts/lint-imports.log 2>&1; then
  cat test-artifacts/lint-imports.log
  echo "error: an import breaks the house rules (lint-imports above)" >&2
  exit 1
fi
echo "lint-imports: $(grep -c ' KEPT' test-artifacts/lint-imports.log) contracts kept"

base=$(mktemp -d /tmp/hotline-tests.XXXXXX)  # short: unix socket paths live under it
trap 'rm -rf "$base"' EXIT
# The ports both halves' workers hand out are leased in one folder (callcenter.runtime.ports):
# no worker hands out a port another one holds for a program it is about to start.
export HOTLINE_PORT_LEASES="$base/ports"
echo "end-to-end tests run alongside; their output follows the others' (test-artifacts/e2e.log)"
.venv/bin/pytest -q -rs -p no:cacheprovider --basetemp="$base/e2e" -n 3 --dist loadfile \
  --durations=25 --junitxml=test-artifacts/junit-e2e.xml tests/e2e > test-artifacts/e2e.log 2>&1 &
e2e_pid=$!
.venv/bin/pytest -q -rs -p no:cacheprovider --basetemp="$base/core" -n 2 --dist loadfile \
  --junitxml=test-artifacts/junit.xml tests/unit tests/adapters
core_rc=$?
wait "$e2e_pid"
e2e_rc=$?
echo "---- end-to-end tests (tests/e2e) ----"
cat test-artifacts/e2e.log
check "tests/unit tests/adapters" "$core_rc"; core_rc=$?
check "tests/e2e" "$e2e_rc"; e2e_rc=$?
echo "pure and adapter tests: exit $core_rc; end-to-end tests: exit $e2e_rc"
[ "$core_rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ]
