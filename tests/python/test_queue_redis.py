# SPDX-License-Identifier: LGPL-2.1-or-later
"""A queue kept in Redis (Mpq.Queue.new_for_uri) from Python, through the
override's pymulproc calls, against a redis-server of this module's own on a
unix socket in a temporary directory (conftest.py's redis_uri), stopped by
pid. Skipped without Redis support in the library or without
redis-server."""

import asyncio
import itertools
import json
import os

import pytest
from gi.repository import GLib, Mpq

from mpq_helpers import PROMPT_S, data_of, run_loop

_names = itertools.count()


def new_queue(uri, name=None, max_size=0):
    return Mpq.Queue.new_for_uri(uri, name or 'py-%d' % next(_names), max_size)


def test_send_receive_in_order(redis_uri):
    """pymulproc's calls on a remote queue: FIFO per producer, the sender
    is the participant's queue-wide id, False when nothing is there."""
    name = 'py-fifo'
    producer = new_queue(redis_uri, name)
    consumer = new_queue(redis_uri, name)
    for i in range(20):
        producer.send(Mpq.REQ_DO, data={'value': i})
    got = [consumer.receive() for _ in range(20)]
    assert [m[3]['value'] for m in got] == list(range(20))
    assert {m[Mpq.S_PID_OFFSET] for m in got} == {producer.props.pid}
    assert consumer.receive() is False
    assert consumer.is_empty()
    consumer.join(0)


def test_routing_and_filter(redis_uri):
    name = 'py-route'
    a = new_queue(redis_uri, name)
    b = new_queue(redis_uri, name)
    a.send(Mpq.REQ_DO, recipient_pid=b.props.pid, data=1)
    a.send(Mpq.REQ_DO, data=2)
    assert a.receive_for_me(0) is None
    assert b.receive(func=lambda msg: msg[3] == 2) is False   # 1 to the back
    assert b.receive()[3] == 2
    assert b.receive_for_me(0).dup_data_json() == '1'


def test_bounded_send_full(redis_uri):
    q = new_queue(redis_uri, max_size=1)
    q.props.put_timeout = 0
    q.send(Mpq.REQ_DO, data=1)
    with pytest.raises(GLib.Error) as info:
        q.send(Mpq.REQ_DO, data=2)
    assert info.value.matches(Mpq.error_quark(), Mpq.Error.FULL)


def test_spawned_child_answers(redis_uri):
    """A child spawned through the library joins with new_for_child and
    answers each task; the parent collects with receive_for_me."""
    q = new_queue(redis_uri)
    child = os.path.join(os.environ['G_TEST_BUILDDIR'], 'mpq-queue-test-child')
    proc = q.spawn([child, 'for-me-worker'])
    for i in range(10):
        q.send(Mpq.REQ_DO, data={'value': i})
    answers = [q.receive_for_me(-1) for _ in range(10)]
    assert [json_value(m) for m in answers] == list(range(10))
    worker = answers[0].get_sender_pid()
    assert worker != q.props.pid
    q.send(Mpq.REQ_DIE, recipient_pid=worker)
    proc.wait_check()
    q.join(-1)


def json_value(message):
    return json.loads(message.dup_data_json())['value']


def test_receive_async_and_join_async(redis_uri):
    """receive_async and join_async on a remote queue, awaited from asyncio:
    the library's thread takes the message, the result comes back in the
    awaiting thread; join_async ends once it was taken for good."""
    name = 'py-async-%d' % next(_names)
    a = new_queue(redis_uri, name)
    b = new_queue(redis_uri, name)

    async def main():
        pending = asyncio.ensure_future(a.receive_async())
        b.send(Mpq.REQ_DO, data={'value': 7})
        got = await asyncio.wait_for(pending, PROMPT_S)
        joined = await asyncio.wait_for(b.join_async(), PROMPT_S)
        return got, joined

    got, joined = asyncio.run(main())
    assert got.request == Mpq.REQ_DO
    assert got.data == {'value': 7}
    assert got.sender_pid == b.props.pid
    assert joined is True
    a.close()
    b.close()


def test_dispatch_in_order(redis_uri):
    """Dispatch on a remote queue: message-received::DO in this thread's
    main loop, every task once and in order, then the other participant's
    join_async ends."""
    name = 'py-dispatch-%d' % next(_names)
    a = new_queue(redis_uri, name)
    b = new_queue(redis_uri, name)
    loop = GLib.MainLoop()
    seen, joined = [], []
    n = 50

    def on_do(channel, message):
        seen.append(data_of(message))
        if len(seen) == n:
            b.join_async(None, on_joined)

    def on_joined(source, result):
        joined.append(source.join_finish(result))
        loop.quit()

    a.connect('message-received::' + Mpq.REQ_DO, on_do)
    a.start()
    for i in range(n):
        b.send(Mpq.REQ_DO, data=i)
    run_loop(loop)
    a.stop()
    assert seen == list(range(n))
    assert joined == [True]
    a.close()
    b.close()
