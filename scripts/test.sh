#!/usr/bin/env bash
# Runs every test. Installs what the tests need first, so it works on a fresh Debian machine
# as root: `bash scripts/test.sh`. Prints "N passed, N failed" last; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/sweep.sh

report=$(mktemp)
trap 'rm -f "$report"; bash scripts/sweep.sh' EXIT
status=0
# Kernel tests need root and real namespaces; each file owns its own namespaces.
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$report" \
  --test-concurrency=2 --test-timeout=300000 \
  $(find build/test -name '*.test.js' | sort) || status=$?
passed=$(grep -cE '^ *ok [0-9]+ ' "$report" || true)
failed=$(grep -cE '^ *not ok [0-9]+ ' "$report" || true)
# Count leaf tests only: suites are reported as tests too in TAP, so use the runner's totals.
pass_total=$(grep -E '^# pass ' "$report" | tail -1 | awk '{print $3}')
fail_total=$(grep -E '^# fail ' "$report" | tail -1 | awk '{print $3}')
# A cancelled test (its file timed out or crashed) did not pass: count it as failed.
cancelled=$(grep -E '^# cancelled ' "$report" | tail -1 | awk '{print $3}')
if [ -n "$fail_total" ]; then fail_total=$((fail_total + ${cancelled:-0})); fi
echo "${pass_total:-$passed} passed, ${fail_total:-$failed} failed"
if [ "$status" -ne 0 ] || [ "${fail_total:-0}" -ne 0 ]; then exit 1; fi
