# SPDX-License-Identifier: LGPL-2.1-or-later
"""PyGObject overrides for Mpq, pymulproc for GLib.

PyGObject imports this module in place of the bare introspected namespace
when a program does ``from gi.repository import Mpq``: every name of the
typelib stays reachable as before, and the names in ``__all__`` are added.

It is installed into PyGObject's overrides directory of the system Python
(``gi._overridesdir``); the tests find it in the source tree, through
``PYTHONPATH`` (``gi.overrides`` extends its path over ``sys.path``).

Added here:

- :func:`serve_worker`, the Python worker helper of ``Mpq.Pool``.
- pymulproc's API on ``Pipe`` and ``Queue`` (``send``, ``receive``,
  ``pid``, ``spawn_function``, ``queue_empty``, ``queue_join``),
  ``new_pair`` and ``Message.to_json`` without the typelib's tuples,
  ``MessageList`` and ``mpq_protocol`` (code in _mpq_channel.py; the
  typelib's calls stay reachable, see there).
- ``Pool`` and ``Task`` as concurrent.futures has them (``Mpq.Pool
  (argv)``, ``submit``, ``map``, ``result``, ``with``), and asyncio
  (``await task``, ``map_async``, ``receive_async``, ``join_async``;
  code in _mpq_pool.py and _mpq_asyncio.py).
"""

import inspect
import json
import traceback

from gi.repository import GLib

from ..module import get_introspection_module

Mpq = get_introspection_module('Mpq')

__all__ = []


def _wants_progress(handler):
    """Whether @handler takes a third positional argument."""
    try:
        inspect.signature(handler).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:          # no signature (some builtins): two arguments
        return False
    return True


def _error_text(error):
    """The task's error for @error, raised in a handler called from
    on_task (): its last line (``ValueError: text``), an empty line, then
    the traceback as Python prints it, from the handler's frame on."""
    summary = ''.join(traceback.format_exception_only(type(error), error)).strip()
    trace = traceback.format_exception(type(error), error, error.__traceback__.tb_next)
    return f'{summary}\n\n{"".join(trace).rstrip()}'


def _is_closed(error):
    return error.matches(Mpq.error_quark(), Mpq.Error.CLOSED)


class _Progress:
    """The third argument of a handler that takes one: ``progress(value)``
    reports @value (any JSON value) as the task's progress; ``cancellable``
    is the task's Gio.Cancellable."""

    __slots__ = ('_invocation', 'cancellable')

    def __init__(self, invocation):
        self._invocation = invocation
        self.cancellable = invocation.get_cancellable()

    def __call__(self, value):
        try:
            self._invocation.send_progress_json(_mpq_channel.compact_json(value))
        except GLib.Error as error:
            if not _is_closed(error):     # the pool is gone: run () ends
                raise


def _answer(invocation, method, *args):
    try:
        method(invocation, *args)
    except GLib.Error as error:
        if not _is_closed(error):         # the pool is gone: run () ends
            raise


def _return_result(invocation, text):
    """Answers with @text, JSON. A result the library refuses (an int
    beyond 64 bits, nesting deeper than Mpq.MAX_DEPTH) fails the task
    with why: left unanswered, the task would wait for ever."""
    try:
        invocation.return_json(text)
    except GLib.Error as error:
        if _is_closed(error):             # the pool is gone: run () ends
            return
        _answer(invocation, Mpq.Invocation.return_error,
                f'The result was refused: {error.message}')


def serve_worker(handler):
    """Serves the ``Mpq.Pool`` that spawned this process, one task at a
    time, until the pool tells the worker to die.

    ``handler(request, data)`` is called for each task (and each
    broadcast, whose answer the pool drops) with the task's request and
    its data as plain Python values (what ``json.loads`` gives); what it
    returns, a value ``json.dumps`` takes, is the task's result. If it
    raises an ``Exception`` (or returns what has no JSON form), the task
    fails with ``MPQ_ERROR_TASK_FAILED`` and a message made of the
    exception's last line (``ValueError: text``), an empty line and its
    traceback; it is not tried again.

    A handler that takes a third positional argument,
    ``handler(request, data, progress)``, gets a callable:
    ``progress(value)`` reports @value as the task's progress (its
    ``progress`` signal in the pool, in order, before the result), and
    ``progress.cancellable`` is the task's ``Gio.Cancellable``, cancelled
    when the pool cancels the task. The handler runs in the worker's main
    context: a long one hears of a cancel only if it iterates it
    (``GLib.MainContext.default().iteration(False)``); the pool drops the
    answer to a cancelled task, so it may answer as it likes.

    A map's items come in batches (``Mpq.Worker::batch``, or pickled from
    a Python pool: the worker says it reads ``python-pickle``): the
    handler is called for each item in turn, and the first exception
    fails the whole batch (and so the map) with its text.

    Returns True when the pool told the worker to die, False when the
    pool's process is gone (the worker then simply ends). Raises
    ``GLib.Error`` (``MPQ_ERROR_NOT_A_CHILD``) in a process no pool
    spawned.
    """
    with_progress = _wants_progress(handler)
    worker = Mpq.Worker.new_for_child()
    # A map's batches may come pickled (_mpq_pickle.py).
    worker.set_format(_mpq_pickle.FORMAT)

    def on_task(_worker, invocation):
        payload = invocation.get_bytes()
        if payload is not None:
            n_items = _mpq_pickle.batch_size(invocation.dup_data_json())
            if n_items is not None:
                on_pickled_batch(invocation, payload, n_items)
                return
        try:
            data = json.loads(invocation.dup_data_json())
            if with_progress:
                result = handler(invocation.get_request(), data, _Progress(invocation))
            else:
                result = handler(invocation.get_request(), data)
            text = _mpq_channel.compact_json(result)
        except Exception as error:      # noqa: BLE001: every error is the task's
            _answer(invocation, Mpq.Invocation.return_error, _error_text(error))
        else:
            _return_result(invocation, text)

    def run_items(invocation, items):
        # A batch's items in turn: the first exception is the batch's.
        request = invocation.get_request()
        if with_progress:
            progress = _Progress(invocation)
            return [handler(request, item, progress) for item in items]
        return [handler(request, item) for item in items]

    def on_batch(_worker, invocation):
        # A map's batch, whole: one GI call each way for all its items.
        try:
            results = run_items(invocation, json.loads(invocation.dup_data_json()))
            text = _mpq_channel.compact_json(results)
        except Exception as error:      # noqa: BLE001: every error is the task's
            _answer(invocation, Mpq.Invocation.return_error, _error_text(error))
        else:
            _return_result(invocation, text)

    def on_pickled_batch(invocation, payload, n_items):
        try:
            items = _mpq_pickle.loads_items(payload, n_items)
        except ValueError as error:
            _answer(invocation, Mpq.Invocation.return_error, str(error))
            return
        try:
            results = run_items(invocation, items)
            # Results that are not all plain go as JSON: the same values
            # a JSON map would give.
            plain = _mpq_pickle.all_plain(results)
            text = None if plain else _mpq_channel.compact_json(results)
        except Exception as error:      # noqa: BLE001: every error is the task's
            _answer(invocation, Mpq.Invocation.return_error, _error_text(error))
            return
        if plain:
            _answer(invocation, Mpq.Invocation.return_bytes, None, _mpq_pickle.dumps(results))
        else:
            _return_result(invocation, text)

    worker.connect('task', on_task)
    worker.connect('batch', on_batch)
    try:
        return worker.run()
    except GLib.Error as error:
        if _is_closed(error):
            return False
        raise
    finally:
        worker.run_dispose()


__all__.append('serve_worker')


# ---------------------------------------------------------------------------
# pymulproc's API on Pipe and Queue: send, receive, spawn_function,
# queue_empty, queue_join, new_pair, Message.to_json, the protocol's
# constants. The code is in _mpq_channel.py (and _mpq_spawn.py); the
# classes are made here because PyGObject takes overrides only from the
# module of their namespace.
# ---------------------------------------------------------------------------

from . import override  # noqa: E402
from . import _mpq_channel  # noqa: E402
from . import _mpq_pickle  # noqa: E402


@override
class Pipe(_mpq_channel.PipeMixin, Mpq.Pipe):
    __doc__ = Mpq.Pipe.__doc__


@override
class Queue(_mpq_channel.QueueMixin, Mpq.Queue):
    __doc__ = Mpq.Queue.__doc__


@override
class Message(_mpq_channel.MessageMixin, Mpq.Message):
    __doc__ = Mpq.Message.__doc__


MessageList = _mpq_channel.MessageList
mpq_protocol = _mpq_channel.mpq_protocol
REQUEST_OFFSET = _mpq_channel.REQUEST_OFFSET
DATA_OFFSET = _mpq_channel.DATA_OFFSET

__all__ += ['Pipe', 'Queue', 'Message', 'MessageList', 'mpq_protocol',
            'REQUEST_OFFSET', 'DATA_OFFSET']


# ---------------------------------------------------------------------------
# Mpq.Pool and Mpq.Task as concurrent.futures has them (submit, map,
# result, with), and asyncio on PyGObject 3.42 (await task,
# receive_async, join_async, map_async, shutdown_async). The code is in
# _mpq_pool.py and _mpq_asyncio.py.
# ---------------------------------------------------------------------------

from . import _mpq_asyncio  # noqa: E402
from . import _mpq_pool  # noqa: E402


@override
class Pool(_mpq_pool.PoolMixin, Mpq.Pool):
    __doc__ = Mpq.Pool.__doc__


@override
class Task(_mpq_pool.TaskMixin, Mpq.Task):
    __doc__ = Mpq.Task.__doc__


Pipe.receive_async = _mpq_asyncio.channel_receive_async
Queue.receive_async = _mpq_asyncio.channel_receive_async
Queue.join_async = _mpq_asyncio.queue_join_async
asyncio_install = _mpq_asyncio.install

__all__ += ['Pool', 'Task', 'asyncio_install']
