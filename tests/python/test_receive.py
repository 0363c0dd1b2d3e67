# SPDX-License-Identifier: LGPL-2.1-or-later
"""receive(): polling, bounded waits, and filters."""

import json
import os
import time

from gi.repository import Mpq

from mpq_helpers import MPQ_CHILD, PROMPT_S, data_of, raises_mpq, same_pid, wait_exit


def test_poll_returns_none_when_nothing_there(spawn):
    """receive(0) on a live but silent child returns None at once."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', 0)
    start = time.monotonic()
    for _ in range(100):
        assert pipe.receive(0) is None
    assert time.monotonic() - start < PROMPT_S    # only turns a hang into a failure
    pipe.send('EXIT', 0, 0, None)
    wait_exit(proc)
    assert proc.get_successful()


def test_poll_takes_what_is_there(spawn):
    """receive(0) takes a message already sent (the child has exited), and
    then reports the hang-up without waiting."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', 2)
    wait_exit(proc)
    assert data_of(pipe.receive(0)) == {'i': 0}
    assert data_of(pipe.receive(0)) == {'i': 1}
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)


def test_bounded_timeout_returns_none(spawn):
    """receive(300) on a silent child waits about 300 ms, then returns None
    without an error; the pipe is still usable afterwards."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    start = time.monotonic()
    assert pipe.receive(300) is None
    elapsed = time.monotonic() - start
    assert 0.29 <= elapsed < PROMPT_S

    pipe.send_json(Mpq.REQ_DO, 0, 0, '"late"')
    assert data_of(pipe.receive(PROMPT_S * 1000)) == 'late'
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_filter_rejecting_keeps_message_first(spawn):
    """A filter that rejects the front message makes receive return None at
    once, even with -1, and the message stays first in line; the filter
    sees that same message each time, and can take user data."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', 3)
    seen = []

    def reject(msg, *user_data):
        seen.append((data_of(msg)['i'], user_data))
        return False

    assert pipe.receive(-1, reject) is None
    assert pipe.receive(0, reject, 'ud') is None
    assert pipe.receive(500, reject) is None
    assert seen == [(0, ()), (0, ('ud',)), (0, ())]

    def only(i):
        return lambda msg: data_of(msg)['i'] == i

    assert pipe.receive(-1, only(1)) is None     # 0 is in front: not taken
    assert data_of(pipe.receive(-1, only(0))) == {'i': 0}
    assert data_of(pipe.receive(-1)) == {'i': 1}
    assert data_of(pipe.receive(-1, lambda msg: True)) == {'i': 2}
    pipe.send('EXIT', 0, 0, None)
    wait_exit(proc)


def test_filter_waits_for_a_message(spawn):
    """With nothing there, receive(-1, filter) waits for the next message
    and only then asks the filter."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    seen = []
    pipe.send_json(Mpq.REQ_DO, 0, 0, '"first"')
    assert pipe.receive(-1, lambda m: seen.append(data_of(m)) or False) is None
    assert seen == ['first']
    assert data_of(pipe.receive(0)) == 'first'
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_filter_by_recipient(spawn):
    """is_for() in a filter: the child answers to our pid, so the message is
    for us and not for another pid."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    pid = pipe.props.pid
    pipe.send_json(Mpq.REQ_DO, 0, 0, '1')
    assert pipe.receive(-1, lambda m: m.is_for(pid + 1)) is None
    msg = pipe.receive(-1, lambda m: m.is_for(pid))
    assert msg.get_recipient_pid() == pid
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_receive_json_gives_pymulproc_lists(spawn):
    """receive_json() returns each message as its JSON line: json.loads()
    gives pymulproc's [request, sender_pid, recipient_pid, data]; then
    None when nothing is there, and CLOSED after the hang-up."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', 2)
    wait_exit(proc)
    first = json.loads(pipe.receive_json(-1))
    second = json.loads(pipe.receive_json(0))
    pid = same_pid(proc, first[1])
    assert first[1:] == [pid, None, {'i': 0}]
    assert second[1:] == [pid, None, {'i': 1}]
    assert isinstance(first[0], str) and first[0] == second[0]
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive_json(0)


def test_receive_json_from_a_queue():
    """A queue's receive_json() takes the front message, as receive()."""
    queue = Mpq.Queue.new(0)
    queue.send_json(Mpq.REQ_DO, 0, 0, '{"task": [1, 2]}')
    assert queue.receive_json(0) == f'["DO",{os.getpid()},null,{{"task":[1,2]}}]'
    assert queue.receive_json(0) is None
    queue.close()
