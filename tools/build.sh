#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configures (once) and builds pymulproc in ./build against Debian's packages.
set -eu
cd "$(dirname "$0")/.."

if [ ! -f build/build.ninja ]; then
  meson setup build --wrap-mode=nodownload -Dwerror=true
fi
ninja -C build
