#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Compiles tests/build/pkg-config-program.c against pymulproc-1.0.pc and runs
# it, with the compiler in $CC (default cc) and the flags pkg-config gives:
#
#   check-pkg-config.sh uninstalled BUILDDIR SOURCE WORKDIR
#     the meson-uninstalled .pc of BUILDDIR, as a project next to ours sees it
#   check-pkg-config.sh installed BUILDDIR SOURCE WORKDIR
#     `meson install --destdir` of BUILDDIR into WORKDIR, then the installed
#     .pc with its prefix rewritten to where the copy is (PKG_CONFIG_SYSROOT_DIR
#     would also prefix glib's own -I/usr/include/... and break them)
#
# The program includes <pymulproc/pymulproc.h>, the form the README shows,
# which must work in both and as a meson subproject.
set -eu

mode=$1
builddir=$2
source=$3
workdir=$4
cc=${CC:-cc}
pkg_config=${PKG_CONFIG:-pkg-config}

rm -rf "$workdir"
mkdir -p "$workdir"

case $mode in
  uninstalled)
    PKG_CONFIG_PATH=$builddir/meson-uninstalled
    ;;
  installed)
    meson install -C "$builddir" --destdir "$workdir/root" --no-rebuild --quiet
    pc=$(find "$workdir/root" -name pymulproc-1.0.pc -path '*/pkgconfig/*')
    if [ -z "$pc" ]; then
      echo "meson install put no pymulproc-1.0.pc under $workdir/root" >&2
      exit 1
    fi
    prefix=$(sed -n 's/^prefix=//p' "$pc")
    mkdir -p "$workdir/pkgconfig"
    sed "s|^prefix=.*|prefix=$workdir/root$prefix|" "$pc" > "$workdir/pkgconfig/pymulproc-1.0.pc"
    PKG_CONFIG_PATH=$workdir/pkgconfig
    ;;
  *)
    echo "usage: $0 uninstalled|installed BUILDDIR SOURCE WORKDIR" >&2
    exit 2
    ;;
esac
export PKG_CONFIG_PATH

cflags=$($pkg_config --cflags pymulproc-1.0)
libs=$($pkg_config --libs pymulproc-1.0)
echo "$mode: cflags $cflags"
echo "$mode: libs $libs"

# Nothing of the build dir or the source tree but what the .pc says.
# shellcheck disable=SC2086
$cc -o "$workdir/program" "$source" $cflags $libs

# The library where the .pc's -L points, not wherever else one may be.
libpath=$($pkg_config --libs-only-L pymulproc-1.0 | sed 's/^-L//; s/ -L/:/g; s/ *$//')
LD_LIBRARY_PATH=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$workdir/program"
