#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sets everything up on Debian 12, builds, and runs the demo: three MpqPools,
# of workers in C, Python and GJS, count the primes below 2^32. Arguments go
# to the demo, e.g. `sh tools/demo.sh --kill-worker 3` or
# `sh tools/demo.sh --poison-task` (see examples/demo/README.md, or
# `sh tools/demo.sh --help`).
set -eu
cd "$(dirname "$0")/.."

sh tools/setup-debian.sh
sh tools/build.sh
exec ./build/examples/demo/mpq-demo "$@"
