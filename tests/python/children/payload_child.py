# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pipe or queue child that does not use the library and deals in
payloads (docs/protocol.md, "Payloads"): only os, fcntl, json, socket, sys
and hashlib. Spawned through Mpq.Pipe.spawn or Mpq.Queue.spawn by
test_pipe_payload.py; MPQ_CHANNEL_KIND says which (a queue child reads the
server's hello first, takes messages by dispatch and acks them, and
addresses what it sends to the parent).

Usage: payload_child.py MODE [ARGS...]

  plain-echo          answers each message with ["FINISHED", pid, sender,
                      {"size": N, "sha256": HEX, "how": "base64"|"none"}]
                      for its payload, until DIE (it never says it takes
                      descriptors: payloads must come inline)
  send SPEC...        writes each SPEC in order, then (a pipe) reads until the
                      parent hangs up, or (a queue) asks {"op":"empty"} and
                      reads its answer or the hang-up; prints
                      {"hung_up": true|false}

SPEC is one of
  good:REQ            ["REQ",pid,null,{"i":k}]
  memfd:N:SEALS:SIZE  a memfd of N bytes (byte i is i % 251) sealed with
                      SEALS (all, write, none), with the line
                      ["BLOB",pid,null,null,{"fd":SIZE}] on one sendmsg
  sparse:N:SEALS:SIZE the same, never written: all holes
  pipe                the read end of a pipe, with {"fd":4096}
  fdline              the line {"fd":4096} without a descriptor
  many:K              K sealed memfds of 4096 bytes and one line, one sendmsg
  orphans:K           "[" then K spaces, each with a sealed memfd, no newline
  b64:TEXT            the line ["BLOB",pid,null,null,{"base64":"TEXT"}]
  raw:HEX             these bytes
"""

import base64
import fcntl
import hashlib
import json
import os
import socket
import sys

PID = os.getpid()
QUEUE = os.environ.get('MPQ_CHANNEL_KIND') == 'queue'
PARENT = None       # a queue's parent, from its hello


def pattern(size):
    return bytes(i % 251 for i in range(size))


def memfd(size, seals, sparse=False):
    fd = os.memfd_create('payload', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    if sparse:
        os.ftruncate(fd, size)      # holes: never written
    else:
        os.write(fd, pattern(size))
    flags = {'all': fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW,
             'write': fcntl.F_SEAL_WRITE, 'none': 0}[seals]
    if flags:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, flags)
    return fd


def blob_line(payload):
    return (json.dumps(['BLOB', PID, PARENT, None, payload], separators=(',', ':')) + '\n').encode()


def send_spec(sock, spec, counter):
    kind, _, arg = spec.partition(':')
    if kind == 'good':
        sock.sendall((json.dumps([arg, PID, PARENT, {'i': counter}]) + '\n').encode())
    elif kind in ('memfd', 'sparse'):
        size, seals, said = arg.split(':')
        fd = memfd(int(size), seals, sparse=kind == 'sparse')
        socket.send_fds(sock, [blob_line({'fd': int(said)})], [fd])
        os.close(fd)
    elif kind == 'pipe':
        r, w = os.pipe()
        socket.send_fds(sock, [blob_line({'fd': 4096})], [r])
        os.close(r)
        os.close(w)
    elif kind == 'fdline':
        sock.sendall(blob_line({'fd': 4096}))
    elif kind == 'many':
        fds = [memfd(4096, 'all') for _ in range(int(arg))]
        socket.send_fds(sock, [blob_line({'fd': 4096})], fds)
        for fd in fds:
            os.close(fd)
    elif kind == 'orphans':
        sock.sendall(b'[')
        for _ in range(int(arg)):
            fd = memfd(4096, 'all')
            socket.send_fds(sock, [b' '], [fd])
            os.close(fd)
    elif kind == 'b64':
        sock.sendall(blob_line({'base64': arg}))
    elif kind == 'raw':
        sock.sendall(bytes.fromhex(arg))
    else:
        raise SystemExit(f'bad spec {spec!r}')


def send(sock, lines, specs):
    """A pipe child reads until the parent hangs up; a queue child asks
    whether the queue is empty and sees the answer, or the hang-up."""
    counter = 0
    hung_up = True
    try:
        for spec in specs:
            send_spec(sock, spec, counter)
            counter += spec.startswith('good:')
        if QUEUE:
            put(sock, {'op': 'empty', 'id': 777})
            for text in lines:
                frame = json.loads(text)
                if frame.get('op') == 'empty' and frame.get('id') == 777:
                    hung_up = False
                    break
        else:
            while sock.recv(65536):
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    print(json.dumps({'hung_up': hung_up}), flush=True)


def put(sock, obj):
    sock.sendall((json.dumps(obj, separators=(',', ':')) + '\n').encode())


def plain_echo(sock, lines):
    if QUEUE:
        put(sock, {'op': 'start', 'prefetch': 1})
    for text in lines:
        message = json.loads(text)
        tag = None
        if QUEUE:
            if message.get('op') != 'msg':
                continue
            tag, message = message['tag'], message['msg']
        request, sender = message[0], message[1]
        if request == 'DIE':
            if tag is not None:
                put(sock, {'op': 'ack', 'tag': tag})
            return
        payload, how = b'', 'none'
        if len(message) == 5 and 'base64' in message[4]:
            payload, how = base64.b64decode(message[4]['base64'], validate=True), 'base64'
        elif len(message) == 5:
            how = 'unexpected: ' + json.dumps(message[4])
        answer = ['FINISHED', PID, sender,
                  {'size': len(payload), 'sha256': hashlib.sha256(payload).hexdigest(), 'how': how}]
        put(sock, answer)
        if tag is not None:
            put(sock, {'op': 'ack', 'tag': tag})


def main(argv):
    global PARENT
    sock = socket.socket(fileno=int(os.environ['MPQ_CHANNEL_FD']))
    lines = sock.makefile('r', encoding='utf-8', newline='\n')
    if QUEUE:
        PARENT = json.loads(lines.readline())['pid']
    if argv[1] == 'plain-echo':
        plain_echo(sock, lines)
    elif argv[1] == 'send':
        send(sock, lines, argv[2:])
    else:
        raise SystemExit(f'unknown mode {argv[1]!r}')


if __name__ == '__main__':
    main(sys.argv)
