# SPDX-License-Identifier: LGPL-2.1-or-later
"""message-received and closed, in real main loops."""

import threading

from gi.repository import GLib, Mpq

from mpq_helpers import (MPQ_CHILD, NOVEL_REQUEST, data_of, iterate_default_context,
                         raises_mpq, run_loop, wait_exit)

N = 25


def test_detailed_signals_and_closed(spawn):
    """A child sends N x DO, FINISHED, a request never seen before, DIE, and
    exits. ::DO sees only the DOs, ::DIE only the DIE, the plain signal
    everything in order; the loop quits on DIE, and closed follows, once,
    only after the last message."""
    pipe, proc = spawn(MPQ_CHILD, 'burst', N)
    loop = GLib.MainLoop()
    do_seen, die_seen, all_seen, closed = [], [], [], []

    def on_die(ch, msg):
        assert ch is pipe
        die_seen.append(msg.get_request())
        loop.quit()

    def on_closed(ch):
        closed.append(list(all_seen))
        loop.quit()

    pipe.connect('message-received::DO',
                 lambda ch, m: do_seen.append((m.get_request(), data_of(m))))
    pipe.connect('message-received::DIE', on_die)
    pipe.connect('message-received', lambda ch, m: all_seen.append(m.get_request()))
    pipe.connect('closed', on_closed)
    pipe.start()

    run_loop(loop)
    assert die_seen == [Mpq.REQ_DIE]
    assert do_seen == [(Mpq.REQ_DO, {'i': i}) for i in range(N)]
    assert all_seen == [Mpq.REQ_DO] * N + [Mpq.REQ_FINISHED, NOVEL_REQUEST, Mpq.REQ_DIE]
    assert closed == []     # not before DIE's dispatch is over

    run_loop(loop)
    assert closed == [all_seen]
    iterate_default_context()
    assert len(closed) == 1
    wait_exit(proc)
    assert proc.get_successful()


def test_messages_waiting_before_start_are_emitted(spawn):
    """Messages that arrived before start() (the child already exited) are
    emitted first, in order, then closed."""
    pipe, proc = spawn(MPQ_CHILD, 'send-and-exit', N)
    wait_exit(proc)

    loop = GLib.MainLoop()
    seen = []
    pipe.connect('message-received', lambda ch, m: seen.append(data_of(m)['i']))
    pipe.connect('closed', lambda ch: loop.quit())
    pipe.start()
    run_loop(loop)
    assert seen == list(range(N))
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)


def test_stop_in_handler_then_receive_then_restart(spawn):
    """stop() from a handler stops emission at once; what follows can be
    taken with receive(); start() again emits the rest. Nothing is lost or
    reordered across the switches."""
    pipe, proc = spawn(MPQ_CHILD, 'burst', 10)
    loop = GLib.MainLoop()
    seen = []

    def on_message(ch, msg):
        seen.append((msg.get_request(), data_of(msg)))
        if msg.get_request() == Mpq.REQ_DO and data_of(msg)['i'] == 3:
            ch.stop()
            loop.quit()
        elif msg.get_request() == Mpq.REQ_DIE:
            loop.quit()

    pipe.connect('message-received', on_message)
    pipe.start()
    run_loop(loop)
    assert seen == [(Mpq.REQ_DO, {'i': i}) for i in range(4)]

    # The child sent everything and exited: had emission gone on after
    # stop(), the rest would show up here.
    wait_exit(proc)
    iterate_default_context()
    assert len(seen) == 4

    taken = pipe.receive(-1)
    assert (taken.get_request(), data_of(taken)) == (Mpq.REQ_DO, {'i': 4})

    pipe.start()
    run_loop(loop)
    assert seen[4:] == ([(Mpq.REQ_DO, {'i': i}) for i in range(5, 10)]
                        + [(Mpq.REQ_FINISHED, {'n': 10}), (NOVEL_REQUEST, None),
                           (Mpq.REQ_DIE, None)])


def test_signals_in_thread_default_context(spawn):
    """Signals are emitted in the thread-default context of start()'s
    caller: here a worker thread with its own context, while the default
    context is never iterated."""
    pipe, proc = spawn(MPQ_CHILD, 'burst', 3)
    seen, closed, errors = [], [], []

    def worker():
        try:
            context = GLib.MainContext()
            context.push_thread_default()
            loop = GLib.MainLoop(context)
            pipe.connect('message-received',
                         lambda ch, m: seen.append((m.get_request(), threading.get_ident())))

            def on_closed(ch):
                closed.append(threading.get_ident())
                loop.quit()

            pipe.connect('closed', on_closed)
            pipe.start()
            run_loop(loop)
            pipe.stop()
            context.pop_thread_default()
        except BaseException as error:      # reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == []
    ident = thread.ident
    assert seen == [(r, ident) for r in [Mpq.REQ_DO] * 3 + [Mpq.REQ_FINISHED, NOVEL_REQUEST,
                                                          Mpq.REQ_DIE]]
    assert closed == [ident]


def test_close_emits_closed_from_idle():
    """close() does not emit closed re-entrantly: it comes from an idle,
    once, even if close() is called again."""
    parent, child = Mpq.Pipe.new_pair()
    closed = []
    parent.connect('closed', lambda ch: closed.append(ch))
    parent.close()
    assert closed == []
    parent.close()
    iterate_default_context()
    assert closed == [parent]
    child.close()
    iterate_default_context()



def test_detail_with_unicode_request():
    """A detail may be any request, spaces and non-ASCII included; other
    requests do not reach that handler."""
    parent, child = Mpq.Pipe.new_pair()
    loop = GLib.MainLoop()
    seen = []

    def on_novel(ch, msg):
        seen.append(msg.get_request())
        loop.quit()

    parent.connect('message-received::' + NOVEL_REQUEST, on_novel)
    for request in ['OTHER', NOVEL_REQUEST + ' plus', NOVEL_REQUEST]:
        child.send(request, 0, 0, None)
    parent.start()
    run_loop(loop)
    assert seen == [NOVEL_REQUEST]
    parent.close()
    child.close()


def test_close_from_handler(spawn):
    """close() inside a message-received handler stops emission at once
    and closed follows, once."""
    pipe, proc = spawn(MPQ_CHILD, 'burst', 5)
    loop = GLib.MainLoop()
    events = []

    def on_message(ch, msg):
        events.append(msg.get_request())
        ch.close()

    def on_closed(ch):
        events.append('closed')
        loop.quit()

    pipe.connect('message-received', on_message)
    pipe.connect('closed', on_closed)
    pipe.start()
    run_loop(loop)
    iterate_default_context()
    assert events == [Mpq.REQ_DO, 'closed']
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)
    wait_exit(proc)
    assert proc.get_successful()    # the child saw the hang-up as CLOSED


def test_receive_async_in_a_handlers_own_loop():
    """A handler that runs a main loop of its own, as a dialog would, and
    makes a receive_async in it gets the next message there; the signal
    does not hand it one inside it, and hands it the one after once it
    returned (tests/test-nested-loops.c has the queue's)."""
    parent, child = Mpq.Pipe.new_pair()
    outer = GLib.MainLoop()
    handled, received = [], []

    def on_message(ch, msg):
        handled.append(data_of(msg))
        if len(handled) > 1:
            outer.quit()
            return
        inner = GLib.MainLoop()

        def got(source, result):
            received.append(data_of(source.receive_finish(result)))
            inner.quit()

        ch.receive_async(None, got)
        child.send(Mpq.REQ_DO, data=2)
        run_loop(inner)
        child.send(Mpq.REQ_DO, data=3)

    parent.connect('message-received', on_message)
    child.send(Mpq.REQ_DO, data=1)
    parent.start()
    run_loop(outer)
    assert (handled, received) == ([1, 3], [2])
    parent.close()
    child.close()
    iterate_default_context()
