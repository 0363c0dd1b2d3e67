# SPDX-License-Identifier: LGPL-2.1-or-later
"""Binary payloads on pipes (and, inline, on queues) from Python (issue 11; docs/protocol.md,
"Payloads"): GLib.Bytes in and out; to a child that uses the library by
descriptor, through a line limit that inline bytes could not pass; to a
plain child (children/payload_child.py) inline as base64, since it never
said it takes descriptors; and what a hostile child sends with
descriptors costs only that child: a clear PROTOCOL error after the good
messages before it, and every descriptor it sent closed in the parent.
"""

import hashlib
import json
import os

import pytest
from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (MPQ_CHILD, PROMPT_MS, child_argv, data_of, error_text, fd_targets,
                         is_mpq_error, new_fds, pid_of, raises_mpq, read_line,
                         receive_until_error, remember_pid, take_routed, wait_exit)

PLAIN = 'payload_child.py'
MIB = 1 << 20


def pattern(size):
    return bytes(i % 251 for i in range(size))


def test_bytes_in_and_out_of_a_pair():
    parent, child = Mpq.Pipe.new_pair()
    for size in (0, 10, 70_000, 5 * MIB):
        data = os.urandom(size)
        parent.send_bytes('BLOB', 0, 0, GLib.Bytes.new(data))
        msg = child.receive(PROMPT_MS)
        assert msg.get_data() is None
        assert msg.get_bytes().get_data() == data
    msg = Mpq.Message.new_with_bytes('DO', 0, 0, None, GLib.Bytes.new(b'\x00\xff'))
    assert json.loads(msg.to_json())[4] == {'base64': 'AP8='}


def test_library_child_echoes_by_descriptor(spawn):
    """16 MiB to a Python child that uses the library and back, through a
    line limit of 4 KiB: only a descriptor gets it there."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1, max_message_size=4096)
    for size in (100, 16 * MIB):
        data = os.urandom(size)
        pipe.send_bytes(Mpq.REQ_DO, 0, 0, GLib.Bytes.new(data))
        msg = pipe.receive(PROMPT_MS)
        assert msg.get_sender_pid() == pid_of(proc)
        assert msg.get_bytes().get_data() == data
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)
    assert proc.get_successful()


def test_plain_child_gets_payloads_inline(spawn):
    """A child without the library never says it takes descriptors: its
    payloads come inline as base64, whatever their size; one too large
    for max-message-size inline is refused (TOO_LARGE), nothing sent."""
    pipe, proc = spawn(PLAIN, 'plain-echo')
    for size in (10, 300_000):
        data = os.urandom(size)
        pipe.send_bytes(Mpq.REQ_DO, 0, 0, GLib.Bytes.new(data))
        answer = data_of(pipe.receive(PROMPT_MS))
        assert answer == {'size': size, 'sha256': hashlib.sha256(data).hexdigest(),
                          'how': 'base64'}
    with raises_mpq(Mpq.Error.TOO_LARGE):
        pipe.send_bytes(Mpq.REQ_DO, 0, 0, GLib.Bytes.new(bytes(2 * MIB)))
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)
    assert proc.get_successful()


@pytest.mark.parametrize('size', [300_000, 16 * MIB])
def test_queue_carries_payloads(size):
    """A child that uses the library takes a payload from the parent's
    queue and puts it back, whole: through a line limit of 4 KiB only a
    descriptor gets 16 MiB there and back."""
    queue = Mpq.Queue.new(0)
    queue.props.max_message_size = 4096
    try:
        proc = remember_pid(queue.spawn(child_argv('queue_child.py', 'echo-bytes')))
        data = os.urandom(size)
        queue.send_message(Mpq.Message.new_with_bytes('BLOB', 0, 0, None, GLib.Bytes.new(data)))
        [answer] = take_routed(queue, 1)      # not the parent's own BLOB
        assert answer.get_request() == Mpq.REQ_FINISHED
        assert answer.get_sender_pid() == pid_of(proc)
        assert answer.get_bytes().get_data() == data
        wait_exit(proc)
        assert proc.get_successful()
    finally:
        queue.close()


def spawn_queue_child(queue, *args):
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDOUT_PIPE)
    proc = remember_pid(queue.spawn_with_launcher(launcher, child_argv(PLAIN, *args)))
    proc.mpq_stdout = Gio.DataInputStream.new(proc.get_stdout_pipe())
    return proc


def test_plain_queue_worker_gets_payloads_inline():
    """A queue worker without the library never says it takes descriptors:
    the server gives it a payload inline, even one that came by
    descriptor; and such a worker's own sealed memfd reaches the parent."""
    queue = Mpq.Queue.new(0)
    try:
        proc = spawn_queue_child(queue, 'plain-echo')
        for size in (10, 300_000):
            data = os.urandom(size)
            queue.send_bytes(Mpq.REQ_DO, 0, 0, GLib.Bytes.new(data))
            [answer] = take_routed(queue, 1)
            assert data_of(answer) == {'size': size, 'sha256': hashlib.sha256(data).hexdigest(),
                                       'how': 'base64'}
        queue.send(Mpq.REQ_DIE, 0, 0, None)
        wait_exit(proc)
        assert proc.get_successful()

        sender = spawn_queue_child(queue, 'send', 'memfd:100000:all:100000', 'good:AFTER')
        assert json.loads(read_line(sender.mpq_stdout)) == {'hung_up': False}
        blob, after = take_routed(queue, 2)
        assert blob.get_bytes().get_data() == pattern(100_000)
        assert after.get_request() == 'AFTER'
        wait_exit(sender)
    finally:
        queue.close()


QUEUE_HOSTILE = {
    'unsealed memfd': ['memfd:4096:none:4096'],
    'sparse memfd': ['sparse:1073741824:all:1073741824'],
    'fd line without a descriptor': ['fdline'],
    'nine descriptors at once': ['many:9'],
    'more than 64 payloads held': ['memfd:4096:all:4096'] * 65,
}


@pytest.mark.parametrize('name', list(QUEUE_HOSTILE))
def test_hostile_queue_payload_drops_only_that_child(name):
    """What a queue child sends with descriptors is checked as on a pipe,
    and it may hold at most 64 payloads by descriptor in the queue: past
    that, or any bad one, it is dropped; what it put before stays; no
    descriptor it sent stays open once the queue is closed."""
    targets = fd_targets()
    queue = Mpq.Queue.new(0)
    try:
        proc = spawn_queue_child(queue, 'send', 'good:BEFORE', *QUEUE_HOSTILE[name], 'good:AFTER')
        assert json.loads(read_line(proc.mpq_stdout)) == {'hung_up': True}, name
        wait_exit(proc)
        got = []
        while (msg := queue.receive(0)) is not None:
            got.append(msg.get_request())
        assert got[0] == 'BEFORE' and 'AFTER' not in got, got
        if name == 'more than 64 payloads held':
            assert got == ['BEFORE'] + ['BLOB'] * 64, got
        proc.mpq_stdout.close(None)
    finally:
        queue.close()
    del got
    left = {fd: what for fd, what in new_fds(targets).items()
            if what.startswith(('/memfd:', 'pipe:', 'socket:'))}
    assert left == {}, f'{name}: left open {left}'


def spawn_sender(spawn, *specs):
    launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDOUT_PIPE)
    pipe, proc = spawn(PLAIN, 'send', 'good:BEFORE', *specs, 'good:AFTER', launcher=launcher)
    proc.mpq_stdout = Gio.DataInputStream.new(proc.get_stdout_pipe())
    return pipe, proc


def test_plain_child_sends_a_sealed_memfd(spawn):
    """The protocol works for a plain worker that sends descriptors: a
    sealed memfd of the size its line says arrives as the message's bytes."""
    pipe, proc = spawn_sender(spawn, 'memfd:100000:all:100000')
    messages = [pipe.receive(PROMPT_MS) for _ in range(3)]
    assert [m.get_request() for m in messages] == ['BEFORE', 'BLOB', 'AFTER']
    assert messages[1].get_bytes().get_data() == pattern(100_000)


HOSTILE = {
    'unsealed memfd': ['memfd:4096:none:4096'],
    'memfd sealed against writing only': ['memfd:4096:write:4096'],
    'memfd of another size': ['memfd:4096:all:8192'],
    'sparse memfd (1 GiB of holes)': ['sparse:1073741824:all:1073741824'],
    'a pipe for a memfd': ['pipe'],
    'fd line without a descriptor': ['fdline'],
    'nine descriptors at once': ['many:9'],
    'descriptors without their lines': ['orphans:40'],
    'bad base64': ['b64:!!!!'],
    'base64 without padding': ['b64:AP8'],
    'fd of size zero': ['raw:' + b'["BLOB",1,null,null,{"fd":0}]\n'.hex()],
    'payload of another kind': ['raw:' + b'["BLOB",1,null,null,{"url":"x"}]\n'.hex()],
    'two payloads': ['raw:' + b'["BLOB",1,null,null,{"base64":""},{"base64":""}]\n'.hex()],
}


@pytest.mark.parametrize('name', list(HOSTILE))
def test_hostile_payload_costs_only_that_child(spawn, name):
    targets = fd_targets()
    pipe, proc = spawn_sender(spawn, *HOSTILE[name])
    messages, error = receive_until_error(pipe)
    assert [m.get_request() for m in messages] == ['BEFORE'], name
    assert is_mpq_error(error, Mpq.Error.PROTOCOL), f'{name}: {error_text(error)}'
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)
    assert json.loads(read_line(proc.mpq_stdout))['hung_up']
    wait_exit(proc)
    pipe.close()
    del messages
    proc.mpq_stdout.close(None)
    # Every descriptor the child sent is closed again (memfds, a pipe), and
    # so are the channel and the child's stdout. (GLib may still hold a
    # pidfd to reap the child: not ours, not counted.)
    left = {fd: what for fd, what in new_fds(targets).items()
            if what.startswith(('/memfd:', 'pipe:', 'socket:'))}
    assert left == {}, f'{name}: left open {left}'
