#!/usr/bin/env bash
# The test command behind `make test`: every layer (pure, adapters, end to end on a real Asterisk).
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
#
# With no arguments the end-to-end tests (a real Asterisk, mostly waiting on SIP timers) run in
# two pytest workers (pytest-xdist, whole files per worker: each worker its own hotline, module
# fixtures start once) while the pure and adapter tests run in two more: on 2 cores the
# CPU-bound half uses what the waiting half leaves. When that half is done, a third pytest
# takes the end-to-end files listed in E2E_LATE (~250 s of tests, none of them tight on
# timing) beside the first two workers. So the machine never carries more than it did with two
# workers per half (a third e2e worker from the start, beside the CPU-bound half, made timing
# tests miss their windows in CI), and the suite no longer waits ~15 min for one e2e pair
# (~1600 s of tests). With one e2e worker it took ~20 min (fewer tests). Two e2e workers once made an
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
# ~250 s of end-to-end tests that start once the pure and adapter tests are done (see above).
E2E_LATE=(tests/e2e/test_soak_short.py tests/e2e/test_run_command.py
          tests/e2e/test_console_browser.py tests/e2e/test_lists_browser.py
          tests/e2e/test_admin_users_browser.py tests/e2e/test_review_browser.py
          tests/e2e/test_quality_browser.py tests/e2e/test_oversight_browser.py
          tests/e2e/test_webform_browser.py)
for f in "${E2E_LATE[@]}"; do
  [ -f "$f" ] || { echo "error: E2E_LATE names $f, which is not there" >&2; exit 1; }
done
echo "end-to-end tests run alongside; their output follows the others' (test-artifacts/e2e.log)"
.venv/bin/pytest -q -rs -p no:cacheprovider --basetemp="$base/e2e" -n 2 --dist loadfile \
  --durations=25 --junitxml=test-artifacts/junit-e2e.xml "${E2E_LATE[@]/#/--ignore=}" \
  tests/e2e > test-artifacts/e2e.log 2>&1 &
e2e_pid=$!
.venv/bin/pytest -q -rs -p no:cacheprovider --basetemp="$base/core" -n 2 --dist loadfile \
  --junitxml=test-artifacts/junit.xml tests/unit tests/adapters
core_rc=$?
echo "end-to-end tests, the late part (${#E2E_LATE[@]} files; test-artifacts/e2e-late.log)"
.venv/bin/pytest -q -rs -p no:cacheprovider --basetemp="$base/e2e-late" --durations=10 \
  --junitxml=test-artifacts/junit-e2e-late.xml "${E2E_LATE[@]}" \
  > test-artifacts/e2e-late.log 2>&1
late_rc=$?
wait "$e2e_pid"
e2e_rc=$?
echo "---- end-to-end tests (tests/e2e) ----"
cat test-artifacts/e2e.log
echo "---- end-to-end tests, the late part ----"
cat test-artifacts/e2e-late.log
check "tests/unit tests/adapters" "$core_rc"; core_rc=$?
check "tests/e2e" "$e2e_rc"; e2e_rc=$?
check "${E2E_LATE[*]}" "$late_rc"; late_rc=$?
echo "pure and adapter tests: exit $core_rc; end-to-end tests: exit $e2e_rc, late part: exit $late_rc"
[ "$core_rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ] && [ "$late_rc" -eq 0 ]
