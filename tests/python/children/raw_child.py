# SPDX-License-Identifier: LGPL-2.1-or-later
"""A child that speaks the wire format by hand, without gi.

It only uses the descriptor named by MPQ_CHANNEL_FD, as a worker written in
any language would.

Usage: raw_child.py write [--wait-eof] SPEC...
       raw_child.py judge
       raw_child.py collect

write: writes each SPEC, in order, then exits; with --wait-eof it first reads
until the parent hangs up (proof that the parent dropped it). SPEC is one of
  good:REQ      the line ["REQ",<pid>,null,{"i":<k>}] with k counting from 0
  hex:HEX       these bytes, verbatim (add 0a for a newline)
  deep:N        N "[" then a newline
  long:N        a valid message line of exactly N bytes, then a newline
  endless:N     N bytes of "x" without any newline

judge: reads lines and answers each with a verdict of Python's strict json
module: ["OK",pid,null,[<parsed>,<compact>,<line>]] where compact says there
is no whitespace outside strings, or ["BAD",pid,null,<error text>].

collect: reads nothing until a line ("go [COUNT]") comes on stdin; then reads
message lines until DIE, the hang-up, or COUNT DO, and prints to stdout one
JSON object: "n", the data["n"] of every DO in order, and "bad", the lines
that were not messages.
"""

import errno
import json
import os
import sys

FD = int(os.environ['MPQ_CHANNEL_FD'])
PID = os.getpid()


def write_all(data):
    view = memoryview(data)
    while view:
        n = os.write(FD, view)
        view = view[n:]


def spec_bytes(spec, counter):
    kind, _, arg = spec.partition(':')
    if kind == 'good':
        line = json.dumps([arg, PID, None, {'i': counter}], separators=(',', ':'))
        return line.encode() + b'\n'
    if kind == 'hex':
        return bytes.fromhex(arg)
    if kind == 'deep':
        return b'[' * int(arg) + b'\n'
    if kind == 'long':
        head = f'["DO",{PID},null,"'.encode()
        tail = b'"]'
        pad = int(arg) - len(head) - len(tail)
        assert pad >= 0, 'long:N is too short for a message'
        return head + b'x' * pad + tail + b'\n'
    if kind == 'endless':
        return b'x' * int(arg)
    raise SystemExit(f'bad spec {spec!r}')


def wait_for_hang_up():
    while True:
        try:
            if not os.read(FD, 65536):
                return
        except OSError as error:
            if error.errno == errno.ECONNRESET:
                return
            raise


def write(args):
    wait_eof = False
    if args and args[0] == '--wait-eof':
        wait_eof, args = True, args[1:]
    counter = 0
    try:
        for spec in args:
            write_all(spec_bytes(spec, counter))
            if spec.startswith('good:'):
                counter += 1
    except (BrokenPipeError, ConnectionResetError):
        # The parent already dropped us (a line too long): that is allowed.
        return 0
    if wait_eof:
        wait_for_hang_up()
    return 0


def is_compact(line):
    in_string = escaped = False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in ' \t\r\n':
            return False
    return True


def reject_constant(name):
    raise ValueError(f'{name} is not JSON')


def judge():
    buffered = b''
    while True:
        chunk = os.read(FD, 65536)
        if not chunk:
            return 0
        buffered += chunk
        while b'\n' in buffered:
            line, buffered = buffered.split(b'\n', 1)
            try:
                text = line.decode('utf-8')
                parsed = json.loads(text, parse_constant=reject_constant)
                verdict = ['OK', PID, None, [parsed, is_compact(text), text]]
            except ValueError as error:
                verdict = ['BAD', PID, None, f'{error}: {line!r}']
            write_all(json.dumps(verdict, separators=(',', ':')).encode() + b'\n')


def collect():
    expected = sys.stdin.readline().split()[1:]
    limit = int(expected[0]) if expected else None
    ns, bad, buffered = [], [], b''
    done = limit == 0
    while not done:
        chunk = os.read(FD, 65536)
        if not chunk:
            break
        buffered += chunk
        while b'\n' in buffered and not done:
            line, buffered = buffered.split(b'\n', 1)
            try:
                request, _, _, data = json.loads(line)
                if request == 'DIE':
                    done = True
                else:
                    ns.append(data['n'])
                    done = len(ns) == limit
            except (ValueError, TypeError, KeyError):
                bad.append(line[:100].decode('utf-8', 'replace'))
    if buffered:
        bad.append('unfinished: ' + buffered[:100].decode('utf-8', 'replace'))
    print(json.dumps({'n': ns, 'bad': bad}), flush=True)
    return 0


def main(argv):
    if argv[1] == 'write':
        return write(argv[2:])
    if argv[1] == 'judge':
        return judge()
    if argv[1] == 'collect':
        return collect()
    raise SystemExit(f'unknown mode {argv[1]!r}')


if __name__ == '__main__':
    sys.exit(main(sys.argv))
