# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sending to a child that does not read: send-timeout, whole messages."""

import json
import time

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import PROMPT_S, RAW_CHILD, is_mpq_error, run_loop, wait_exit

# Large enough for writes to be cut short when the socket is full (a
# unix socket takes small writes whole or not at all).
PAD = 'p' * 100_000


def read_all(stream):
    chunks = []
    while True:
        data = stream.read_bytes(65536, None).get_data()
        if not data:
            return b''.join(chunks)
        chunks.append(data)


def fill_until_timeouts(pipe, timeouts=3):
    """Sends numbered messages until @timeouts sends raised TIMED_OUT.
    Returns the numbers of those that were sent, the next number, and how
    long each failed send took."""
    sent, failures, n = [], [], 0
    while len(failures) < timeouts:
        assert n < 100_000, 'the socket never filled up'
        start = time.monotonic()
        try:
            assert pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'n': n, 'pad': PAD}))
            sent.append(n)
        except GLib.Error as error:
            assert is_mpq_error(error, Mpq.Error.TIMED_OUT), error
            failures.append(time.monotonic() - start)
        n += 1
    return sent, n, failures


@pytest.mark.parametrize('then', ['send', 'close', 'main-loop'])
def test_send_timeout_sends_whole_messages_or_nothing(spawn, then):
    """A child that does not read lets the socket fill; send waits
    send-timeout ms and raises TIMED_OUT. Once the child reads, it gets
    exactly the messages whose send succeeded, each whole, in order: a
    partly written one is completed by the next send, by close(), or by
    the main loop of a started pipe."""
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDIN_PIPE |
                                          Gio.SubprocessFlags.STDOUT_PIPE)
    pipe = Mpq.Pipe.new()
    pipe.props.send_timeout = 100
    assert pipe.props.send_timeout == 100
    pipe, proc = spawn(RAW_CHILD, 'collect', pipe=pipe, launcher=launcher)

    sent, n, failures = fill_until_timeouts(pipe)
    # At least the time-out; the upper bound only turns a hang into a failure.
    assert all(0.09 <= took < PROMPT_S for took in failures), failures

    go = f'go {len(sent)}\n' if then == 'main-loop' else 'go\n'
    proc.get_stdin_pipe().write_all(go.encode(), None)
    proc.get_stdin_pipe().close(None)
    pipe.props.send_timeout = 20_000
    if then == 'send':
        pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'n': n, 'pad': PAD}))
        sent.append(n)
        pipe.send(Mpq.REQ_DIE, 0, 0, None)
    elif then == 'close':
        pipe.close()
    else:
        # Only the started pipe's main loop can finish a partly written
        # message now; the child exits once it has read them all.
        loop = GLib.MainLoop()
        proc.wait_async(None, lambda p, result: loop.quit())
        pipe.start()
        run_loop(loop)

    report = json.loads(read_all(proc.get_stdout_pipe()))
    assert report['bad'] == []
    assert report['n'] == sent
    wait_exit(proc)
    assert proc.get_successful()


def test_send_timeout_zero_never_waits(spawn):
    """With send-timeout 0 a send into a full socket fails at once
    (the default would wait 10 s)."""
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDIN_PIPE |
                                          Gio.SubprocessFlags.STDOUT_PIPE)
    pipe = Mpq.Pipe.new()
    pipe.props.send_timeout = 0
    pipe, proc = spawn(RAW_CHILD, 'collect', pipe=pipe, launcher=launcher)
    sent, _, failures = fill_until_timeouts(pipe, timeouts=1)
    # Half the default send-timeout: the one bound that tells "did not
    # wait" from "waited the default", with room for a loaded machine.
    assert sent and failures[0] < 5
    proc.force_exit()
    wait_exit(proc)
