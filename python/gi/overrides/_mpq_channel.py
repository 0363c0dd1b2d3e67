# SPDX-License-Identifier: LGPL-2.1-or-later
"""pymulproc's API on Mpq.Pipe and Mpq.Queue (private: Mpq.py exposes it).

Mpq.py makes its ``Pipe``, ``Queue`` and ``Message`` overrides out of the
mixins here, so that this code sits apart from the pool's worker helper.
The typelib's own methods stay reachable through the interface:
``Mpq.Channel.send (ch, ...)``, ``Mpq.Channel.receive (ch, timeout_ms,
filter)``, and the raw ``receive (timeout_ms, ...)`` form, told apart by
its first argument (see :meth:`ChannelMixin.receive`).
"""

import json
import math
import types

from gi.repository import GLib

from ..module import get_introspection_module

from . import _mpq_spawn

Mpq = get_introspection_module('Mpq')
Json = get_introspection_module('Json')

# Offsets in a message, as pymulproc's users compute them
# (``mpq_protocol.S_PID_OFFSET - 1`` is the request, ``+ 2`` the data).
REQUEST_OFFSET = 0
DATA_OFFSET = 3

_MAX_PID = GLib.MAXINT32


def _protocol_module():
    """The ``mpq_protocol`` namespace: pymulproc's module of that name,
    so that ``from gi.repository.Mpq import mpq_protocol`` is the only
    line a pymulproc program changes to find its constants."""
    module = types.ModuleType('gi.repository.Mpq.mpq_protocol',
                              "pymulproc's protocol constants, as Mpq has them.")
    for name in ('REQ_DO', 'REQ_FINISHED', 'REQ_DIE', 'REQ_TEST_PARENT', 'REQ_TEST_CHILD',
                 'S_PID_OFFSET', 'R_PID_OFFSET'):
        setattr(module, name, getattr(Mpq, name))
    module.REQUEST_OFFSET = REQUEST_OFFSET
    module.DATA_OFFSET = DATA_OFFSET
    return module


mpq_protocol = _protocol_module()


def invalid(text):
    """The GLib.Error for what a caller passed that no message may carry:
    MPQ_ERROR_PROTOCOL, the code the library gives data with no JSON
    form, so one ``except`` serves the C checks and these."""
    return GLib.Error.new_literal(Mpq.error_quark(), text, Mpq.Error.PROTOCOL)


def message_data(message):
    """The data of the ``Mpq.Message`` @message as a plain value
    (``json.loads`` of its JSON text; None for null or no data)."""
    text = message.dup_data_json()
    return None if text is None else json.loads(text)


class MessageList(list):
    """A message as pymulproc has it, ``[request, sender_pid,
    recipient_pid, data]``: it indexes, unpacks and compares as that list
    does (``msg == ['DO', pid, None, {'value': 3}]``), with ``None`` where
    no recipient or no data was given, and names its fields:
    ``.request``, ``.sender_pid``, ``.recipient_pid``, ``.data``."""

    __slots__ = ()

    request = property(lambda self: self[0])
    sender_pid = property(lambda self: self[1])
    recipient_pid = property(lambda self: self[2])
    data = property(lambda self: self[3])

    @classmethod
    def from_message(cls, message):
        """The list of the ``Mpq.Message`` @message (its data through
        ``json.loads``)."""
        return cls((message.get_request(), message.get_sender_pid(),
                    message.get_recipient_pid() or None, message_data(message)))


def _check_request(request):
    if not isinstance(request, str):
        raise TypeError(f'request must be a str, not {type(request).__name__}')
    if request == '':
        raise invalid('A request must not be empty')
    try:
        request.encode('utf-8')
    except UnicodeEncodeError as error:     # a lone surrogate: no UTF-8 form
        raise invalid(f'The request has no UTF-8 form: {error}') from None


def _check_pid(pid, what):
    """0 for None (C's "my own pid" for a sender, "nobody" for a
    recipient), else @pid, a positive 32-bit int."""
    if pid is None:
        return 0
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f'{what} must be an int or None, not {type(pid).__name__}')
    if pid < 0 or pid > _MAX_PID:
        raise invalid(f'{what} {pid} is not a pid')
    return pid


# json.dumps () with arguments makes an encoder at each call: 2-3 us of a
# pool task's 16 in its Python parent (W7, docs/performance.md).
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(',', ':'))
# What _ENCODER writes a str with (ensure_ascii is its default).
_encode_str = json.encoder.encode_basestring_ascii


def compact_json(value):
    """@value as compact JSON text (the library keeps compact text as it
    is; spaces would make it parse and write the value again). Raises
    what json.dumps () raises for a value with no JSON form.

    A list of plain ints, a map's commonest items and results, is written
    by repr (): the same text once ', ' is ',', in a quarter of the
    encoder's time (100,000 ints: 4.6 ms against 19). A lone int or str,
    a task's commonest data, skips the encoder's set-up (3 us a task in
    W7's Python parent) for the very calls it would make. An int too
    long for str () fails as in the encoder, ValueError."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _encode_str(value)
    if kind is list and set(map(type, value)) == {int}:
        return repr(value).replace(', ', ',')
    return _ENCODER.encode(value)


def dumps(value, what='data'):
    """compact_json (@value), or the GLib.Error of a value with no JSON
    form."""
    try:
        return compact_json(value)
    except (TypeError, ValueError, RecursionError) as error:
        raise invalid(f'The {what} has no JSON form: {error}') from error


def _timeout_ms(block, timeout):
    """pymulproc's (block, timeout in seconds) as the library's timeout_ms.
    As with queue.Queue.get, @timeout counts only when @block."""
    if not block:
        return 0
    if timeout is None:
        return -1
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f'timeout must be a number of seconds, not {type(timeout).__name__}')
    if not timeout >= 0:                    # NaN too
        raise ValueError("'timeout' must be a non-negative number")
    if math.isinf(timeout):
        return -1
    return min(math.ceil(timeout * 1000), _MAX_PID)


def _is_raw_receive(args, kwargs):
    """Whether receive () was called the typelib's way, ``receive
    (timeout_ms, filter=None)``: an int first (never a valid ``func``)
    or the C parameters' names."""
    if args:
        first = args[0]
        return isinstance(first, int) and not isinstance(first, bool)
    return 'timeout_ms' in kwargs or 'filter' in kwargs


def _raw_receive(channel, timeout_ms, *args, **kwargs):
    if isinstance(timeout_ms, int) and timeout_ms < -1:   # a critical in C
        raise ValueError(f'timeout_ms must be -1, 0 or positive, not {timeout_ms}')
    return Mpq.Channel.receive(channel, timeout_ms, *args, **kwargs)


def _receive_filtered(channel, timeout_ms, func):
    """receive with pymulproc's @func, called with the MessageList. The
    library cannot see an exception raised in a callback (PyGObject
    prints it and returns FALSE): it is kept, the message is refused
    (left first on a pipe, put back at the end of a queue, never lost)
    and the exception is raised here."""
    outcome = {}

    def accept(message, *_user_data):
        try:
            item = MessageList.from_message(message)
            if func(item):
                outcome['item'] = item
                return True
        except BaseException as error:      # noqa: BLE001: re-raised below
            outcome['error'] = error
        return False

    message = Mpq.Channel.receive(channel, timeout_ms, accept)
    if 'error' in outcome:
        raise outcome['error']
    if message is None:
        return False
    return outcome.get('item') or MessageList.from_message(message)


class ChannelMixin:
    """pymulproc's ``send``, ``receive`` and ``pid``, and
    ``spawn_function``, for Mpq.Pipe and Mpq.Queue."""

    _mpq_kind = None            # 'pipe' or 'queue', for spawn_function

    @property
    def pid(self):
        """pymulproc's ``.pid`` of a channel's end: the pid its messages
        are sent with, ``get_pid()`` (on a Redis queue, this
        participant's queue-wide id)."""
        return self.get_pid()

    def send(self, request, sender_pid=None, recipient_pid=None, data=None):
        """Sends ``[request, sender_pid, recipient_pid, data]`` and returns
        it (a :class:`MessageList`, with this process's pid as sender when
        none was given).

        @data is any value ``json.dumps`` takes (a ``Json.Node`` is sent
        as it is, for the typelib's callers). pids are ints; ``None`` (or
        0, as in C) is this process for the sender and nobody for the
        recipient.

        Raises ``TypeError`` for arguments of the wrong type, and
        ``GLib.Error`` ``MPQ_ERROR_PROTOCOL`` for what no message may
        carry (an empty request, a negative pid, data with no JSON form:
        NaN, a set, a cycle), besides the library's errors (``CLOSED``,
        ``FULL``, ``TOO_LARGE``...).
        """
        _check_request(request)
        sender = _check_pid(sender_pid, 'sender_pid')
        recipient = _check_pid(recipient_pid, 'recipient_pid')
        if isinstance(data, Json.Node):
            Mpq.Channel.send(self, request, sender, recipient, data)
        else:
            text = None if data is None else dumps(data)
            Mpq.Channel.send_json(self, request, sender, recipient, text)
        return MessageList((request, sender or self.get_pid(), recipient or None, data))

    def receive(self, *args, **kwargs):
        """receive(func=None, block=False, timeout=None): pymulproc's.

        Takes the next message (on a queue: the one at the front, whoever
        it is for) and returns it as a :class:`MessageList`, or ``False``
        when there is none. ``block=False`` polls; ``block=True`` waits up
        to @timeout seconds, or for ever when @timeout is None (as
        ``queue.Queue.get``, @timeout counts only with @block).

        ``func(message)`` (also the first positional argument, as in
        ``receive(lambda m: True)``) decides whether to take it: when it
        says no, ``False`` is returned and the message stays first on a
        pipe, or goes to the back of a queue. An exception it raises is
        raised here, the message left as for a no.

        The typelib's ``receive(timeout_ms, filter=None)`` is kept for
        its callers: an int as first argument (or ``timeout_ms=``) calls
        it and returns an ``Mpq.Message`` or ``None``; so does
        ``Mpq.Channel.receive(channel, timeout_ms, filter)``.

        Messages with a binary payload (``send_bytes``) are read with the
        typelib's call: this one gives their four fields only.
        """
        if _is_raw_receive(args, kwargs):
            return _raw_receive(self, *args, **kwargs)
        return self._receive(*args, **kwargs)

    def _receive(self, func=None, block=False, timeout=None):
        if func is not None and not callable(func):
            raise TypeError(f'func must be callable or None, not {type(func).__name__}')
        timeout_ms = _timeout_ms(block, timeout)
        if func is not None:
            return _receive_filtered(self, timeout_ms, func)
        text = Mpq.Channel.receive_json(self, timeout_ms)
        if text is None:
            return False
        return MessageList(json.loads(text)[:4])

    def receive_many(self, max_messages=4096, block=False, timeout=None):
        """Every message there for this process (or, on a queue, for
        nobody and put by another), up to @max_messages, as a list of
        :class:`MessageList` in order; ``[]`` when there is none.
        ``block=True`` waits up to @timeout seconds (None: for ever) for
        the first. One call through GI and one ``json.loads`` for the
        lot: the fast way to read many small messages
        (``receive_batch_json``). A message with a binary payload has it
        as a fifth element, ``{"base64": "..."}``.
        """
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or \
                max_messages < 1:
            raise ValueError('max_messages must be a positive int')
        text = Mpq.Channel.receive_batch_json(self, min(max_messages, GLib.MAXUINT32),
                                              _timeout_ms(block, timeout))
        return [MessageList(message) for message in json.loads(text)]

    def spawn_function(self, target, args=(), launcher=None):
        """Starts ``sys.executable`` running ``target(channel, *args)``,
        where channel is the child's end of this pipe or queue, as
        ``multiprocessing.Process(target=..., args=...)`` with the spawn
        start method does; returns the ``Gio.Subprocess``.

        @target is a Python function: one defined at the top of its
        module is imported by name in the child, with this process's
        ``sys.path``, or from its file (the main script as
        ``__mp_main__``, so its ``if __name__ == '__main__':`` part does
        not run again); a nested function or a lambda that uses no
        variable of the function around it is rebuilt from its code in
        that module. @args are JSON values (tuples arrive as lists, dict
        keys as strings); they travel on the child's command line, so a
        few hundred KiB at most.

        The child exits 0 when @target returns, with the code of a
        ``SystemExit`` it raises, and 1, printing the traceback, when it
        raises anything else. It closes (and so flushes) its end first.
        A ``Gio.SubprocessLauncher`` may be given (for its pipes or
        environment); it serves this spawn.

        Raises ``TypeError`` for a target that cannot be started that
        way, ``GLib.Error`` ``MPQ_ERROR_PROTOCOL`` for @args with no JSON
        form.
        """
        argv = _mpq_spawn.child_argv(self._mpq_kind, target, args, dumps)
        if launcher is not None:
            return self.spawn_with_launcher(launcher, argv)
        return self.spawn(argv)


class PipeMixin(ChannelMixin):
    """pymulproc's pipe API for Mpq.Pipe."""

    _mpq_kind = 'pipe'

    @staticmethod
    def new_pair():
        """``(parent, child)``: both ends of a pipe in this process."""
        _ok, parent, child = Mpq.Pipe.new_pair()
        return parent, child


class QueueMixin(ChannelMixin):
    """pymulproc's queue API for Mpq.Queue."""

    _mpq_kind = 'queue'

    def queue_empty(self):
        """Whether no message waits in the queue (pymulproc's)."""
        return self.is_empty()

    def queue_join(self, timeout=None):
        """Waits until every message ever put was taken (pymulproc's);
        @timeout in seconds, or None for ever. Returns True; past
        @timeout raises ``GLib.Error`` ``MPQ_ERROR_TIMED_OUT``."""
        return self.join(_timeout_ms(True, timeout))


class MessageMixin:
    """Mpq.Message in plain values: what a ``message-received`` handler
    gets reads as a received list does (``msg.data``, ``msg.request``,
    ``msg.sender_pid``, ``msg.recipient_pid``: None when there is none;
    ``msg.unpack ()``: the :class:`MessageList`), and the calls that return
    tuples in the typelib return one value."""

    def __init__(self, *args, **kwargs):
        # Its properties are read-only (docs/design-decisions.md): GObject
        # would only warn and make an empty message.
        if args or kwargs:
            raise TypeError('Mpq.Message is made with Mpq.Message.new (request, '
                            'sender_pid, recipient_pid, data) or '
                            'Mpq.Message.new_with_data_json (...); its properties '
                            'are read-only')
        super().__init__()

    request = property(lambda self: self.get_request(),
                       doc='The request (``get_request ()``).')
    sender_pid = property(lambda self: self.get_sender_pid(),
                          doc='The sender\'s pid (``get_sender_pid ()``).')
    recipient_pid = property(lambda self: self.get_recipient_pid() or None,
                             doc='The recipient\'s pid, None for anyone.')

    @property
    def data(self):
        """The data as a plain value (``json.loads`` of ``dup_data_json
        ()``; None for null or no data). Each read decodes it anew: keep
        what it gives rather than reading it again."""
        return message_data(self)

    def unpack(self):
        """The message as pymulproc's list, ``[request, sender_pid,
        recipient_pid, data]`` (a :class:`MessageList`), as ``receive ()``
        gives it: ``request, sender, _, data = msg.unpack ()``."""
        return MessageList.from_message(self)

    def to_json(self):
        """The message's line, compact JSON text; None for data with no
        JSON form. (The typelib's call, with the length:
        ``Mpq.Message.to_json (msg)`` is the override's; use
        ``gi.module.get_introspection_module ('Mpq')`` for it.)"""
        text, _length = Mpq.Message.to_json(self)
        return text
