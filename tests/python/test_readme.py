# SPDX-License-Identifier: LGPL-2.1-or-later
"""pymulproc's own pipe tests, redone with real child processes."""

import json
import os

from gi.repository import Mpq

from mpq_helpers import MPQ_CHILD, data_of, pid_of, raises_mpq, same_pid, wait_exit


def test_simple_pipe_communication(spawn):
    """The README example: the child sends REQ_TEST_CHILD and exits; the
    parent waits for it and only then receives. What a writer sent before
    exiting is still there to read."""
    parent, child_process = spawn(MPQ_CHILD, 'send-test-child')

    child_process.wait(None)
    assert child_process.get_successful()

    message = parent.receive(-1)
    request_offset = Mpq.S_PID_OFFSET - 1
    wire = message.to_json()
    assert json.loads(wire)[request_offset] == Mpq.REQ_TEST_CHILD
    assert message.get_request() == Mpq.REQ_TEST_CHILD
    # The child's pid, if it could be read before the child was gone.
    same_pid(child_process, message.get_sender_pid())
    # After the last message, the hang-up.
    with raises_mpq(Mpq.Error.CLOSED):
        parent.receive(-1)


def test_pipe_both_ways(spawn):
    """The parent sends REQ_TEST_PARENT, the child answers REQ_TEST_CHILD;
    each side sees the other's real pid as sender, and the child sees its
    end as a CHILD pipe with MPQ_CHANNEL_KIND=pipe."""
    parent, proc = spawn(MPQ_CHILD, 'answer-parent')
    pid = pid_of(proc)
    parent_pid = os.getpid()

    assert parent.props.role == Mpq.Role.PARENT
    assert parent.props.pid == parent_pid

    parent.send(Mpq.REQ_TEST_PARENT, 0, pid, None)
    answer = parent.receive(-1)

    assert answer.get_request() == Mpq.REQ_TEST_CHILD
    assert answer.get_sender_pid() == pid
    assert answer.get_recipient_pid() == parent_pid
    assert answer.is_for(parent_pid)
    assert not answer.is_for(pid)
    assert data_of(answer) == {
        'pid': pid,
        'ppid': parent_pid,
        'got_sender': parent_pid,
        'got_recipient': pid,
        'role': int(Mpq.Role.CHILD),
        'channel_pid': pid,
        'kind': 'pipe',
    }

    parent.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)
    assert proc.get_successful()
