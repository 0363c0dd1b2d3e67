# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Pool from Python, with real worker processes: Python workers made
with Mpq.serve_worker (children/pool_worker.py) and workers that do not
import gi and speak the pool's frames (children/plain_pool_worker.py).

Nothing here sleeps to let something happen: each test waits for the
event it expects (a reply, a signal, a state) with a bound that only turns
a hang into a failure. The only time-outs that decide anything are the
pool's own (task-timeout), set far above what a task that is not hung
takes."""

import json
import os
import select
import signal
import subprocess
import time

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import run_until as helpers_run_until
from mpq_helpers import (CHILDREN, PROMPT_MS, PROMPT_S, PYTHON,
                         dispose_pools, error_text, raises_mpq, read_line, run_loop, scaled)

POOL_WORKER = 'pool_worker.py'
PLAIN_POOL_WORKER = 'plain_pool_worker.py'
WORKERS = [POOL_WORKER, PLAIN_POOL_WORKER]
# Bound on one wait: under valgrind the parent (this process) is slow.
WAIT_MS = scaled(PROMPT_MS, PROMPT_MS * 10)
WAIT_S = WAIT_MS // 1000
LONG = pytest.mark.watchdog(scaled(90, 600))


def worker_argv(script, *args):
    return [PYTHON, os.path.join(CHILDREN, script), *args]


class PoolKit:
    """Makes pools with Python workers and records their signals; at
    teardown disposes of every pool (see cleanup)."""

    def __init__(self):
        self.pools = []

    def new(self, n_workers, script=POOL_WORKER, *args, env=None):
        launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.NONE)
        for key, value in (env or {}).items():
            launcher.setenv(key, value, True)
        pool = Mpq.Pool.new_with_launcher(launcher, worker_argv(script, *args), n_workers)
        pool.started = []           # pids, from worker-started
        pool.exited = []            # (pid, wait_status, expected), from worker-exited
        pool.connect('worker-started', lambda _pool, pid: pool.started.append(pid))
        pool.connect('worker-exited',
                     lambda _pool, pid, status, expected:
                     pool.exited.append((pid, status, expected)))
        self.pools.append(pool)
        return pool

    def cleanup(self):
        dispose_pools(self.pools)


@pytest.fixture
def pools():
    kit = PoolKit()
    yield kit
    kit.cleanup()


def run_until(condition, what, timeout_s=WAIT_S):
    """mpq_helpers.run_until, with this file's longer default wait."""
    helpers_run_until(condition, what, timeout_s)


def run_until_started(pool, n):
    run_until(lambda: len(pool.started) >= n, f'{n} workers started')


def submit(pool, request, value):
    return pool.submit_json(request, json.dumps(value))


def reply_of(task):
    """Waits for @task's reply (bounded); checks it and returns it."""
    reply = task.wait(WAIT_MS)
    assert reply is not None, f'task {task.get_id()} not ended after {WAIT_MS} ms'
    assert reply.get_request() == Mpq.REQ_FINISHED
    assert reply.get_sender_pid() == task.get_worker_pid()
    assert task.get_state() == Mpq.TaskState.DONE
    return reply


def result_of(task):
    return json.loads(reply_of(task).dup_data_json())


def wait_error(task, domain, code):
    """Waits for @task to fail with @domain/@code; returns the error."""
    with pytest.raises(GLib.Error) as info:
        reply = task.wait(WAIT_MS)
        assert reply is not None, f'task {task.get_id()} not ended after {WAIT_MS} ms'
    assert info.value.matches(domain, code), error_text(info.value)
    return info.value


def wait_mpq_error(task, code):
    return wait_error(task, Mpq.error_quark(), code)


def wait_cancelled(task):
    wait_error(task, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    assert task.get_state() == Mpq.TaskState.CANCELLED


def submit_until_cancel(pool):
    """An until-cancel task, once its worker said it works on it."""
    task = submit(pool, 'until-cancel', 0)
    started = []
    handler = task.connect('progress', lambda _task, msg: started.append(msg))
    run_until(lambda: started, 'until-cancel started')
    task.disconnect(handler)
    assert json.loads(started[0].dup_data_json()) == 'started'
    return task


def shutdown_ok(pool):
    assert pool.shutdown(WAIT_MS)


def exits(pool, expected):
    return [e for e in pool.exited if e[2] == expected]


def read_log(log_dir, pid, suffix=''):
    try:
        with open(os.path.join(log_dir, f'{pid}{suffix}')) as log:
            return log.read()
    except FileNotFoundError:
        return ''


# Tasks and results --------------------------------------------------------

@pytest.mark.parametrize('script', WORKERS)
def test_submit_and_wait(pools, script):
    pool = pools.new(3, script)
    tasks = [submit(pool, 'square', i) for i in range(100)]
    pids = set()
    for i, task in enumerate(tasks):
        assert result_of(task) == i * i
        assert task.get_attempts() == 1
        assert task.get_id() == i + 1
        assert task.get_request() == 'square'
        pids.add(task.get_worker_pid())
    assert 1 <= len(pids) <= 3
    assert pids <= set(pool.started)
    shutdown_ok(pool)
    assert exits(pool, False) == []


def test_plain_values_both_ways(pools):
    pool = pools.new(1)
    for value in [None, True, 0, -3, 2.5, 'text \u2713', [1, [2, {}]],
                  {'a': [None, 1.5], 'b': {'c': 'd'}}]:
        assert result_of(submit(pool, 'echo', value)) == value
    # A result that has no JSON form fails the task, and says why.
    error = wait_mpq_error(submit(pool, 'nan', 0), Mpq.Error.TASK_FAILED)
    assert 'ValueError' in error.message and 'JSON' in error.message, error.message
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_map_in_order(pools, script):
    pool = pools.new(4, script)
    replies = pool.map('square', [json.dumps(i) for i in range(300)], None)
    assert [json.loads(r.dup_data_json()) for r in replies] == [i * i for i in range(300)]
    assert {r.get_request() for r in replies} == {Mpq.REQ_FINISHED}
    shutdown_ok(pool)


def test_map_async(pools):
    pool = pools.new(2)
    loop = GLib.MainLoop()
    got = []

    def on_done(source, result):
        try:
            got.append(source.map_finish(result))
        except GLib.Error as error:
            got.append(error)
        loop.quit()

    pool.map_async('square', [json.dumps(i) for i in range(50)], None, on_done)
    run_loop(loop, WAIT_S)
    assert not isinstance(got[0], GLib.Error), error_text(got[0])
    assert [json.loads(r.dup_data_json()) for r in got[0]] == [i * i for i in range(50)]
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_map_fails_with_first_error(pools, script):
    pool = pools.new(2, script)
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map('fail', ['1', '2', '3'], None)
    assert 'failing on purpose' in info.value.message
    # Not JSON: nothing starts.
    with raises_mpq(Mpq.Error.PROTOCOL):
        pool.map('square', ['1', 'oops'], None)
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_map_json(pools, script):
    """One JSON array in, one out, in order: serve_worker takes the
    batches whole; the plain worker does not take batches, so the
    batches made before it said so go item by item."""
    pool = pools.new(3, script)
    items = list(range(1000)) + [None, 'two', {'a': [1, None]}, [], -0.5]
    results = json.loads(pool.map_json('echo', json.dumps(items), None))
    assert results == items
    assert json.loads(pool.map_json('square', '[ 2, 3 ]', None)) == [4, 9]
    assert pool.map_json('square', '[]', None) == '[]'
    # The workers' json.dumps () answers with spaces: the results come back
    # compact, and the spaces in strings stay.
    spaced = '[ 1, [ 2 , 3 ], {"a b" : " c, d\\" "}, "\\\\ " ]'
    assert pool.map_json('echo', spaced, None) == '[1,[2,3],{"a b":" c, d\\" "},"\\\\ "]'
    # Not one JSON array: nothing starts.
    for bad in ['', '{}', '[1,', '[1] [2]', 'null']:
        with raises_mpq(Mpq.Error.PROTOCOL):
            pool.map_json('square', bad, None)
    shutdown_ok(pool)


def test_map_json_handler_raises(pools):
    pool = pools.new(2)
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map_json('fail', json.dumps(list(range(100))), None)
    assert 'ValueError: failing on purpose' in info.value.message
    assert 'Traceback' in info.value.message
    # The pool goes on.
    assert result_of(submit(pool, 'square', 5)) == 25
    shutdown_ok(pool)


# Errors come home ---------------------------------------------------------

@pytest.mark.parametrize('args', [(), ('--two-args',)], ids=['progress-handler', 'two-args'])
def test_handler_raises(pools, args):
    pool = pools.new(1, POOL_WORKER, *args)
    pid = result_of(submit(pool, 'pid', None))
    failing = submit(pool, 'fail', 7)
    after = submit(pool, 'square', 5)

    error = wait_mpq_error(failing, Mpq.Error.TASK_FAILED)
    assert failing.get_state() == Mpq.TaskState.FAILED
    assert failing.get_attempts() == 1
    lines = error.message.split('\n')
    # The exception's last line first, then the traceback as Python prints it.
    assert lines[0] == 'ValueError: failing on purpose: 7', error.message
    assert 'Traceback (most recent call last):' in lines
    assert any('pool_worker.py' in line and 'in handler' in line for line in lines), error.message
    assert "raise ValueError(f'failing on purpose: {data}')" in error.message
    assert lines[-1] == 'ValueError: failing on purpose: 7', error.message
    # The worker lives on.
    assert result_of(after) == 25
    assert failing.get_worker_pid() == after.get_worker_pid() == pid
    shutdown_ok(pool)
    assert exits(pool, False) == []


def test_serve_worker_outside_a_pool():
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        Mpq.serve_worker(lambda request, data: data)


def test_serve_worker_returns_when_told_to_die(pools, tmp_path):
    pool = pools.new(2, env={'MPQ_TEST_LOG_DIR': str(tmp_path)})
    run_until_started(pool, 2)
    shutdown_ok(pool)
    assert sorted(e[0] for e in exits(pool, True)) == sorted(pool.started)
    for pid, status, _ in pool.exited:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert read_log(tmp_path, pid, '.end') == 'told to die: True\n'


# Supervision --------------------------------------------------------------

@LONG
def test_poison_task(pools):
    """A task that crashes its worker (SIGSEGV): the others finish; it fails
    WORKER_LOST after max-attempts deaths, each of a different worker."""
    pool = pools.new(3)
    assert pool.props.max_attempts == Mpq.POOL_DEFAULT_MAX_ATTEMPTS == 3
    tasks = [submit(pool, 'crash-on', i) for i in range(40)]
    for i, task in enumerate(tasks):
        if i == 13:
            error = wait_mpq_error(task, Mpq.Error.WORKER_LOST)
            assert 'died 3 times' in error.message, error.message
            assert task.get_attempts() == 3
            assert task.get_state() == Mpq.TaskState.FAILED
        else:
            assert result_of(task) == i * i
    unexpected = exits(pool, False)
    assert len(unexpected) == 3
    assert len({pid for pid, _, _ in unexpected}) == 3
    for _, status, _ in unexpected:
        # Under ASan or TSan the sanitizer's handler turns SIGSEGV into an
        # exit status.
        assert ((os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV) or
                (os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0)), status
    shutdown_ok(pool)
    assert len(exits(pool, True)) == 3


@LONG
def test_task_timeout(pools):
    """Past task-timeout: TIMED_OUT, the worker killed and replaced, the
    pool goes on. (The time-out is the feature tested: a task that hangs
    forever passes any.)"""
    pool = pools.new(1)
    pool.props.task_timeout = 500
    hung = submit(pool, 'hang', 0)
    after = submit(pool, 'square', 6)     # waits at the same worker
    error = wait_mpq_error(hung, Mpq.Error.TIMED_OUT)
    assert 'task-timeout' in error.message, error.message
    assert hung.get_attempts() == 1
    # Before the replacement is ready (that needs the context to run): no
    # time-out decides the rest.
    pool.props.task_timeout = -1
    assert result_of(after) == 36
    assert after.get_worker_pid() != hung.get_worker_pid()
    run_until(lambda: len(pool.exited) == 1, 'the hung worker reaped')
    assert len(exits(pool, False)) == 1
    assert pool.exited[0][0] == hung.get_worker_pid()
    assert len(pool.started) == 2
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_cancel_queued_and_running(pools, script, tmp_path):
    """A queued task never reaches a worker; a running one is told to stop
    and its answer is dropped; all end CANCELLED."""
    pool = pools.new(1, script, env={'MPQ_TEST_LOG_DIR': str(tmp_path)})
    running = submit_until_cancel(pool)
    pid = running.get_worker_pid()
    waiting = submit(pool, 'echo', 1)
    queued = submit(pool, 'echo', 2)
    # The window is two: "waiting" sits at the worker, "queued" here.
    assert running.get_state() == Mpq.TaskState.RUNNING
    assert waiting.get_state() == Mpq.TaskState.RUNNING
    assert queued.get_state() == Mpq.TaskState.QUEUED

    queued.cancel()
    waiting.cancel()
    running.cancel()
    assert running.get_state() == Mpq.TaskState.CANCELLED
    for task in (running, waiting, queued):
        wait_cancelled(task)
    queued.cancel()             # ended: nothing happens
    assert queued.get_state() == Mpq.TaskState.CANCELLED

    after = submit(pool, 'square', 7)
    assert result_of(after) == 49
    assert after.get_worker_pid() == pid
    shutdown_ok(pool)
    assert exits(pool, False) == []
    # The C worker side answers a task cancelled before it started without
    # emitting it; the plain worker logs it, and answers FAILED.
    want = {POOL_WORKER: 'until-cancel\ncancelled\nsquare\n',
            PLAIN_POOL_WORKER: 'until-cancel\necho\nsquare\n'}[script]
    assert read_log(tmp_path, pid) == want


def test_wait_async_and_cancelled_wait(pools):
    pool = pools.new(2)
    task = submit(pool, 'square', 9)
    slow = submit_until_cancel(pool)
    loop = GLib.MainLoop()
    cancellable = Gio.Cancellable()
    got = {}

    def on_done(source, result, name):
        try:
            got[name] = source.wait_finish(result)
        except GLib.Error as error:
            got[name] = error
        if len(got) == 2:
            loop.quit()

    task.wait_async(None, on_done, 'task')
    slow.wait_async(cancellable, on_done, 'slow')
    run_until(lambda: 'task' in got, 'wait_async')
    assert json.loads(got['task'].dup_data_json()) == 81
    # Cancelling the wait leaves the task running.
    cancellable.cancel()
    run_loop(loop, WAIT_S)
    assert got['slow'].matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    assert slow.get_state() == Mpq.TaskState.RUNNING
    slow.cancel()
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_progress_in_order(pools, script):
    pool = pools.new(2, script)
    task = submit(pool, 'progress', 200)
    seen = []

    def on_progress(source, msg):
        assert msg.get_request() == 'PROGRESS'
        assert source.get_state() == Mpq.TaskState.RUNNING
        seen.append(json.loads(msg.dup_data_json()))

    task.connect('progress', on_progress)
    assert result_of(task) == 200
    assert seen == list(range(1, 201))
    shutdown_ok(pool)


@pytest.mark.parametrize('script', WORKERS)
def test_broadcast_reaches_each_worker_once(pools, script, tmp_path):
    pool = pools.new(3, script, env={'MPQ_TEST_LOG_DIR': str(tmp_path)})
    run_until_started(pool, 3)
    assert pool.broadcast('config', json.dumps({'level': 2})) == 3
    pids = sorted(pool.dup_worker_pids())
    assert pids == sorted(pool.started)
    shutdown_ok(pool)
    for pid in pids:
        assert read_log(tmp_path, pid) == 'config\n'


def test_grow_and_shrink(pools):
    pool = pools.new(1)
    run_until_started(pool, 1)
    pool.props.n_workers = 4
    assert pool.props.n_workers == 4
    run_until_started(pool, 4)
    assert len(pool.dup_worker_pids()) == 4

    # One busy worker: shrinking to one retires the three idle ones.
    busy = submit_until_cancel(pool)
    pool.props.n_workers = 1
    run_until(lambda: len(pool.exited) >= 3, 'three workers retired')
    assert len(exits(pool, True)) == 3
    assert busy.get_worker_pid() not in [pid for pid, _, _ in pool.exited]
    assert busy.get_state() == Mpq.TaskState.RUNNING
    assert list(pool.dup_worker_pids()) == [busy.get_worker_pid()]
    busy.cancel()
    assert result_of(submit(pool, 'square', 8)) == 64
    shutdown_ok(pool)
    assert exits(pool, False) == []


@pytest.mark.parametrize('use_async', [False, True], ids=['sync', 'async'])
def test_shutdown_with_tasks_in_flight(pools, use_async):
    pool = pools.new(2)
    tasks = [submit(pool, 'square', i) for i in range(30)]
    if use_async:
        loop = GLib.MainLoop()
        done = []

        def on_done(source, result):
            done.append(source.shutdown_finish(result))
            loop.quit()

        pool.shutdown_async(-1, None, on_done)
        run_loop(loop, WAIT_S)
        assert done == [True]
    else:
        shutdown_ok(pool)
    for i, task in enumerate(tasks):
        assert task.get_state() == Mpq.TaskState.DONE
        assert result_of(task) == i * i
    assert len(exits(pool, True)) == 2 and exits(pool, False) == []
    for _, status, _ in pool.exited:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert list(pool.dup_worker_pids()) == []
    with raises_mpq(Mpq.Error.CLOSED):
        submit(pool, 'square', 1)
    shutdown_ok(pool)           # a second shutdown says the same


def test_shutdown_timeout_kills(pools):
    pool = pools.new(1)
    hung = submit(pool, 'hang', 0)
    run_until(lambda: hung.get_state() == Mpq.TaskState.RUNNING, 'hang handed')
    with raises_mpq(Mpq.Error.TIMED_OUT):
        pool.shutdown(100)
    wait_mpq_error(hung, Mpq.Error.CLOSED)
    assert len(exits(pool, True)) == 1
    assert list(pool.dup_worker_pids()) == []


def test_worker_exited_args(pools):
    """worker-exited (pid, wait_status as waitpid gives it, expected)."""
    pool = pools.new(1)
    run_until_started(pool, 1)
    first = pool.started[0]
    assert result_of(submit(pool, 'pid', None)) == first
    os.kill(first, signal.SIGKILL)
    run_until(lambda: pool.exited, 'worker-exited')
    pid, status, expected = pool.exited[0]
    assert (pid, expected) == (first, False)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    # Replaced, and the replacement serves.
    run_until_started(pool, 2)
    second = pool.started[1]
    assert second != first
    assert result_of(submit(pool, 'pid', None)) == second
    shutdown_ok(pool)
    pid, status, expected = pool.exited[1]
    assert (pid, expected) == (second, True)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# Plain workers ------------------------------------------------------------

@pytest.mark.parametrize('kind', ['garbage-id', 'not-held', 'progress-not-held', 'second-ready',
                                  'other-sender-then-ready', 'unknown-request'])
def test_hostile_plain_worker(pools, tmp_path, kind):
    """A plain worker that says what no worker says is killed; only it:
    its task is redone by another, and every task ends with its right
    result (the hostile frames carry -1 as result). other-sender-then-ready
    answers its task in another worker's name, which must not count (the
    second READY then gets it killed: see test_forged_sender_kills)."""
    pool = pools.new(2, PLAIN_POOL_WORKER,
                     env={'MPQ_TEST_EVIL': kind, 'MPQ_TEST_EVIL_DIR': str(tmp_path)})
    run_until_started(pool, 2)
    tasks = [submit(pool, 'square', i) for i in range(20)]
    for i, task in enumerate(tasks):
        assert result_of(task) == i * i
    redone_by = tasks[7].get_worker_pid()
    assert tasks[7].get_attempts() == 2
    assert os.path.exists(tmp_path / 'evil')
    run_until(lambda: pool.exited, 'the hostile worker reaped')
    assert len(pool.exited) == 1
    pid, status, expected = pool.exited[0]
    assert not expected
    assert pid != redone_by and pid in pool.started[:2]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    other = [p for p in pool.started[:2] if p != pid][0]
    assert other in pool.dup_worker_pids()
    # And the pool goes on with the worker that took the blame and its
    # replacement.
    assert [result_of(submit(pool, 'square', i)) for i in range(5)] == [0, 1, 4, 9, 16]
    shutdown_ok(pool)
    assert len(exits(pool, False)) == 1


# Library bug: docs/protocol.md says a worker that sends "a message whose
# sender is not its own pid" is killed; _mpq_pool_on_message () only drops
# the message (g_debug), so a worker that forges its sender and then keeps
# its tasks holds them forever. The bound here (not scaled: the pool only
# has to read one line) catches that hang.
def test_forged_sender_kills(pools, tmp_path):
    pool = pools.new(2, PLAIN_POOL_WORKER,
                     env={'MPQ_TEST_EVIL': 'other-sender', 'MPQ_TEST_EVIL_DIR': str(tmp_path)})
    run_until_started(pool, 2)
    tasks = [submit(pool, 'square', i) for i in range(8)]
    run_until(lambda: pool.exited, 'the forging worker killed', timeout_s=10)
    assert [result_of(task) for task in tasks] == [i * i for i in range(8)]
    assert tasks[7].get_attempts() == 2


# A parent that dies -------------------------------------------------------

def process_gone(pid):
    """Whether @pid is gone (or a zombie no one reaped yet)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_gone(pids, timeout_s):
    """Waits until every pid in @pids is gone: on pidfds where there are
    (readable once the process ended), else polling /proc; bounded."""
    deadline = time.monotonic() + timeout_s
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            pass
        except OSError:         # no pidfd_open (valgrind): /proc below
            break
    try:
        if len(fds) == len(pids):
            poller = select.poll()
            for fd in fds.values():
                poller.register(fd, select.POLLIN)
            left = set(fds.values())
            while left and time.monotonic() < deadline:
                for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                    poller.unregister(fd)
                    left.discard(fd)
        while time.monotonic() < deadline and not all(process_gone(p) for p in pids):
            time.sleep(0.02)    # polls /proc; the bound only catches a hang
    finally:
        for fd in fds.values():
            os.close(fd)
    return [pid for pid in pids if not process_gone(pid)]


def kill_pool_parent(tmp_path, script, request=None):
    """Runs children/pool_parent.py with 3 workers of @script (and, with
    @request, one such task each, waiting until each worker's handler
    has it), SIGKILLs it and returns its workers' pids and those left
    once they had time to go."""
    env = dict(os.environ, MPQ_TEST_LOG_DIR=str(tmp_path))
    env.pop('MPQ_VALGRIND', None)
    argv = [PYTHON, os.path.join(CHILDREN, 'pool_parent.py'), script, '3']
    proc = subprocess.Popen(argv + ([request] if request else []),
                            stdout=subprocess.PIPE, env=env)
    workers = []
    try:
        lines = Gio.DataInputStream.new(Gio.UnixInputStream.new(proc.stdout.fileno(), False))
        report = json.loads(read_line(lines, WAIT_S))
        workers = report['workers']
        assert report['parent'] == proc.pid and len(workers) == 3
        assert not [pid for pid in workers if process_gone(pid)]
        if request:
            deadline = time.monotonic() + WAIT_S
            while not all(read_log(tmp_path, pid).endswith(request + '\n') for pid in workers):
                assert time.monotonic() < deadline, 'the workers never got their tasks'
                time.sleep(0.02)    # polls the logs; the bound only catches a hang
        proc.kill()
        proc.wait(PROMPT_S)
        return workers, wait_gone(workers, WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(PROMPT_S)
        proc.stdout.close()
        for pid in workers:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize('script', WORKERS)
def test_parent_killed_leaves_no_worker(tmp_path, script):
    """SIGKILL a parent with a pool of idle workers: each worker sees its
    socket end and exits by itself, cleanly."""
    workers, left = kill_pool_parent(tmp_path, script)
    assert left == [], f'workers {left} outlived their pool'
    if script == POOL_WORKER:
        for pid in workers:
            assert read_log(tmp_path, pid, '.end') == 'told to die: False\n'


def test_parent_killed_leaves_no_hung_worker(tmp_path):
    """SIGKILL a parent whose workers each hang in a handler that never
    returns (nothing reads their socket meanwhile): the library's workers
    die with their pool all the same."""
    workers, left = kill_pool_parent(tmp_path, POOL_WORKER, 'hang')
    assert left == [], f'hung workers {left} outlived their pool'
