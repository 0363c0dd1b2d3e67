# SPDX-License-Identifier: LGPL-2.1-or-later
"""pymulproc's own test suite, scenario by scenario, through the override.

pymulproc (github.com/d2gex/pymulproc) tests itself in tests/ with the
tests named below. Each test here is written anew for this project (none
of pymulproc's code is copied); it runs the scenario of the pymulproc test
it is named after, with pymulproc's idioms: ``send``, ``receive (func,
block)`` returning ``False`` when there is nothing, messages indexed with
``mpq_protocol``'s offsets, ``queue_empty``, ``queue_join``,
``multiprocessing.current_process ().pid``, ``.pid`` of a channel's end,
a target function run in a child process. What a pymulproc user changes:

- Making the channel: ``factory.PipeCommunication ().parent ()`` is
  ``Mpq.Pipe ()``; ``factory.QueueCommunication (max_size=n).parent
  (timeout=t, loops=k)`` is ``Mpq.Queue (max_size=n, put_timeout=t * 1000,
  put_attempts=k)`` (milliseconds; ``put_attempts`` is pymulproc's
  ``loops``).
- The spawning line: ``multiprocessing.Process (target=f, args=a)`` and its
  ``start ()`` are ``channel.spawn_function (f, args=a)``, which starts the
  child at once and hands the target the child's end as first argument
  (pymulproc's targets got the factory and called its ``child ()``);
  ``join ()`` is ``wait ()``; ``exitcode`` is read as :func:`exitcode` does.
- No ``time.sleep``: pymulproc's tests sleep 0.1 s after a put for
  ``multiprocessing.Queue``'s feeder thread, 1 s for children to answer,
  and its children sleep between polls. Here a send is in the queue when it
  returns, ``receive (block=True)`` waits for what comes, and the polling
  loops of pymulproc's tests (``while not message: message = receive ()``)
  block in ``receive`` with a time-out that only turns a hang into a
  failure (``HANG_S``).

The mapping, pymulproc's test → ours:

tests/test_pipe_communication.py
  test_local_pipe_communication → test_local_pipe_communication: a child
    (a nested function, as theirs) sends REQ_TEST_PARENT, the parent
    receives a 4-element message with that request from the child's pid and
    answers REQ_TEST_CHILD, which the child receives; the child exits 0
    only if it did.

tests/test_queue_communication.py
  test_children_to_parent_communication → the same name: five children
    each put the value 3 (no recipient) and exit 0; the parent drains the
    queue while not ``queue_empty ()`` with ``receive ()``, gets 15 from five
    senders, and ``queue_join ()`` returns.
  test_parent_full_duplex_communication_with_children_stress_test →
    test_parent_full_duplex_communication_with_children_stress_test
    [min-max], ten rounds with fixed (min, max) children counts in place of
    random ones, the bounds (1 and 10) included: ``max`` children take
    from the queue what a filter says is for them (their pid or nobody);
    the parent sends DO to child ``min`` only, receives, with a filter for
    its own pid, exactly that child's identifier, finds the queue empty,
    sends one DIE per child; every child exits 0 and ``queue_join ()``
    returns.

tests/test_queue_operations.py
  test_queue_api_params → test_queue_api_params: theirs mocks
    ``parent.conn.put`` (internals); ours checks what the mock stood for:
    (1) the message put is ``[REQ_TEST_PARENT, parent.pid, None, None]``
    (what ``send`` returns and what ``receive`` takes), and a send into a
    full queue waits the configured ``put_timeout`` before it fails (at
    least 300 ms, three times the default); (2) ``put_attempts`` is kept
    (theirs: ``parent.loops == 20``) and a send into a full queue fails
    with ``Mpq.Error.FULL`` (theirs: ``QueuesCommunicationError``) only
    after all 20 attempts (at least 20 × ``put_timeout``, twice what the
    default 10 attempts take).
    + test_queue_api_params_in_a_child (ours; pymulproc's ``child ()``
    takes the same ``timeout`` and ``loops``): the same from a child's end.
  test_receive_nothing → the same name: an empty queue is
    ``queue_empty ()`` and ``receive ()`` is ``False``. (Theirs asks
    ``conn.empty ()``; ours ``queue_empty ()``, the API's.)
  test_send_and_receive_successfully → the same name: after ``send`` the
    queue is not empty; ``receive ()`` takes the message (request FINISHED)
    and the queue is empty.
  test_receive_do_not_remove_message_not_targeted_to_us → the same name: a
    message for pid 1122 refused by ``receive (func=lambda x: False)``
    (``False``) stays in the queue; ``receive ()`` then takes it whole:
    FINISHED, our pid, 1122.
  test_send_thows_exception_queue_full → the same name: with ``max_size=1``
    the second send raises ``GLib.Error`` ``Mpq.Error.FULL``; nothing of it
    was put.
  test_receive_count_tasks_done_properly → the same name: a message
    refused then taken counts once: the queue is empty after, and
    ``queue_join ()`` returns (it times out while the message waits).
  test_receive_blocking_when_block_false → the same name: ``receive ()`` on
    an empty queue is ``False`` at once; ``receive (block=True)`` waits
    (with ``timeout=0.3`` it returns ``False`` no sooner than 0.3 s) and
    returns the message a child puts; ``queue_join ()`` returns.
  test_queue_operations (up to release 0.1.1, before it was split into the
    six tests above; first in tests/test_queues_communication.py) →
    test_queue_operations: its steps (1) to (6) in one queue's life, with
    the positional ``receive (None)`` and ``receive (lambda x: True)`` of
    its first versions.
"""

import multiprocessing
import sys
import time

from gi.repository import GLib, Mpq
from gi.repository.Mpq import mpq_protocol
import pytest

from mpq_helpers import raises_mpq

# Only turns a hang into a failure; never decides a pass.
HANG_S = 60


def exitcode(proc):
    """multiprocessing.Process.exitcode of a waited-for Gio.Subprocess:
    the exit status, or minus the signal that killed it."""
    if proc.get_if_signaled():
        return -proc.get_term_sig()
    return proc.get_exit_status()


@pytest.fixture
def procs():
    """The children a test spawned; those still running at teardown (a
    failed test) are killed and reaped."""
    started = []
    yield started
    for proc in started:
        proc.force_exit()
        proc.wait()


def receive_until(channel, func=None):
    """pymulproc's ``while not message: message = channel.receive (func)``,
    blocking in receive instead of spinning, and failing after HANG_S."""
    deadline = time.monotonic() + HANG_S
    message = False
    while not message:
        left = deadline - time.monotonic()
        assert left > 0, 'nothing came: hung'
        message = channel.receive(func=func, block=True, timeout=left)
    return message


# --- tests/test_pipe_communication.py ------------------------------------

def test_local_pipe_communication(procs):
    parent = Mpq.Pipe()

    # A nested function, as pymulproc's: it uses no variable of the test
    # (only the module's), so spawn_function rebuilds it in the child.
    def call_child(child):
        child.send(mpq_protocol.REQ_TEST_PARENT)
        answer = child.receive(block=True, timeout=HANG_S)
        if not answer or len(answer) != 4 or \
                answer[mpq_protocol.S_PID_OFFSET - 1] != mpq_protocol.REQ_TEST_CHILD:
            sys.exit(1)     # the parent's exitcode check sees it

    child_process = parent.spawn_function(call_child)
    procs.append(child_process)
    child_pid = int(child_process.get_identifier())   # it waits for us: alive

    message = receive_until(parent)
    assert parent.pid == multiprocessing.current_process().pid
    assert len(message) == 4
    assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_TEST_PARENT
    assert message[mpq_protocol.S_PID_OFFSET] == child_pid
    assert message[mpq_protocol.R_PID_OFFSET] is None
    parent.send(mpq_protocol.REQ_TEST_CHILD)
    child_process.wait()
    assert exitcode(child_process) == 0


# --- tests/test_queue_communication.py -----------------------------------

def call_child(channel, identifier, parent_pid, data):
    """A child of the queue tests. Given @data, it puts it for anyone and
    ends. Else it takes, with a filter, what is for it (its pid) or for
    everyone (no recipient): on a DIE it ends; on anything else it answers
    the parent with its @identifier. What the filter refuses goes back to
    the end of the queue for the others."""
    if data:
        channel.send(mpq_protocol.REQ_FINISHED, data=data)
        return

    my_pid = multiprocessing.current_process().pid
    assert channel.pid == my_pid

    def is_for_me(message):
        return message[mpq_protocol.R_PID_OFFSET] in (my_pid, None)

    while True:
        # No time-out: if the parent dies, receive raises (CLOSED) and the
        # child exits 1.
        message = channel.receive(func=is_for_me, block=True)
        if not message:
            continue
        if message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_DIE:
            return
        channel.send(mpq_protocol.REQ_FINISHED, recipient_pid=parent_pid, data=identifier)


def test_children_to_parent_communication(procs):
    parent = Mpq.Queue()
    parent_pid = multiprocessing.current_process().pid

    val = 3
    child_processes = []
    for offset in range(5):
        child_process = parent.spawn_function(call_child, args=(offset + 1, parent_pid, val))
        procs.append(child_process)
        child_processes.append(child_process)

    for child in child_processes:
        child.wait()
        assert exitcode(child) == 0

    # What a child put before it exited is in the queue: queue_empty ()
    # is False until the last of the five was taken.
    counter = 0
    senders = set()
    data_offset = mpq_protocol.S_PID_OFFSET + 2
    while not parent.queue_empty():
        message = parent.receive()
        assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
        assert message[mpq_protocol.R_PID_OFFSET] is None
        senders.add(message[mpq_protocol.S_PID_OFFSET])
        counter += message[data_offset]

    assert parent.queue_join(timeout=HANG_S)
    assert counter == val * len(child_processes)
    assert len(senders) == len(child_processes)


def parent_full_duplex_communication_with_children(procs, min_processes, max_processes):
    parent = Mpq.Queue()
    parent_pid = multiprocessing.current_process().pid

    children = []
    for offset in range(max_processes):
        process = parent.spawn_function(call_child, args=(offset + 1, parent_pid, None))
        procs.append(process)
        # The children wait for a DIE: alive, their pid is still there.
        children.append({'process': process, 'pid': int(process.get_identifier())})

    # Work for child number min_processes only.
    identifier = min_processes
    parent.send(mpq_protocol.REQ_DO, recipient_pid=children[identifier - 1]['pid'])

    # The other children meet the DO, and then the answer, and put them
    # back: the parent's filter takes only what is addressed to it.
    message = receive_until(parent, lambda sms: sms[mpq_protocol.R_PID_OFFSET] == parent_pid)
    assert message[mpq_protocol.S_PID_OFFSET + 2] == identifier
    assert message[mpq_protocol.S_PID_OFFSET] == children[identifier - 1]['pid']
    # The DO was taken by its child and the answer by us: nothing else.
    assert parent.queue_empty()

    for _ in children:
        parent.send(mpq_protocol.REQ_DIE)
    for child in children:
        child['process'].wait()
        assert exitcode(child['process']) == 0

    # Each child took one DIE: every message was taken.
    assert parent.queue_empty()
    assert parent.queue_join(timeout=HANG_S)


# pymulproc draws ten (min, max) with min in 1..5 and max in min..10 at
# random; these ten are fixed, so that a failure is repeated, and hold the
# bounds: one child, ten children, the first, the last, the middle.
FULL_DUPLEX_ROUNDS = [(1, 1), (1, 10), (5, 5), (5, 10), (2, 3),
                      (3, 7), (4, 4), (1, 2), (2, 9), (5, 6)]


@pytest.mark.parametrize('min_p,max_p', FULL_DUPLEX_ROUNDS,
                         ids=[f'{a}-{b}' for a, b in FULL_DUPLEX_ROUNDS])
def test_parent_full_duplex_communication_with_children_stress_test(procs, min_p, max_p):
    parent_full_duplex_communication_with_children(procs, min_p, max_p)


# --- tests/test_queue_operations.py --------------------------------------

@pytest.fixture
def test_comm():
    return Mpq.Queue(put_timeout=100)     # pymulproc's parent (timeout=0.1)


def fill_and_time_full_send(queue):
    """Fills @queue (max_size 1) and returns how long the next send took
    to fail with Mpq.Error.FULL; leaves the one message in."""
    queue.send(mpq_protocol.REQ_FINISHED)
    with raises_mpq(Mpq.Error.FULL):
        start = time.monotonic()
        try:
            queue.send(mpq_protocol.REQ_TEST_PARENT)
        finally:
            spent = time.monotonic() - start
    assert queue.receive()[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert queue.queue_empty()          # nothing of the failed send was put
    return spent


def test_queue_api_params():
    # (1) The message put is [request, own pid, None, None].
    parent = Mpq.Queue(put_timeout=20)
    sent = parent.send(mpq_protocol.REQ_TEST_PARENT)
    message = [mpq_protocol.REQ_TEST_PARENT, parent.pid, None, None]
    assert parent.pid == multiprocessing.current_process().pid
    assert sent == message
    assert parent.receive() == message

    # (1) put_timeout is what one attempt waits for room: 300 ms, three
    # times the default (a lower bound: no load makes a wait shorter).
    parent = Mpq.Queue(max_size=1, put_timeout=300, put_attempts=1)
    assert fill_and_time_full_send(parent) >= 0.3

    # (2) put_attempts is kept and every attempt is made before FULL:
    # 20 × 25 ms, twice what the default 10 attempts would wait.
    parent = Mpq.Queue(max_size=1, put_timeout=25, put_attempts=20)
    assert parent.props.put_attempts == 20
    assert fill_and_time_full_send(parent) >= 20 * 0.025


def full_send_from_child(channel, put_timeout, put_attempts):
    channel.props.put_timeout = put_timeout
    channel.props.put_attempts = put_attempts
    start = time.monotonic()
    try:
        channel.send(mpq_protocol.REQ_TEST_CHILD)
    except GLib.Error as error:
        spent = time.monotonic() - start
        assert error.matches(Mpq.error_quark(), Mpq.Error.FULL), error.message
        assert spent >= put_timeout * put_attempts / 1000, spent
    else:
        raise AssertionError('a send into a full queue succeeded')


def test_queue_api_params_in_a_child(procs):
    parent = Mpq.Queue(max_size=1)
    parent.send(mpq_protocol.REQ_FINISHED)
    # 4 × 150 ms: more than the default 10 × 100 ms would make if the
    # attempts were lost, more than 4 × 100 ms if the time-out were.
    child_process = parent.spawn_function(full_send_from_child, args=(150, 4))
    procs.append(child_process)
    child_process.wait()
    assert exitcode(child_process) == 0
    # Only the parent's message was ever in the queue.
    assert parent.receive()[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert parent.queue_empty()
    assert parent.queue_join(timeout=HANG_S)


def test_receive_nothing(test_comm):
    assert test_comm.queue_empty()
    message = test_comm.receive()
    assert message is False


def test_send_and_receive_successfully(test_comm):
    test_comm.send(mpq_protocol.REQ_FINISHED)
    assert not test_comm.queue_empty()

    message = test_comm.receive()
    assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert test_comm.queue_empty()


def test_receive_do_not_remove_message_not_targeted_to_us(test_comm):
    pid = multiprocessing.current_process().pid
    recipient_pid = 1122

    test_comm.send(mpq_protocol.REQ_FINISHED, recipient_pid=recipient_pid)
    assert not test_comm.queue_empty()

    # Refused: False, and the message is back in the queue.
    message = test_comm.receive(func=lambda x: False)
    assert message is False
    assert not test_comm.queue_empty()

    message = test_comm.receive()
    assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert message[mpq_protocol.S_PID_OFFSET] == pid
    assert message[mpq_protocol.R_PID_OFFSET] == recipient_pid
    assert test_comm.queue_empty()


def test_send_thows_exception_queue_full():
    test_comm = Mpq.Queue(max_size=1, put_timeout=100)
    test_comm.send(mpq_protocol.REQ_FINISHED)
    assert not test_comm.queue_empty()
    with raises_mpq(Mpq.Error.FULL):
        test_comm.send(mpq_protocol.REQ_FINISHED)

    # Nothing of the failed send is in the queue.
    assert test_comm.receive()
    assert test_comm.queue_empty()
    assert test_comm.receive() is False


def test_receive_count_tasks_done_properly(test_comm):
    test_comm.send(mpq_protocol.REQ_FINISHED)

    test_comm.receive(func=lambda x: False)
    assert not test_comm.queue_empty()
    # The refused message still counts as not taken: join would wait.
    with raises_mpq(Mpq.Error.TIMED_OUT):
        test_comm.queue_join(timeout=0)

    test_comm.receive(func=lambda x: True)
    assert test_comm.queue_empty()

    # Taken once, counted once: join returns (it would time out if the
    # put-back had counted as a second message, or the take not at all).
    assert test_comm.queue_join(timeout=HANG_S)


def put_finished(channel):
    channel.send(mpq_protocol.REQ_FINISHED)


def test_receive_blocking_when_block_false(procs):
    # (1) Not blocking: nothing there, False at once.
    parent = Mpq.Queue(put_timeout=100)
    message = parent.receive()
    assert message is False

    # block=True waits: with nobody to send, for all its time-out (a lower
    # bound, which no load makes shorter).
    start = time.monotonic()
    assert parent.receive(block=True, timeout=0.3) is False
    assert time.monotonic() - start >= 0.3
    assert parent.receive() is False

    # (2) Blocking until a child puts something. (pymulproc's child
    # sleeps 1 s first to be late; ours is late by its own start-up,
    # and whenever it comes, block=True must return its message.)
    child_process = parent.spawn_function(put_finished)
    procs.append(child_process)
    message = parent.receive(block=True, timeout=HANG_S)
    assert message is not False
    assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert message[mpq_protocol.S_PID_OFFSET] != parent.pid
    # If the parent had not taken it, join would wait here.
    assert parent.queue_join(timeout=HANG_S)
    child_process.wait()
    assert exitcode(child_process) == 0


def test_queue_operations():
    pid = multiprocessing.current_process().pid
    test_comm = Mpq.Queue(put_timeout=100)

    # (1) Nothing in the queue: receive is False.
    assert test_comm.queue_empty()
    assert test_comm.receive(None) is False

    # (2) A send adds a message.
    test_comm.send(mpq_protocol.REQ_FINISHED)
    assert not test_comm.queue_empty()

    # (3) Taken when the function says yes.
    message = test_comm.receive(lambda x: True)
    assert message[mpq_protocol.S_PID_OFFSET - 1] == mpq_protocol.REQ_FINISHED
    assert test_comm.queue_empty()

    # (4) Left in the queue, unchanged, when it says no.
    recipient_pid = 1122
    test_comm.send(mpq_protocol.REQ_FINISHED, recipient_pid=recipient_pid)
    assert not test_comm.queue_empty()
    assert test_comm.receive(lambda x: False) is False
    assert not test_comm.queue_empty()
    message = test_comm.receive(lambda x: True)
    assert message == [mpq_protocol.REQ_FINISHED, pid, recipient_pid, None]
    assert test_comm.queue_empty()

    # (5) A full queue: the send fails.
    test_comm = Mpq.Queue(max_size=1, put_timeout=100)
    test_comm.send(mpq_protocol.REQ_FINISHED)
    assert not test_comm.queue_empty()
    with raises_mpq(Mpq.Error.FULL):
        test_comm.send(mpq_protocol.REQ_FINISHED)

    # (6) What was taken, after yes and no alike, is counted: join returns.
    test_comm.receive(lambda x: True)
    assert test_comm.queue_empty()
    assert test_comm.queue_join(timeout=HANG_S)
