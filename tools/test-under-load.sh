#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs the whole test suite (not the valgrind setup) in ./build once more
# beside two CPU hogs (stress-ng --cpu 2) on a machine of two cores: a test
# that passes on a quiet machine and fails on a busy one is a bug in it
# (a sleep standing in for an event, a time threshold).
set -eu
cd "$(dirname "$0")/.."

sh tools/build.sh

# Bounded in any case: the hogs stop by themselves after an hour.
stress-ng --cpu 2 --timeout 3600s --quiet &
hogs=$!
trap 'kill "$hogs" 2>/dev/null || true; wait "$hogs" 2>/dev/null || true' EXIT INT TERM

status=0
meson test -C build --print-errorlogs --num-processes 2 --logbase testlog-load || status=1

if [ "$status" -eq 0 ]; then
  echo "Under load: all test suites passed (build/meson-logs/testlog-load.txt)."
else
  echo "Under load: some tests FAILED (build/meson-logs/testlog-load.txt)." >&2
fi
exit "$status"
