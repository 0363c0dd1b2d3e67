# SPDX-License-Identifier: LGPL-2.1-or-later
"""A hostile or unlucky pipe child that does not use the library: only
json, os, socket and sys, on the descriptor named by MPQ_CHANNEL_FD
(docs/protocol.md, "Being a child without the library"). Spawned through
Mpq.Pipe.spawn by test_pipe_hostile.py.

Usage: hostile_pipe.py MODE [ARGS...]

  write SPEC...       writes each SPEC in order, then reads until the parent
                      hangs up; prints {"pid", "hung_up", "written"} (a write
                      that failed because the parent hung up ends the
                      writing: "hung_up" is then true at once)
  flood COUNT         writes COUNT messages ["DO",pid,null,{"i":k}] as fast
                      as it can (1,000 a write), then exits 0
  chatty              writes ["CHAT",pid,null,k] lines for ever, 2,000 a
                      write; prints "chatting" once it writes, and
                      {"hung_up": true, "batches"} if the parent hangs up
  fds                 writes ["FDS",pid,null,{"fds": [...], "channel": N}]
                      (the descriptors open in this process) and exits

SPEC is one of
  good:REQ            ["REQ",pid,null,{"i":k}], k counting from 0
  hex:HEX             these bytes verbatim (add 0a for a newline)
  stream:HEX:N:FILL   the bytes HEX, then N bytes of FILL (one character)
                      in 1 MiB writes, no newline: streamed, never held
"""

import errno
import json
import os
import socket
import sys

PID = os.getpid()
CHUNK = 1 << 20


class HungUp(Exception):
    pass


def say(obj):
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def open_fds():
    """The descriptors open in this process. Listing /proc/self/fd opens
    one more, for the listing; it is closed again by the time fstat asks."""
    fds = []
    for name in os.listdir('/proc/self/fd'):
        try:
            os.fstat(int(name))
        except OSError as error:
            if error.errno == errno.EBADF:
                continue
            raise
        fds.append(int(name))
    return sorted(fds)


class Channel:
    def __init__(self):
        self.fd = int(os.environ['MPQ_CHANNEL_FD'])
        self.sock = socket.socket(fileno=self.fd)

    def write(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise HungUp() from error

    def put(self, obj):
        self.write(json.dumps(obj, separators=(',', ':')).encode() + b'\n')

    def wait_for_hang_up(self):
        while True:
            try:
                if not self.sock.recv(65536):
                    return
            except ConnectionResetError:
                return


def spec_write(channel, spec, counter):
    kind, _, arg = spec.partition(':')
    if kind == 'good':
        channel.put([arg, PID, None, {'i': counter}])
        return 0
    if kind == 'hex':
        data = bytes.fromhex(arg)
        channel.write(data)
        return len(data)
    if kind == 'stream':
        head, count, fill = arg.split(':')
        head, count = bytes.fromhex(head), int(count)
        channel.write(head)
        block = fill.encode() * CHUNK
        written = len(head)
        while count > 0:
            n = min(count, CHUNK)
            channel.write(block[:n])
            count -= n
            written += n
        return written
    raise SystemExit(f'bad spec {spec!r}')


def write(channel, specs):
    written, counter = 0, 0
    try:
        for spec in specs:
            written += spec_write(channel, spec, counter)
            if spec.startswith('good:'):
                counter += 1
    except HungUp:
        pass
    channel.wait_for_hang_up()
    say({'pid': PID, 'hung_up': True, 'written': written})


def flood(channel, count):
    sent = 0
    while sent < count:
        n = min(1000, count - sent)
        channel.write(b''.join(b'["DO",%d,null,{"i":%d}]\n' % (PID, sent + i) for i in range(n)))
        sent += n


def chatty(channel):
    block = b''.join(b'["CHAT",%d,null,%d]\n' % (PID, i) for i in range(2000))
    say('chatting')
    batches = 0
    try:
        while True:
            channel.write(block)
            batches += 1
    except HungUp:
        say({'hung_up': True, 'batches': batches})


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode == 'fds':
        listed = open_fds()     # before anything of ours opens one
        channel = Channel()
        channel.put(['FDS', PID, None, {'fds': listed, 'channel': channel.fd}])
        return 0
    channel = Channel()
    if mode == 'write':
        write(channel, args)
    elif mode == 'flood':
        flood(channel, int(args[0]))
    elif mode == 'chatty':
        chatty(channel)
    else:
        raise SystemExit(f'unknown mode {mode!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
