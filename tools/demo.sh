#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sets everything up on Debian 12, builds, and runs the demo.
set -eu
cd "$(dirname "$0")/.."

sh tools/setup-debian.sh
sh tools/build.sh
exec ./build/examples/demo/mpq-demo "$@"
