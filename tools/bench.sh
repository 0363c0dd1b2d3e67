#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sets everything up on Debian 12, builds, and runs the full benchmark
# (bench/README.md): every workload for Mpq and its peers, 5 runs each, the
# table on stdout, every measurement appended to bench/results/results.jsonl.
# Arguments go to bench/run.py: --short, --runs N, --cases W1,W2-sync, ...
set -eu
cd "$(dirname "$0")/.."

sh tools/setup-debian.sh
sh tools/build.sh
exec /usr/bin/python3 -B bench/run.py --build-dir build "$@"
