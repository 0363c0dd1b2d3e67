# SPDX-License-Identifier: LGPL-2.1-or-later
"""receive_async / receive_finish with cancellables, in real main loops."""

import json

from gi.repository import Gio, GLib, Mpq

from mpq_helpers import (MPQ_CHILD, data_of, is_mpq_error, iterate_default_context,
                         raises_mpq, run_loop, wait_exit)


class Waiter:
    """Collects the outcome of receive_async calls on one main loop."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.loop = GLib.MainLoop()
        self.results = []
        self.expected = 0

    def start(self, cancellable=None, outcomes=None):
        """Starts a receive_async; its outcome goes to self.results, in
        the order the calls complete, and to the dict @outcomes (when
        given) under @cancellable: two calls completing in the same
        iteration of the loop may complete in either order."""
        self.expected += 1

        def done(source, result):
            assert source is self.pipe
            try:
                outcome = source.receive_finish(result)
            except GLib.Error as error:
                outcome = error
            self.results.append(outcome)
            if outcomes is not None:
                outcomes[cancellable] = outcome
            if len(self.results) == self.expected:
                self.loop.quit()

        self.pipe.receive_async(cancellable, done)

    def run(self):
        run_loop(self.loop)
        return self.results


def idle_once(func):
    """Calls @func once from the default main loop."""
    def callback():
        func()
        return GLib.SOURCE_REMOVE
    GLib.idle_add(callback)


def is_cancelled(error):
    return isinstance(error, GLib.Error) and error.matches(Gio.io_error_quark(),
                                                           Gio.IOErrorEnum.CANCELLED)


def test_receive_async_echo(spawn):
    """receive_async delivers the child's reply in the main loop."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    waiter = Waiter(pipe)
    waiter.start(Gio.Cancellable())
    pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'value': 20}))
    [reply] = waiter.run()
    assert reply.get_request() == Mpq.REQ_DO
    assert data_of(reply) == {'value': 20}
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)
    assert proc.get_successful()


def test_cancel_pending_receive_async(spawn):
    """Cancelling a pending receive_async completes it with G_IO_ERROR_CANCELLED,
    exactly once; it takes no message: the next reply goes to the next call."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    waiter = Waiter(pipe)
    cancellable = Gio.Cancellable()
    waiter.start(cancellable)
    idle_once(cancellable.cancel)
    [error] = waiter.run()
    assert is_cancelled(error), error

    pipe.send_json(Mpq.REQ_DO, 0, 0, '"after cancel"')
    waiter.start(None)
    results = waiter.run()
    assert len(results) == 2
    assert data_of(results[1]) == 'after cancel'
    iterate_default_context()
    assert len(results) == 2
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_receive_async_already_cancelled(spawn):
    """A receive_async given a cancellable that is already cancelled fails
    with CANCELLED without waiting for a message."""
    pipe, _ = spawn(MPQ_CHILD, 'send-then-wait', 0)
    cancellable = Gio.Cancellable()
    cancellable.cancel()
    waiter = Waiter(pipe)
    waiter.start(cancellable)
    [error] = waiter.run()
    assert is_cancelled(error), error


def test_pending_receive_async_served_in_order(spawn):
    """Several pending receive_async calls get the replies in call order."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    waiter = Waiter(pipe)
    for _ in range(3):
        waiter.start(Gio.Cancellable())
    for i in range(3):
        pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps(i))
    assert [data_of(m) for m in waiter.run()] == [0, 1, 2]
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_cancel_one_of_several(spawn):
    """Cancelling the first of two pending calls leaves the second to get
    the next message."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    waiter = Waiter(pipe)
    first, second = Gio.Cancellable(), Gio.Cancellable()
    outcomes = {}
    waiter.start(first, outcomes)
    waiter.start(second, outcomes)
    first.cancel()
    pipe.send_json(Mpq.REQ_DO, 0, 0, '"x"')
    waiter.run()
    # Known by their cancellables: under valgrind the message's completion
    # was once returned before the cancelled call's.
    assert is_cancelled(outcomes[first]), outcomes[first]
    assert data_of(outcomes[second]) == 'x'
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_receive_async_before_signal(spawn):
    """With start() and a pending receive_async, the pending call gets the
    first message and message-received the next one."""
    pipe, proc = spawn(MPQ_CHILD, 'echo', 1)
    loop = GLib.MainLoop()
    got = []

    def on_async(source, result):
        got.append(('async', data_of(source.receive_finish(result))))
        if len(got) == 2:
            loop.quit()

    def on_signal(ch, msg):
        got.append(('signal', data_of(msg)))
        if len(got) == 2:
            loop.quit()

    pipe.connect('message-received', on_signal)
    pipe.receive_async(None, on_async)
    pipe.start()
    pipe.send_json(Mpq.REQ_DO, 0, 0, '1')
    pipe.send_json(Mpq.REQ_DO, 0, 0, '2')
    run_loop(loop)
    assert got == [('async', 1), ('signal', 2)]
    pipe.stop()
    pipe.send(Mpq.REQ_DIE, 0, 0, None)
    wait_exit(proc)


def test_receive_async_after_close():
    """receive_async on a closed pipe fails with CLOSED."""
    parent, child = Mpq.Pipe.new_pair()
    parent.close()
    waiter = Waiter(parent)
    waiter.start(None)
    [error] = waiter.run()
    assert is_mpq_error(error, Mpq.Error.CLOSED), error
    child.close()


def test_close_fails_pending_receive_async():
    """close() completes a pending receive_async with CLOSED."""
    parent, child = Mpq.Pipe.new_pair()
    waiter = Waiter(parent)
    waiter.start(Gio.Cancellable())
    idle_once(parent.close)
    [error] = waiter.run()
    assert is_mpq_error(error, Mpq.Error.CLOSED), error
    with raises_mpq(Mpq.Error.CLOSED):
        parent.receive(0)
    child.close()


def test_chained_receive_async(spawn):
    """The usual async loop: each callback starts the next receive_async,
    until DIE; every message arrives once, in order, then the loop ends."""
    pipe, proc = spawn(MPQ_CHILD, 'burst', 20)
    loop = GLib.MainLoop()
    seen = []

    def on_message(source, result):
        msg = source.receive_finish(result)
        seen.append(msg.get_request())
        if msg.get_request() == Mpq.REQ_DIE:
            loop.quit()
        else:
            source.receive_async(None, on_message)

    pipe.receive_async(None, on_message)
    run_loop(loop)
    assert seen == [Mpq.REQ_DO] * 20 + [Mpq.REQ_FINISHED, 'NOVEL request \u2713', Mpq.REQ_DIE]
    wait_exit(proc)
    assert proc.get_successful()
