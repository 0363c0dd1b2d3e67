# SPDX-License-Identifier: LGPL-2.1-or-later
"""The override's pymulproc API on Pipe and Queue: send, receive, the
message list, the constants; what a caller passes that no message may
carry; the typelib's calls still reachable."""

import json
import math
import os

from gi.repository import GLib, GObject, Json, Mpq
from gi.repository.Mpq import mpq_protocol
from gi.module import get_introspection_module
import pytest

from mpq_helpers import PROMPT_S, raises_mpq, run_loop


def take(channel, func=None):
    """receive, waiting: what a pipe's peer sent may still be in the
    sender's buffer (sends close together are written by its writer
    thread) when a poll looks."""
    return channel.receive(func, True, PROMPT_S)


@pytest.fixture
def pair():
    parent, child = Mpq.Pipe.new_pair()
    yield parent, child
    parent.close()
    child.close()


@pytest.fixture
def queue():
    queue = Mpq.Queue.new(0)
    yield queue
    queue.close()


def test_constants_where_pymulproc_users_look():
    for name in ('REQ_DO', 'REQ_FINISHED', 'REQ_DIE', 'REQ_TEST_PARENT', 'REQ_TEST_CHILD',
                 'S_PID_OFFSET', 'R_PID_OFFSET', 'REQUEST_OFFSET', 'DATA_OFFSET'):
        assert getattr(mpq_protocol, name) == getattr(Mpq, name)
    assert (mpq_protocol.REQUEST_OFFSET, mpq_protocol.S_PID_OFFSET,
            mpq_protocol.R_PID_OFFSET, mpq_protocol.DATA_OFFSET) == (0, 1, 2, 3)
    assert Mpq.mpq_protocol is mpq_protocol


def test_send_returns_the_list_it_sent(pair):
    parent, child = pair
    sent = parent.send(Mpq.REQ_DO, data={'value': 20})
    assert sent == [Mpq.REQ_DO, parent.get_pid(), None, {'value': 20}]
    assert isinstance(sent, list)
    assert parent.send('TO', 1234, 99) == ['TO', 1234, 99, None]


def test_received_message_indexes_unpacks_and_names(pair):
    parent, child = pair
    parent.send(Mpq.REQ_DO, data={'value': 20, 'list': [1, 2.5, None, 'ü']})
    msg = take(child)
    assert msg == ['DO', parent.get_pid(), None, {'value': 20, 'list': [1, 2.5, None, 'ü']}]
    request, sender, recipient, data = msg
    assert msg[mpq_protocol.S_PID_OFFSET] == sender == msg.sender_pid == parent.get_pid()
    assert msg[mpq_protocol.R_PID_OFFSET] is recipient is msg.recipient_pid is None
    assert msg[mpq_protocol.S_PID_OFFSET - 1] == request == msg.request == 'DO'
    assert msg[mpq_protocol.S_PID_OFFSET + 2] == data == msg.data
    assert isinstance(msg, Mpq.MessageList)


def test_receive_with_nothing_is_false(pair, queue):
    parent, child = pair
    assert child.receive() is False
    assert child.receive(block=True, timeout=0) is False
    assert queue.receive() is False
    assert queue.receive(lambda m: True, True, 0.001) is False


def test_receive_blocks_until_a_message(pair):
    parent, child = pair
    parent.send('LATE')
    assert child.receive(block=True) == ['LATE', parent.get_pid(), None, None]
    parent.send('LATER')
    assert child.receive(block=True, timeout=PROMPT_S).request == 'LATER'


def test_rejecting_filter_on_a_pipe_leaves_it_first(pair):
    parent, child = pair
    parent.send('FIRST')
    parent.send('SECOND')
    seen = []
    assert take(child, lambda m: seen.append(m) or False) is False
    assert seen == [['FIRST', parent.get_pid(), None, None]]
    assert take(child, lambda m: True).request == 'FIRST'
    assert take(child).request == 'SECOND'


def test_rejecting_filter_on_a_queue_puts_it_back_at_the_end(queue):
    queue.send('FIRST')
    queue.send('SECOND')
    assert queue.receive(lambda m: m.request == 'SECOND') is False
    assert queue.receive(lambda m: m.request == 'SECOND').request == 'SECOND'
    assert queue.receive().request == 'FIRST'
    assert queue.queue_empty()
    assert queue.queue_join(PROMPT_S)


def test_raising_filter_reaches_the_caller_and_loses_nothing(pair, queue):
    parent, child = pair
    parent.send('KEPT')
    with pytest.raises(ZeroDivisionError):
        take(child, lambda m: 1 / 0)
    assert take(child).request == 'KEPT'

    queue.send('KEPT')
    with pytest.raises(KeyError):
        queue.receive(lambda m: {}['missing'])
    assert queue.receive().request == 'KEPT'


def test_queue_join_times_out_while_a_message_waits(queue):
    queue.send('WAITING')
    assert not queue.queue_empty()
    with raises_mpq(Mpq.Error.TIMED_OUT):
        queue.queue_join(0.001)
    assert queue.receive() == ['WAITING', queue.get_pid(), None, None]
    assert queue.queue_join()


@pytest.mark.parametrize('data', [
    0, -1, 2**63 - 1, 1.5, 1e300, 'text ✓', '', True, False, [], {}, [None, [1, {'a': 'b'}]],
])
def test_data_round_trips_as_python_values(pair, data):
    parent, child = pair
    parent.send('DATA', data=data)
    got = take(child).data
    assert got == data and type(got) is type(data)


def test_json_node_data_is_sent_as_it_is(pair):
    """The typelib's callers pass a Json.Node: still taken."""
    parent, child = pair
    node = Json.from_string('{"node": [1, 2]}')
    sent = parent.send('NODE', 0, 0, node)
    assert sent[3] is node
    assert take(child).data == {'node': [1, 2]}


@pytest.mark.parametrize('args', [
    ('',),
    ('\ud800',),
    ('DO', -1),
    ('DO', None, -5),
    ('DO', 2**31),
    ('DO', None, None, {1, 2}),
    ('DO', None, None, math.nan),
    ('DO', None, None, [math.inf]),
    ('DO', None, None, object()),
    ('DO', None, None, {(1, 2): 'tuple key'}),
    ('DO', None, None, b'bytes'),
])
def test_what_no_message_carries_is_a_protocol_error(pair, queue, args):
    for channel in (pair[0], queue):
        with raises_mpq(Mpq.Error.PROTOCOL):
            channel.send(*args)
    pair[0].flush(-1)                     # nothing left in its buffer
    assert pair[1].receive() is False
    assert queue.queue_empty()


def test_a_cycle_is_a_protocol_error(pair):
    cycle = []
    cycle.append(cycle)
    with raises_mpq(Mpq.Error.PROTOCOL):
        pair[0].send('DO', data=cycle)


def test_a_lone_surrogate_in_data_is_a_protocol_error(pair):
    """json.dumps writes it as an escape; the library refuses it."""
    with raises_mpq(Mpq.Error.PROTOCOL):
        pair[0].send('DO', data={'text': '\udc00'})


@pytest.mark.parametrize('args', [
    (None,), (b'DO',), (['DO'],), ('DO', '1'), ('DO', 1.0), ('DO', True), ('DO', None, '2'),
])
def test_wrong_types_are_type_errors(pair, args):
    with pytest.raises(TypeError):
        pair[0].send(*args)


@pytest.mark.parametrize('kwargs, error', [
    ({'func': 3.5}, TypeError),
    ({'func': 'not callable'}, TypeError),
    ({'block': True, 'timeout': -1}, ValueError),
    ({'block': True, 'timeout': math.nan}, ValueError),
    ({'block': True, 'timeout': '1'}, TypeError),
])
def test_bad_receive_arguments(pair, kwargs, error):
    pair[0].send('KEPT')
    with pytest.raises(error):
        pair[1].receive(**kwargs)
    assert take(pair[1]).request == 'KEPT'


def test_the_typelibs_calls_stay_reachable(pair, queue):
    parent, child = pair
    assert parent.send_json('RAW', 0, 0, '[1]')
    message = child.receive(-1)           # an int first: the typelib's receive
    assert isinstance(message, Mpq.Message) and message.get_request() == 'RAW'
    assert child.receive(0) is None
    parent.send('RAW2')
    assert Mpq.Channel.receive(child, -1, None).get_request() == 'RAW2'
    parent.send('RAW3')
    assert child.receive(timeout_ms=-1, filter=lambda m, *_: False) is None
    assert child.receive(-1, None).get_request() == 'RAW3'
    with pytest.raises(ValueError):
        child.receive(-2)                 # a critical in C

    queue.send('RAW', 0, 0, None)
    assert queue.receive(-1, None).get_request() == 'RAW'


def test_new_pair_and_to_json_without_tuples(pair):
    parent, child = pair
    assert isinstance(parent, Mpq.Pipe) and isinstance(child, Mpq.Pipe)
    message = Mpq.Message.new_with_data_json('DO', 7, 0, '{"a":1}')
    assert message.to_json() == '["DO",7,null,{"a":1}]'
    assert get_introspection_module('Mpq').Message.to_json(message) == (message.to_json(), 21)
    assert json.loads(message.to_json()) == Mpq.MessageList.from_message(message)


def test_messages_of_dispatch_convert(pair):
    """message-received hands an Mpq.Message; MessageList.from_message
    makes pymulproc's list of it."""
    parent, child = pair
    parent.send('SIGNALLED', recipient_pid=42, data=[1])
    loop = GLib.MainLoop()
    got = []

    def on_message(_channel, message):
        got.append(Mpq.MessageList.from_message(message))
        loop.quit()

    child.connect('message-received', on_message)
    child.start()
    run_loop(loop)
    child.stop()
    assert got == [['SIGNALLED', parent.get_pid(), 42, [1]]]


def test_a_signalled_message_names_its_fields(pair):
    """What a message-received handler gets reads in plain values, as a
    received list does: .request, .sender_pid, .recipient_pid (None for
    anyone), .data, and .unpack () for pymulproc's list."""
    parent, child = pair
    parent.send('NAMED', data={'value': 3, 'list': [None, 'ü']})
    parent.send('TO', recipient_pid=42)
    loop = GLib.MainLoop()
    got = []

    def on_message(_channel, message):
        got.append((message.request, message.sender_pid, message.recipient_pid,
                    message.data, message.unpack()))
        if len(got) == 2:
            loop.quit()

    child.connect('message-received', on_message)
    child.start()
    run_loop(loop)
    child.stop()
    pid = parent.get_pid()
    assert got[0][:4] == ('NAMED', pid, None, {'value': 3, 'list': [None, 'ü']})
    assert got[0][4] == ['NAMED', pid, None, {'value': 3, 'list': [None, 'ü']}]
    assert isinstance(got[0][4], Mpq.MessageList)
    assert got[1][:4] == ('TO', pid, 42, None)
    assert got[1][4].recipient_pid == 42 and got[1][4].data is None
    # The typelib's GObject properties stay where they were.
    message = Mpq.Message.new_with_data_json('DO', 7, 9, '[1]')
    assert (message.props.request, message.props.sender_pid,
            message.props.recipient_pid) == ('DO', 7, 9)
    assert (message.request, message.sender_pid, message.recipient_pid, message.data) == \
        ('DO', 7, 9, [1])


def test_a_message_is_made_by_its_constructors():
    """Its properties are read-only: keywords are a TypeError, not a GLib
    warning and an empty message."""
    with pytest.raises(TypeError, match='Mpq.Message.new'):
        Mpq.Message(request='DO', sender_pid=7)
    with pytest.raises(TypeError):
        Mpq.Message('DO')
    message = Mpq.Message.new('DO', 0, 0, None)
    assert (message.request, message.sender_pid, message.data) == ('DO', os.getpid(), None)
    for name in ('request', 'sender-pid', 'recipient-pid', 'data'):
        flags = Mpq.Message.find_property(name).flags
        assert flags & GObject.ParamFlags.READABLE
        assert not flags & (GObject.ParamFlags.WRITABLE | GObject.ParamFlags.CONSTRUCT_ONLY)
