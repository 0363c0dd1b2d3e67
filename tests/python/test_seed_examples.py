# SPDX-License-Identifier: LGPL-2.1-or-later
"""The two examples of pymulproc's README (shared/seed), run as written.

What changed from the README, line by line, and nothing else:

- ``from pymulproc import factory, mpq_protocol`` became the import of
  Mpq and of its ``mpq_protocol``, and ``factory`` is the two-line
  stand-in below: pymulproc made its channels with a factory, the override
  with ``Mpq.Pipe ()`` / ``Mpq.Queue ()``.
- The spawning lines: ``multiprocessing.Process (target=..., args=...)``
  became ``parent.spawn_function (target, args=...)``, which starts the
  child at once (``child.start ()`` went) and hands the target its end of
  the channel as first argument (so the child's end and the factory are
  not in ``args``); ``child.join ()`` became ``child.wait ()``.
- The README calls a ``call_child`` in its second example that it does not
  show: the one here sends its value to the parent, as pymulproc's own
  test does.
"""

import multiprocessing
import types

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402
from gi.repository.Mpq import mpq_protocol  # noqa: E402

# pymulproc's factory, as far as the README uses it.
factory = types.SimpleNamespace(
    PipeCommunication=lambda: types.SimpleNamespace(parent=Mpq.Pipe, child=lambda: None),
    QueueCommunication=lambda: types.SimpleNamespace(parent=Mpq.Queue))


def test_simple_pipe_communication():

    pipe_factory = factory.PipeCommunication()
    parent = pipe_factory.parent()
    child = pipe_factory.child()  # noqa: F841 (the README's; the child makes its own)

    def call_child(_child):
        _child.send(mpq_protocol.REQ_TEST_CHILD)

    child_process = parent.spawn_function(call_child)
    child_process.wait()
    message = parent.receive()
    request_offset = mpq_protocol.S_PID_OFFSET - 1
    assert message[request_offset] == mpq_protocol.REQ_TEST_CHILD


def call_child(child, offset, parent_pid, val):
    child.send(mpq_protocol.REQ_FINISHED, recipient_pid=parent_pid, data=val)


def test_children_to_parent_communication():
    '''Simple test where all child processes send a message to the parent process

    All children are initiated with a value that is sent to the parent for it to process it.
    '''

    queue_factory = factory.QueueCommunication()
    parent = queue_factory.parent()
    parent_pid = multiprocessing.current_process().pid

    # Prepare list of processes to start and pass the value = 3 to each child process
    child_processes = []
    val = 3
    for offset in range(5):
        child_process = parent.spawn_function(call_child, args=(offset + 1, parent_pid, val))
        child_processes.append(child_process)

    # Wait for the processes to finish
    for child in child_processes:
        child.wait()

    # Receive the data from all children
    counter = 0
    data_offset = mpq_protocol.S_PID_OFFSET + 2
    while not parent.queue_empty():
        message = parent.receive(lambda x: True)
        counter += message[data_offset]

    # Ensure the queue is empty - no loose strings
    parent.queue_join()

    # Ensure we got the right data from children
    assert counter == val * len(child_processes)
