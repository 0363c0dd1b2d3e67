# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mpq.Pool and Mpq.Task as concurrent.futures has them (private: Mpq.py
exposes it).

Mpq.py makes its ``Pool`` and ``Task`` overrides out of the mixins here.
The Pythonic calls take and give plain values (what ``json.loads``
gives); the typelib's calls, which take and give JSON text, stay
reachable:

- ``submit (request, data=None)`` encodes @data; the typelib's
  ``submit (request, data_json)`` is ``submit_json`` (a ``str`` is a
  plain value too, so the two cannot share the name);
- ``map (request, iterable)`` returns the results; with a third
  positional argument (the cancellable), ``map (request, data_json,
  cancellable)`` is the typelib's, which returns ``Mpq.Message`` replies;
- every call of the typelib is also ``Mpq.Pool.<name> (pool, ...)`` on
  the introspection module, ``gi.module.get_introspection_module
  ('Mpq')``.
"""

import concurrent.futures
import json

from gi.repository import GLib

from ..module import get_introspection_module

from . import _mpq_channel
from . import _mpq_pickle

Mpq = get_introspection_module('Mpq')

_FINAL = (Mpq.TaskState.DONE, Mpq.TaskState.FAILED, Mpq.TaskState.CANCELLED)


class TaskMixin:
    """concurrent.futures.Future's calls on Mpq.Task. The typelib's
    (``wait``, ``wait_async``, ``get_state``...) stay as they are."""

    def _reply(self, timeout):
        reply = Mpq.Task.wait(self, -1 if timeout is None else
                              _mpq_channel._timeout_ms(True, timeout))
        if reply is None:
            raise concurrent.futures.TimeoutError(
                f'task {self.get_id()} did not end within {timeout} s')
        return reply

    def result(self, timeout=None):
        """Waits for the task (at most @timeout seconds; None: for ever)
        and returns its result as a plain value.

        Raises the task's error as ``GLib.Error``: ``MPQ_ERROR_TASK_FAILED``
        (the worker's handler raised: its text and traceback are the
        message), ``MPQ_ERROR_WORKER_LOST``, ``MPQ_ERROR_TIMED_OUT`` (the
        pool's ``task-timeout``), ``G_IO_ERROR_CANCELLED``. Past @timeout
        raises ``concurrent.futures.TimeoutError`` (the builtin
        ``TimeoutError``) and the task goes on. The wait runs the pool's
        main context, so call it from the thread that made the pool.
        """
        return _mpq_channel.message_data(self._reply(timeout))

    def exception(self, timeout=None):
        """Waits as :meth:`result` does; returns the task's
        ``GLib.Error`` (the cancel's too), or None when it succeeded."""
        try:
            self._reply(timeout)
        except GLib.Error as error:
            return error
        return None

    def done(self):
        """Whether the task ended (done, failed or cancelled), as far as
        the pool heard: it hears its workers while its main context runs
        (a main loop, ``result ()``, ``wait ()``, asyncio)."""
        return self.get_state() in _FINAL

    def running(self):
        """Whether a worker holds the task."""
        return self.get_state() == Mpq.TaskState.RUNNING

    def cancelled(self):
        return self.get_state() == Mpq.TaskState.CANCELLED

    def cancel(self):
        """Cancels the task, queued or running (its worker is told; the
        ``progress`` argument's ``cancellable`` of ``serve_worker``).
        Returns True when the task is now cancelled, False when it had
        ended before (``concurrent.futures``' answer; unlike a Future, a
        running task can be cancelled)."""
        Mpq.Task.cancel(self)
        return self.get_state() == Mpq.TaskState.CANCELLED

    def add_done_callback(self, fn):
        """Calls ``fn (task)`` once the task ended, in the pool's main
        context (at once when it has ended already)."""
        if self.done():
            fn(self)
            return

        def on_done(task, result, *_user_data):
            try:
                Mpq.Task.wait_finish(task, result)
            except GLib.Error:
                pass                # the task's error: fn asks for it
            fn(task)

        Mpq.Task.wait_async(self, None, on_done)

    def __await__(self):
        from . import _mpq_asyncio
        return _mpq_asyncio.task_future(self).__await__()


def _is_raw_map(args, kwargs):
    """Whether map () was called the typelib's way, ``map (request,
    data_json, cancellable)``: the cancellable, even None, is positional
    (the Pythonic form takes it by keyword only)."""
    return len(args) >= 2 or 'data_json' in kwargs


class PoolMixin:
    """concurrent.futures.Executor's calls on Mpq.Pool."""

    def __init__(self, argv=None, n_workers=0, launcher=None, queue=None, **properties):
        """``Mpq.Pool (argv=None, n_workers=0, launcher=None, queue=None,
        **properties)``: spawns @n_workers workers (0: one per processor)
        running @argv, a sequence of str, through @launcher (a
        ``Gio.SubprocessLauncher``) when one is given.

        With @queue (an ``Mpq.Queue``, typically on Redis:
        ``Mpq.Queue.new_for_uri (uri, name, 0)``) the pool runs over that
        queue (``mpq_pool_new_for_queue``), and @argv may be None: then it
        spawns nobody, and its workers join it, each a process started
        anywhere with ``MPQ_QUEUE_URI``, ``MPQ_QUEUE_NAME`` and
        ``MPQ_POOL_WORKER=1`` in its environment that runs a pool worker
        (``Mpq.serve_worker``). Such workers join a pool with @argv too.
        The pool takes the queue over (it closes it when disposed of).

        Other keywords set the pool's properties as GObject has them
        (``max_attempts``, ``task_timeout`` in ms). Raises ``TypeError``
        without @argv and without @queue, ``GLib.Error`` when a worker
        cannot be spawned. The pool belongs to the calling thread's main
        context. (``Mpq.Pool.new``, ``new_with_launcher`` and
        ``new_for_queue`` are the typelib's.)"""
        if argv is None and queue is None:
            raise TypeError('Mpq.Pool () needs the workers\' argv, or a queue they join')
        if isinstance(argv, (str, bytes)):
            raise TypeError('argv must be a sequence of str, not a string')
        if argv is not None:
            properties['argv'] = [str(arg) for arg in argv]
        if launcher is not None:
            properties['launcher'] = launcher
        if queue is not None:
            properties['queue'] = queue
        super().__init__(n_workers=n_workers, **properties)
        self.init(None)             # GInitable: spawns the workers

    def submit(self, request, data=None):
        """Queues one task and returns it (an ``Mpq.Task``, with
        ``result (timeout)``, ``done ()``, ``cancel ()``,
        ``exception ()``; ``await task`` in asyncio).

        @data is any value ``json.dumps`` takes (None is JSON null); the
        worker's handler gets it back as a plain value. Raises
        ``GLib.Error`` ``MPQ_ERROR_PROTOCOL`` for data with no JSON form
        or an empty request (nothing is queued), ``MPQ_ERROR_CLOSED``
        after ``shutdown``. (The typelib's call, with JSON text, is
        :meth:`submit_json`.)"""
        _mpq_channel._check_request(request)
        return Mpq.Pool.submit(self, request, _mpq_channel.dumps(data))

    def submit_json(self, request, data_json):
        """The typelib's ``submit (request, data_json)``: @data_json is
        JSON text (or None)."""
        return Mpq.Pool.submit(self, request, data_json)

    def map(self, request, *args, **kwargs):
        """map(request, iterable, *, cancellable=None): runs a task per
        item of @iterable (plain values) and returns their results, a
        list in the items' order.

        One JSON array goes in and one comes out (``map_json``): the
        items are sent to the workers in batches. If an item fails, the
        map raises its ``GLib.Error`` and the items not started are
        cancelled. Items with no JSON form raise ``MPQ_ERROR_PROTOCOL``
        before anything starts.

        When the workers read pickles (``Mpq.serve_worker`` does, and the
        pool knows once one said it is ready), no ``task_timeout`` is set
        and the items are plain scalars (None, bool, int, float, str),
        each batch goes pickled instead, a task whose payload is the
        pickled list, sized as ``multiprocessing``'s ``Pool.map`` sizes
        its chunks: the same results and errors, without JSON at each hop
        (_mpq_pickle.py says how, and how it stays safe).

        The typelib's ``map (request, data_json, cancellable)`` (a list
        of JSON texts, replies as ``Mpq.Message``) is called when a third
        positional argument is given, as its callers always do.
        """
        if _is_raw_map(args, kwargs):
            return Mpq.Pool.map(self, request, *args, **kwargs)
        return self._map(request, *args, **kwargs)

    # bench/bench_pool.py reads the typelib's transfer from Mpq.Pool.map.
    map.get_caller_owns = Mpq.Pool.map.get_caller_owns

    def _map(self, request, iterable, *, cancellable=None):
        _mpq_channel._check_request(request)
        items = iterable if type(iterable) in (list, tuple, range) else list(iterable)
        if items and self._maps_pickled(items):
            return _pickled_map(self, request, items, cancellable)
        items = _mpq_channel.dumps(list(items), 'items')
        return json.loads(Mpq.Pool.map_json(self, request, items, cancellable))

    def _maps_pickled(self, items):
        """Whether a map of @items goes pickled: to workers that read
        pickles, batched (no task-timeout: as the library batches), and
        only plain scalars."""
        return (Mpq.Pool.get_worker_format(self) == _mpq_pickle.FORMAT and
                Mpq.Pool.get_task_timeout(self) < 0 and _mpq_pickle.all_plain(items))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """Shuts the pool down, waiting for its tasks (as
        ``Executor.shutdown (wait=True)``)."""
        self.shutdown(-1)
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.shutdown_async()
        return False

    def map_async(self, request, *args, **kwargs):
        from . import _mpq_asyncio
        return _mpq_asyncio.pool_map_async(self, request, *args, **kwargs)

    def shutdown_async(self, *args, **kwargs):
        from . import _mpq_asyncio
        return _mpq_asyncio.pool_shutdown_async(self, *args, **kwargs)

    map_async.__doc__ = 'See _mpq_asyncio.pool_map_async.'
    shutdown_async.__doc__ = 'See _mpq_asyncio.pool_shutdown_async.'


def _pickled_map(pool, request, items, cancellable):
    """map () to workers that read pickles: a task per batch of items
    (sized as multiprocessing's Pool.map sizes them), its payload the
    pickled list; the results come back the same way (or as a JSON array
    from a worker whose results are not all plain). The first batch that
    fails cancels the others and raises its error, as map_json does."""
    n_workers = max(Mpq.Pool.get_n_workers(pool), len(Mpq.Pool.dup_worker_pids(pool)), 1)
    size, extra = divmod(len(items), n_workers * 4)
    size += 1 if extra else 0
    tasks = []
    sizes = []
    try:
        for start in range(0, len(items), size):
            batch = items[start:start + size]
            if type(batch) is tuple:
                batch = list(batch)
            tasks.append(Mpq.Pool.submit_bytes(pool, request, _mpq_pickle.batch_data(len(batch)),
                                               _mpq_pickle.dumps(batch)))
            sizes.append(len(batch))
        # As map_json: the cancel reaches the tasks in this thread, the
        # pool's, whichever thread cancels.
        source = _cancelled_source(cancellable, tasks) if cancellable is not None else None
        try:
            results = []
            for task, n_items in zip(tasks, sizes):
                results += _batch_results(Mpq.Task.wait(task, -1), n_items)
        finally:
            if source is not None:
                source.destroy()
        return results
    finally:
        for task in tasks:          # after a failure: those not done
            Mpq.Task.cancel(task)


def _cancelled_source(cancellable, tasks):
    def on_cancelled(*_args):
        for task in tasks:
            Mpq.Task.cancel(task)
        return GLib.SOURCE_REMOVE

    source = cancellable.source_new()
    source.set_callback(on_cancelled)
    source.attach(GLib.MainContext.ref_thread_default())
    return source


def _batch_results(reply, n_items):
    """The results a worker answered a pickled batch of @n_items with."""
    payload = reply.get_bytes()
    try:
        if payload is not None:
            return _mpq_pickle.loads_results(payload, n_items)
        results = _mpq_channel.message_data(reply)
        if type(results) is not list or len(results) != n_items:
            raise ValueError(f'The results are not a list of {n_items} values')
        return results
    except ValueError as error:
        raise _mpq_channel.invalid(f'A worker answered a batch wrongly: {error}') from None
