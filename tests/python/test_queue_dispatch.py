# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Queue dispatch (start() + message-received), routing, fairness,
workers that die with work in hand, and the parent's async calls."""

import json
import os
import signal

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (PROMPT_MS, QUEUE_CHILD, assert_drained, pid_of, data_of,
                         queues, raises_mpq, run_loop, scaled, stop_workers, take,
                         take_ready, wait_exit)

assert queues   # a fixture, used by name


def is_cancelled(error):
    return isinstance(error, GLib.Error) and error.matches(Gio.io_error_quark(),
                                                           Gio.IOErrorEnum.CANCELLED)


def idle_once(func):
    def callback():
        func()
        return GLib.SOURCE_REMOVE
    GLib.idle_add(callback)


def assert_exactly_once(handled, sent):
    """Every task in @sent was handled once: no loss, no duplicate."""
    assert len(handled) == len(sent), f'{len(handled)} handled for {len(sent)} sent'
    assert sorted(handled) == sorted(sent)


def test_dispatch_routing(queues):
    """Two dispatch workers A and B. Messages addressed to A reach only A,
    those addressed to B only B, all of them; each message addressed to
    nobody reaches exactly one of the two. Each worker gets its messages
    oldest first."""
    q = queues.new()
    a = queues.spawn(q, QUEUE_CHILD, 'worker')
    b = queues.spawn(q, QUEUE_CHILD, 'worker')
    pid_a, pid_b = pid_of(a), pid_of(b)
    ready = take_ready(q, [a, b])
    assert ready[pid_a]['kind'] == 'queue' and ready[pid_a]['parent_pid'] == os.getpid()

    targets = [pid_a, pid_b, 0]
    sent = []
    for k in range(90):
        to = targets[k % 3]
        q.send_json(Mpq.REQ_DO, 0, to, json.dumps({'k': k}))
        sent.append((k, to))
    assert q.join(PROMPT_MS)
    reports = stop_workers(q, [a, b])

    handled = {}
    for pid, report in reports.items():
        assert report['others'] == []
        ks = [data['k'] for data, recipient in report['tasks']]
        assert ks == sorted(ks), f'worker {pid} got its messages out of order'
        for data, recipient in report['tasks']:
            assert recipient in (pid, 0), f'{pid} got a message for {recipient}'
            assert data['k'] not in handled, f'task {data["k"]} handled twice'
            handled[data['k']] = pid
    assert sorted(handled) == [k for k, _ in sent]
    for k, to in sent:
        if to:
            assert handled[k] == to
    assert_drained(q)


def test_dispatch_fairness(queues):
    """With the default prefetch, four dispatch workers that each do
    some real work per task all get a share of many tasks addressed to
    nobody; the total is exact, with no task handled twice."""
    workers, per_worker = 4, scaled(400, 100)
    q = queues.new()
    procs = [queues.spawn(q, QUEUE_CHILD, 'worker', 'work=10000') for _ in range(workers)]
    take_ready(q, procs)

    tasks = list(range(workers * per_worker))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    assert q.join(PROMPT_MS * 2)
    reports = stop_workers(q, procs)

    shares = {pid: len(r['tasks']) for pid, r in reports.items()}
    assert all(n > 0 for n in shares.values()), f'a worker got nothing: {shares}'
    handled = [data for r in reports.values() for data, _ in r['tasks']]
    assert_exactly_once(handled, tasks)
    assert_drained(q)


def test_dispatch_prefetch_one(queues):
    """prefetch=1 set in the child before start(): the work still spreads
    and every task is handled exactly once."""
    q = queues.new()
    procs = [queues.spawn(q, QUEUE_CHILD, 'worker', 'prefetch=1', 'work=2000')
             for _ in range(3)]
    take_ready(q, procs)
    tasks = list(range(scaled(150, 45)))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    assert q.join(PROMPT_MS)
    reports = stop_workers(q, procs)
    shares = {pid: len(r['tasks']) for pid, r in reports.items()}
    assert all(n > 0 for n in shares.values()), shares
    assert_exactly_once([d for r in reports.values() for d, _ in r['tasks']], tasks)
    assert_drained(q)


def test_parent_dispatch_shares_work(queues):
    """The parent dispatches too (start(), message-received::DO in its main
    loop) beside two workers, on tasks for anyone that a producer child put:
    each task is handled by exactly one of the three; join_async completes
    once all are handled; detailed signals only see their request; a
    message the parent addresses to itself is routed to it."""
    q = queues.new()
    procs = [queues.spawn(q, QUEUE_CHILD, 'worker', 'work=2000') for _ in range(2)]
    take_ready(q, procs)

    loop = GLib.MainLoop()
    mine, other_requests, joined = [], [], []
    q.connect('message-received::' + Mpq.REQ_DO, lambda ch, m: mine.append(data_of(m)))
    q.connect('message-received::NOTE', lambda ch, m: other_requests.append(m.get_request()))

    def on_joined(source, result):
        joined.append(source.join_finish(result))
        loop.quit()

    tasks = list(range(scaled(300, 60)))
    q.start()
    q.send_json('NOTE', 0, os.getpid(), '"for the parent only"')
    producer = queues.spawn(q, QUEUE_CHILD, 'send-numbered', len(tasks))
    wait_exit(producer)         # every task put before join can count them
    assert producer.get_successful()
    q.join_async(None, on_joined)
    run_loop(loop)
    q.stop()
    assert joined == [True]
    assert other_requests == ['NOTE']

    reports = stop_workers(q, procs)
    handled = mine + [d for r in reports.values() for d, _ in r['tasks']]
    assert_exactly_once(handled, tasks)
    for report in reports.values():
        assert report['others'] == []       # NOTE was for the parent
    assert_drained(q)


def test_own_messages_for_anyone_go_to_others(queues):
    """A process is never handed, by dispatch, a message for nobody that it
    put itself: the parent dispatching and putting tasks for anyone gets
    none of them; the one worker gets them all."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker')
    take_ready(q, [proc])
    seen = []
    q.connect('message-received', lambda ch, m: seen.append(m.get_request()))
    q.start()
    tasks = list(range(20))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    loop = GLib.MainLoop()
    q.join_async(None, lambda source, result: (source.join_finish(result), loop.quit()))
    run_loop(loop)
    q.stop()
    assert seen == []
    [report] = stop_workers(q, [proc]).values()
    assert [d for d, _ in report['tasks']] == tasks
    assert_drained(q)


@pytest.mark.parametrize('how', ['exit', 'kill'])
def test_dead_worker_tasks_go_to_parent(queues, how):
    """A dispatch worker exits hard (os._exit, or SIGKILL) inside its
    handler of the first task it gets, with more tasks in hand (prefetch):
    none is lost; the parent takes them all with plain receive; join
    completes."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker', f'die={how}')
    take_ready(q, [proc])
    tasks = list(range(12))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    wait_exit(proc)
    if how == 'exit':
        assert proc.get_if_exited() and proc.get_exit_status() == 7
    else:
        assert proc.get_if_signaled() and proc.get_term_sig() == signal.SIGKILL

    handled = [data_of(m) for m in take(q, len(tasks))]
    assert_exactly_once(handled, tasks)
    assert_drained(q)


@pytest.mark.parametrize('how', ['exit', 'kill'])
def test_dead_worker_tasks_go_to_other_worker(queues, how):
    """As above, then a healthy worker is spawned: it gets every task,
    those the dead worker had in hand included; join completes."""
    q = queues.new()
    dying = queues.spawn(q, QUEUE_CHILD, 'worker', f'die={how}')
    take_ready(q, [dying])
    tasks = list(range(12))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    wait_exit(dying)
    assert not dying.get_successful()

    healthy = queues.spawn(q, QUEUE_CHILD, 'worker', 'ready=0')
    assert q.join(PROMPT_MS)
    [report] = stop_workers(q, [healthy]).values()
    assert_exactly_once([d for d, _ in report['tasks']], tasks)
    assert_drained(q)


def test_dead_worker_among_healthy_ones(queues):
    """Three healthy workers and one that dies on its first task, all
    dispatching at once: every task is handled exactly once by the healthy
    workers."""
    q = queues.new()
    healthy = [queues.spawn(q, QUEUE_CHILD, 'worker', 'work=2000') for _ in range(3)]
    dying = queues.spawn(q, QUEUE_CHILD, 'worker', 'die=kill')
    take_ready(q, healthy + [dying])
    tasks = list(range(scaled(200, 60)))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    assert q.join(PROMPT_MS)
    wait_exit(dying)
    assert dying.get_if_signaled()
    reports = stop_workers(q, healthy)
    assert_exactly_once([d for r in reports.values() for d, _ in r['tasks']], tasks)
    assert_drained(q)


def test_exited_child_messages_stay(queues):
    """A child puts messages and is killed: its death is noticed at once
    (nothing waits on it, join does not wait for it) and the messages it
    put stay in the queue, in order."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'put-then-hang', 5, stdout=True)
    assert queues.line(proc) == 'sent'
    proc.force_exit()
    wait_exit(proc)
    assert [data_of(m) for m in take(q, 5)] == list(range(5))
    assert_drained(q)


def test_killed_child_in_hand_message_comes_back(queues):
    """A dispatch worker blocks inside its handler with a task in hand: the
    task is not in the queue (is_empty) but not taken (join times out).
    When the worker is killed, the task comes back at once and the parent
    takes it; then join returns."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker', 'hold=1', 'prefetch=1', stdout=True)
    take_ready(q, [proc])
    q.send_json(Mpq.REQ_DO, 0, 0, '"held"')
    assert queues.json_line(proc) == {'holding': 'held'}
    assert q.is_empty()
    with raises_mpq(Mpq.Error.TIMED_OUT):
        q.join(200)
    assert q.receive(0) is None

    proc.force_exit()
    wait_exit(proc)
    [msg] = take(q, 1)
    assert data_of(msg) == 'held'
    assert_drained(q)


def test_parent_receive_async_routing_and_cancel(queues):
    """receive_async in the parent: with only a message for another pid in
    the queue it stays pending; cancelling it completes it with CANCELLED,
    exactly once, and it took nothing. A later call gets the next message
    for the parent, skipping the other pid's, which a plain receive can
    still take."""
    q = queues.new()
    stranger = 2**31 - 3
    q.send_json(Mpq.REQ_DO, 0, stranger, '"not mine"')
    loop = GLib.MainLoop()
    results = []

    def on_done(source, result):
        try:
            results.append(source.receive_finish(result))
        except GLib.Error as error:
            results.append(error)
        loop.quit()

    cancellable = Gio.Cancellable()
    q.receive_async(cancellable, on_done)
    idle_once(cancellable.cancel)
    run_loop(loop)
    assert len(results) == 1 and is_cancelled(results[0]), results

    q.receive_async(None, on_done)
    idle_once(lambda: q.send_json(Mpq.REQ_DO, 0, os.getpid(), '"mine"'))
    run_loop(loop)
    assert len(results) == 2 and data_of(results[1]) == 'mine', results

    assert data_of(q.receive(0)) == 'not mine'
    assert_drained(q)


def test_parent_receive_async_gets_child_answer(queues):
    """receive_async in the parent with a worker answering: it gets the
    FINISHED addressed to the parent, not the DO the parent addressed to
    the worker."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker', 'answer=1')
    pid = pid_of(proc)
    take_ready(q, [proc])
    loop = GLib.MainLoop()
    results = []

    def on_done(source, result):
        results.append(source.receive_finish(result))
        loop.quit()

    q.receive_async(Gio.Cancellable(), on_done)
    q.send_json(Mpq.REQ_DO, 0, pid, '{"n":1}')
    run_loop(loop)
    [answer] = results
    assert answer.get_request() == Mpq.REQ_FINISHED
    assert answer.get_sender_pid() == pid
    assert data_of(answer) == {'task': {'n': 1}, 'worker': pid}
    stop_workers(q, [proc])
    assert_drained(q)


def test_join_async_and_cancel(queues):
    """join_async completes TRUE only once the last untaken message is
    taken; a cancelled join_async completes with CANCELLED."""
    q = queues.new()
    q.send_json(Mpq.REQ_DO, 0, 0, '"task"')
    loop = GLib.MainLoop()
    events = []

    def on_joined(source, result):
        try:
            events.append(('joined', source.join_finish(result)))
        except GLib.Error as error:
            events.append(('joined', error))
        loop.quit()

    cancellable = Gio.Cancellable()
    q.join_async(cancellable, on_joined)
    idle_once(cancellable.cancel)
    run_loop(loop)
    assert len(events) == 1 and is_cancelled(events[0][1]), events

    events.clear()
    q.join_async(None, on_joined)

    def take():
        events.append(('taking', None))
        # The join callback may run from within receive (GTask returns at
        # once in a later iteration of its context): 'taken' may come last.
        events.append(('taken', data_of(q.receive(0))))

    def put_back():
        assert q.receive(0, lambda m: False) is None   # a put-back: still untaken
        events.append(('put back', None))
        idle_once(take)

    idle_once(put_back)
    run_loop(loop)
    assert events[:2] == [('put back', None), ('taking', None)], events
    assert sorted(events[2:]) == [('joined', True), ('taken', 'task')], events
    assert_drained(q)


def test_join_async_with_worker(queues):
    """join_async in the parent's main loop completes once a dispatch worker
    has handled every task."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker', 'work=1000')
    take_ready(q, [proc])
    tasks = list(range(40))
    for t in tasks:
        q.send_json(Mpq.REQ_DO, 0, 0, str(t))
    loop = GLib.MainLoop()
    joined = []

    def on_joined(source, result):
        joined.append(source.join_finish(result))
        loop.quit()

    q.join_async(None, on_joined)
    run_loop(loop)
    assert joined == [True]
    [report] = stop_workers(q, [proc]).values()
    assert [d for d, _ in report['tasks']] == tasks
    assert_drained(q)


def test_message_for_unknown_pid_waits(queues):
    """A message addressed to a pid that is not connected is never dropped:
    is_empty is FALSE, join times out, a dispatch worker does not take it,
    plain receive can."""
    q = queues.new()
    proc = queues.spawn(q, QUEUE_CHILD, 'worker')
    take_ready(q, [proc])
    q.send_json(Mpq.REQ_DO, 0, 2**31 - 4, '"orphan"')
    q.send_json(Mpq.REQ_DO, 0, 0, '"anyone"')
    with raises_mpq(Mpq.Error.TIMED_OUT):
        q.join(300)
    assert not q.is_empty()
    assert data_of(q.receive(0)) == 'orphan'
    assert q.join(PROMPT_MS)
    [report] = stop_workers(q, [proc]).values()
    assert report['tasks'] == [['anyone', 0]]
    assert_drained(q)


def test_closing_parent_ends_dispatch_workers(queues):
    """Closing the parent's queue: dispatch workers see closed and exit
    (queue_child.py exits 5 on closed before DIE)."""
    q = queues.new()
    procs = [queues.spawn(q, QUEUE_CHILD, 'worker') for _ in range(2)]
    take_ready(q, procs)
    q.close()
    for proc in procs:
        wait_exit(proc)
        assert proc.get_if_exited() and proc.get_exit_status() == 5
    with raises_mpq(Mpq.Error.CLOSED):
        q.receive(0)
