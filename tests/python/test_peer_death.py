# SPDX-License-Identifier: LGPL-2.1-or-later
"""A child that exits or is killed: nothing hangs, nothing sent is lost."""

import signal
import threading
import time

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (MPQ_CHILD, PROMPT_S, data_of, is_mpq_error, iterate_default_context,
                         raises_mpq, run_loop, wait_exit)

SENT = 5


def take_numbered(pipe, count):
    for i in range(count):
        msg = pipe.receive(-1)
        assert (msg.get_request(), data_of(msg)) == (Mpq.REQ_DO, {'i': i})


def assert_closed_promptly(pipe):
    """receive(-1) raises CLOSED, and soon (the test ending proves no hang)."""
    start = time.monotonic()
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    assert time.monotonic() - start < PROMPT_S


def assert_closed_everywhere(pipe):
    """After the hang-up every call is CLOSED, and closed is emitted once."""
    closed = []
    pipe.connect('closed', lambda ch: closed.append(ch))
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.send(Mpq.REQ_DO, 0, 0, None)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.send_json(Mpq.REQ_DO, 0, 0, '[1]')
    iterate_default_context()
    assert closed == [pipe]


@pytest.mark.parametrize('command', ['EXIT', 'KILL'])
def test_child_dies_while_parent_blocked(spawn, command):
    """The child sends messages, then, told to, exits normally or SIGKILLs
    itself while the parent is (most likely already) blocked in
    receive(-1): the messages come first, then CLOSED."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', SENT)
    take_numbered(pipe, SENT)
    pipe.send(command, 0, 0, None)
    assert_closed_promptly(pipe)
    wait_exit(proc)
    if command == 'KILL':
        assert proc.get_if_signaled() and proc.get_term_sig() == signal.SIGKILL
    else:
        assert proc.get_successful()
    assert_closed_everywhere(pipe)


@pytest.mark.parametrize('how', ['force_exit', 'SIGKILL', 'SIGTERM'])
def test_parent_kills_child_while_blocked(spawn, how):
    """The parent kills the child (Gio.Subprocess.force_exit or
    send_signal) from another thread while its main thread is blocked in
    receive(-1), which then raises CLOSED."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', SENT)
    take_numbered(pipe, SENT)
    about_to_block = threading.Event()

    def killer():
        about_to_block.wait()
        if how == 'force_exit':
            proc.force_exit()
        else:
            proc.send_signal(getattr(signal, how))

    thread = threading.Thread(target=killer)
    thread.start()
    about_to_block.set()
    try:
        assert_closed_promptly(pipe)
    finally:
        thread.join()
    wait_exit(proc)
    expected = signal.SIGTERM if how == 'SIGTERM' else signal.SIGKILL
    assert proc.get_if_signaled() and proc.get_term_sig() == expected
    assert_closed_everywhere(pipe)


def test_everything_sent_before_exit_is_received(spawn):
    """A child sends many messages (more than a socket buffer holds) and
    exits; the parent gets every one of them, in order, then CLOSED."""
    count = 3000
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', count)
    take_numbered(pipe, count)
    assert_closed_promptly(pipe)
    wait_exit(proc)
    assert proc.get_successful()


def test_killed_child_messages_kept(spawn):
    """Messages sent by a child that then SIGKILLs itself are all delivered
    before CLOSED, though the parent reads only after the death."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-kill', SENT)
    wait_exit(proc)
    assert proc.get_if_signaled() and proc.get_term_sig() == signal.SIGKILL
    take_numbered(pipe, SENT)
    assert_closed_promptly(pipe)


def test_closed_signal_after_death_in_main_loop(spawn):
    """With start(), a child's death gives its messages as signals, then
    closed, in the main loop."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', SENT)
    loop = GLib.MainLoop()
    events = []

    def on_message(ch, msg):
        events.append(data_of(msg)['i'])
        if len(events) == SENT:
            ch.send('KILL', 0, 0, None)

    def on_closed(ch):
        events.append('closed')
        loop.quit()

    pipe.connect('message-received', on_message)
    pipe.connect('closed', on_closed)
    pipe.start()
    run_loop(loop)
    assert events == list(range(SENT)) + ['closed']
    iterate_default_context()
    assert events[-1] == 'closed' and events.count('closed') == 1
    wait_exit(proc)
    assert proc.get_if_signaled()


def test_pending_receive_async_fails_on_death(spawn):
    """A receive_async pending when the child is killed completes with
    CLOSED."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', 0)
    loop = GLib.MainLoop()
    results = []

    def on_done(source, result):
        try:
            results.append(source.receive_finish(result))
        except GLib.Error as error:
            results.append(error)
        loop.quit()

    pipe.receive_async(Gio.Cancellable(), on_done)
    proc.force_exit()
    run_loop(loop)
    assert len(results) == 1 and is_mpq_error(results[0], Mpq.Error.CLOSED), results


def test_send_to_dead_child_is_closed(spawn):
    """Sending to a child that already exited raises CLOSED (no SIGPIPE
    kills the parent)."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', 0)
    wait_exit(proc)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.send(Mpq.REQ_DO, 0, 0, None)


def test_parent_close_is_seen_by_child(spawn):
    """close() in the parent is a hang-up for the child: its receive(-1)
    raises CLOSED and it exits 0 (mpq_child.py's rule); the parent's own
    calls are CLOSED from then on."""
    pipe, proc = spawn(MPQ_CHILD, 'send-then-wait', 0)
    pipe.close()
    wait_exit(proc)
    assert proc.get_successful()
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.send(Mpq.REQ_DO, 0, 0, None)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.send_message(Mpq.Message.new(Mpq.REQ_DO, 0, 0, None))
