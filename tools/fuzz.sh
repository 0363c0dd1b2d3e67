#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan) in
# ./build-fuzz and runs each for a bounded time; fails on any finding.
#
#   sh tools/fuzz.sh [SECONDS [TARGET...]]
#
# SECONDS per target: default $MPQ_FUZZ_SECONDS, else 60. Targets: message,
# frame, line-reader, json-diff (default: all). MPQ_FUZZ_BUILDDIR names
# another build dir. Before fuzzing it runs suites c and fuzz in that build
# (clang's ASan+UBSan); MPQ_FUZZ_SKIP_SUITES=1 skips them. Each run starts
# from tests/fuzz/corpus/<target> (read only) and keeps what it finds new
# in BUILDDIR/tests/fuzz/work/<target> (not committed). A finding (crash,
# sanitizer report, leak, time-out, out of memory, a failed check) is
# copied into tests/fuzz/corpus/<target> as regress-<kind>-<hash>: fix the
# bug, and commit the input with the fix, so that suite 'fuzz' runs it from
# then on. Then tests/fuzz/json-diff.py runs everything, committed and
# new, through Python's json.
#
# Needs clang and libclang-rt-14-dev (tools/setup-debian.sh --thorough).
set -eu
cd "$(dirname "$0")/.."

seconds=${1:-${MPQ_FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
targets=${*:-message frame line-reader json-diff}
builddir=${MPQ_FUZZ_BUILDDIR:-build-fuzz}

if [ ! -f "$builddir/build.ninja" ]; then
  clang=$(command -v clang || command -v clang-14 || true)
  if [ -z "$clang" ]; then
    echo "No clang: sh tools/setup-debian.sh --thorough installs it." >&2
    exit 1
  fi
  # werror off: clang warns where gcc does not, in code this run does not test.
  CC=$clang meson setup "$builddir" --wrap-mode=nodownload \
    -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dintrospection=disabled -Ddocumentation=disabled -Dexamples=false
fi
ninja -C "$builddir"

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
status=0

# First the C suite and the corpora, in this build: clang's UBSan checks
# what gcc's (tools/sanitize.sh) does not, such as NULL + 0.
if [ -z "${MPQ_FUZZ_SKIP_SUITES:-}" ]; then
  echo "== suites c and fuzz, clang ASan+UBSan"
  meson test -C "$builddir" --print-errorlogs --num-processes 2 \
    --suite c --suite fuzz --logbase testlog-clang || status=1
fi

fuzz_dir=$builddir/tests/fuzz
for target in $targets; do
  corpus=tests/fuzz/corpus/$target
  work=$fuzz_dir/work/$target
  findings=$fuzz_dir/findings/$target
  log=$fuzz_dir/fuzz-$target.log
  rm -rf "$findings"
  mkdir -p "$work" "$findings"

  echo "== $target: $seconds s"
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$fuzz_dir/fuzz-$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -use_value_profile=1 -print_final_stats=1 \
      -dict=tests/fuzz/json.dict -artifact_prefix="$findings/" \
      "$work" "$corpus" > "$log" 2>&1 || rc=$?

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE .*cov: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
  echo "   ${execs:-?} executions, coverage ${cov:-?} edges, corpus $(ls "$work" | wc -l) new inputs"

  found=$(ls "$findings")
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    status=1
    echo "   FINDING (exit status $rc); the log: $log" >&2
    grep -E 'ERROR:|runtime error|check failed|SUMMARY' "$log" | head -n 10 >&2 || true
    for f in $found; do
      cp "$findings/$f" "$corpus/regress-$f"
      echo "   kept as $corpus/regress-$f" >&2
      # So that a CI log alone is enough to replay it (inputs are at most
      # 4 KiB): base64 -d, then fuzz-$target FILE.
      echo "   FINDING input $f, base64: $(base64 -w 0 "$findings/$f")" >&2
    done
  fi
done

echo "== json-diff.py (Python's json) over the corpora and what the runs added"
dirs=""
for target in json-diff message frame; do
  for dir in "tests/fuzz/corpus/$target" "$fuzz_dir/work/$target"; do
    [ -d "$dir" ] && dirs="$dirs $dir"
  done
done
# shellcheck disable=SC2086
/usr/bin/python3 -B tests/fuzz/json-diff.py "$fuzz_dir/mpq-json-canon" $dirs > "$fuzz_dir/json-diff.log" || status=1
tail -n 20 "$fuzz_dir/json-diff.log"

exit "$status"
