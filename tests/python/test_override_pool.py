# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Pool as concurrent.futures has it (the override's _mpq_pool.py),
with real Python workers (children/pool_worker.py, Mpq.serve_worker).

No sleeps: each wait is for the event expected, with a bound that only
turns a hang into a failure."""

import concurrent.futures
import json
import os

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import CHILDREN, PROMPT_S, PYTHON, dispose_pools, raises_mpq

WORKER = [PYTHON, os.path.join(CHILDREN, 'pool_worker.py')]


@pytest.fixture
def pools():
    """new(n_workers=2, **kwargs) -> Mpq.Pool (the Python constructor); at
    teardown each pool is shut down at once and disposed of."""
    made = []

    def new(n_workers=2, **kwargs):
        pool = Mpq.Pool(WORKER, n_workers, **kwargs)
        made.append(pool)
        return pool

    yield new
    dispose_pools(made)


def until_started(pool, task):
    """An until-cancel @task once its worker said it works on it."""
    started = []
    task.connect('progress', lambda _task, message: started.append(message))
    context = GLib.MainContext.default()
    expired = []
    source = GLib.timeout_add_seconds(PROMPT_S, lambda: expired.append(True))
    while not started:
        assert not expired, 'the task did not start'
        context.iteration(True)
    if not expired:
        GLib.source_remove(source)
    return task


def test_plain_values_round_trip(pools):
    pool = pools()
    assert isinstance(pool, Mpq.Pool)
    for value in [0, -1.5, 'text', '5', '', None, True, [1, [2, None]], {'a': {'b': 'c'}}]:
        task = pool.submit('echo', value)
        assert isinstance(task, Mpq.Task)
        assert task.result(PROMPT_S) == value
        assert task.done() and not task.running() and not task.cancelled()
        assert task.exception() is None
    assert pool.submit('square', 12).result() == 144
    assert pool.submit('echo').result() is None


def test_with_shuts_down():
    with Mpq.Pool(WORKER, 1) as pool:
        assert pool.submit('square', 3).result(PROMPT_S) == 9
        pending = [pool.submit('square', i) for i in range(20)]
    # shutdown waited for what was pending.
    assert [task.result(0) for task in pending] == [i * i for i in range(20)]
    with raises_mpq(Mpq.Error.CLOSED):
        pool.submit('square', 1)
    pool.run_dispose()


def test_map_in_order(pools):
    pool = pools(3)
    items = list(range(500)) + ['x', None, {'k': [1]}]
    assert pool.map('echo', items) == items
    assert pool.map('square', (i for i in range(10))) == [i * i for i in range(10)]
    assert pool.map('square', []) == []


def test_int_lists_as_the_encoder_writes_them(pools):
    """A list of plain ints (written by repr () in the override, not by
    the json encoder) goes and comes back as any other list; bools and
    int subclasses among them keep their JSON form."""
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    pool = pools()
    ints = list(range(-300, 300)) + [2**62, -2**62]
    assert pool.map('echo', ints) == ints
    assert pool.map('square', ints[:-2]) == [i * i for i in ints[:-2]]
    assert pool.submit('echo', ints).result(PROMPT_S) == ints
    assert pool.map('echo', [True, 1, False, 0]) == [True, 1, False, 0]
    assert pool.map('echo', [Level.HIGH, 2]) == [3, 2]
    assert pool.submit('echo', [1, 2.0, 3]).result(PROMPT_S) == [1, 2.0, 3]
    # An int too long to write fails as the encoder fails, before sending.
    huge = [1, 10 ** 5000]
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.map('echo', huge)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.submit('echo', huge)
    assert pool.submit('echo', [[5, -6]]).result(PROMPT_S) == [[5, -6]]


def test_result_the_library_refuses_fails_the_task(pools):
    """A result beyond what the library takes (here 2**124, out of 64-bit
    range) fails its task or its map with why, and the worker goes on;
    it used to leave the task unanswered for ever."""
    pool = pools(1)
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.submit('square', 2**62).result(PROMPT_S)
    assert info.value.message.startswith('The result was refused: ')
    assert '64-bit' in info.value.message
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map('square', [1, 2**62, 3])
    assert info.value.message.startswith('The result was refused: ')
    assert pool.map('square', [4, 5]) == [16, 25]


def test_map_fails_with_the_handlers_error(pools):
    pool = pools()
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map('fail', range(50))
    assert 'ValueError: failing on purpose' in info.value.message
    assert 'Traceback' in info.value.message
    assert pool.map('square', [4]) == [16]        # the pool goes on


def test_raising_handler_is_the_tasks_error(pools):
    pool = pools()
    task = pool.submit('fail', 7)
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        task.result(PROMPT_S)
    message = info.value.message
    assert message.startswith('ValueError: failing on purpose: 7\n\nTraceback')
    assert 'in handler' in message
    assert task.done() and task.get_state() == Mpq.TaskState.FAILED
    error = task.exception()
    assert isinstance(error, GLib.Error) and error.message == message
    # A result with no JSON form fails the same way.
    with raises_mpq(Mpq.Error.TASK_FAILED):
        pool.submit('nan', 0).result(PROMPT_S)


@pytest.mark.parametrize('data', [float('nan'), float('inf'), {1, 2}, b'bytes', object()],
                         ids=['nan', 'inf', 'set', 'bytes', 'object'])
def test_data_with_no_json_form(pools, data):
    pool = pools(1)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.submit('echo', data)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.map('echo', [1, data])
    cycle = []
    cycle.append(cycle)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.submit('echo', cycle)
    # Nothing was queued: the first task the pool numbers is this one.
    first = pool.submit('echo', 2)
    assert first.get_id() == 1
    assert first.result(PROMPT_S) == 2


def test_bad_requests(pools):
    pool = pools(1)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.submit('', 1)
    with pytest.raises(TypeError):
        pool.submit(None, 1)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.map('', [1])
    with pytest.raises(TypeError):
        Mpq.Pool()
    with pytest.raises(TypeError):
        Mpq.Pool('python3')


def test_result_timeout_then_cancel(pools):
    pool = pools(1)
    task = until_started(pool, pool.submit('until-cancel'))
    assert task.running() and not task.done()
    with pytest.raises(concurrent.futures.TimeoutError):
        task.result(0)                  # polls: the task goes on
    with pytest.raises(concurrent.futures.TimeoutError):
        task.exception(0)
    assert task.cancel() is True
    assert task.cancelled() and task.done()
    with pytest.raises(GLib.Error) as info:
        task.result()
    assert info.value.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    assert task.exception().matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    # A task that ended is not cancelled any more.
    done = pool.submit('square', 5)
    assert done.result(PROMPT_S) == 25
    assert done.cancel() is False and not done.cancelled()


def test_cancel_a_queued_task(pools):
    pool = pools(1)
    running = until_started(pool, pool.submit('until-cancel'))
    queued = [pool.submit('square', i) for i in range(3)]
    assert queued[1].cancel() is True
    running.cancel()
    assert queued[0].result(PROMPT_S) == 0 and queued[2].result(PROMPT_S) == 4
    assert queued[1].cancelled()


def test_add_done_callback(pools):
    pool = pools()
    seen = []
    task = pool.submit('square', 6)
    task.add_done_callback(seen.append)
    failing = pool.submit('fail', 1)
    failing.add_done_callback(seen.append)
    assert task.result(PROMPT_S) == 36
    with raises_mpq(Mpq.Error.TASK_FAILED):
        failing.result(PROMPT_S)
    context = GLib.MainContext.default()
    while len(seen) < 2:                # the callbacks come from idles
        context.iteration(True)
    assert seen == [task, failing] or seen == [failing, task]
    task.add_done_callback(seen.append)     # ended: called at once
    assert seen[-1] is task


def test_typelib_calls_stay(pools):
    """submit_json, map with its cancellable, Mpq.Pool.new."""
    pool = Mpq.Pool.new(WORKER, 1)
    try:
        assert isinstance(pool, Mpq.Pool)
        task = pool.submit_json('square', json.dumps(9))
        reply = task.wait(PROMPT_S * 1000)
        assert json.loads(reply.dup_data_json()) == 81
        assert task.result() == 81
        replies = pool.map('square', ['1', '2'], None)
        assert [json.loads(r.dup_data_json()) for r in replies] == [1, 4]
        assert json.loads(pool.map_json('square', '[3]', None)) == [9]
        assert Mpq.Pool.map.get_caller_owns() is not None
        assert pool.shutdown(-1)
    finally:
        pool.run_dispose()


def test_properties_and_launcher(pools):
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.NONE)
    pool = pools(1, launcher=launcher, max_attempts=1, task_timeout=60_000)
    assert pool.props.max_attempts == 1
    assert pool.props.task_timeout == 60_000
    assert pool.props.n_workers == 1
    assert pool.submit('square', 2).result(PROMPT_S) == 4
