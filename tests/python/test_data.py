# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every JSON type, there and back through a real child that echoes.

The echo child answers each message twice: once passing the Json.Node it
got (send), once passing the JSON text of it (send_json/dup_data_json).
The parent sends with send_json (ASCII-escaped and raw UTF-8 text) or with
send and a Json.Node, and reads each answer back both ways.
"""

import json
import math
import os

import pytest
from gi.repository import GLib, Json, Mpq

from mpq_helpers import (MPQ_CHILD, assert_same, child_argv, is_mpq_error, pid_of, remember_pid,
                         raises_mpq, wait_exit)

CONTROL = ''.join(chr(c) for c in range(1, 0x1f))   # U+0001..U+001E

VALUES = {
    'null': None,
    'true': True,
    'false': False,
    'zero': 0,
    'one': 1,
    'minus-one': -1,
    'int32-max+1': 2**31,
    'int32-min-1': -2**31 - 1,
    '2**53': 2**53,
    '-2**53': -2**53,
    'int64-max': 2**63 - 1,
    'int64-min': -2**63,
    'half': 0.5,
    'negative-float': -2.25,
    'tenth': 0.1,
    'float-one': 1.0,
    'float-big': 1.5e300,
    'float-subnormal': 5e-324,
    'minus-zero': -0.0,
    'pi': math.pi,
    'empty-string': '',
    'ascii': 'plain text',
    'unicode': 'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001F600 \u0410\u0411',
    'quotes-escapes': 'quote " backslash \\ slash / brackets [{]} comma , colon :',
    'newlines': 'line\nbreak\r\ncr\ttab',
    'control-chars': CONTROL,
    'separators': '\u2028\u2029\x7f\u00a0\ufeff',
    'json-looking': '["DO",1,null,null]\n["DIE",1,null,null]',
    'empty-array': [],
    'empty-object': {},
    'nested': {'a': [1, {'b': [None, True, {'c': 'd'}]}], 'e': {}, 'f': [[], [[]]],
               'g': {'h': {'i': {'j': [1.5, -2, 'k']}}}},
    'mixed-array': [None, True, False, 0, -1, 2.5, 's', [], {}],
    'unicode-keys': {'\u00e9\u2713': 1, '': 2, 'a"b': 3, 'new\nline': 4},
    'deep-100': json.loads('[' * 100 + ']' * 100),
    'deepest-allowed': json.loads('[' * (Mpq.MAX_DEPTH - 1) + ']' * (Mpq.MAX_DEPTH - 1)),
    'large-string': 'x' * 900_000,
    'many-items': list(range(20_000)),
}

HOW = ['send_json', 'send_json-utf8', 'send-node']


def send(pipe, how, value, recipient):
    if how == 'send_json':
        pipe.send_json(Mpq.REQ_DO, 0, recipient, json.dumps(value))
    elif how == 'send_json-utf8':
        pipe.send_json(Mpq.REQ_DO, 0, recipient, json.dumps(value, ensure_ascii=False))
    else:
        node = Json.from_string(json.dumps(value))
        assert node is not None
        pipe.send(Mpq.REQ_DO, 0, recipient, node)


def node_value(msg):
    """The data read through get_data() and Json.to_string()."""
    node = msg.get_data()
    return None if node is None else json.loads(Json.to_string(node, False))


class Echo:
    def __init__(self, copies=2):
        self.pipe = Mpq.Pipe.new()
        self.proc = self.pipe.spawn(child_argv(MPQ_CHILD, 'echo', copies))
        self.pid = pid_of(remember_pid(self.proc))
        self.copies = copies

    def roundtrip(self, value, how='send_json'):
        """Sends @value, returns every reading of every echo."""
        send(self.pipe, how, value, self.pid)
        readings = []
        for _ in range(self.copies):
            reply = self.pipe.receive(-1)
            assert reply.get_request() == Mpq.REQ_DO
            assert reply.get_sender_pid() == self.pid
            assert reply.get_recipient_pid() == os.getpid()
            if value is None:
                assert reply.get_data() is None
                assert reply.dup_data_json() == 'null'
            readings.append(json.loads(reply.dup_data_json()))
            readings.append(node_value(reply))
        return readings

    def close(self):
        try:
            self.pipe.send(Mpq.REQ_DIE, 0, 0, None)
            wait_exit(self.proc)
            assert self.proc.get_successful()
        finally:
            self.pipe.close()
            self.proc.force_exit()


@pytest.fixture(scope='module')
def echo():
    child = Echo()
    yield child
    child.close()


@pytest.fixture
def own_echo():
    """An echo child for tests that may break the channel."""
    child = Echo(copies=1)
    yield child
    child.pipe.close()
    child.proc.force_exit()
    child.proc.wait(None)


@pytest.mark.parametrize('how', HOW)
@pytest.mark.parametrize('name', list(VALUES))
def test_roundtrip(echo, name, how):
    """The value comes back from the child equal and of the same JSON type,
    whichever way it was sent or read."""
    value = VALUES[name]
    for got in echo.roundtrip(value, how):
        assert_same(got, value)
        if name == 'minus-zero':
            assert math.copysign(1, got) == -1


def test_request_strings_roundtrip(echo):
    """Requests with unicode, quotes, backslashes and control characters
    are encoded and decoded intact by both ends."""
    pid = echo.pid
    for request in ['\u00e9\u2713 \U0001F600', 'say "hi"\\', 'multi\nline\r\n', CONTROL,
                    Mpq.REQ_TEST_PARENT, ' ', 'x' * 10_000]:
        echo.pipe.send_json(request, 0, pid, '{"k": 1}')
        for _ in range(2):
            reply = echo.pipe.receive(-1)
            assert reply.get_request() == request


def test_send_message_roundtrip(echo):
    """A message built with new_with_data_json goes out with send_message
    and keeps its explicit sender pid and recipient."""
    msg = Mpq.Message.new_with_data_json(Mpq.REQ_FINISHED, 4242, echo.pid, '{"done": [1, 2]}')
    assert msg.get_sender_pid() == 4242 and msg.is_for(echo.pid) and not msg.is_for(1)
    echo.pipe.send_message(msg)
    for _ in range(2):
        reply = echo.pipe.receive(-1)
        assert reply.get_request() == Mpq.REQ_FINISHED
        assert reply.get_recipient_pid() == 4242     # the echo answers the sender it saw
        assert json.loads(reply.dup_data_json()) == {'done': [1, 2]}


def test_json_null_node_is_no_data(echo):
    """A Json.Node holding null is the same as no data."""
    echo.pipe.send(Mpq.REQ_DO, 0, echo.pid, Json.from_string('null'))
    for _ in range(2):
        reply = echo.pipe.receive(-1)
        assert reply.get_data() is None and reply.dup_data_json() == 'null'


def test_too_deep_data_rejected_by_sender(echo):
    """Data nested deeper than the limit is refused when sending as text
    (PROTOCOL), and the channel stays usable."""
    depth = Mpq.MAX_DEPTH
    with raises_mpq(Mpq.Error.PROTOCOL):
        echo.pipe.send_json(Mpq.REQ_DO, 0, 0, '[' * depth + ']' * depth)
    with raises_mpq(Mpq.Error.PROTOCOL):
        echo.pipe.send_json(Mpq.REQ_DO, 0, 0, '[' * 100_000)
    assert echo.roundtrip('still fine') == ['still fine'] * 4


@pytest.mark.parametrize('text', ['', '{', '[1,]', 'nope', '{"a" 1}', '[1] x', 'NaN'])
def test_send_json_not_json(echo, text):
    """send_json refuses text that is not JSON with PROTOCOL and sends
    nothing: the next round trip is unaffected."""
    with raises_mpq(Mpq.Error.PROTOCOL):
        echo.pipe.send_json(Mpq.REQ_DO, 0, 0, text)
    assert echo.roundtrip([text]) == [[text]] * 4


def test_too_large_send_sends_nothing(echo):
    """A message over max-message-size raises TOO_LARGE and nothing of it
    is sent; the next message goes through intact."""
    limit = echo.pipe.props.max_message_size
    assert limit == Mpq.DEFAULT_MAX_MESSAGE_SIZE == 1024 * 1024
    with raises_mpq(Mpq.Error.TOO_LARGE):
        echo.pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps('y' * limit))
    assert echo.roundtrip({'after': 'too large'}) == [{'after': 'too large'}] * 4


# Library bugs: data that json-glib 1.6 cannot carry is corrupted or written
# as invalid JSON instead of being carried or refused. --------------------

def roundtrip_or_refused(own_echo, text, want, as_node=False):
    """Either sending @text (send_json, or send with a Json.Node) is refused
    with PROTOCOL, or @want comes back."""
    try:
        if as_node:
            own_echo.pipe.send(Mpq.REQ_DO, 0, own_echo.pid, Json.from_string(text))
        else:
            own_echo.pipe.send_json(Mpq.REQ_DO, 0, own_echo.pid, text)
    except GLib.Error as error:
        assert is_mpq_error(error, Mpq.Error.PROTOCOL), error
        return
    reply = own_echo.pipe.receive(10_000)
    assert reply is not None
    assert_same(json.loads(reply.dup_data_json()), want)


@pytest.mark.parametrize('value', [1e22, 1e-300, 1e100, 1e17, -1e21])
def test_exponent_float_roundtrip(own_echo, value):
    """A float whose shortest form has an exponent and no '.' survives."""
    roundtrip_or_refused(own_echo, json.dumps(value), value)


def test_unit_separator_roundtrip(own_echo):
    """A string holding U+001F comes back as valid JSON."""
    roundtrip_or_refused(own_echo, json.dumps('a\x1fb'), 'a\x1fb')


def test_nul_in_string_roundtrip(own_echo):
    """A string holding U+0000 comes back whole, or is refused."""
    roundtrip_or_refused(own_echo, json.dumps('a\x00b'), 'a\x00b')


@pytest.mark.parametrize('value', [2**64, -2**64, 10**30])
def test_huge_int_roundtrip(own_echo, value):
    """An integer beyond 64 bits comes back equal, or is refused."""
    roundtrip_or_refused(own_echo, json.dumps(value), value)


def test_too_deep_node_refused_by_sender(own_echo):
    """Data nested MAX_DEPTH deep, given as a Json.Node, is refused by
    send() like send_json() refuses it, instead of killing the channel."""
    depth = Mpq.MAX_DEPTH
    roundtrip_or_refused(own_echo, '[' * depth + ']' * depth,
                         json.loads('[' * depth + ']' * depth), as_node=True)
    assert own_echo.roundtrip('still alive') == ['still alive'] * 2
