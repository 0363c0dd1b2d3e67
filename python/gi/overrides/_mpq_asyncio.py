# SPDX-License-Identifier: LGPL-2.1-or-later
"""asyncio for Mpq on PyGObject 3.42 (private: Mpq.py exposes it).

PyGObject 3.42 (Debian 12) cannot await a GIO call. Here an awaitable
starts the library's ``*_async`` call in the thread that awaits, and the
GLib main context of that thread (its thread-default, the one the
library's objects report to) runs inside asyncio's loop: the loop's
selector is wrapped, so that each turn of the loop first prepares the
GLib context (``g_main_context_prepare`` and ``query``: its descriptors
and its next deadline), then waits for asyncio's descriptors and GLib's
together, then checks and dispatches GLib's sources. So signals and
async callbacks run in the thread that made the objects, between
asyncio's callbacks, as DESIGN.md's thread rules require; nothing polls
and no timer stands in for an event. GLib's own deadlines (a pool's
``task-timeout``, a wait's time-out) bound the wait as they would in a
``GLib.MainLoop``.

Why the selector, and not ``loop.add_reader`` on GLib's descriptors:
a source attached from this thread outside GLib's dispatch (a
``submit``, a ``cancel``, an idle) does not wake the context's poll (GLib
wakes it only for other threads), so a driver that prepared once and
then waited could sleep through it. Preparing before every wait of the
loop sees it. Why ctypes: PyGObject 3.42's ``MainContext.query`` drops
the descriptors (it returns only their count and the time-out).

The loop must be one of asyncio's selector loops (``asyncio.run``'s on
Linux). While the driver is installed, the loop's thread owns the GLib
context (``g_main_context_acquire``); other threads cannot iterate it.
The driver leaves with the loop (``loop.close ()``, which ``asyncio.run``
calls).
"""

import asyncio
import ctypes
import json
import select
import weakref

from gi.repository import Gio

from ..module import get_introspection_module

from . import _mpq_channel

Mpq = get_introspection_module('Mpq')


class _PollFD(ctypes.Structure):
    _fields_ = [('fd', ctypes.c_int), ('events', ctypes.c_ushort),
                ('revents', ctypes.c_ushort)]


def _load_glib():
    glib = ctypes.CDLL('libglib-2.0.so.0')
    ptr, cint = ctypes.c_void_p, ctypes.c_int
    signatures = {
        'g_main_context_ref_thread_default': (ptr, []),
        'g_main_context_unref': (None, [ptr]),
        'g_main_context_acquire': (cint, [ptr]),
        'g_main_context_release': (None, [ptr]),
        'g_main_context_prepare': (cint, [ptr, ctypes.POINTER(cint)]),
        'g_main_context_query': (cint, [ptr, cint, ctypes.POINTER(cint),
                                        ctypes.POINTER(_PollFD), cint]),
        'g_main_context_check': (cint, [ptr, cint, ctypes.POINTER(_PollFD), cint]),
        'g_main_context_dispatch': (None, [ptr]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(glib, name)
        function.restype = restype
        function.argtypes = argtypes
    return glib


_glib = None
_drivers = weakref.WeakKeyDictionary()     # loop -> _GLibSelector


class _GLibSelector:
    """Stands in for an asyncio loop's selector: every select () of the
    loop also waits for, checks and dispatches the GLib context's
    sources. GLib's descriptors are kept in an epoll of our own, whose
    descriptor the loop's selector watches. Loop's thread only."""

    def __init__(self, selector, context):
        self._selector = selector
        self._context = context
        self._epoll = select.epoll()
        self._watched = {}              # fd -> epoll events
        self._fds = (_PollFD * 16)()
        self._n_fds = 0
        self._priority = ctypes.c_int(0)
        self._selector.register(self._epoll.fileno(), 1, self)   # EVENT_READ

    def __getattr__(self, name):          # register, unregister, get_map...
        return getattr(self._selector, name)

    def _prepare(self):
        """GLib's prepare and query; returns its time-out in seconds
        (None: none), 0 when a source is ready."""
        ready = _glib.g_main_context_prepare(self._context, ctypes.byref(self._priority))
        timeout_ms = ctypes.c_int(-1)
        while True:
            n = _glib.g_main_context_query(self._context, self._priority.value,
                                           ctypes.byref(timeout_ms), self._fds, len(self._fds))
            if n <= len(self._fds):
                break
            self._fds = (_PollFD * n)()
        self._n_fds = n
        wanted = {}
        for pollfd in self._fds[:n]:
            pollfd.revents = 0
            if pollfd.events:
                wanted[pollfd.fd] = wanted.get(pollfd.fd, 0) | pollfd.events
        for fd in list(self._watched):
            if fd not in wanted:
                del self._watched[fd]
                try:
                    self._epoll.unregister(fd)
                except OSError:         # closed since: epoll forgot it
                    pass
        for fd, events in wanted.items():
            if fd not in self._watched:
                try:
                    self._epoll.register(fd, events)
                except FileExistsError:     # a closed number, reused
                    self._epoll.modify(fd, events)
            elif self._watched[fd] != events:
                self._epoll.modify(fd, events)
            self._watched[fd] = events
        if ready:
            return 0
        return None if timeout_ms.value < 0 else timeout_ms.value / 1000

    def _dispatch(self):
        """GLib's check (with what is ready now) and dispatch."""
        revents = dict(self._epoll.poll(0))
        for pollfd in self._fds[:self._n_fds]:
            # epoll's flags are poll's (POLLIN 1, POLLPRI 2, POLLOUT 4...).
            pollfd.revents = revents.get(pollfd.fd, 0) & (pollfd.events | 0x38)
        if _glib.g_main_context_check(self._context, self._priority.value,
                                      self._fds, self._n_fds):
            _glib.g_main_context_dispatch(self._context)

    def select(self, timeout=None):
        glib_timeout = self._prepare()
        if glib_timeout is not None and (timeout is None or glib_timeout < timeout):
            timeout = glib_timeout
        events = self._selector.select(timeout)
        self._dispatch()
        return [(key, mask) for key, mask in events if key.data is not self]

    def close(self):
        self._selector.unregister(self._epoll.fileno())
        self._epoll.close()
        _glib.g_main_context_release(self._context)
        _glib.g_main_context_unref(self._context)
        self._context = None
        self._selector.close()


def _driver(loop):
    """Installs the GLib driver on @loop (the running loop, in its
    thread) once."""
    global _glib
    driver = _drivers.get(loop)
    if driver is not None:
        return driver
    selector = getattr(loop, '_selector', None)
    if selector is None or not hasattr(selector, 'select'):
        raise RuntimeError("Mpq's asyncio calls need one of asyncio's selector event loops")
    if _glib is None:
        _glib = _load_glib()
    context = _glib.g_main_context_ref_thread_default()
    if not _glib.g_main_context_acquire(context):
        _glib.g_main_context_unref(context)
        raise RuntimeError('The GLib main context of this thread is owned by another thread')
    driver = _GLibSelector(selector, context)
    loop._selector = driver
    _drivers[loop] = driver
    return driver


def install():
    """Makes the running loop run this thread's GLib main context (for
    signals such as ``message-received`` or ``worker-started`` in a
    program that awaits only asyncio's calls). Mpq's awaitables do it
    themselves. Call it from a coroutine."""
    _driver(asyncio.get_running_loop())


def gio_future(start, finish, convert, cancellable=None, on_cancel=None):
    """An asyncio future of ``start (cancellable, callback)``'s result,
    ``convert (finish (result))``. Cancelling the future cancels
    @cancellable (and calls @on_cancel); the call's callback then comes
    and is dropped."""
    loop = asyncio.get_running_loop()
    _driver(loop)
    future = loop.create_future()
    if cancellable is None:
        cancellable = Gio.Cancellable()

    def callback(_source, result, *_user_data):
        # In the loop's thread: GLib dispatches inside the loop's select.
        try:
            value = convert(finish(result))
        except Exception as error:      # noqa: BLE001: the awaiter's
            if not future.done():
                future.set_exception(error)
        else:
            if not future.done():
                future.set_result(value)

    def on_done(done):
        if done.cancelled():
            cancellable.cancel()
            if on_cancel is not None:
                on_cancel()

    start(cancellable, callback)
    future.add_done_callback(on_done)
    return future


def task_future(task):
    """``await task``: the task's result as a plain value, or its
    ``GLib.Error``. Cancelling the awaiter cancels the task, as
    ``asyncio.wrap_future`` cancels a concurrent.futures Future."""
    return gio_future(lambda cancellable, callback: Mpq.Task.wait_async(task, cancellable,
                                                                         callback),
                      lambda result: Mpq.Task.wait_finish(task, result),
                      _mpq_channel.message_data,
                      on_cancel=lambda: Mpq.Task.cancel(task))


def _typelib_or_future(typelib, future, n_before, obj, args, kwargs):
    """The typelib's call when a callback is given (after @n_before
    positional arguments, or by name), else the awaitable."""
    if len(args) > n_before or 'callback' in kwargs:
        return typelib(obj, *args, **kwargs)
    return future(obj, *args, **kwargs)


def channel_receive_async(channel, *args, **kwargs):
    """receive_async(cancellable=None): awaitable; the next message
    addressed to this process or to nobody, as a ``MessageList``.

    Raises ``GLib.Error`` ``MPQ_ERROR_CLOSED`` when the channel is
    closed or its peer gone. Cancelled (``asyncio.wait_for``'s time-out
    too), it takes nothing. The typelib's ``receive_async (cancellable,
    callback, *user_data)`` is called when a callback is given."""
    return _typelib_or_future(Mpq.Channel.receive_async, _receive_future, 1, channel, args,
                              kwargs)


def _receive_future(channel, cancellable=None):
    return gio_future(lambda c, callback: Mpq.Channel.receive_async(channel, c, callback),
                      lambda result: Mpq.Channel.receive_finish(channel, result),
                      _mpq_channel.MessageList.from_message, cancellable)


def queue_join_async(queue, *args, **kwargs):
    """join_async(cancellable=None): awaitable; True once every message
    ever put was taken (``queue_join``). The typelib's ``join_async
    (cancellable, callback, *user_data)`` is called when a callback is
    given."""
    return _typelib_or_future(Mpq.Queue.join_async, _join_future, 1, queue, args, kwargs)


def _join_future(queue, cancellable=None):
    return gio_future(lambda c, callback: Mpq.Queue.join_async(queue, c, callback),
                      lambda result: Mpq.Queue.join_finish(queue, result),
                      lambda ok: ok, cancellable)


def pool_map_async(pool, request, *args, **kwargs):
    """map_async(request, iterable, *, cancellable=None): awaitable; the
    results of ``map (request, iterable)``, a list of plain values in
    order, or the first failing item's ``GLib.Error``. Cancelling the
    awaiter cancels the map's tasks. The typelib's ``map_async (request,
    data_json, cancellable, callback, *user_data)`` is called when a
    callback is given."""
    return _typelib_or_future(Mpq.Pool.map_async, _map_future, 3, pool, (request, *args),
                              kwargs)


def _map_future(pool, request, iterable, *, cancellable=None):
    _mpq_channel._check_request(request)
    items = _mpq_channel.dumps(list(iterable), 'items')
    return gio_future(lambda c, callback: Mpq.Pool.map_json_async(pool, request, items, c,
                                                                   callback),
                      lambda result: Mpq.Pool.map_json_finish(pool, result),
                      json.loads, cancellable)


def pool_shutdown_async(pool, *args, **kwargs):
    """shutdown_async(timeout_ms=-1, cancellable=None): awaitable;
    ``shutdown``'s (no new tasks, pending ones finish, workers reaped).
    ``async with pool:`` awaits it. The typelib's ``shutdown_async
    (timeout_ms, cancellable, callback, *user_data)`` is called when a
    callback is given."""
    return _typelib_or_future(Mpq.Pool.shutdown_async, _shutdown_future, 2, pool, args, kwargs)


def _shutdown_future(pool, timeout_ms=-1, cancellable=None):
    return gio_future(lambda c, callback: Mpq.Pool.shutdown_async(pool, timeout_ms, c, callback),
                      lambda result: Mpq.Pool.shutdown_finish(pool, result),
                      lambda ok: ok, cancellable)
