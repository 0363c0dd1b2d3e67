# SPDX-License-Identifier: LGPL-2.1-or-later
"""A hostile or unlucky queue child that does not use the library: only
json, os, select, socket and sys, on the descriptor named by
MPQ_CHANNEL_FD (docs/protocol.md, "Being a queue worker without the
library"). Spawned through Mpq.Queue.spawn by test_queue_hostile.py.

Usage: hostile_queue.py MODE [ARGS...]

Every mode that reports prints one JSON line on stdout (the test spawns it
with a stdout pipe). "hung_up" says whether the server hung up on this
child (it read end-of-file, or a write failed with EPIPE/ECONNRESET);
a mode that must know whether the server still listens after what it
wrote sends a probe, {"op":"empty","id":PROBE}, and reads until its
answer or the hang-up: the server applies lines in order, so a child it
dropped for a line never gets the probe's answer.

  write SPEC...       writes each SPEC in order, then the probe; prints
                      {"pid", "hello", "hung_up", "written", "frames"}
                      ("frames": what came before the probe's answer)
  flood KIND COUNT    writes COUNT request frames of KIND in batches, then
                      the probe; prints {"pid", "sent", "hung_up"}. KIND:
                      get ({"op":"get","id":N}, no time-out: waits
                      forever), want, get-timeout (60 s), join-timeout
                      (60 s; the test leaves a message nobody takes)
  chatty              takes nothing and puts nothing, but never stops
                      writing: a get with time-out 0 (answered none), then
                      {"op":"cancel"} of that request for ever, as a cancel
                      that crossed its answer on the wire would be; prints
                      "chatting" once it writes, and {"hung_up", "batches"}
                      if the server hangs up on it
  hoard               a bounded queue's credit hoarder: asks for credit
                      again and again and never puts, until a round brings
                      none (credit, probe, probe: a grant for the first
                      probe's round comes before the second one's answer);
                      prints {"pid", "hello", "credit", "rounds"}, then
                      holds its credit until stdin is closed
  claim PID           says hello with PID (another process's), starts
                      dispatch and asks with want as well, then probes and
                      prints {"ready": true, "hung_up"}; then takes and
                      acknowledges whatever it is handed, printing
                      {"stolen": message} for each, until the hang-up or
                      until stdin is closed; last it prints {"final": true,
                      "pid", "stolen": count, "hung_up"}
  fork-worker         a wrapper that forks: the grandchild says hello with
                      its own pid, puts ["READY", gpid, PARENT, {"pid":
                      gpid, "wrapper": pid}], and works like
                      plain_queue_worker.py dispatch (FINISHED {"value":
                      v*v, "worker": gpid}, DIE ends it); the wrapper
                      waits for it and exits with its status
  hold N              takes N messages into its hand with get (time-out
                      -1), prints {"pid", "tags": [...], "msgs": [...]},
                      then keeps them, unanswered, until stdin is closed
                      (then exits without answering: they go back)
  answer OP TAG       sends {"op": OP, "tag": TAG} (a tag handed to someone
                      else), then the probe; prints {"hung_up", "frames"}
  fds                 puts ["FDS", pid, PARENT, {"fds": [...], "channel":
                      N}]: the descriptors open in this process

SPEC (write mode):
  good:REQ            ["REQ",pid,PARENT,{"i":k}], k counting from 0
  fds:K               ["FDS",pid,PARENT,{"i":k}] with K memfds attached
  hex:HEX             these bytes verbatim (add 0a for a newline)
  stream:HEX:N:FILL   the bytes HEX, then N bytes of FILL (one character)
                      in 1 MiB writes, no newline: a line that never ends,
                      streamed, never held in memory
"""

import errno
import json
import os
import select
import socket
import sys

PID = os.getpid()
PROBE = 777000777
CHUNK = 1 << 20


class HungUp(Exception):
    pass


class Conn:
    def __init__(self):
        self.fd = int(os.environ['MPQ_CHANNEL_FD'])
        self.sock = socket.socket(fileno=self.fd)
        self.buffered = b''
        self.hello = self.read()
        if self.hello is None or self.hello.get('op') != 'hello':
            raise SystemExit(f'first line is not a hello: {self.hello!r}')
        self.parent = self.hello['pid']

    def write(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise HungUp() from error

    def put(self, obj):
        self.write(json.dumps(obj, separators=(',', ':')).encode() + b'\n')

    def read_line(self):
        """The next line (bytes, no newline), or None at the hang-up."""
        while b'\n' not in self.buffered:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                return None
            self.buffered += chunk
        line, self.buffered = self.buffered.split(b'\n', 1)
        return line

    def read(self):
        line = self.read_line()
        return None if line is None else json.loads(line)

    def probe(self, frames=None):
        """True if the server answered the probe, False if it hung up."""
        try:
            self.put({'op': 'empty', 'id': PROBE})
        except HungUp:
            return False
        while True:
            frame = self.read()
            if frame is None:
                return False
            if frame.get('op') == 'empty' and frame.get('id') == PROBE:
                return True
            if frames is not None:
                frames.append(frame)


def say(obj):
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def stdin_closed():
    return sys.stdin.buffer.read() == b''


def spec_write(conn, spec, counter):
    kind, _, arg = spec.partition(':')
    if kind == 'good':
        conn.put([arg, PID, conn.parent, {'i': counter}])
        return 0
    if kind == 'fds':
        # A good message with ARG memfds attached that it does not claim.
        fds = [os.memfd_create('stray', os.MFD_CLOEXEC) for _ in range(int(arg))]
        line = json.dumps(['FDS', PID, conn.parent, {'i': counter}], separators=(',', ':'))
        try:
            socket.send_fds(conn.sock, [line.encode() + b'\n'], fds)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise HungUp() from error
        for fd in fds:
            os.close(fd)
        return 0
    if kind == 'hex':
        data = bytes.fromhex(arg)
        conn.write(data)
        return len(data)
    if kind == 'stream':
        head, count, fill = arg.split(':')
        head, count = bytes.fromhex(head), int(count)
        conn.write(head)
        block = fill.encode() * CHUNK
        written = len(head)
        while count > 0:
            n = min(count, CHUNK)
            conn.write(block[:n])
            count -= n
            written += n
        return written
    raise SystemExit(f'bad spec {spec!r}')


def write(conn, specs):
    written, counter, frames = 0, 0, []
    try:
        for spec in specs:
            written += spec_write(conn, spec, counter)
            if spec.startswith('good:'):
                counter += 1
        answered = conn.probe(frames)
    except HungUp:
        answered = False
    say({'pid': PID, 'hello': conn.hello, 'hung_up': not answered, 'written': written,
         'frames': frames})


FLOOD = {
    'get': b'{"op":"get","id":%d}\n',
    'want': b'{"op":"want","id":%d}\n',
    'get-timeout': b'{"op":"get","id":%d,"timeout":60000}\n',
    'join-timeout': b'{"op":"join","id":%d,"timeout":60000}\n',
}


# Messages addressed to the parent, each with 100 nested arrays: 200 bytes
# on the line, some 10 KiB once decoded (which the server may do ahead of
# the parent).
DEEP = '[' * 100 + ']' * 100


def flood(conn, kind, count):
    if kind == 'answers':
        template = b'["FINISHED",%d,%d,{"i":%%d,"a":%s}]\n' % (PID, conn.parent, DEEP.encode())
    else:
        template = FLOOD[kind]
    sent, batch = 0, 10000
    try:
        while sent < count:
            n = min(batch, count - sent)
            conn.write(b''.join(template % (sent + i + (kind != 'answers')) for i in range(n)))
            sent += n
        answered = conn.probe()
    except HungUp:
        answered = False
    say({'pid': PID, 'sent': sent, 'hung_up': not answered})


def chatty(conn):
    conn.put({'op': 'get', 'id': 1, 'timeout': 0})
    frame = conn.read()
    if frame != {'op': 'none', 'id': 1}:
        raise SystemExit(f'unexpected answer {frame!r}')
    block = b'{"op":"cancel","id":1}\n' * 20000
    say('chatting')
    batches = 0
    try:
        while True:
            conn.write(block)
            batches += 1
    except HungUp:
        say({'hung_up': True, 'batches': batches})


def hoard(conn):
    credit, rounds, request = 0, 0, 0

    def until_answer(request):
        nonlocal credit
        while True:
            frame = conn.read()
            if frame is None:
                raise SystemExit('hung up on while hoarding')
            if frame.get('op') == 'credit':
                credit += frame['n']
            elif frame.get('op') == 'empty' and frame.get('id') == request:
                return

    while True:
        before = credit
        request += 1
        conn.write(b'{"op":"credit"}\n{"op":"empty","id":%d}\n' % request)
        until_answer(request)
        request += 1
        conn.put({'op': 'empty', 'id': request})
        until_answer(request)
        rounds += 1
        if credit == before:
            break
    say({'pid': PID, 'hello': conn.hello, 'credit': credit, 'rounds': rounds})
    stdin_closed()


def claim(conn, pid):
    conn.put({'op': 'hello', 'pid': pid})
    backlog = []
    try:
        conn.put({'op': 'start', 'prefetch': 256})
        conn.put({'op': 'want', 'id': 1})
        answered = conn.probe(backlog)
    except HungUp:
        answered = False
    say({'ready': True, 'hung_up': not answered})
    stolen, hung_up = 0, not answered

    def take(frame):
        nonlocal stolen
        if frame.get('op') != 'msg':
            return
        stolen += 1
        say({'stolen': frame['msg']})
        try:
            conn.put({'op': 'ack', 'tag': frame['tag']})
            if 'id' in frame:       # the want was served: ask again
                conn.put({'op': 'want', 'id': frame['id'] + 1})
        except HungUp:
            pass

    for frame in backlog:
        take(frame)
    while not hung_up:
        readable, _, _ = select.select([conn.sock, sys.stdin], [], [])
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 4096):
            break
        if conn.sock in readable:
            frame = conn.read()
            if frame is None:
                hung_up = True
                break
            take(frame)
            while b'\n' in conn.buffered:
                take(conn.read())
    say({'final': True, 'pid': PID, 'stolen': stolen, 'hung_up': hung_up})


def fork_worker(conn):
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status)
    me = os.getpid()
    try:
        conn.put({'op': 'hello', 'pid': me})
        conn.put(['READY', me, conn.parent, {'pid': me, 'wrapper': PID}])
        conn.put({'op': 'start', 'prefetch': 4})
        while True:
            frame = conn.read()
            if frame is None:
                os._exit(5)
            if frame.get('op') != 'msg':
                continue
            request, _, _, data = frame['msg']
            if request == 'DIE':
                conn.put({'op': 'ack', 'tag': frame['tag']})
                os._exit(0)
            value = data['value']
            conn.put(['FINISHED', me, conn.parent, {'value': value * value, 'worker': me}])
            conn.put({'op': 'ack', 'tag': frame['tag']})
    except HungUp:
        os._exit(6)
    finally:
        os._exit(7)


def hold(conn, count):
    tags, msgs = [], []
    for request in range(1, count + 1):
        conn.put({'op': 'get', 'id': request, 'timeout': -1})
        while True:
            frame = conn.read()
            if frame is None:
                raise SystemExit('hung up on while taking')
            if frame.get('op') == 'msg' and frame.get('id') == request:
                tags.append(frame['tag'])
                msgs.append(frame['msg'])
                break
    say({'pid': PID, 'tags': tags, 'msgs': msgs})
    stdin_closed()


def answer(conn, op, tag):
    frames = []
    try:
        conn.put({'op': op, 'tag': tag})
        answered = conn.probe(frames)
    except HungUp:
        answered = False
    say({'pid': PID, 'hung_up': not answered, 'frames': frames})


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


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode == 'fds':
        # Before anything of ours opens a descriptor (the hello is read after).
        listed = open_fds()
        conn = Conn()
        conn.put(['FDS', PID, conn.parent, {'fds': listed, 'channel': conn.fd}])
        return 0
    conn = Conn()
    if mode == 'write':
        write(conn, args)
    elif mode == 'flood':
        flood(conn, args[0], int(args[1]))
    elif mode == 'chatty':
        chatty(conn)
    elif mode == 'hoard':
        hoard(conn)
    elif mode == 'claim':
        claim(conn, int(args[0]))
    elif mode == 'fork-worker':
        return fork_worker(conn)
    elif mode == 'hold':
        hold(conn, int(args[0]))
    elif mode == 'answer':
        answer(conn, args[0], int(args[1]))
    else:
        raise SystemExit(f'unknown mode {mode!r}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
