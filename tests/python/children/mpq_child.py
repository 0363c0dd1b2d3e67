# SPDX-License-Identifier: LGPL-2.1-or-later
"""A child process that talks to its parent through Mpq.Pipe (via gi).

Usage: mpq_child.py MODE [ARGS...]

Modes:
  send-test-child      send REQ_TEST_CHILD and exit (the README example)
  answer-parent        wait for REQ_TEST_PARENT, answer REQ_TEST_CHILD with
                       facts about this process, then wait for DIE
  burst N              send N x DO {"i": i}, FINISHED, a novel request, DIE;
                       then exit
  send-and-exit N      send N x DO {"i": i} and exit at once
  send-then-kill N     send N x DO {"i": i}, flush, then SIGKILL itself
  send-then-wait N     send N x DO {"i": i}, then obey commands:
                       EXIT (exit 0), KILL (SIGKILL itself), DIE (exit 0)
  echo [COPIES]        reply to every message with the same request and data
                       (first copy passes the Json.Node, second the JSON
                       text) addressed to the sender, until DIE
  claim-twice          open the pipe, try to open it again, report, exit
  grandchild           spawn a long sleeper inheriting every inheritable fd,
                       report its pid, exit
  flush-loop SEED      until stdin ends: send a burst of 1 to 2,000 DO {"i": n}
                       (n counting from 0 across bursts; sizes from
                       random.Random(SEED)), flush(-1), print the number sent
                       so far on stdout (all of those have left), then wait
                       for a byte on stdin before the next burst
  wait STATE           print {"waiting": STATE, "pid"} on stdout, then wait
                       in STATE until the parent goes away; print {"state",
                       "error"} (or {"state", "closed"} for dispatch), exit 0.
                       STATE: receive (receive(-1)), receive-async,
                       dispatch (start() in a main loop: ::closed),
                       send-room (sends with send-timeout 0 until three in a
                       row time out, then one with send-timeout -1)

On CLOSED (the parent hung up), a child exits 0; on another receive error, 3.
"""

import json
import os
import random
import signal
import sys

import gi

gi.require_version('Mpq', '1.0')
gi.require_version('Json', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

NOVEL_REQUEST = 'NOVEL request \u2713'


def is_closed(error):
    return error.matches(Mpq.error_quark(), Mpq.Error.CLOSED)


def send_numbered(ch, count):
    for i in range(count):
        ch.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'i': i}))


def receive_or_exit(ch):
    """Blocks for the next message; exits 0 when the parent hangs up, 3 on
    any other error (a line the child refused)."""
    try:
        return ch.receive(-1)
    except GLib.Error as error:
        if is_closed(error):
            sys.exit(0)
        print(f'mpq_child.py: {error.domain}:{error.code}: {error.message}', file=sys.stderr)
        sys.exit(3)


def obey(ch):
    while True:
        msg = receive_or_exit(ch)
        request = msg.get_request()
        if request in ('EXIT', Mpq.REQ_DIE):
            ch.close()
            sys.exit(0)
        if request == 'KILL':
            os.kill(os.getpid(), signal.SIGKILL)
        sys.exit(f'unexpected request {request!r}')


def main(argv):
    mode, args = argv[1], argv[2:]

    if mode == 'claim-twice':
        ch = Mpq.Pipe.new_for_child()
        try:
            Mpq.Pipe.new_for_child()
            second = None
        except GLib.Error as error:
            second = [error.domain, error.code]
        ch.send_json('REPORT', 0, 0, json.dumps({'second': second}))
        ch.close()
        return 0

    ch = Mpq.Pipe.new_for_child()

    if mode == 'send-test-child':
        ch.send(Mpq.REQ_TEST_CHILD, 0, 0, None)

    elif mode == 'answer-parent':
        msg = receive_or_exit(ch)
        if msg.get_request() != Mpq.REQ_TEST_PARENT:
            sys.exit(f'unexpected request {msg.get_request()!r}')
        facts = {
            'pid': os.getpid(),
            'ppid': os.getppid(),
            'got_sender': msg.get_sender_pid(),
            'got_recipient': msg.get_recipient_pid(),
            'role': int(ch.props.role),
            'channel_pid': ch.props.pid,
            'kind': os.environ.get('MPQ_CHANNEL_KIND'),
        }
        ch.send_json(Mpq.REQ_TEST_CHILD, 0, msg.get_sender_pid(), json.dumps(facts))
        obey(ch)

    elif mode == 'burst':
        count = int(args[0])
        send_numbered(ch, count)
        ch.send_json(Mpq.REQ_FINISHED, 0, 0, json.dumps({'n': count}))
        ch.send(NOVEL_REQUEST, 0, 0, None)
        ch.send(Mpq.REQ_DIE, 0, 0, None)

    elif mode == 'send-and-exit':
        send_numbered(ch, int(args[0]))

    elif mode == 'send-then-kill':
        send_numbered(ch, int(args[0]))
        ch.flush(-1)   # what a stream sent in its last microseconds, too
        os.kill(os.getpid(), signal.SIGKILL)

    elif mode == 'send-then-wait':
        send_numbered(ch, int(args[0]))
        obey(ch)

    elif mode == 'echo':
        copies = int(args[0]) if args else 2
        while True:
            msg = receive_or_exit(ch)
            if msg.get_request() == Mpq.REQ_DIE:
                break
            for copy in range(copies):
                if msg.get_bytes() is not None:
                    # A payload goes back as it came (by descriptor: the same file).
                    ch.send_message(Mpq.Message.new_with_bytes(
                        msg.get_request(), 0, msg.get_sender_pid(), msg.get_data(),
                        msg.get_bytes()))
                elif copy % 2 == 0:
                    ch.send(msg.get_request(), 0, msg.get_sender_pid(), msg.get_data())
                else:
                    ch.send_json(msg.get_request(), 0, msg.get_sender_pid(),
                                 msg.dup_data_json())

    elif mode == 'grandchild':
        # os.posix_spawn closes nothing: the sleeper inherits every fd that is
        # not close-on-exec, so it would keep the channel open if the
        # library left it inheritable.
        pid = os.posix_spawn('/bin/sleep', ['sleep', '600'], os.environ)
        ch.send_json('GRANDCHILD', 0, 0, json.dumps({'pid': pid}))
        ch.close()
        os._exit(0)

    elif mode == 'flush-loop':
        sizes = random.Random(int(args[0]))
        n = 0
        while True:
            for _ in range(sizes.randint(1, 2000)):
                ch.send_json(Mpq.REQ_DO, 0, 0, '{"i":%d}' % n)
                n += 1
            ch.flush(-1)
            print(n, flush=True)
            if not os.read(0, 1):
                break

    elif mode == 'wait':
        return wait_in(ch, args[0])

    else:
        sys.exit(f'unknown mode {mode!r}')

    ch.close()
    return 0


def say(obj):
    print(json.dumps(obj), flush=True)


def error_facts(error):
    return {'domain': error.domain, 'code': error.code, 'message': error.message}


def wait_in(ch, state):
    """Waits in @state until the parent goes away (the test kills it)."""
    report = {'state': state}
    try:
        if state == 'send-room':
            # Until three sends in a row time out: the socket is full and
            # so is the buffer (a send that finds room in the buffer
            # succeeds although the socket is full).
            ch.props.send_timeout = 0
            pad = json.dumps('p' * 65536)
            failures = 0
            while failures < 3:
                try:
                    ch.send_json(Mpq.REQ_DO, 0, 0, pad)
                    failures = 0
                except GLib.Error as error:
                    if not error.matches(Mpq.error_quark(), Mpq.Error.TIMED_OUT):
                        raise
                    failures += 1
            ch.props.send_timeout = -1
        say({'waiting': state, 'pid': os.getpid()})
        if state == 'receive':
            report['got'] = ch.receive(-1).to_json()
        elif state == 'send-room':
            report['sent'] = ch.send_json(Mpq.REQ_DO, 0, 0, pad)
        elif state in ('receive-async', 'dispatch'):
            loop = GLib.MainLoop()

            def on_done(source, result):
                try:
                    report['got'] = source.receive_finish(result).to_json()
                except GLib.Error as error:
                    report['error'] = error_facts(error)
                loop.quit()

            def on_closed(ch):
                report['closed'] = True
                loop.quit()

            if state == 'receive-async':
                ch.receive_async(None, on_done)
            else:
                ch.connect('closed', on_closed)
                ch.start()
            loop.run()
        else:
            sys.exit(f'unknown state {state!r}')
    except GLib.Error as error:
        report['error'] = error_facts(error)
    say(report)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv))
    except GLib.Error as error:
        if is_closed(error):     # the parent hung up while we were sending
            sys.exit(0)
        raise
