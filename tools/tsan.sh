#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the library and its C queue tests with ThreadSanitizer in
# ./build-tsan and runs them: any report fails. The library's own locks
# are pthread mutexes in such a build (pymulproc/mpq-lock-private.h), and
# tests/tsan.supp hides only what GLib's uninstrumented code does itself.
set -eu
cd "$(dirname "$0")/.."

if [ ! -f build-tsan/build.ninja ]; then
  meson setup build-tsan --wrap-mode=nodownload -Db_sanitize=thread -Db_lundef=false \
    -Dintrospection=disabled -Ddocumentation=disabled -Dexamples=false
fi
ninja -C build-tsan tests/test-queue tests/test-queue-edges tests/test-nested-loops tests/test-queue-entry tests/mpq-queue-test-child \
  tests/test-pool tests/mpq-pool-test-worker tests/test-queue-redis tests/test-queue-redis-inbox tests/test-pool-redis

# report_mutex_bugs=0: GLib's own recursive mutexes (GType registration)
# lock and unlock inside uninstrumented code, which reads as misuse.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_signal_unsafe=0 report_mutex_bugs=0 \
suppressions=$(pwd)/tests/tsan.supp"
export G_TEST_SRCDIR="$(pwd)/tests" G_TEST_BUILDDIR="$(pwd)/build-tsan/tests"

status=0
for test in test-queue-entry test-queue-edges test-nested-loops test-queue test-pool test-queue-redis test-queue-redis-inbox test-pool-redis; do
  echo "tsan: $test"
  # 77: skipped (the Redis tests without Redis support or redis-server).
  ./build-tsan/tests/$test --tap > "build-tsan/$test.tap" 2>&1 || [ $? -eq 77 ] || status=1
  grep -E "^(not ok|Bail out)|ThreadSanitizer" "build-tsan/$test.tap" || true
done
[ "$status" -eq 0 ] && echo "tsan: no reports"
exit "$status"
