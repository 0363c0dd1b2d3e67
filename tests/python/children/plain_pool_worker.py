# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool worker that does not use gi: only json, os and socket, speaking
the frames of docs/protocol.md ("Being a pool worker without the library")
on the descriptor named by MPQ_CHANNEL_FD, as a worker written in any
language would.

Requests (each task's data is a plain JSON value):
  square        n -> n * n
  echo          x -> x
  pid           -> this worker's pid
  fail          FAILED "failing on purpose: <data>"
  progress      n: PROGRESS 1..n, then -> n
  until-cancel  PROGRESS "started", then reads frames (keeping the tasks
                that come meanwhile for later) until the pool cancels this
                task; -> "stopped" (the pool drops it)
  anything else -> "unknown request"
A task the pool cancelled before it started is answered FAILED.

Every request is appended, one per line, to $MPQ_TEST_LOG_DIR/<pid> when
that is set. The worker leaves on DIE, and at end-of-file (its pool is
gone).

Hostile mode: with MPQ_TEST_EVIL=KIND and MPQ_TEST_EVIL_DIR=DIR, each
worker writes DIR/pid-<pid> before it says READY; the first worker handed
`square 7` that creates DIR/evil (O_EXCL: once per pool) does KIND instead
of answering it, then reads until end-of-file without answering anything:
  garbage-id         FINISHED {"task": "seven", "result": -1}
  not-held           FINISHED for task id + 1000, a task it does not hold
  progress-not-held  PROGRESS for task id + 1000
  second-ready       a second READY
  other-sender       FINISHED {"task": id, "result": -1} with the pid of
                     another worker (from DIR) as sender
  other-sender-then-ready
                     the same, then a second READY
  unknown-request    ["HELLO", pid, pool, {"task": id, "result": -1}]
"""

import collections
import json
import os
import socket
import sys

ME = os.getpid()
LOG_DIR = os.environ.get('MPQ_TEST_LOG_DIR')
EVIL = os.environ.get('MPQ_TEST_EVIL')
EVIL_DIR = os.environ.get('MPQ_TEST_EVIL_DIR')


class Done(Exception):
    """DIE, or end-of-file."""


class Worker:
    def __init__(self):
        self.sock = socket.socket(fileno=int(os.environ['MPQ_CHANNEL_FD']))
        self.lines = self.sock.makefile('r', encoding='utf-8', newline='\n')
        hello = json.loads(self.lines.readline())
        assert hello['op'] == 'hello', hello
        self.pool = hello['pid']
        self.backlog = collections.deque()   # task frames not started
        self.cancelled = set()               # ids cancelled before they started

    def write(self, obj):
        self.sock.sendall((json.dumps(obj, separators=(',', ':')) + '\n').encode('utf-8'))

    def put(self, request, data, sender=ME):
        self.write([request, sender, self.pool, data])

    def next_frame(self):
        """The next msg frame from the pool; raises Done at end-of-file."""
        while True:
            line = self.lines.readline()
            if not line:
                raise Done()
            frame = json.loads(line)
            if frame.get('op') != 'msg':
                continue
            if frame['msg'][1] != self.pool:       # not the pool's: ignore
                self.write({'op': 'ack', 'tag': frame['tag']})
                continue
            return frame

    def control(self, frame):
        """Handles a frame that is not a task (CANCEL, DIE); acks it."""
        request, _, _, data = frame['msg']
        self.write({'op': 'ack', 'tag': frame['tag']})
        if request == 'DIE' and data is None:
            raise Done()
        if request == 'CANCEL':
            return data['task']
        return None

    @staticmethod
    def is_task(frame):
        data = frame['msg'][3]
        return isinstance(data, dict) and 'data' in data

    def until_cancel(self, task):
        self.put('PROGRESS', {'task': task, 'progress': 'started'})
        while True:
            frame = self.next_frame()
            if self.is_task(frame):
                self.backlog.append(frame)
                continue
            cancelled = self.control(frame)
            if cancelled == task:
                return 'stopped'
            if cancelled is not None:
                self.cancelled.add(cancelled)

    def evil(self, task):
        try:
            fd = os.open(os.path.join(EVIL_DIR, 'evil'), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        if EVIL == 'garbage-id':
            self.put('FINISHED', {'task': 'seven', 'result': -1})
        elif EVIL == 'not-held':
            self.put('FINISHED', {'task': task + 1000, 'result': -1})
        elif EVIL == 'progress-not-held':
            self.put('PROGRESS', {'task': task + 1000, 'progress': -1})
        elif EVIL == 'second-ready':
            self.put('READY', None)
        elif EVIL in ('other-sender', 'other-sender-then-ready'):
            others = [int(name[4:]) for name in os.listdir(EVIL_DIR)
                      if name.startswith('pid-') and name != f'pid-{ME}']
            self.put('FINISHED', {'task': task, 'result': -1}, sender=others[0])
            if EVIL == 'other-sender-then-ready':
                self.put('READY', None)
        elif EVIL == 'unknown-request':
            self.put('HELLO', {'task': task, 'result': -1})
        else:
            raise SystemExit(f'unknown MPQ_TEST_EVIL {EVIL!r}')
        while self.lines.readline():               # until the pool kills it
            pass
        raise Done()

    def run_task(self, frame):
        request, _, _, data = frame['msg']
        task, value = data['task'], data['data']
        if LOG_DIR is not None:
            with open(os.path.join(LOG_DIR, str(ME)), 'a') as log:
                log.write(request + '\n')
        if task in self.cancelled:
            self.cancelled.discard(task)
            self.put('FAILED', {'task': task, 'error': 'cancelled'})
        elif request == 'fail':
            self.put('FAILED', {'task': task, 'error': f'failing on purpose: {json.dumps(value)}'})
        else:
            if request == 'square' and value == 7 and EVIL is not None:
                self.evil(task)
            if request == 'square':
                result = value * value
            elif request == 'echo':
                result = value
            elif request == 'pid':
                result = ME
            elif request == 'progress':
                for i in range(1, value + 1):
                    self.put('PROGRESS', {'task': task, 'progress': i})
                result = value
            elif request == 'until-cancel':
                result = self.until_cancel(task)
            else:
                result = 'unknown request'
            self.put('FINISHED', {'task': task, 'result': result})
        self.write({'op': 'ack', 'tag': frame['tag']})

    def serve(self):
        if EVIL_DIR is not None:
            open(os.path.join(EVIL_DIR, f'pid-{ME}'), 'w').close()
        # Room for every task the pool hands ahead (up to 32) and a CANCEL
        # for each: until-cancel keeps reading while it holds its task.
        self.write({'op': 'start', 'prefetch': 128})
        self.put('READY', None)
        try:
            while True:
                frame = self.backlog.popleft() if self.backlog else self.next_frame()
                if self.is_task(frame):
                    self.run_task(frame)
                else:
                    cancelled = self.control(frame)
                    if cancelled is not None:
                        self.cancelled.add(cancelled)
        except Done:
            pass
        except (BrokenPipeError, ConnectionResetError):
            pass


if __name__ == '__main__':
    Worker().serve()
    sys.exit(0)
