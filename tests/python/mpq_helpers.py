# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers shared by the pytest suite (imported by conftest and the tests)."""

import contextlib
import json
import os
import time

import gi

gi.require_version('Mpq', '1.0')
gi.require_version('Json', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import GLib, Mpq  # noqa: E402
import pytest  # noqa: E402

PYTHON = '/usr/bin/python3'
HERE = os.path.dirname(os.path.abspath(__file__))
CHILDREN = os.path.join(HERE, 'children')
MPQ_CHILD = 'mpq_child.py'
RAW_CHILD = 'raw_child.py'
NOVEL_REQUEST = 'NOVEL request \u2713'   # what mpq_child.py burst sends

# Upper bound for anything that should happen "promptly". Generous: it only
# turns a hang into a failure, it never decides a pass.
PROMPT_S = 20


def child_argv(script, *args):
    return [PYTHON, os.path.join(CHILDREN, script), *(str(a) for a in args)]


def remember_pid(proc):
    """Keeps @proc's pid on it, read right at spawn time: Gio.Subprocess
    forgets the pid (get_identifier() returns None) as soon as GLib's
    worker thread reaps the child, which can happen before a test looks.
    Every spawn in this suite calls this at once; pid_of() reads it back."""
    identifier = proc.get_identifier()
    proc.mpq_pid = int(identifier) if identifier is not None else None
    return proc


def pid_of(proc):
    """The child's pid as read at spawn time (see remember_pid), also after
    it exited. Never reads Gio.Subprocess.get_identifier() later. Only for
    a child that cannot exit before spawn returns (one that waits for the
    parent): under valgrind on a loaded machine, a child that sends and
    exits by itself was gone and reaped before spawn returned. For those,
    take the pid from what the child sent, and check it with same_pid()."""
    pid = getattr(proc, 'mpq_pid', None)
    assert pid is not None, \
        'no pid kept for this child: spawn it through a helper that calls ' \
        'remember_pid(), or it exited and was reaped before spawn returned'
    return pid


def known_pid(proc):
    """The child's pid if it could be read at spawn time, else None."""
    return getattr(proc, 'mpq_pid', None)


def same_pid(proc, pid):
    """Checks that @pid (taken from what the child sent) is @proc's pid,
    if that could be read at spawn time; returns @pid."""
    assert known_pid(proc) in (None, pid), f'the child spawned as {known_pid(proc)} says {pid}'
    return pid



def error_text(error):
    return f'{error.domain}:{error.code} {error.message}'


def is_mpq_error(error, code):
    return isinstance(error, GLib.Error) and error.matches(Mpq.error_quark(), code)


@contextlib.contextmanager
def raises_mpq(code):
    """Like pytest.raises, for a GLib.Error in the Mpq domain with @code."""
    with pytest.raises(GLib.Error) as info:
        yield info
    assert is_mpq_error(info.value, code), \
        f'expected Mpq.Error.{Mpq.Error(code).value_nick.upper()}, got {error_text(info.value)}'


def run_loop(loop, timeout_s=PROMPT_S):
    """Runs @loop until it quits; fails if that takes more than @timeout_s."""
    timed_out = []

    def on_timeout(*_):          # a GSource callback is given user data
        timed_out.append(True)
        loop.quit()
        return GLib.SOURCE_REMOVE

    source = GLib.timeout_source_new_seconds(timeout_s)
    source.set_callback(on_timeout)
    source.attach(loop.get_context())
    try:
        loop.run()
    finally:
        source.destroy()
    assert not timed_out, f'main loop still running after {timeout_s} s'


def run_until(condition, what, timeout_s=None):
    """Iterates the default main context (a pool's) until @condition()
    holds; fails after @timeout_s (default: PROMPT_S, ten times that under
    valgrind)."""
    if timeout_s is None:
        timeout_s = scaled(PROMPT_S, PROMPT_S * 10)
    context = GLib.MainContext.default()
    expired = []

    def on_timeout():
        expired.append(True)
        return GLib.SOURCE_REMOVE

    source_id = GLib.timeout_add_seconds(timeout_s, on_timeout)
    try:
        while not condition():
            assert not expired, f'{what}: not after {timeout_s} s'
            context.iteration(True)
    finally:
        if not expired:
            GLib.source_remove(source_id)


def dispose_pools(pools):
    """A test's pools at teardown: one the test shut down says so again;
    any other (the test failed) has its tasks failed and its workers
    killed at once."""
    for pool in pools:
        try:
            pool.shutdown(0)
        except GLib.Error:
            pass
        pool.run_dispose()


def wait_exit(proc, timeout_s=PROMPT_S):
    """Waits for @proc to exit, in a private main context so that no source
    of the default context (a pipe's) is dispatched meanwhile."""
    context = GLib.MainContext()
    loop = GLib.MainLoop(context)
    done = []

    def on_exit(p, result):
        done.append(p.wait_finish(result))
        loop.quit()

    context.push_thread_default()
    try:
        proc.wait_async(None, on_exit)
        run_loop(loop, timeout_s)
    finally:
        context.pop_thread_default()
    assert done == [True]


def iterate_default_context():
    """Dispatches what is ready on the default main context, without blocking."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass


def receive_until_error(pipe, timeout_ms=PROMPT_S * 1000):
    """Takes messages until receive fails; returns (messages, error)."""
    messages = []
    while True:
        try:
            msg = pipe.receive(timeout_ms)
        except GLib.Error as error:
            return messages, error
        assert msg is not None, f'no message and no error after {timeout_ms} ms'
        messages.append(msg)


def data_of(msg):
    """The message's data as a Python value, through dup_data_json()."""
    return json.loads(msg.dup_data_json())


def summary(messages):
    return [(m.get_request(), data_of(m)) for m in messages]


def assert_same(got, want, path='data'):
    """Deep equality that also compares types (True is not 1, 1.0 is not 1)."""
    assert type(got) is type(want), f'{path}: {got!r} is not a {type(want).__name__}'
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f'{path}: keys {sorted(got)} != {sorted(want)}'
        for key in want:
            assert_same(got[key], want[key], f'{path}[{key!r}]')
    elif isinstance(want, list):
        assert len(got) == len(want), f'{path}: length {len(got)} != {len(want)}'
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f'{path}[{i}]')
    elif isinstance(want, float):
        assert got == want and str(got) == str(want), f'{path}: {got!r} != {want!r}'
    else:
        assert got == want, f'{path}: {got!r} != {want!r}'


# ---------------------------------------------------------------------------
# Queue helpers (test_queue*.py)
# ---------------------------------------------------------------------------

from gi.repository import Gio  # noqa: E402

QUEUE_CHILD = 'queue_child.py'
PLAIN_QUEUE_WORKER = 'plain_queue_worker.py'
PROMPT_MS = PROMPT_S * 1000

# The valgrind test setup sets MPQ_VALGRIND=1: this process (the parent, the
# queue's server thread included) then runs under memcheck, many times
# slower, while the Python children are not traced.
UNDER_VALGRIND = os.environ.get('MPQ_VALGRIND', '') not in ('', '0')


def scaled(normal, under_valgrind):
    """@normal, or @under_valgrind when this process runs under valgrind."""
    return under_valgrind if UNDER_VALGRIND else normal


def read_line(stream, timeout_s=PROMPT_S):
    """Reads one line from the Gio.DataInputStream @stream in a private main
    context; fails after @timeout_s or at end-of-file."""
    context = GLib.MainContext()
    loop = GLib.MainLoop(context)
    got = []

    def on_line(source, result):
        try:
            got.append(source.read_line_finish_utf8(result)[0])
        except GLib.Error as error:
            got.append(error)
        loop.quit()

    context.push_thread_default()
    try:
        stream.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)
        run_loop(loop, timeout_s)
    finally:
        context.pop_thread_default()
    assert got and isinstance(got[0], str), f'no line from the child: {got!r}'
    return got[0]


class QueueKit:
    """Makes queues and spawns children on them; cleans up at teardown."""

    def __init__(self):
        self.queues = []
        self.procs = []

    def new(self, max_size=0, put_timeout=None, put_attempts=None, prefetch=None):
        queue = Mpq.Queue.new(max_size)
        self.queues.append(queue)
        if put_timeout is not None:
            queue.set_put_timeout(put_timeout)
        if put_attempts is not None:
            queue.set_put_attempts(put_attempts)
        if prefetch is not None:
            queue.set_prefetch(prefetch)
        return queue

    def spawn(self, queue, script, *args, stdout=False):
        """Spawns tests/python/children/<script> through Mpq.Queue.spawn, or
        spawn_with_launcher with a stdout pipe when @stdout."""
        argv = child_argv(script, *args)
        if stdout:
            launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDOUT_PIPE)
            proc = queue.spawn_with_launcher(launcher, argv)
        else:
            proc = queue.spawn(argv)
        remember_pid(proc)
        if stdout:
            proc.mpq_stdout = Gio.DataInputStream.new(proc.get_stdout_pipe())
        self.procs.append(proc)
        return proc

    def line(self, proc, timeout_s=PROMPT_S):
        """The next line the child (spawned with stdout=True) printed."""
        return read_line(proc.mpq_stdout, timeout_s)

    def json_line(self, proc, timeout_s=PROMPT_S):
        return json.loads(self.line(proc, timeout_s))

    def cleanup(self):
        for queue in self.queues:
            queue.close()
        for proc in self.procs:
            proc.force_exit()
            proc.wait(None)


@pytest.fixture
def queues():
    """A QueueKit: queues.new(max_size, ...), queues.spawn(queue, script,
    *args, stdout=False), queues.line(proc). Every queue is closed, every
    child killed and reaped at teardown."""
    kit = QueueKit()
    yield kit
    kit.cleanup()


def take(queue, count, timeout_ms=PROMPT_MS):
    """Takes @count messages with plain receive (the front, whoever it is
    for), each within @timeout_ms."""
    messages = []
    for _ in range(count):
        msg = queue.receive(timeout_ms)
        assert msg is not None, \
            f'receive({timeout_ms}) gave nothing after {len(messages)} of {count} messages'
        messages.append(msg)
    return messages


def take_routed(queue, count, timeout_s=PROMPT_S):
    """Takes @count messages with receive_async, one call after the other:
    only messages addressed to this process or to nobody."""
    loop = GLib.MainLoop()
    got = []

    def on_done(source, result):
        try:
            got.append(source.receive_finish(result))
        except GLib.Error as error:
            got.append(error)
            loop.quit()
            return
        if len(got) < count:
            source.receive_async(None, on_done)
        else:
            loop.quit()

    queue.receive_async(None, on_done)
    run_loop(loop, timeout_s)
    errors = [g for g in got if isinstance(g, GLib.Error)]
    assert not errors, f'receive_async failed: {error_text(errors[0])}'
    assert len(got) == count
    return got


def assert_drained(queue):
    """Nothing waits in the queue, and nothing is left untaken."""
    assert queue.receive(0) is None
    assert queue.is_empty()
    assert queue.join(PROMPT_MS)


def take_ready(queue, procs):
    """Takes one READY message from each child (plain receive: call this
    while nothing else is in the queue). Returns {pid: data}."""
    pids = {pid_of(p) for p in procs}
    ready = {}
    for msg in take(queue, len(procs)):
        assert msg.get_request() == 'READY', msg.to_json()
        assert msg.get_sender_pid() in pids
        ready[msg.get_sender_pid()] = data_of(msg)
    assert set(ready) == pids
    return ready


def stop_workers(queue, procs, queues=None):
    """Sends DIE to each worker's pid, waits for them to exit 0, then takes
    their REPORTs (plain receive: call this once every task is taken).
    Returns {pid: report data}."""
    pids = [pid_of(proc) for proc in procs]
    for pid in pids:
        queue.send(Mpq.REQ_DIE, 0, pid, None)
    for pid, proc in zip(pids, procs):
        wait_exit(proc)
        assert proc.get_if_exited() and proc.get_exit_status() == 0, \
            f'worker {pid} did not exit 0'
    reports = {}
    for msg in take(queue, len(procs)):
        assert msg.get_request() == 'REPORT', msg.to_json()
        reports[msg.get_sender_pid()] = data_of(msg)
    assert set(reports) == set(pids)
    return reports


# ---------------------------------------------------------------------------
# Hostile children, chaos (test_queue_hostile.py, test_pipe_hostile.py,
# test_chaos.py)
# ---------------------------------------------------------------------------

import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
# tools/sanitize.sh runs the Python suite with libasan preloaded.
UNDER_ASAN = 'libasan' in os.environ.get('LD_PRELOAD', '')
# Far below what any hostile input in the suite would cost if it were
# buffered (a 1 GiB line, a million requests).
RSS_BOUND_MIB = 64


def status_kib(key):
    """A field of /proc/self/status, in KiB (VmRSS, VmHWM, ...)."""
    with open('/proc/self/status') as status:
        for row in status:
            if row.startswith(key + ':'):
                return int(row.split()[1])
    raise KeyError(key)


class PeakRss:
    """This process's peak RSS growth from now on. Writing 5 to
    /proc/self/clear_refs resets the peak (VmHWM) to the current RSS; where
    that is refused, the growth is measured from the old peak, which can
    only make it look smaller."""

    def __init__(self):
        try:
            with open('/proc/self/clear_refs', 'w') as clear_refs:
                clear_refs.write('5')
            self.start = status_kib('VmRSS')
        except OSError:
            self.start = status_kib('VmHWM')

    def growth_mib(self):
        return (status_kib('VmHWM') - self.start) / 1024

    def peak_mib(self):
        return status_kib('VmHWM') / 1024

    def check(self, what, bound_mib=RSS_BOUND_MIB):
        """Asserts the growth stays below @bound_mib, except under ASan,
        whose quarantine keeps up to 256 MiB of freed memory resident: the
        growth is then only printed (the plain and valgrind runs bound it)."""
        growth = self.growth_mib()
        print(f'peak RSS growth of the parent ({what}): {growth:.1f} MiB')
        if UNDER_ASAN:
            return
        assert growth < bound_mib, \
            f'{what}: the parent grew by {growth:.1f} MiB at its peak (bound {bound_mib} MiB)'


def bounded(call, timeout_s):
    """Runs @call in a thread; returns (True, result) if it returned within
    @timeout_s, else (False, thread), the thread still in the call. Only
    turns a hang into a failure."""
    done = threading.Event()
    out = {}

    def run():
        try:
            out['result'] = call()
        except BaseException as error:     # re-raised in the caller
            out['error'] = error
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not done.wait(timeout_s):
        return False, thread
    thread.join()
    if 'error' in out:
        raise out['error']
    return True, out.get('result')


class DyingParent:
    """children/dying_parent.py KIND STATE: a parent process (queue or
    pipe) with one child waiting in STATE; both print on the same stdout
    pipe. The child (which exits by itself once it has reported) is
    watched through a pidfd, so that a test that fails can kill it at the
    end without the risk of hitting a reused pid; under valgrind, which
    has no pidfd_open, through its pid."""

    def __init__(self, kind, state):
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(CHILDREN, 'dying_parent.py'), kind, state],
            stdout=subprocess.PIPE)
        stream = Gio.UnixInputStream.new(self.proc.stdout.fileno(), False)
        self.lines = Gio.DataInputStream.new(stream)
        self.child_fd = None
        self.child_pid = None

    def json_line(self):
        return json.loads(read_line(self.lines))

    def watch_child(self, pid):
        try:
            self.child_fd = os.pidfd_open(pid)
        except ProcessLookupError:
            pass
        except OSError:
            self.child_pid = pid

    def kill_parent(self):
        self.proc.kill()
        self.proc.wait(PROMPT_S)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(PROMPT_S)
        if self.child_fd is not None:
            try:
                signal.pidfd_send_signal(self.child_fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self.child_fd)
        elif self.child_pid is not None:
            try:
                os.kill(self.child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.stdout.close()


def run_dying_parent(kind, state):
    """Starts a DyingParent, waits until its child says it is about to wait
    in @state, SIGKILLs the parent, and returns the child's report."""
    parent = DyingParent(kind, state)
    try:
        first, second = parent.json_line(), parent.json_line()
        pids, waiting = (first, second) if 'parent' in first else (second, first)
        assert waiting == {'waiting': state, 'pid': pids['child']}, (first, second)
        parent.watch_child(pids['child'])
        parent.kill_parent()
        return parent.json_line()
    finally:
        parent.close()


def assert_closed_report(report):
    """The child's wait ended with CLOSED, or ::closed was emitted."""
    if report.get('closed'):
        return
    assert 'error' in report, f'the call returned although the parent died: {report}'
    closed = {'domain': 'mpq-error-quark', 'code': int(Mpq.Error.CLOSED)}
    assert {k: report['error'][k] for k in closed} == closed, report


# Descriptors and threads of this process: the leak checks of the hostile tests.

def count_fds():
    return len(os.listdir('/proc/self/fd'))


def fds_settled(limit):
    """The number of open descriptors once it is at most @limit, or after
    a bounded wait: a descriptor GLib's worker thread holds for a child it
    reaps (its child watch) is closed a moment after the exit was seen,
    so a count taken at once may include it; a leak stays past the wait."""
    deadline = time.monotonic() + scaled(5, 30)
    while count_fds() > limit and time.monotonic() < deadline:
        time.sleep(0.01)
    return count_fds()


def fd_targets():
    """What each open descriptor is, to say which ones a failure leaked."""
    targets = {}
    for fd in os.listdir('/proc/self/fd'):
        try:
            targets[fd] = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            pass
    return targets


def new_fds(before):
    after = fd_targets()
    return {fd: target for fd, target in after.items() if before.get(fd) != target}


def count_threads():
    return len(os.listdir('/proc/self/task'))


# A private redis-server (test_queue_redis.py, test_pool_redis.py): the
# redis_uri fixture of conftest.py.

import shutil  # noqa: E402
import tempfile  # noqa: E402

REDIS_SERVER = shutil.which('redis-server')


def redis_server():
    """Starts redis-server on a unix socket in a temporary directory, without
    persistence, and yields its URI; stops it by pid afterwards. Skips the
    tests without redis-server or without Redis support in the library."""
    if REDIS_SERVER is None:
        pytest.skip('redis-server is not installed')
    tmp = tempfile.mkdtemp(prefix='mpq-redis-')
    sock = os.path.join(tmp, 'redis.sock')
    proc = subprocess.Popen(
        [REDIS_SERVER, '--port', '0', '--unixsocket', sock, '--save', '',
         '--appendonly', 'no', '--daemonize', 'no', '--dir', tmp],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()

    def drain():
        # The server says when it is ready; then its log is read to the end
        # so that a full pipe never stalls it.
        for line in proc.stdout:
            if 'eady to accept connections' in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    ready.wait()
    if proc.poll() is not None:
        pytest.fail('redis-server exited before it was ready')
    uri = 'redis+unix://' + sock
    try:
        Mpq.Queue.new_for_uri(uri, 'probe', 0).close()
    except GLib.Error as e:
        proc.terminate()
        proc.wait()
        if e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_SUPPORTED):
            pytest.skip('pymulproc was built without Redis support')
        raise
    yield uri
    proc.terminate()
    proc.wait()
    reader.join()
    shutil.rmtree(tmp, ignore_errors=True)
