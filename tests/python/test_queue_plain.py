# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Queue with workers that do not use the library
(children/plain_queue_worker.py: json, os and socket only, speaking the
line protocol of docs/protocol.md), and children that break the protocol."""

import json
import os

import pytest
from gi.repository import GLib, Mpq

from mpq_helpers import (PLAIN_QUEUE_WORKER, PROMPT_MS, QUEUE_CHILD, assert_drained, pid_of,
                         data_of, queues, run_loop, same_pid, stop_workers, take, take_ready,
                         take_routed, wait_exit)

assert queues   # a fixture, used by name


def answers_of(messages, worker_pid):
    values = []
    for msg in messages:
        assert msg.get_request() == Mpq.REQ_FINISHED, msg.to_json()
        assert msg.get_sender_pid() == worker_pid
        assert msg.get_recipient_pid() == os.getpid()
        data = data_of(msg)
        assert data['worker'] == worker_pid
        values.append(data['value'])
    return values


@pytest.mark.parametrize('mode', ['dispatch', 'want', 'get'])
def test_plain_worker(queues, mode):
    """A plain-Python worker reads the hello, takes tasks (pushed by
    dispatch, or by want / get requests), answers each with FINISHED to the
    parent before acknowledging it, and stops at DIE. The parent waits for
    it to exit, then takes every answer."""
    q = queues.new()
    proc = queues.spawn(q, PLAIN_QUEUE_WORKER, mode, '--report', stdout=True)
    pid = pid_of(proc)
    values = list(range(1, 31))
    for v in values:
        q.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'value': v}))
    q.send(Mpq.REQ_DIE, 0, 0, None)

    report = queues.json_line(proc)
    wait_exit(proc)
    assert proc.get_successful()
    assert report['hello'] == {'op': 'hello', 'pid': os.getpid(), 'fds': True, 'credit': -1,
                               'max': Mpq.DEFAULT_MAX_MESSAGE_SIZE}
    assert report['handled'] == values

    got = answers_of(take(q, len(values)), pid)
    assert sorted(got) == [v * v for v in values]
    assert_drained(q)


def test_plain_worker_answers_parent_dispatch(queues):
    """Tasks addressed to the plain worker's pid; the parent dispatches
    (start(), message-received::FINISHED) and gets every answer while the
    worker runs; the parent's dispatch never sees the worker's tasks."""
    q = queues.new()
    proc = queues.spawn(q, PLAIN_QUEUE_WORKER, 'dispatch', 2)
    pid = pid_of(proc)
    values = list(range(50))
    loop = GLib.MainLoop()
    finished, anything = [], []

    def on_finished(ch, msg):
        finished.append(msg)
        if len(finished) == len(values):
            loop.quit()

    q.connect('message-received::' + Mpq.REQ_FINISHED, on_finished)
    q.connect('message-received', lambda ch, m: anything.append(m.get_request()))
    q.start()
    for v in values:
        q.send_json(Mpq.REQ_DO, 0, pid, json.dumps({'value': v}))
    run_loop(loop)
    q.stop()
    assert anything == [Mpq.REQ_FINISHED] * len(values)
    assert answers_of(finished, pid) == [v * v for v in values]

    q.send(Mpq.REQ_DIE, 0, pid, None)
    wait_exit(proc)
    assert proc.get_successful()
    assert_drained(q)


@pytest.mark.parametrize('kind', ['plain', 'gi'])
def test_worker_on_bounded_queue(queues, kind):
    """Mpq.Queue.new(4) with one worker that answers every task: the
    parent sends tasks two at a time and takes the answers (routed) before
    sending more; the worker's puts use credit (asked for by the plain
    worker by hand). Every answer arrives."""
    q = queues.new(4)
    if kind == 'plain':
        proc = queues.spawn(q, PLAIN_QUEUE_WORKER, 'dispatch')
    else:
        proc = queues.spawn(q, QUEUE_CHILD, 'worker', 'answer=1', 'ready=0')
    pid = pid_of(proc)
    got = []
    for batch in range(15):
        for v in (2 * batch, 2 * batch + 1):
            q.send_json(Mpq.REQ_DO, 0, pid, json.dumps({'value': v}))
        for msg in take_routed(q, 2):
            assert msg.get_request() == Mpq.REQ_FINISHED and msg.get_sender_pid() == pid
            data = data_of(msg)
            got.append(data['value'] if kind == 'plain' else data['task']['value'] ** 2)
    assert sorted(got) == [v * v for v in range(30)]
    if kind == 'plain':
        q.send(Mpq.REQ_DIE, 0, pid, None)
        wait_exit(proc)
        assert proc.get_successful()
    else:
        stop_workers(q, [proc])
    assert_drained(q)


BAD_KINDS = ['garbage', 'bad-message', 'unknown-op', 'bad-tag', 'no-credit']


@pytest.mark.parametrize('kind', BAD_KINDS)
def test_bad_child_is_dropped(queues, kind):
    """A raw child (no gi) puts one good message to the parent, then breaks
    the protocol (a garbage line, a bad message line, an unknown op, an ack
    of a tag it was never given, or a put without credit into a bounded
    queue), then puts another message. The parent's server hangs up on it
    (it reads end-of-file); what it put before the bad line stays, nothing
    after it arrives. Meanwhile a gi worker keeps answering tasks, and the
    parent's queue stays usable."""
    q = queues.new(16 if kind == 'no-credit' else 0)
    good = queues.spawn(q, QUEUE_CHILD, 'worker', 'answer=1')
    good_pid = pid_of(good)
    take_ready(q, [good])
    before, after = list(range(5)), list(range(5, 10))
    for n in before:
        q.send_json(Mpq.REQ_DO, 0, good_pid, json.dumps(n))

    bad = queues.spawn(q, PLAIN_QUEUE_WORKER, 'bad', kind, stdout=True)
    report = queues.json_line(bad)
    bad_pid = same_pid(bad, report['pid'])   # it may be gone before spawn returns
    wait_exit(bad)
    assert bad.get_successful()
    assert report['eof'] is True
    assert [f for f in report['frames'] if f.get('op') == 'msg'] == []
    if kind == 'no-credit':
        assert report['hello']['credit'] >= 0
        survivors = list(range(report['hello']['credit']))
    else:
        survivors = [0]

    for n in after:
        q.send_json(Mpq.REQ_DO, 0, good_pid, json.dumps(n))
    messages = take_routed(q, len(before) + len(after) + len(survivors))
    from_good = [data_of(m)['task'] for m in messages if m.get_sender_pid() == good_pid]
    from_bad = [data_of(m)['i'] for m in messages if m.get_sender_pid() == bad_pid]
    assert sorted(from_good) == before + after
    assert from_bad == survivors
    assert q.receive(0) is None, 'a message put after the bad line arrived'

    q.send_json('SELF', 0, os.getpid(), '"still usable"')
    [msg] = take(q, 1)
    assert (msg.get_request(), data_of(msg)) == ('SELF', 'still usable')
    stop_workers(q, [good])
    assert_drained(q)


def test_cut_line_from_dying_child(queues):
    """A raw child puts a message, then exits in the middle of a line: the
    message before the cut line stays, the cut line is dropped, and a plain
    worker working meanwhile answers everything."""
    q = queues.new()
    worker = queues.spawn(q, PLAIN_QUEUE_WORKER, 'dispatch')
    pid = pid_of(worker)
    values = list(range(20))
    for v in values[:10]:
        q.send_json(Mpq.REQ_DO, 0, pid, json.dumps({'value': v}))
    bad = queues.spawn(q, PLAIN_QUEUE_WORKER, 'bad', 'cut', stdout=True)
    report = queues.json_line(bad)
    bad_pid = same_pid(bad, report['pid'])   # it may be gone before spawn returns
    assert report['eof'] is False
    wait_exit(bad)
    for v in values[10:]:
        q.send_json(Mpq.REQ_DO, 0, pid, json.dumps({'value': v}))
    got = take_routed(q, len(values) + 1)
    assert [data_of(m) for m in got if m.get_sender_pid() == bad_pid] == [{'i': 0}]
    assert sorted(answers_of([m for m in got if m.get_sender_pid() == pid], pid)) == \
        [v * v for v in values]
    assert q.receive(0) is None
    q.send(Mpq.REQ_DIE, 0, pid, None)
    wait_exit(worker)
    assert worker.get_successful()
    assert_drained(q)


def test_plain_worker_wait_for_join(queues):
    """join in the parent (the main thread blocked) returns only after the
    plain worker has answered and acknowledged every task and the parent
    has taken every answer."""
    q = queues.new()
    proc = queues.spawn(q, PLAIN_QUEUE_WORKER, 'want')
    pid = pid_of(proc)
    for v in range(10):
        q.send_json(Mpq.REQ_DO, 0, pid, json.dumps({'value': v}))
    answers = take_routed(q, 10)
    assert q.join(PROMPT_MS)
    assert sorted(answers_of(answers, pid)) == [v * v for v in range(10)]
    q.send(Mpq.REQ_DIE, 0, pid, None)
    wait_exit(proc)
    assert_drained(q)
