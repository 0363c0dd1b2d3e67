#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sets everything up on Debian 12, builds, and runs the whole test suite:
# C (GTest), Python (pytest on PyGObject), GJS, the examples, the demo and
# the docs check; then all of them but the docs check again under valgrind
# (the `valgrind` test setup in meson.build says what that covers).
set -eu
cd "$(dirname "$0")/.."

sh tools/setup-debian.sh
sh tools/build.sh

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1
meson test -C build --print-errorlogs --num-processes 2 --setup=valgrind || status=1

if [ "$status" -eq 0 ]; then
  echo "All test suites passed (see build/meson-logs/ for details)."
else
  echo "Some tests FAILED (see build/meson-logs/testlog*.txt)." >&2
fi
exit "$status"
