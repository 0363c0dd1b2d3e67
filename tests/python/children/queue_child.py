# SPDX-License-Identifier: LGPL-2.1-or-later
"""A child process on its parent's Mpq.Queue (via gi).

Usage: queue_child.py MODE [ARGS...]

Modes (PARENT below is Mpq.Queue.get_parent_pid()):
  send-value V         send DO with data V (an int) to PARENT and exit
  send-numbered N [PUT_TIMEOUT PUT_ATTEMPTS]
                       send N x DO with data i (0 ... N-1) to nobody, as fast
                       as it can, then exit (setting put-timeout and
                       put-attempts first if given)
  worker [KEY=VALUE...]
                       dispatch (start() and a main loop). Keys:
                         ready=1     after start(), send READY with facts
                                     about this process to PARENT (default 1)
                         prefetch=N  set the prefetch property before start()
                         work=N      on each DO, do N steps of arithmetic
                         answer=1    answer each DO with FINISHED
                                     {"task": data, "worker": pid} to PARENT
                         die=exit    on the first DO, os._exit(7) inside the
                                     handler; die=kill: SIGKILL itself there
                         hold=1      on the first DO, print {"holding": data}
                                     and block forever inside the handler
                       On DIE: send REPORT {"pid", "tasks": [[data,
                       recipient], ...], "others": [[request, recipient],
                       ...]} to PARENT, quit the loop, close, exit 0.
                       On closed before DIE: exit 5.
  duplex               pymulproc's full-duplex child: receive(-1, filter) with
                       a filter that takes only messages addressed to this
                       pid (the others go back to the end of the queue);
                       answer DO with FINISHED {"got": data, "pid": pid} to
                       PARENT; exit 0 on DIE
  poll-empty           receive(0) on an empty queue; send REPORT {"none",
                       "elapsed_ms", facts} to PARENT
  reject-front         receive(-1, filter) with a filter that rejects; send
                       DONE {"none", "seen": [data, ...]} to PARENT
  fill LIMIT PUT_TIMEOUT PUT_ATTEMPTS [FIRST FIRST_TIMEOUT]
                       send DO i to nobody until FULL (at most LIMIT); print
                       {"sent", "error", "failed_after_ms"}. With FIRST, the
                       first FIRST sends have one attempt of FIRST_TIMEOUT ms
                       (room to wait for credit on a loaded machine), the
                       later ones PUT_TIMEOUT x PUT_ATTEMPTS
  for-me-worker        receive_for_me(-1) in a loop: answer DO with FINISHED
                       and the same data to PARENT; exit 0 on DIE, or exit
                       with an error if a DO's data (an int) is not above
                       the one before (tasks must come in the order put)
  get-one              print "waiting", receive(-1), print the message as JSON
  block-get            connect closed, print "waiting", receive(-1); print
                       {"error", "closed", "again"} where "again" is the
                       error of a second receive(0)
  put-then-hang N      send N x DO i to PARENT, flush, print "sent", block forever
  roundtrip N          N times: send DO i addressed to itself, then take the
                       front with receive(-1), which must be that message
                       (nobody else puts); exit 0
  wait STATE           print {"waiting": STATE, "pid"}, then wait in STATE
                       until the parent goes away; print {"state", "error"}
                       (or {"state", "closed"} for dispatch) and exit 0.
                       STATE: receive (receive(-1)), receive-async,
                       join (join(-1): the parent left a message nobody
                       takes), send-room (a queue of 1: put one, then a
                       send that waits for credit, put-timeout 600 s),
                       dispatch (start() in a main loop: ::closed)

Unexpected errors end the child with a traceback (exit 1); an exception in
a signal handler ends it with exit 9.
"""

import json
import os
import signal
import sys
import time
import traceback

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

PID = os.getpid()


def say(obj):
    """One line on stdout (read by tests that spawn with a stdout pipe)."""
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def send(queue, request, recipient, data=None):
    if data is None:
        queue.send(request, 0, recipient, None)
    else:
        queue.send_json(request, 0, recipient, json.dumps(data))


def data_of(msg):
    return json.loads(msg.dup_data_json())


def error_facts(error):
    return {'domain': error.domain, 'code': error.code, 'message': error.message}


def facts(queue):
    return {
        'pid': PID,
        'ppid': os.getppid(),
        'parent_pid': queue.get_parent_pid(),
        'channel_pid': queue.props.pid,
        'role': int(queue.props.role),
        'kind': os.environ.get('MPQ_CHANNEL_KIND'),
    }


def hang():
    while True:
        signal.pause()


def guarded(handler):
    """PyGObject only prints exceptions raised in signal handlers: make them
    fatal, so the parent sees a failing child."""
    def wrapper(*args):
        try:
            return handler(*args)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(9)
    return wrapper


def busy(steps):
    total = 0
    for i in range(steps):
        total += i * i % 7
    return total


def worker(queue, options):
    parent = queue.get_parent_pid()
    work = int(options.get('work', 0))
    answer = options.get('answer') == '1'
    die = options.get('die')
    hold = options.get('hold') == '1'
    if 'prefetch' in options:
        queue.set_prefetch(int(options['prefetch']))

    loop = GLib.MainLoop()
    tasks, others = [], []
    outcome = {'status': None}

    @guarded
    def on_do(ch, msg):
        data = data_of(msg)
        if die == 'exit':
            os._exit(7)
        if die == 'kill':
            os.kill(PID, signal.SIGKILL)
        if hold:
            say({'holding': data})
            hang()
        busy(work)
        tasks.append([data, msg.get_recipient_pid()])
        if answer:
            send(queue, Mpq.REQ_FINISHED, parent, {'task': data, 'worker': PID})

    @guarded
    def on_die(ch, msg):
        send(queue, 'REPORT', parent, {'pid': PID, 'tasks': tasks, 'others': others})
        outcome['status'] = 0
        loop.quit()

    @guarded
    def on_any(ch, msg):
        if msg.get_request() not in (Mpq.REQ_DO, Mpq.REQ_DIE):
            others.append([msg.get_request(), msg.get_recipient_pid()])

    def on_closed(ch):
        if outcome['status'] is None:
            outcome['status'] = 5
        loop.quit()

    queue.connect('message-received::' + Mpq.REQ_DO, on_do)
    queue.connect('message-received::' + Mpq.REQ_DIE, on_die)
    queue.connect('message-received', on_any)
    queue.connect('closed', on_closed)
    queue.start()
    if options.get('ready', '1') == '1':
        send(queue, 'READY', parent, facts(queue))
    loop.run()
    queue.stop()
    queue.close()
    return outcome['status']


def main(argv):
    mode, args = argv[1], argv[2:]
    queue = Mpq.Queue.new_for_child()
    parent = queue.get_parent_pid()

    if mode == 'send-value':
        send(queue, Mpq.REQ_DO, parent, int(args[0]))

    elif mode == 'send-numbered':
        if len(args) > 1:
            queue.set_put_timeout(int(args[1]))
            queue.set_put_attempts(int(args[2]))
        send_json = queue.send_json
        for i in range(int(args[0])):
            send_json(Mpq.REQ_DO, 0, 0, str(i))

    elif mode == 'echo-bytes':
        # One message with a payload, taken and answered with the same bytes.
        msg = queue.receive(-1)
        queue.send_message(Mpq.Message.new_with_bytes(
            Mpq.REQ_FINISHED, 0, parent, msg.get_data(), msg.get_bytes()))
        queue.flush(-1)

    elif mode == 'worker':
        return worker(queue, dict(arg.split('=', 1) for arg in args))

    elif mode == 'duplex':
        def mine(msg):
            return msg.get_recipient_pid() == PID

        while True:
            msg = queue.receive(-1, mine)
            if msg is None:         # someone else's: it went to the back
                continue
            if msg.get_request() == Mpq.REQ_DIE:
                break
            assert msg.get_request() == Mpq.REQ_DO, msg.get_request()
            send(queue, Mpq.REQ_FINISHED, parent, {'got': data_of(msg), 'pid': PID})

    elif mode == 'poll-empty':
        start = time.monotonic()
        got = queue.receive(0)
        elapsed_ms = (time.monotonic() - start) * 1000
        send(queue, 'REPORT', parent,
             {'none': got is None, 'elapsed_ms': elapsed_ms, 'facts': facts(queue)})

    elif mode == 'reject-front':
        seen = []

        def reject(msg):
            seen.append(data_of(msg))
            return False

        got = queue.receive(-1, reject)
        send(queue, 'DONE', parent, {'none': got is None, 'seen': seen})

    elif mode == 'fill':
        limit, put_timeout, put_attempts = (int(a) for a in args[:3])
        first, first_timeout = (int(a) for a in args[3:5]) if len(args) > 3 else (0, 0)
        queue.set_put_timeout(put_timeout)
        queue.set_put_attempts(put_attempts)
        sent, error, failed_after_ms = 0, None, None
        for i in range(limit):
            if i < first:
                queue.set_put_timeout(first_timeout)
                queue.set_put_attempts(1)
            elif i == first:
                queue.set_put_timeout(put_timeout)
                queue.set_put_attempts(put_attempts)
            start = time.monotonic()
            try:
                send(queue, Mpq.REQ_DO, 0, i)
            except GLib.Error as e:
                failed_after_ms = (time.monotonic() - start) * 1000
                error = error_facts(e)
                break
            sent += 1
        say({'sent': sent, 'error': error, 'failed_after_ms': failed_after_ms})

    elif mode == 'for-me-worker':
        last = -1
        while True:
            msg = queue.receive_for_me(-1)
            if msg.get_request() == Mpq.REQ_DIE:
                break
            value = data_of(msg)
            if msg.get_request() != Mpq.REQ_DO or value <= last:
                sys.exit(f'for-me-worker got {msg.get_request()} {value} after {last}')
            last = value
            send(queue, Mpq.REQ_FINISHED, parent, value)

    elif mode == 'get-one':
        say('waiting')
        msg = queue.receive(-1)
        say({'request': msg.get_request(), 'sender': msg.get_sender_pid(),
             'recipient': msg.get_recipient_pid(), 'data': data_of(msg)})

    elif mode == 'block-get':
        closed = []
        queue.connect('closed', lambda ch: closed.append(True))
        say('waiting')
        try:
            msg = queue.receive(-1)
        except GLib.Error as e:
            error = error_facts(e)
        else:
            say({'got': msg.to_json()})
            return 1
        context = GLib.MainContext.default()
        while context.iteration(False):
            pass
        try:
            queue.receive(0)
            again = None
        except GLib.Error as e:
            again = error_facts(e)
        say({'error': error, 'closed': len(closed), 'again': again})
        return 0

    elif mode == 'put-then-hang':
        for i in range(int(args[0])):
            send(queue, Mpq.REQ_DO, parent, i)
        queue.flush(-1)     # about to be killed: make sure they left
        say('sent')
        hang()

    elif mode == 'roundtrip':
        for i in range(int(args[0])):
            send(queue, Mpq.REQ_DO, PID, i)
            msg = queue.receive(-1)
            if (msg.get_sender_pid(), data_of(msg)) != (PID, i):
                sys.exit(f'round trip {i} took {msg.to_json()}')

    elif mode == 'wait':
        return wait_in(queue, args[0])

    else:
        sys.exit(f'unknown mode {mode!r}')

    queue.close()
    return 0


def wait_in(queue, state):
    """Waits in @state until the parent goes away (the test kills it)."""
    report = {'state': state}
    if state == 'send-room':
        send(queue, Mpq.REQ_DO, 0, 'fills the queue of 1')
        queue.set_put_timeout(600_000)
        queue.set_put_attempts(1)
    say({'waiting': state, 'pid': PID})
    try:
        if state == 'receive':
            report['got'] = queue.receive(-1).to_json()
        elif state == 'join':
            report['joined'] = queue.join(-1)
        elif state == 'send-room':
            report['sent'] = send(queue, Mpq.REQ_DO, 0, 'waits for room')
        elif state in ('receive-async', 'dispatch'):
            loop = GLib.MainLoop()

            def on_done(source, result):
                try:
                    report['got'] = source.receive_finish(result).to_json()
                except GLib.Error as e:
                    report['error'] = error_facts(e)
                loop.quit()

            def on_closed(ch):
                report['closed'] = True
                loop.quit()

            if state == 'receive-async':
                queue.receive_async(None, on_done)
            else:
                queue.connect('message-received', lambda ch, m: report.setdefault(
                    'messages', []).append(m.to_json()))
                queue.connect('closed', on_closed)
                queue.start()
            loop.run()
        else:
            sys.exit(f'unknown state {state!r}')
    except GLib.Error as e:
        report['error'] = error_facts(e)
    say(report)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
