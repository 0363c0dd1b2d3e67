#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configures (once) and builds pymulproc in ./build against Debian's packages,
# with the benchmark (-Dbenchmarks=true: tools/bench.sh runs it, and the test
# suite's bench-short proves it works). A build dir configured before the
# option existed, or without it, is reconfigured with it (`meson configure`
# would not know an option that is newer than the build dir).
set -eu
cd "$(dirname "$0")/.."

if [ ! -f build/build.ninja ]; then
  meson setup build --wrap-mode=nodownload -Dwerror=true -Dbenchmarks=true
elif ! meson introspect build --buildoptions \
       | /usr/bin/python3 -c 'import json, sys
sys.exit(0 if any(o["name"] == "benchmarks" and o["value"] for o in json.load(sys.stdin)) else 1)'; then
  meson setup --reconfigure build -Dbenchmarks=true
fi
ninja -C build
