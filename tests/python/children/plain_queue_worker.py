# SPDX-License-Identifier: LGPL-2.1-or-later
"""A queue worker that does not use gi: only json, os and socket, speaking
the line protocol of docs/protocol.md ("Being a queue worker without the
library") on the descriptor named by MPQ_CHANNEL_FD, as a worker written in
any language would.

Usage: plain_queue_worker.py MODE [ARGS...] [--report]

Worker modes: each DO {"value": v} is answered with FINISHED
{"value": v*v, "worker": pid} addressed to the parent (the hello's pid),
put before the task is acknowledged; DIE is acknowledged and ends the
worker. Credit is asked for whenever a bounded queue's credit runs out.
  dispatch [PREFETCH]  {"op":"start"} and pushed messages (default prefetch 4)
  want                 one {"op":"want"} at a time (routed)
  get                  one {"op":"get","timeout":-1} at a time (the front,
                       whoever it is for); what is not DO or DIE, or is
                       addressed to another pid, goes back ({"op":"back"})

Bad modes: put ["DO",pid,PARENT,{"i":0}], then the bad thing, then
["DO",pid,PARENT,{"i":1}] (except no-credit); then read until the server
hangs up.
  bad garbage          a line that is neither a message nor a frame
  bad bad-message      a message line with sender pid 0
  bad unknown-op       {"op":"bogus"}
  bad bad-tag          {"op":"ack","tag":987654321}, a tag never given
  bad cut              half a message line, then exit at once without reading
                       (the report says "eof": false)
  bad no-credit        (bounded queue) put as many messages as the hello's
                       credit allows, all to PARENT with "i" counting from
                       0, then one more without credit

With --report (always for bad modes) the worker prints one JSON line at
exit: {"pid", "hello", "handled": [v, ...], "eof": true|false, "frames":
[frames read after the bad line]}.
"""

import collections
import json
import os
import socket
import sys

PID = os.getpid()


class Connection:
    def __init__(self):
        self.sock = socket.socket(fileno=int(os.environ['MPQ_CHANNEL_FD']))
        self.reader = self.sock.makefile('rb')
        self.backlog = collections.deque()
        self.hello = json.loads(self.reader.readline())
        if self.hello.get('op') != 'hello':
            raise SystemExit(f'first line is not hello: {self.hello!r}')
        self.parent = self.hello['pid']
        self.credit = self.hello['credit']

    def write_line(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj, separators=(',', ':'))
        self.sock.sendall(text.encode('utf-8') + b'\n')

    def read_raw(self):
        """The next line as a frame, or None at end-of-file."""
        try:
            line = self.reader.readline()
        except ConnectionResetError:
            return None
        if not line:
            return None
        frame = json.loads(line)
        if frame.get('op') == 'credit':
            self.credit += frame['n']
        return frame

    def read(self):
        """The next frame that is not a credit frame, or None at EOF."""
        if self.backlog:
            return self.backlog.popleft()
        while True:
            frame = self.read_raw()
            if frame is None or frame.get('op') != 'credit':
                return frame

    def put(self, message):
        if self.credit == 0:
            self.write_line({'op': 'credit'})
            while self.credit == 0:
                frame = self.read_raw()
                if frame is None:
                    raise SystemExit('hung up on while waiting for credit')
                if frame.get('op') != 'credit':
                    self.backlog.append(frame)
        if self.credit > 0:
            self.credit -= 1
        self.write_line(message)

    def read_until_eof(self):
        frames = []
        while True:
            frame = self.read_raw()
            if frame is None:
                return frames
            frames.append(frame)


def handle(conn, frame, handled):
    """Handles one msg frame; returns False on DIE."""
    request, sender, recipient, data = frame['msg']
    if request == 'DIE':
        conn.write_line({'op': 'ack', 'tag': frame['tag']})
        return False
    if request != 'DO':
        raise SystemExit(f'unexpected message {frame!r}')
    value = data['value']
    conn.put(['FINISHED', PID, conn.parent, {'value': value * value, 'worker': PID}])
    conn.write_line({'op': 'ack', 'tag': frame['tag']})
    handled.append(value)
    return True


def expect_msg(conn, request_id):
    while True:
        frame = conn.read()
        if frame is None:
            raise SystemExit('hung up on while waiting for a message')
        if frame.get('op') == 'msg' and frame.get('id') == request_id:
            return frame
        if frame.get('op') == 'none' and frame.get('id') == request_id:
            raise SystemExit(f'request {request_id} got nothing')
        raise SystemExit(f'unexpected frame {frame!r}')


def work(conn, mode, args, handled):
    if mode == 'dispatch':
        prefetch = int(args[0]) if args else 4
        conn.write_line({'op': 'start', 'prefetch': prefetch})
        while True:
            frame = conn.read()
            if frame is None:
                raise SystemExit('hung up on before DIE')
            if frame.get('op') != 'msg' or 'id' in frame:
                raise SystemExit(f'unexpected frame {frame!r}')
            if not handle(conn, frame, handled):
                return

    request_id = 0
    while True:
        request_id += 1
        if mode == 'want':
            conn.write_line({'op': 'want', 'id': request_id})
        elif mode == 'get':
            conn.write_line({'op': 'get', 'id': request_id, 'timeout': -1})
        else:
            raise SystemExit(f'unknown mode {mode!r}')
        frame = expect_msg(conn, request_id)
        request, _, recipient, _ = frame['msg']
        if mode == 'get' and (request not in ('DO', 'DIE')
                              or recipient not in (None, PID)):
            conn.write_line({'op': 'back', 'tag': frame['tag']})
            continue
        if not handle(conn, frame, handled):
            return


BAD = {
    'garbage': 'this is neither a message nor a frame',
    'bad-message': '["DO",0,null,null]',
    'unknown-op': '{"op":"bogus"}',
    'bad-tag': '{"op":"ack","tag":987654321}',
}


def bad(conn, kind):
    if kind == 'no-credit':
        if conn.credit < 0:
            raise SystemExit('no-credit needs a bounded queue')
        for i in range(conn.credit):
            conn.put(['DO', PID, conn.parent, {'i': i}])
        # conn.credit is 0 now: this put has no credit.
        conn.write_line(['DO', PID, conn.parent, {'i': conn.hello['credit']}])
    else:
        conn.put(['DO', PID, conn.parent, {'i': 0}])
        conn.write_line(BAD[kind])
        try:
            conn.put(['DO', PID, conn.parent, {'i': 1}])
        except (BrokenPipeError, ConnectionResetError):
            pass


def main(argv):
    report = '--report' in argv
    args = [a for a in argv[1:] if a != '--report']
    mode, args = args[0], args[1:]
    conn = Connection()
    handled, eof, frames = [], False, []
    if mode == 'bad' and args[0] == 'cut':
        conn.put(['DO', PID, conn.parent, {'i': 0}])
        conn.sock.sendall(f'["DO",{PID},{conn.parent},{{"i":'.encode())
        report = True
    elif mode == 'bad':
        report = True
        try:
            bad(conn, args[0])
        except (BrokenPipeError, ConnectionResetError):
            pass
        frames = conn.read_until_eof()
        eof = True
    else:
        work(conn, mode, args, handled)
    if report:
        print(json.dumps({'pid': PID, 'hello': conn.hello, 'handled': handled,
                          'eof': eof, 'frames': frames}), flush=True)
    conn.sock.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
