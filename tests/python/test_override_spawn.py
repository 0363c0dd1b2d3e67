# SPDX-License-Identifier: LGPL-2.1-or-later
"""spawn_function: a Python function in a child process, as
multiprocessing's spawn start method runs one, on a pipe and on a queue."""

import json
import os
import subprocess
import sys

from gi.repository import Gio, Mpq
import pytest

from mpq_helpers import CHILDREN, PROMPT_S, PYTHON, raises_mpq, remember_pid


def echo_args(channel, *args):
    channel.send('ARGS', data={'args': list(args), 'pid': os.getpid(),
                               'kind': type(channel).__name__,
                               'main': sys.modules['__main__'].__name__})


def answer_until_die(channel):
    """A worker on the pymulproc API: squares DO's data, stops at a DIE.
    What is not for it (the answers) its filter puts back."""
    while True:
        msg = channel.receive(lambda m: m.request in (Mpq.REQ_DO, Mpq.REQ_DIE), block=True)
        if not msg:
            continue
        if msg.request == Mpq.REQ_DIE:
            return
        channel.send(Mpq.REQ_FINISHED, recipient_pid=msg.sender_pid, data=msg.data ** 2)


def raise_value_error(channel):
    channel.send('BEFORE')
    raise ValueError('the target failed')


def exit_with(channel, code):
    sys.exit(code)


def with_defaults(channel, first, second='default'):
    channel.send('DEFAULTS', data=[first, second])


square = lambda channel, n: channel.send('SQUARE', data=n * n)  # noqa: E731


@pytest.fixture
def procs():
    """Kills and reaps at teardown what a test spawned and left running."""
    started = []
    yield started
    for proc in started:
        proc.force_exit()
        proc.wait()


def spawned(procs, proc):
    procs.append(remember_pid(proc))
    return proc


def stderr_launcher():
    return Gio.SubprocessLauncher.new(Gio.SubprocessFlags.STDERR_PIPE)


def test_pipe_child_gets_its_end_and_json_args(procs):
    pipe = Mpq.Pipe.new()
    proc = spawned(procs, pipe.spawn_function(echo_args, args=(1, 'two', [3.0], {'4': None})))
    msg = pipe.receive(block=True)
    assert msg.request == 'ARGS'
    assert msg.data['args'] == [1, 'two', [3.0], {'4': None}]
    assert msg.data['kind'] == 'Pipe'
    assert msg.sender_pid == msg.data['pid']
    assert proc.wait_check()


def test_queue_children_take_tasks_and_answer(procs):
    queue = Mpq.Queue.new(0)
    workers = [spawned(procs, queue.spawn_function(answer_until_die)) for _ in range(3)]
    pids = {int(w.get_identifier()) for w in workers}
    for n in range(30):
        queue.send(Mpq.REQ_DO, data=n)
    answers = []
    while len(answers) < 30:
        # The tasks the parent meets at the front go back with the filter.
        msg = queue.receive(lambda m: m.request == Mpq.REQ_FINISHED, block=True)
        if msg:
            answers.append(msg)
    assert sorted(m.data for m in answers) == [n * n for n in range(30)]
    assert {m.sender_pid for m in answers} <= pids
    assert all(m.recipient_pid == queue.get_pid() for m in answers)
    for _ in workers:
        queue.send(Mpq.REQ_DIE)       # a poison pill for whoever takes it
    for worker in workers:
        assert worker.wait_check()
    assert queue.queue_join()


def test_nested_function_and_lambda(procs):
    def nested(channel, text):
        channel.send('NESTED', data=text.upper())

    pipe = Mpq.Pipe.new()
    spawned(procs, pipe.spawn_function(nested, args=['shout']))
    assert pipe.receive(block=True).data == 'SHOUT'

    pipe = Mpq.Pipe.new()
    spawned(procs, pipe.spawn_function(square, (12,)))
    assert pipe.receive(block=True)[Mpq.DATA_OFFSET] == 144

    pipe = Mpq.Pipe.new()
    spawned(procs, pipe.spawn_function(lambda channel: channel.send('LAMBDA')))
    assert pipe.receive(block=True).request == 'LAMBDA'


def test_defaults_travel_with_the_function(procs):
    pipe = Mpq.Pipe.new()
    spawned(procs, pipe.spawn_function(with_defaults, ('first',)))
    assert pipe.receive(block=True).data == ['first', 'default']


def test_raising_target_exits_1_with_its_traceback(procs):
    pipe = Mpq.Pipe.new()
    proc = spawned(procs, pipe.spawn_function(raise_value_error, launcher=stderr_launcher()))
    _ok, _out, err = proc.communicate_utf8(None, None)
    assert proc.get_if_exited() and proc.get_exit_status() == 1
    assert 'ValueError: the target failed' in err and 'Traceback' in err
    assert pipe.receive().request == 'BEFORE'      # what it sent before is there


@pytest.mark.parametrize('code, status', [(None, 0), (0, 0), (5, 5), ('a text', 1)])
def test_system_exit_code_is_the_exit_status(procs, code, status):
    pipe = Mpq.Pipe.new()
    proc = spawned(procs, pipe.spawn_function(exit_with, [code], launcher=stderr_launcher()))
    _ok, _out, err = proc.communicate_utf8(None, None)
    assert proc.get_if_exited() and proc.get_exit_status() == status
    if isinstance(code, str):
        assert code in err


def test_closure_is_refused():
    captured = 'from the frame around'

    def uses_closure(channel):
        channel.send(captured)

    with pytest.raises(TypeError, match='captured'):
        Mpq.Pipe.new().spawn_function(uses_closure)


@pytest.mark.parametrize('target', [print, len, 'echo_args', Mpq.Pipe.new, None])
def test_what_is_not_a_python_function_is_refused(target):
    with pytest.raises(TypeError):
        Mpq.Pipe.new().spawn_function(target)


@pytest.mark.parametrize('args', [({1},), (float('nan'),), (b'bytes',), (object(),)])
def test_args_with_no_json_form_are_a_protocol_error(args):
    with raises_mpq(Mpq.Error.PROTOCOL):
        Mpq.Queue.new(0).spawn_function(echo_args, args)


def test_args_must_be_a_sequence():
    with pytest.raises(TypeError):
        Mpq.Pipe.new().spawn_function(echo_args, 'abc')


def test_a_function_of_the_main_script():
    """The child loads the main script as __mp_main__, as multiprocessing
    does, so its ``if __name__ == '__main__'`` block runs once."""
    out = subprocess.run([PYTHON, os.path.join(CHILDREN, 'spawn_from_main.py')],
                         capture_output=True, text=True, timeout=PROMPT_S, check=True)
    report = json.loads(out.stdout)
    assert report['exit'] == 0
    request, _sender, recipient, data = report['message']
    assert (request, recipient) == ('FROM_MAIN', None)
    assert data == {'word': 'hello', 'name': '__mp_main__', 'main': '__mp_main__'}
