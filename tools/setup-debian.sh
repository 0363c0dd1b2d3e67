#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building and testing pymulproc needs on Debian 12, only if
# something is missing. Run as root.
#
#   sh tools/setup-debian.sh              # build, test, benchmark
#   sh tools/setup-debian.sh --thorough   # and CI's thorough stages: clang
#                                         # and its sanitizer runtimes for
#                                         # tools/fuzz.sh, stress-ng for the
#                                         # run under load (.ci/run)
set -eu

PACKAGES="
  meson ninja-build pkg-config gcc libc6-dev
  libglib2.0-dev libjson-glib-dev
  gobject-introspection libgirepository1.0-dev gir1.2-json-1.0
  python3 python3-gi python3-pytest
  gjs gi-docgen valgrind libc6-dbg
  libzmq3-dev libjsonrpc-glib-1.0-dev
  libhiredis-dev redis-server
"

if [ "${1:-}" = "--thorough" ]; then
  PACKAGES="$PACKAGES clang-14 libclang-rt-14-dev stress-ng"
fi

missing=""
for pkg in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done

if [ -n "$missing" ]; then
  echo "Installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "Not root: run as root, or install them yourself." >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi
