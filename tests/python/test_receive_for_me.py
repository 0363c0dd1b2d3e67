# SPDX-License-Identifier: LGPL-2.1-or-later
"""receive_for_me(): the routed receive without a main loop, on queues and
pipes, with real children."""

import json
import re

import pytest
from gi.repository import Gio, Mpq

from mpq_helpers import (MPQ_CHILD, PROMPT_MS, PROMPT_S, QUEUE_CHILD, child_argv, data_of, pid_of,
                         queues, raises_mpq, take, wait_exit)

assert queues   # a fixture, used by name


def test_parent_collects_without_putting_back(queues):
    """W4 without a main loop: the parent puts N tasks for anyone, two
    children take them with receive_for_me and answer the parent, which
    collects the N answers with receive_for_me. Its own tasks are never
    handed back to it, and nothing goes to the back of the queue: each
    child sees its tasks in the order they were put (or fails)."""
    n = 300
    queue = queues.new()
    for i in range(n):
        queue.send_json(Mpq.REQ_DO, 0, 0, str(i))
    workers = [queues.spawn(queue, QUEUE_CHILD, 'for-me-worker') for _ in range(2)]
    pids = {pid_of(proc) for proc in workers}

    got = []
    for _ in range(n):
        msg = queue.receive_for_me(-1)
        assert msg.get_request() == Mpq.REQ_FINISHED
        assert msg.get_sender_pid() in pids
        got.append(data_of(msg))
    assert sorted(got) == list(range(n))

    for _ in workers:
        queue.send(Mpq.REQ_DIE, 0, 0, None)
    for proc in workers:
        wait_exit(proc)
        assert proc.get_exit_status() == 0
    assert queue.is_empty()
    queue.join(0)


def test_parent_poll_leaves_others_in_place(queues):
    """receive_for_me(0) gives None, without an error, when the queue holds
    only the parent's own tasks for anyone and a message for another pid;
    what the parent addresses to itself it gets at once. The others stay
    in the queue, in order, for a plain receive."""
    queue = queues.new()
    me = queue.props.pid
    queue.send_json(Mpq.REQ_DO, 0, 0, '1')
    queue.send_json(Mpq.REQ_DO, 0, 1, '2')     # pid 1: no child of ours
    assert queue.receive_for_me(0) is None
    queue.send_json('SELF', 0, me, '3')
    assert data_of(queue.receive_for_me(0)) == 3
    assert [data_of(msg) for msg in take(queue, 2, PROMPT_MS)] == [1, 2]
    assert queue.is_empty()


def test_batches_collect_without_putting_back(queues):
    """The same through receive_batch_json () (raw: one JSON array) and
    receive_many () (the override's lists): every answer once, the
    parent's own tasks never among them, at most max_messages a call."""
    n = 300
    queue = queues.new()
    for i in range(n):
        queue.send_json(Mpq.REQ_DO, 0, 0, str(i))
    workers = [queues.spawn(queue, QUEUE_CHILD, 'for-me-worker') for _ in range(2)]
    pids = {pid_of(proc) for proc in workers}

    got = []
    first = json.loads(queue.receive_batch_json(7, -1))
    assert 1 <= len(first) <= 7
    got += [message[3] for message in first]
    while len(got) < n:
        batch = queue.receive_many(50, block=True, timeout=PROMPT_S)
        assert 1 <= len(batch) <= 50
        for message in batch:
            assert message.request == Mpq.REQ_FINISHED and message.sender_pid in pids
            assert message.recipient_pid == queue.props.pid
            got.append(message.data)
    assert sorted(got) == list(range(n))
    assert queue.receive_many() == []
    assert queue.receive_batch_json(0, 0) == '[]'

    for _ in workers:
        queue.send(Mpq.REQ_DIE, 0, 0, None)
    for proc in workers:
        wait_exit(proc)
    assert queue.is_empty()


def test_batch_leaves_others_in_place(queues):
    """A poll gives [] when the queue holds only the parent's own tasks for
    anyone and a message for another pid; they stay, in order."""
    queue = queues.new()
    me = queue.props.pid
    queue.send_json(Mpq.REQ_DO, 0, 0, '1')
    queue.send_json(Mpq.REQ_DO, 0, 1, '2')     # pid 1: no child of ours
    assert queue.receive_batch_json(10, 0) == '[]'
    queue.send_json('SELF', 0, me, '3')
    queue.send_json('SELF', 0, me, '4')
    assert json.loads(queue.receive_batch_json(10, 0)) == [['SELF', me, me, 3], ['SELF', me, me, 4]]
    assert [data_of(msg) for msg in take(queue, 2, PROMPT_MS)] == [1, 2]
    with pytest.raises(ValueError):
        queue.receive_many(0)


def test_pipe_batch_then_hang_up(spawn):
    """On a pipe a batch takes what came, in order, up to its bound; the
    hang-up comes with the next call."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', 5)
    wait_exit(proc)
    assert [m.data for m in pipe.receive_many(2, block=True)] == [{'i': 0}, {'i': 1}]
    assert [m.data for m in pipe.receive_many(block=True)] == [{'i': 2}, {'i': 3}, {'i': 4}]
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive_batch_json(10, 0)


def test_closed_queue_fails(queues):
    queue = queues.new()
    queue.close()
    with raises_mpq(Mpq.Error.CLOSED):
        queue.receive_for_me(-1)


def test_pipe_is_receive_without_filter(spawn):
    """On a pipe receive_for_me takes what comes, in order, then reports
    the hang-up."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', 2)
    wait_exit(proc)
    assert data_of(pipe.receive_for_me(-1)) == {'i': 0}
    assert data_of(pipe.receive_for_me(0)) == {'i': 1}
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive_for_me(0)


def test_debug_shows_a_childs_control_frames(queues):
    """MPQ_DEBUG=1 in a queue child: the control frames it sends (hello,
    want, ack) and receives (msg), and its message, each line with the
    time, the process's name and its pid."""
    queue = queues.new()
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDERR_PIPE)
    launcher.setenv('MPQ_DEBUG', '1', True)
    proc = queue.spawn_with_launcher(launcher, child_argv(QUEUE_CHILD, 'for-me-worker'))
    queue.send_json(Mpq.REQ_DO, 0, 0, '7')
    answer = queue.receive_for_me(PROMPT_MS)
    queue.send(Mpq.REQ_DIE, 0, 0, None)
    _ok, _out, err = proc.communicate_utf8(None, None)
    pid = answer.get_sender_pid()
    prefix = rf'^mpq \d\d:\d\d:\d\d\.\d{{6}} \S+\[{pid}\] '
    for line in [r'> \{"op":"hello"', r'> \{"op":"want"', r'< \{"op":"msg"',
                 r'> \{"op":"ack"', rf'> \["FINISHED",{pid},']:
        assert re.search(prefix + line, err, re.MULTILINE), f'no {line!r} in:\n{err}'
