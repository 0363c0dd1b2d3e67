# SPDX-License-Identifier: LGPL-2.1-or-later
"""asyncio with Mpq on PyGObject 3.42 (the override's _mpq_asyncio.py):
asyncio.run, a pool of Python workers (children/pool_worker.py) and a
queue child (children/queue_child.py).

No sleeps: each await is for the event expected, bounded by
asyncio.wait_for only to turn a hang into a failure."""

import asyncio
import os
import threading

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (CHILDREN, PROMPT_S, PYTHON, QUEUE_CHILD, child_argv, pid_of, raises_mpq,
                         remember_pid, same_pid, wait_exit)

WORKER = [PYTHON, os.path.join(CHILDREN, 'pool_worker.py')]


def bounded(awaitable):
    return asyncio.wait_for(awaitable, PROMPT_S)


@pytest.fixture
def pool():
    made = Mpq.Pool(WORKER, 2)
    yield made
    try:
        made.shutdown(0)
    except GLib.Error:
        pass
    made.run_dispose()


def test_await_tasks_and_map(pool):
    async def main():
        one = await bounded(pool.submit('square', 9))
        many = await bounded(asyncio.gather(*(pool.submit('square', i) for i in range(50))))
        mapped = await bounded(pool.map_async('echo', ['a', None, {'b': 1}, 2]))
        return one, many, mapped

    one, many, mapped = asyncio.run(main())
    assert one == 81
    assert many == [i * i for i in range(50)]
    assert mapped == ['a', None, {'b': 1}, 2]
    # Again, in a new loop: the driver left with the first.
    async def again():
        return await bounded(pool.map_async('square', range(5)))

    assert asyncio.run(again()) == [0, 1, 4, 9, 16]


def test_await_raises_the_tasks_error(pool):
    async def main():
        with raises_mpq(Mpq.Error.TASK_FAILED) as info:
            await bounded(pool.submit('fail', 3))
        assert 'ValueError: failing on purpose: 3' in info.value.message
        assert 'Traceback' in info.value.message
        with raises_mpq(Mpq.Error.TASK_FAILED) as info:
            await bounded(pool.map_async('fail', range(20)))
        assert 'Traceback' in info.value.message
        with raises_mpq(Mpq.Error.PROTOCOL):
            await pool.map_async('echo', [float('nan')])
        return await bounded(pool.submit('square', 4))

    assert asyncio.run(main()) == 16


def test_cancelling_the_awaiter_cancels_the_task(pool):
    async def main():
        started = asyncio.Event()
        task = pool.submit('until-cancel')
        task.connect('progress', lambda _task, _message: started.set())
        awaiter = asyncio.ensure_future(_await(task))
        await bounded(started.wait())
        awaiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await awaiter
        assert task.cancelled()
        return await bounded(pool.submit('square', 3))

    async def _await(task):
        return await task

    assert asyncio.run(main()) == 9


def test_async_with_shuts_down():
    async def main():
        async with Mpq.Pool(WORKER, 1) as made:
            pending = [made.submit('square', i) for i in range(10)]
        return made, pending

    made, pending = asyncio.run(main())
    try:
        assert [task.result(0) for task in pending] == [i * i for i in range(10)]
        with raises_mpq(Mpq.Error.CLOSED):
            made.submit('square', 1)
    finally:
        made.run_dispose()


def test_queue_receive_and_join():
    queue = Mpq.Queue()
    proc = remember_pid(queue.spawn(child_argv(QUEUE_CHILD, 'for-me-worker')))
    try:
        async def main():
            for i in range(1, 4):
                queue.send(Mpq.REQ_DO, data=i)
            got = [await bounded(queue.receive_async()) for _ in range(3)]
            queue.send(Mpq.REQ_DIE)
            joined = await bounded(queue.join_async())
            return got, joined

        got, joined = asyncio.run(main())
        assert [msg.data for msg in got] == [1, 2, 3]
        assert all(msg.request == Mpq.REQ_FINISHED for msg in got)
        assert all(msg.sender_pid == pid_of(proc) for msg in got)
        assert joined is True
        wait_exit(proc)
        assert proc.get_exit_status() == 0
    finally:
        queue.close()
        proc.force_exit()


def test_cancelled_receive_takes_nothing():
    queue = Mpq.Queue()
    procs = []
    try:
        async def main():
            pending = asyncio.ensure_future(queue.receive_async())
            await asyncio.sleep(0)          # it started; nobody can send yet
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            # It sends and exits: its pid may be gone before spawn returns.
            procs.append(remember_pid(queue.spawn(child_argv(QUEUE_CHILD, 'send-value', '42'))))
            return await bounded(queue.receive_async())

        msg = asyncio.run(main())
        proc = procs[0]
        assert msg == [Mpq.REQ_DO, same_pid(proc, msg[1]), queue.get_pid(), 42]
    finally:
        queue.close()
        for proc in procs:
            proc.force_exit()


def test_closed_channel_raises():
    parent, child = Mpq.Pipe.new_pair()

    async def main():
        pending = asyncio.ensure_future(parent.receive_async())
        child.send('DO', data={'x': 1})
        first = await bounded(pending)
        child.close()
        with raises_mpq(Mpq.Error.CLOSED):
            await bounded(parent.receive_async())
        return first

    assert asyncio.run(main()) == ['DO', parent.get_pid(), None, {'x': 1}]
    parent.close()


def test_glib_sources_run_in_the_loop():
    """A source attached from the loop's thread outside GLib's dispatch
    (an idle, a timeout), and one from another thread, wake the loop."""
    async def main():
        Mpq.asyncio_install()
        seen = []
        event = asyncio.Event()

        def note(what):
            seen.append(what)
            if len(seen) == 3:
                event.set()
            return GLib.SOURCE_REMOVE

        GLib.idle_add(note, 'idle')
        GLib.timeout_add(1, note, 'timeout')
        thread = threading.Thread(target=lambda: GLib.idle_add(note, 'thread'))
        thread.start()
        thread.join()
        await bounded(event.wait())
        return sorted(seen)

    assert asyncio.run(main()) == ['idle', 'thread', 'timeout']
    # The loop is gone: another thread may own the context again.
    owned = []

    def other():
        context = GLib.MainContext.default()
        owned.append(context.acquire())
        if owned[0]:
            context.release()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert owned == [True]


def test_typelib_async_calls_stay(pool):
    """With a callback, receive_async, map_async and shutdown_async are
    the typelib's."""
    replies = []
    pool.map_async('square', ['2', '3'], None,
                   lambda source, result: replies.append(source.map_finish(result)))
    context = GLib.MainContext.default()
    while not replies:
        context.iteration(True)
    assert [reply.dup_data_json() for reply in replies[0]] == ['4', '9']
    cancellable = Gio.Cancellable()
    assert pool.shutdown_async(-1, cancellable, lambda *args: replies.append(args)) is None
