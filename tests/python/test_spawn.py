# SPDX-License-Identifier: LGPL-2.1-or-later
"""Spawning children and opening the child end."""

import os
import signal
import socket
import subprocess

import pytest
from gi.repository import Gio, Mpq

from mpq_helpers import (MPQ_CHILD, PROMPT_MS, PYTHON, child_argv, data_of, raises_mpq,
                         wait_exit)

NEW_FOR_CHILD = '''
import sys, gi
gi.require_version("Mpq", "1.0")
from gi.repository import GLib, Mpq
try:
    Mpq.Pipe.new_for_child()
except GLib.Error as e:
    print(e.domain, e.code, e.message)
    sys.exit(0)
sys.exit("new_for_child() did not fail")
'''


def run_new_for_child(pass_fds=(), **env_changes):
    """Runs Mpq.Pipe.new_for_child() in a fresh interpreter (not spawned by
    the library) and returns the (domain, code) of the error it raised."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('MPQ_CHANNEL_')}
    env.update(env_changes)
    out = subprocess.run([PYTHON, '-c', NEW_FOR_CHILD], env=env, check=True, pass_fds=pass_fds,
                         capture_output=True, text=True, timeout=60).stdout
    domain, code, _ = out.split(' ', 2)
    return domain, int(code)


def test_new_for_child_without_env_is_not_a_child():
    """Without MPQ_CHANNEL_FD, new_for_child raises NOT_A_CHILD."""
    assert run_new_for_child() == ('mpq-error-quark', int(Mpq.Error.NOT_A_CHILD))


def test_new_for_child_in_test_process():
    """The test process itself was not spawned with a channel."""
    assert 'MPQ_CHANNEL_FD' not in os.environ
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        Mpq.Pipe.new_for_child()


def test_new_for_child_with_bogus_env():
    """MPQ_CHANNEL_FD that is empty, not a number, negative, or names no
    socket (stdin, a closed fd) is NOT_A_CHILD, not a crash or a hang."""
    not_a_child = ('mpq-error-quark', int(Mpq.Error.NOT_A_CHILD))
    assert run_new_for_child(MPQ_CHANNEL_FD='abc') == not_a_child
    assert run_new_for_child(MPQ_CHANNEL_FD='0') == not_a_child
    assert run_new_for_child(MPQ_CHANNEL_FD='987') == not_a_child
    assert run_new_for_child(MPQ_CHANNEL_FD='-1') == not_a_child
    assert run_new_for_child(MPQ_CHANNEL_FD='') == not_a_child


def test_new_for_child_wrong_socket_or_kind():
    """An inherited stream socket announced as a queue, or a datagram
    socket, is NOT_A_CHILD."""
    not_a_child = ('mpq-error-quark', int(Mpq.Error.NOT_A_CHILD))
    for sock_type, kind in ((socket.SOCK_STREAM, 'queue'), (socket.SOCK_DGRAM, 'pipe')):
        a, b = socket.socketpair(socket.AF_UNIX, sock_type)
        with a, b:
            assert run_new_for_child((b.fileno(),), MPQ_CHANNEL_FD=str(b.fileno()),
                                     MPQ_CHANNEL_KIND=kind) == not_a_child


def test_hand_made_child_channel():
    """A child that was not spawned by the library, but was given a stream
    socket as the protocol says (MPQ_CHANNEL_FD, MPQ_CHANNEL_KIND=pipe),
    can open it and talk."""
    script = ('import gi; gi.require_version("Mpq", "1.0");'
              'from gi.repository import Mpq; ch = Mpq.Pipe.new_for_child();'
              'ch.send_json("HELLO", 0, 0, "[1, 2]"); ch.close()')
    a, b = socket.socketpair()
    with a, b:
        env = dict(os.environ, MPQ_CHANNEL_FD=str(b.fileno()), MPQ_CHANNEL_KIND='pipe')
        proc = subprocess.Popen([PYTHON, '-c', script], env=env, pass_fds=(b.fileno(),))
        b.close()
        assert proc.wait(timeout=60) == 0
        line = a.makefile('rb').readline()
    assert line == f'["HELLO",{proc.pid},null,[1,2]]\n'.encode()


def test_second_new_for_child_fails(spawn):
    """A child has one pipe: opening it a second time fails (FAILED), and
    the first one still works."""
    pipe, proc = spawn(MPQ_CHILD, 'claim-twice')
    report = pipe.receive(-1)
    assert report.get_request() == 'REPORT'
    assert data_of(report) == {'second': ['mpq-error-quark', int(Mpq.Error.FAILED)]}
    wait_exit(proc)
    assert proc.get_successful()


def test_spawn_twice_fails(spawn):
    """A pipe has one child: a second spawn raises FAILED."""
    pipe, _ = spawn(MPQ_CHILD, 'send-then-wait', 0)
    with raises_mpq(Mpq.Error.FAILED):
        pipe.spawn(child_argv(MPQ_CHILD, 'send-then-wait', 0))


def test_child_end_cannot_spawn():
    """Only the parent end of a pipe can spawn."""
    parent, child = Mpq.Pipe.new_pair()
    assert child.props.role == Mpq.Role.CHILD
    with raises_mpq(Mpq.Error.FAILED):
        child.spawn(child_argv(MPQ_CHILD, 'send-then-wait', 0))
    parent.close()
    child.close()


def test_spawn_failure_does_not_hang():
    """Spawning a program that does not exist raises FAILED; the pipe then
    has no peer, so receive reports CLOSED instead of waiting forever."""
    pipe = Mpq.Pipe.new()
    with raises_mpq(Mpq.Error.FAILED):
        pipe.spawn(['/nonexistent/mpq-test-program'])
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    pipe.close()


def test_spawn_after_close_is_closed():
    """A closed pipe cannot spawn."""
    pipe = Mpq.Pipe.new()
    pipe.close()
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.spawn(child_argv(MPQ_CHILD, 'send-then-wait', 0))


def test_other_pipe_not_inherited(spawn):
    """A child spawned from pipe A does not inherit the unspawned end of
    pipe B: when B's own child exits, B sees the hang-up even though A's
    child is still alive."""
    pipe_a, proc_a = spawn(MPQ_CHILD, 'send-then-wait', 0)
    pipe_b = Mpq.Pipe.new()
    pipe_a2, proc_a2 = spawn(MPQ_CHILD, 'send-then-wait', 0)   # spawned while B's end exists
    pipe_b, proc_b = spawn(MPQ_CHILD, 'send-and-exit', 1, pipe=pipe_b)

    assert pipe_b.receive(-1).get_request() == Mpq.REQ_DO
    wait_exit(proc_b)
    with raises_mpq(Mpq.Error.CLOSED):
        # Bounded: a leaked copy of B's end in A2 would make this time out.
        got = pipe_b.receive(PROMPT_MS)
        pytest.fail(f'receive gave {got!r}, not CLOSED: B\'s end leaked into another child')

    # A and A2 were alive all along: they take EXIT and exit 0 (a dead
    # child would make the send fail with CLOSED).
    for pipe, proc in ((pipe_a, proc_a), (pipe_a2, proc_a2)):
        pipe.send('EXIT', 0, 0, None)
        wait_exit(proc)
        assert proc.get_successful()


def test_grandchild_does_not_hold_channel(spawn):
    """The child's end is close-on-exec once opened: a grandchild the child
    spawns does not keep the channel open, so the child's exit is seen."""
    pipe, proc = spawn(MPQ_CHILD, 'grandchild')
    report = pipe.receive(-1)
    assert report.get_request() == 'GRANDCHILD'
    grandchild = data_of(report)['pid']
    try:
        wait_exit(proc)
        with raises_mpq(Mpq.Error.CLOSED):
            got = pipe.receive(PROMPT_MS)
            pytest.fail(f'receive gave {got!r}, not CLOSED: the grandchild holds the channel')
    finally:
        os.kill(grandchild, signal.SIGKILL)


def test_spawn_with_launcher_keeps_launcher_setup(spawn):
    """spawn_with_launcher uses the caller's launcher (here, its environment
    and a stdout pipe) and still hands the child its end of the pipe."""
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDOUT_PIPE)
    launcher.setenv('MPQ_TEST_MARK', 'marked', True)
    script = ('import os, sys, json, gi; gi.require_version("Mpq", "1.0");'
              'from gi.repository import Mpq; ch = Mpq.Pipe.new_for_child();'
              'ch.send_json("ENV", 0, 0, json.dumps(os.environ["MPQ_TEST_MARK"]));'
              'print("stdout ok"); ch.close()')
    pipe = Mpq.Pipe.new()
    proc = pipe.spawn_with_launcher(launcher, [PYTHON, '-c', script])
    try:
        msg = pipe.receive(-1)
        assert (msg.get_request(), data_of(msg)) == ('ENV', 'marked')
        ok, out, _ = proc.communicate_utf8(None, None)
        assert ok and out == 'stdout ok\n'
        assert proc.get_successful()
    finally:
        pipe.close()
        proc.force_exit()



def test_pipe_properties():
    """Defaults of role, pid, max-message-size and send-timeout; setting a
    property notifies only when the value changes."""
    pipe = Mpq.Pipe.new()
    assert pipe.props.role == Mpq.Role.PARENT
    assert pipe.props.pid == os.getpid()
    assert pipe.props.max_message_size == Mpq.DEFAULT_MAX_MESSAGE_SIZE == 1024 * 1024
    assert pipe.props.send_timeout == 10000
    notified = []
    pipe.connect('notify::max-message-size', lambda obj, pspec: notified.append(pspec.name))
    pipe.connect('notify::send-timeout', lambda obj, pspec: notified.append(pspec.name))
    pipe.props.max_message_size = 4096
    pipe.props.max_message_size = 4096
    pipe.props.send_timeout = -1
    pipe.props.send_timeout = -1
    assert notified == ['max-message-size', 'send-timeout']
    assert (pipe.props.max_message_size, pipe.props.send_timeout) == (4096, -1)
    pipe.close()
