#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The library's JSON reader against Python's json, over corpus files.

    json-diff.py MPQ_JSON_CANON PATH...

Each PATH is a file or a directory of files (a fuzz corpus). Every file is
read by mpq-json-canon (the library's reader, then its writer) and by
Python's json.loads (strict: no NaN or Infinity). They must agree:

- what the library accepts, Python accepts, with the same value: the same
  types (an integer stays an integer, a double a double, true is not 1),
  the same numbers to the bit, the same strings, members and order of
  elements; the library's output is compact;
- what Python accepts and the library refuses is one of the documented
  refusals (docs/design-decisions.md): a lone surrogate escape, \\u0000
  in a string, an integer outside 64 bits, a number past a double's range,
  nesting deeper than MPQ_MAX_DEPTH (128).

Exits 1 listing every disagreement, 0 with a count otherwise.
"""

import json
import math
import os
import subprocess
import sys

MAX_DEPTH = 128
INT64 = (-2**63, 2**63 - 1)


class Refused(Exception):
    pass


def no_constants(name):
    raise Refused("non-JSON constant " + name)


def python_reads(data):
    """The value Python reads, or raises Refused."""
    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Refused(str(e)) from e


def walk(value, depth=0):
    """Yields (depth, scalar-or-key) over the value."""
    if isinstance(value, list):
        for v in value:
            yield from walk(v, depth + 1)
        yield depth + 1, None
    elif isinstance(value, dict):
        for k, v in value.items():
            yield depth + 1, k
            yield from walk(v, depth + 1)
        yield depth + 1, None
    else:
        yield depth, value


def documented_refusal(value):
    """Why the library may refuse a value Python reads, or None."""
    for depth, v in walk(value):
        if depth > MAX_DEPTH:
            return "deeper than %d" % MAX_DEPTH
        if isinstance(v, str):
            if "\0" in v:
                return "\\u0000 in a string"
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                return "lone surrogate"
        elif isinstance(v, bool):
            pass
        elif isinstance(v, int):
            if not INT64[0] <= v <= INT64[1]:
                return "integer outside 64 bits"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return "number past a double's range"
    return None


def same(a, b):
    """Equal values of equal types, floats to the bit (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def compact(text):
    """No whitespace outside strings."""
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in " \t\r\n":
            return False
    return True


def files(paths):
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full):
                    yield full
        else:
            yield path


def main():
    canon_exe, paths = sys.argv[1], sys.argv[2:]
    names = list(files(paths))
    if not names:
        print("no corpus files in", " ".join(paths), file=sys.stderr)
        return 1

    out = subprocess.run([canon_exe], input="\n".join(names) + "\n", check=True,
                         capture_output=True, text=True, encoding="utf-8").stdout
    # Not splitlines (): it also cuts at U+2028, U+0085 and the like, which
    # the library writes raw inside strings.
    results = out.split("\n")[:-1]
    if len(results) != len(names):
        print("mpq-json-canon gave %d results for %d files" % (len(results), len(names)),
              file=sys.stderr)
        return 1

    problems = []
    counts = {"both accept": 0, "both refuse": 0, "documented refusal": 0}
    for name, result in zip(names, results):
        verdict, _, payload = result.partition(" ")
        with open(name, "rb") as f:
            data = f.read()
        try:
            value = python_reads(data)
        except Refused as e:
            if verdict == "OK":
                problems.append("%s: the library accepts what Python refuses (%s): %r"
                                % (name, e, data[:200]))
            else:
                counts["both refuse"] += 1
            continue

        if verdict == "ERR":
            why = documented_refusal(value)
            if why is None:
                problems.append("%s: the library refuses (%s) what Python accepts: %r"
                                % (name, payload, data[:200]))
            else:
                counts["documented refusal"] += 1
            continue

        if not compact(payload):
            problems.append("%s: the library's output is not compact: %r" % (name, payload))
        if not same(json.loads(payload), value):
            problems.append("%s: values differ: library %r, Python %r"
                            % (name, payload[:200], json.dumps(value)[:200]))
        else:
            counts["both accept"] += 1

    for p in problems:
        print(p)
    print("%d files: %s; %d disagreements"
          % (len(names), ", ".join("%s %d" % kv for kv in counts.items()), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
