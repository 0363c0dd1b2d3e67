# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bad lines written by hand by a child without gi (raw_child.py).

For each bad line: the good messages before it are received, then
receive raises PROTOCOL (or TOO_LARGE), then CLOSED; the peer is dropped
(the child, waiting to read, sees the hang-up and exits), what it wrote
after the bad line is never delivered, and this process did not crash.
"""

import pytest
from gi.repository import GLib, Mpq

from mpq_helpers import (RAW_CHILD, is_mpq_error, iterate_default_context, pid_of,
                         raises_mpq, receive_until_error, run_loop, wait_exit)

PROTOCOL = Mpq.Error.PROTOCOL
TOO_LARGE = Mpq.Error.TOO_LARGE


def line(text):
    return 'hex:' + (text.encode('utf-8') + b'\n').hex()


def raw(data):
    return 'hex:' + data.hex()


BAD_LINES = {
    'not-json': line('hello world'),
    'empty-line': line(''),
    'whitespace-line': line('   '),
    'trailing-garbage': line('["DO",1,null,null] x'),
    'nan-data': line('["DO",1,null,NaN]'),
    'array-of-3': line('["DO",1,null]'),
    'array-of-5': line('["DO",1,null,null,null]'),
    'empty-array': line('[]'),
    'object': line('{"request":"DO","sender":1}'),
    'bare-string': line('"DO"'),
    'bare-number': line('42'),
    'empty-request': line('["",1,null,null]'),
    'int-request': line('[1,1,null,null]'),
    'null-request': line('[null,1,null,null]'),
    'array-request': line('[["DO"],1,null,null]'),
    'pid-zero': line('["DO",0,null,null]'),
    'pid-negative': line('["DO",-5,null,null]'),
    'pid-float': line('["DO",1.5,null,null]'),
    'pid-string': line('["DO","123",null,null]'),
    'pid-null': line('["DO",null,null,null]'),
    'pid-bool': line('["DO",true,null,null]'),
    'pid-over-int32': line(f'["DO",{2**31},null,null]'),
    'pid-over-int64': line(f'["DO",{2**70},null,null]'),
    'recipient-zero': line('["DO",1,0,null]'),
    'recipient-negative': line('["DO",1,-1,null]'),
    'recipient-string': line('["DO",1,"2",null]'),
    'invalid-utf8-request': raw(b'["D\xff",1,null,null]\n'),
    'invalid-utf8-data': raw(b'["DO",1,null,"\xc3\x28"]\n'),
    'overlong-utf8': raw(b'["DO",1,null,"\xc0\xaf"]\n'),
    'utf8-surrogate': raw(b'["DO",1,null,"\xed\xa0\x80"]\n'),
    'raw-nul-byte': raw(b'["DO",1,null,"a\x00b"]\n'),
    'lone-surrogate-escape': line('["DO",1,null,"\\ud800"]'),
    'unterminated-string': line('["DO",1,null,"abc]'),
    'deep-100000': 'deep:100000',
    'deep-data-128': line('["DO",1,null,' + '[' * 128 + ']' * 128 + ']'),
    'deep-unclosed-1000': line('["DO",1,null,' + '{"a":' * 1000),
}


@pytest.mark.parametrize('name', list(BAD_LINES))
def test_bad_line(spawn, name):
    """Good, good, BAD, good: two messages, PROTOCOL, CLOSED; dropped."""
    spec = BAD_LINES[name]
    pipe, proc = spawn(RAW_CHILD, 'write', '--wait-eof', 'good:DO', 'good:FINISHED', spec,
                       'good:LOST')
    pid = pid_of(proc)
    closed = []
    pipe.connect('closed', lambda ch: closed.append(ch))

    messages, error = receive_until_error(pipe)
    assert [(m.get_request(), m.get_sender_pid()) for m in messages] == \
        [(Mpq.REQ_DO, pid), (Mpq.REQ_FINISHED, pid)]
    assert is_mpq_error(error, PROTOCOL), error
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)
    assert closed == []         # from an idle, not from within receive()
    iterate_default_context()
    assert closed == [pipe]

    wait_exit(proc)             # it only exits once we hung up on it
    assert proc.get_successful()


def test_deepest_allowed_line_is_accepted(spawn):
    """The bound is exact: a line nesting MAX_DEPTH levels, the outer array
    included, is a message; one more level is a protocol error."""
    depth = Mpq.MAX_DEPTH - 1
    ok = line('["DO",1,null,' + '[' * depth + ']' * depth + ']')
    deeper = line('["DO",1,null,' + '[' * (depth + 1) + ']' * (depth + 1) + ']')
    pipe, proc = spawn(RAW_CHILD, 'write', ok, deeper)
    msg = pipe.receive(-1)
    assert msg.dup_data_json() == '[' * depth + ']' * depth
    with raises_mpq(PROTOCOL):
        pipe.receive(-1)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)


def test_brackets_in_strings_do_not_count(spawn):
    """Brackets and escaped quotes inside strings are not nesting."""
    text = '\\"' + '[' * 500 + '{' * 500
    pipe, proc = spawn(RAW_CHILD, 'write', line(f'["DO",1,null,"{text}"]'))
    msg = pipe.receive(-1)
    assert msg.dup_data_json() == f'"{text}"'
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)


def test_partial_line_then_exit(spawn):
    """A child that exits in the middle of a line: the messages before it,
    then PROTOCOL, then CLOSED."""
    pipe, proc = spawn(RAW_CHILD, 'write', 'good:DO', raw(b'["DO",1,null,{"a":'))
    wait_exit(proc)
    messages, error = receive_until_error(pipe)
    assert [m.get_request() for m in messages] == [Mpq.REQ_DO]
    assert is_mpq_error(error, PROTOCOL), error
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)


@pytest.mark.parametrize('size', [64, 200, 4096, Mpq.DEFAULT_MAX_MESSAGE_SIZE])
def test_max_message_size_is_exact(spawn, size):
    """With a small max-message-size set by the parent, a line of exactly
    that many bytes (newline excluded) is a message; one byte more is
    TOO_LARGE, then CLOSED; the peer is dropped."""
    pipe, proc = spawn(RAW_CHILD, 'write', '--wait-eof', 'good:DO', f'long:{size}',
                       f'long:{size + 1}', 'good:LOST', max_message_size=size)
    assert pipe.props.max_message_size == size
    messages, error = receive_until_error(pipe)
    assert [len(m.to_json()) for m in messages[1:]] == [size]
    assert [m.get_request() for m in messages] == [Mpq.REQ_DO, Mpq.REQ_DO]
    assert is_mpq_error(error, TOO_LARGE), error
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    wait_exit(proc)
    assert proc.get_successful()


def test_endless_line_without_newline(spawn):
    """A line that never ends (3 MB with no newline, over the default
    1 MiB) is TOO_LARGE as soon as it passes the limit, without waiting
    for a newline; the writer is cut off."""
    pipe, proc = spawn(RAW_CHILD, 'write', '--wait-eof', 'good:DO', 'endless:3000000')
    messages, error = receive_until_error(pipe)
    assert [m.get_request() for m in messages] == [Mpq.REQ_DO]
    assert is_mpq_error(error, TOO_LARGE), error
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)
    wait_exit(proc)
    assert proc.get_successful()


def test_bad_line_in_main_loop(spawn):
    """With start(): the good messages are emitted, then closed; receive
    afterwards is CLOSED."""
    pipe, proc = spawn(RAW_CHILD, 'write', '--wait-eof', 'good:DO', 'good:DO',
                       line('["DO",0,null,null]'), 'good:LOST')
    loop = GLib.MainLoop()
    events = []

    def on_closed(ch):
        events.append('closed')
        loop.quit()

    pipe.connect('message-received', lambda ch, m: events.append(m.get_request()))
    pipe.connect('closed', on_closed)
    pipe.start()
    run_loop(loop)
    iterate_default_context()
    assert events == [Mpq.REQ_DO, Mpq.REQ_DO, 'closed']
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(0)
    wait_exit(proc)


def test_accepted_oddities(spawn):
    """Lines that are valid JSON but not compact (spaces, CR before the
    newline) are still messages: the receiver is liberal in what it
    accepts as long as it is a 4-element array."""
    pipe, proc = spawn(RAW_CHILD, 'write', line(' [ "DO" , 7 , 8 , { "a" : [ 1 ] } ] '),
                       raw(b'["FINISHED",7,null,null]\r\n'))
    first, second = pipe.receive(-1), pipe.receive(-1)
    assert (first.get_request(), first.get_sender_pid(), first.get_recipient_pid(),
            first.dup_data_json()) == ('DO', 7, 8, '{"a":[1]}')
    assert (second.get_request(), second.get_recipient_pid(), second.get_data()) == \
        ('FINISHED', 0, None)
    with raises_mpq(Mpq.Error.CLOSED):
        pipe.receive(-1)


@pytest.mark.parametrize('rest', ['["LOST",1,null,null]', '{}'])
def test_two_values_on_one_line(spawn, rest):
    """A line holding a message and then another JSON array or object is
    not one message: PROTOCOL, nothing of it delivered."""
    pipe, proc = spawn(RAW_CHILD, 'write', 'good:DO', line('["DO",1,null,null]' + rest))
    messages, error = receive_until_error(pipe)
    assert [m.get_request() for m in messages] == [Mpq.REQ_DO]
    assert is_mpq_error(error, PROTOCOL), error


def test_escaped_nul_on_the_wire(spawn):
    """An escaped NUL in a request is not silently cut: the request comes
    whole, or the line is refused."""
    pipe, proc = spawn(RAW_CHILD, 'write', line('["DIE\\u0000 NOT",1,null,null]'))
    messages, error = receive_until_error(pipe)
    assert [m.get_request() for m in messages] in ([], ['DIE\x00 NOT'])
