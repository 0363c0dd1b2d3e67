# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Pool over a queue kept in Redis (issue 14): workers the pool spawns,
and workers that join it, each a process started by hand with only
MPQ_QUEUE_URI, MPQ_QUEUE_NAME and MPQ_POOL_WORKER=1 to find it (a process
tree of its own, as a worker on another host would be). Against a
redis-server of this module's own (conftest.py's redis_uri); skipped
without redis-server or without Redis support in the library.

The workers are Python (children/pool_worker.py, Mpq.serve_worker;
children/blocking_pool_worker.py for a worker that holds its task until it
is killed). On Redis the pids of worker-started, worker-exited and
Task.get_worker_pid are participant ids from the server, not OS pids; a
worker the pool did not spawn exits with wait_status -1.

No sleeps: each wait is for the event expected (a signal, a progress, a
process's exit), with a bound that only turns a hang into a failure."""

import itertools
import json
import os
import signal
import subprocess

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import CHILDREN, PYTHON, read_line, run_until, scaled

WORKER = [PYTHON, os.path.join(CHILDREN, 'pool_worker.py')]
# Bounds that only catch a hang: the suite runs under load and valgrind.
WAIT_S = scaled(60, 600)
WATCHDOG_S = scaled(240, 2400)
LEASE_MS = scaled(1000, 4000)   # a killed worker is seen dead after it (ms)

_names = itertools.count()


class Kit:
    """Makes queues on the server, pools over them and workers that join;
    at teardown kills every worker left, shuts each pool down at once and
    closes each queue."""

    def __init__(self, uri, log_dir):
        self.uri = uri
        self.log_dir = log_dir
        self.queues = []
        self.pools = []
        self.procs = []

    def queue(self, lease_time=None):
        queue = Mpq.Queue.new_for_uri(self.uri, 'py-pool-%d-%d' % (os.getpid(), next(_names)), 0)
        if lease_time is not None:
            queue.props.lease_time = lease_time
        self.queues.append(queue)
        return queue

    def pool(self, *args, **kwargs):
        """Mpq.Pool (*args, **kwargs), with what it signals kept:
        pool.started (ids) and pool.exited ((id, wait_status, expected))."""
        pool = Mpq.Pool(*args, **kwargs)
        pool.started = []
        pool.exited = []
        pool.connect('worker-started', lambda _pool, pid: pool.started.append(pid))
        pool.connect('worker-exited',
                     lambda _pool, pid, status, expected: pool.exited.append((pid, status, expected)))
        self.pools.append(pool)
        return pool

    def join(self, name, script='pool_worker.py', lease_time=None):
        """Starts children/@script by hand as a worker joining the pool of
        the queue @name: a new session, the environment without any MPQ_
        variable but the three that name the queue (and the test log's
        folder, and @lease_time as MPQ_QUEUE_LEASE_TIME when given)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith('MPQ_')}
        env[Mpq.QUEUE_URI_ENV] = self.uri
        env[Mpq.QUEUE_NAME_ENV] = name
        env[Mpq.POOL_WORKER_ENV] = '1'
        env['MPQ_TEST_LOG_DIR'] = str(self.log_dir)
        if lease_time is not None:
            env['MPQ_QUEUE_LEASE_TIME'] = str(lease_time)
        proc = subprocess.Popen([PYTHON, os.path.join(CHILDREN, script)], env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def end_of(self, proc):
        """What serve_worker returned in @proc, as its worker wrote it."""
        with open(os.path.join(self.log_dir, f'{proc.pid}.end')) as file:
            return file.read()

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for pool in self.pools:
            try:
                pool.shutdown(0)
            except GLib.Error:
                pass
            pool.run_dispose()
        for queue in self.queues:
            queue.close()


@pytest.fixture
def kit(redis_uri, tmp_path):
    made = Kit(redis_uri, tmp_path)
    yield made
    made.cleanup()


def until(condition, what):
    """Runs the pools' context until @condition () holds (bounded)."""
    run_until(condition, what, WAIT_S)


def exits_0(proc):
    """Waits (bounded) for a worker started by hand and checks it exited 0."""
    assert proc.wait(WAIT_S) == 0, f'worker {proc.pid} exited with {proc.returncode}'


def test_pool_needs_argv_or_a_queue():
    """The override's constructor: argv may be left out only with a queue."""
    with pytest.raises(TypeError, match='argv'):
        Mpq.Pool()
    with pytest.raises(TypeError, match='argv'):
        Mpq.Pool(n_workers=2)
    with pytest.raises(TypeError, match='not a string'):
        Mpq.Pool('/bin/worker')


@pytest.mark.watchdog(WATCHDOG_S)
def test_spawned_workers(kit):
    """A pool that spawns 2 Python workers over a queue on Redis: map in
    order, submit and result, its workers' ids distinct positive
    participant ids; shutdown reaps both (wait_status as waitpid's)."""
    queue = kit.queue()
    pool = kit.pool(WORKER, 2, queue=queue)
    assert pool.props.queue == queue
    assert pool.props.n_workers == 2
    assert pool.map('square', range(200)) == [i * i for i in range(200)]
    assert pool.submit('square', 7).result(WAIT_S) == 49
    tasks = [pool.submit('echo', {'i': i}) for i in range(40)]
    assert [task.result(WAIT_S) for task in tasks] == [{'i': i} for i in range(40)]
    until(lambda: len(pool.started) == 2, 'both workers ready')
    assert len(set(pool.started)) == 2
    assert all(isinstance(pid, int) and pid > 0 for pid in pool.started), pool.started
    assert queue.props.pid not in pool.started
    for task in tasks:
        assert task.get_worker_pid() in pool.started
        assert task.get_attempts() == 1
    assert pool.shutdown(WAIT_S * 1000)
    assert sorted(pool.exited) == sorted((pid, 0, True) for pid in pool.started)


@pytest.mark.watchdog(WATCHDOG_S)
def test_workers_join_a_pool_without_argv(kit):
    """A pool made with queue= and no argv spawns nobody; two workers
    started by hand, sharing only the queue's URI and name, join it and do
    its tasks; shutdown tells them to go, they exit 0 (serve_worker says it
    was told to die) and the pool reports each as an expected exit with
    wait_status -1."""
    queue = kit.queue()
    pool = kit.pool(queue=queue)
    assert pool.props.queue == queue
    assert pool.props.n_workers == 0
    workers = [kit.join(queue.props.name), kit.join(queue.props.name)]
    until(lambda: len(pool.started) == 2, 'two joined workers ready')
    assert len(set(pool.started)) == 2 and all(pid > 0 for pid in pool.started)
    assert pool.props.n_workers == 0
    assert pool.map('square', range(200)) == [i * i for i in range(200)]
    tasks = [pool.submit('square', i) for i in range(40)]
    assert [task.result(WAIT_S) for task in tasks] == [i * i for i in range(40)]
    assert {task.get_worker_pid() for task in tasks} <= set(pool.started)
    assert pool.shutdown(WAIT_S * 1000)
    for proc in workers:
        exits_0(proc)
        assert kit.end_of(proc) == 'told to die: True\n'
    assert sorted(pool.exited) == sorted((pid, -1, True) for pid in pool.started)
    assert pool.started == list(dict.fromkeys(pool.started))     # each once


@pytest.mark.watchdog(WATCHDOG_S)
def test_worker_joins_a_pool_with_argv(kit):
    """A worker started by hand joins a pool that spawns its own too: both
    serve; n-workers counts the spawned one only; shutdown ends both."""
    queue = kit.queue()
    pool = kit.pool(WORKER, 1, queue=queue)
    until(lambda: len(pool.started) == 1, 'the spawned worker ready')
    spawned = pool.started[0]
    joined = kit.join(queue.props.name)
    until(lambda: len(pool.started) == 2, 'the joined worker ready')
    assert pool.started[1] != spawned and pool.started[1] > 0
    assert pool.props.n_workers == 1
    assert pool.map('square', range(200)) == [i * i for i in range(200)]
    assert pool.shutdown(WAIT_S * 1000)
    exits_0(joined)
    assert sorted(pool.exited) == sorted([(spawned, 0, True), (pool.started[1], -1, True)])


@pytest.mark.watchdog(WATCHDOG_S)
def test_killed_joined_worker_task_goes_to_the_other(kit, tmp_path):
    """A joined worker SIGKILLed while it holds a task: once its lease
    ended the pool reports it gone (wait_status -1, not expected) and the
    other worker does the task, its second attempt."""
    queue = kit.queue(lease_time=LEASE_MS)
    pool = kit.pool(queue=queue)
    workers = [kit.join(queue.props.name, 'blocking_pool_worker.py', LEASE_MS) for _ in range(2)]
    by_pid = {proc.pid: proc for proc in workers}
    until(lambda: len(pool.started) == 2, 'two joined workers ready')
    fifo = tmp_path / 'never-written'
    os.mkfifo(fifo)
    task = pool.submit('block-once', {'marker': str(tmp_path / 'taken'), 'fifo': str(fifo),
                                      'value': 9})
    progress = []
    task.connect('progress', lambda _task, message: progress.append(message))
    until(lambda: progress, 'a worker holds the task')
    holder = task.get_worker_pid()
    assert holder in pool.started and task.get_attempts() == 1
    victim = by_pid[json.loads(progress[0].dup_data_json())['pid']]
    (survivor,) = set(workers) - {victim}
    victim.kill()
    assert victim.wait(WAIT_S) == -signal.SIGKILL
    assert task.result(WAIT_S) == {'result': 81, 'pid': survivor.pid}
    assert task.get_attempts() == 2
    assert task.get_worker_pid() != holder and task.get_worker_pid() in pool.started
    until(lambda: pool.exited, 'the killed worker seen gone')
    assert pool.exited == [(holder, -1, False)]
    assert pool.submit('square', 5).result(WAIT_S) == 25      # the pool goes on
    assert pool.shutdown(WAIT_S * 1000)
    exits_0(survivor)
    assert sorted(pool.exited) == sorted([(holder, -1, False),
                                          (task.get_worker_pid(), -1, True)])


@pytest.mark.watchdog(WATCHDOG_S)
def test_joined_worker_leaves_when_the_queue_closes(kit):
    """The pool's queue closed: a joined worker sees its pool gone,
    serve_worker returns False and the process exits 0 by itself."""
    queue = kit.queue()
    pool = kit.pool(queue=queue)
    worker = kit.join(queue.props.name)
    until(lambda: pool.started, 'the joined worker ready')
    assert pool.submit('square', 3).result(WAIT_S) == 9
    queue.close()
    exits_0(worker)
    assert kit.end_of(worker) == 'told to die: False\n'


@pytest.mark.watchdog(WATCHDOG_S)
def test_joined_worker_leaves_when_the_pool_process_dies(kit):
    """The pool's process SIGKILLed (children/redis_pool_parent.py, its
    queue's lease-time LEASE_MS): once its lease ended, a joined worker leaves
    by itself, exit status 0, serve_worker having returned False."""
    name = 'py-pool-parent-%d-%d' % (os.getpid(), next(_names))
    env = {k: v for k, v in os.environ.items() if k != 'MPQ_VALGRIND'}
    parent = subprocess.Popen(
        [PYTHON, os.path.join(CHILDREN, 'redis_pool_parent.py'), kit.uri, name, str(LEASE_MS)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    kit.procs.append(parent)
    lines = Gio.DataInputStream.new(Gio.UnixInputStream.new(parent.stdout.fileno(), False))
    report = json.loads(read_line(lines, WAIT_S))
    assert report['parent'] == parent.pid and report['queue'] > 0
    worker = kit.join(name)
    joined = json.loads(read_line(lines, WAIT_S))
    assert joined['worker'] > 0
    parent.kill()
    assert parent.wait(WAIT_S) == -signal.SIGKILL
    parent.stdout.close()
    exits_0(worker)
    assert kit.end_of(worker) == 'told to die: False\n'
