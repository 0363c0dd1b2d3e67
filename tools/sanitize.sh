#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds pymulproc and its tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc) in ./build-asan and runs, there:
#
# - suites c and fuzz (the C tests, the fuzz corpora): every program is
#   built with the sanitizers, leaks are checked (LeakSanitizer);
# - suites python, js and examples through `meson test --wrapper` with
#   libasan preloaded into the interpreters (python3, gjs), which are not
#   built with it, and detect_leaks=0: CPython and SpiderMonkey leave
#   memory at exit on purpose; the valgrind setup of tools/test.sh checks
#   leaks through the bindings.
#
# Any report stops the program (halt_on_error) and fails its test. What
# cannot run this way, and why: docs/sanitizers.md.
set -eu
cd "$(dirname "$0")/.."

builddir=${MPQ_ASAN_BUILDDIR:-build-asan}

if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" --wrap-mode=nodownload -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Ddocumentation=disabled
fi
ninja -C "$builddir"

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"

status=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 \
  --suite c --suite fuzz --logbase testlog-sanitize-c || status=1

# The runtime the library was linked with, first in every interpreter and
# in whatever it spawns (LD_PRELOAD is inherited).
libasan=$(${CC:-cc} -print-file-name=libasan.so)
meson test -C "$builddir" --print-errorlogs --num-processes 2 \
  --suite python --suite js --suite examples --logbase testlog-sanitize-bindings \
  --wrapper "env LD_PRELOAD=$libasan ASAN_OPTIONS=detect_leaks=0" || status=1

if [ "$status" -eq 0 ]; then
  echo "ASan+UBSan: all suites passed ($builddir/meson-logs/testlog-sanitize-*.txt)."
else
  echo "ASan+UBSan: some tests FAILED ($builddir/meson-logs/testlog-sanitize-*.txt)." >&2
fi
exit "$status"
