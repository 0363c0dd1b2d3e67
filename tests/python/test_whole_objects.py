# SPDX-License-Identifier: LGPL-2.1-or-later
"""Objects made the way a binding makes them (issue 10, item 6).

PyGObject 3.42 does not call g_initable_init() for Mpq.Queue() or
Mpq.Pipe(): the object must make itself whole at its first call, or say
why with a GLib.Error. Before, receive(0) on either segfaulted."""

import json
import os

import pytest
from gi.repository import GObject, Mpq

from mpq_helpers import raises_mpq


@pytest.fixture
def no_channel_env(monkeypatch):
    monkeypatch.delenv('MPQ_CHANNEL_FD', raising=False)
    monkeypatch.delenv('MPQ_CHANNEL_KIND', raising=False)


@pytest.mark.parametrize('make', [lambda: Mpq.Queue(), lambda: GObject.new(Mpq.Queue)],
                         ids=['constructor', 'GObject.new'])
def test_queue_made_by_binding_is_a_parent_queue(make):
    queue = make()
    assert queue.receive(0, None) is None
    queue.send_json(Mpq.REQ_DO, 0, 0, json.dumps({'value': 7}))
    message = queue.receive(0, None)
    assert message.get_request() == Mpq.REQ_DO
    assert json.loads(message.dup_data_json()) == {'value': 7}
    assert queue.join(0)
    assert queue.get_parent_pid() == os.getpid()
    queue.close()


def test_bounded_queue_from_properties():
    queue = Mpq.Queue(max_size=1, put_attempts=0)
    queue.send_json(Mpq.REQ_DO, 0, 0, '1')
    with raises_mpq(Mpq.Error.FULL):
        queue.send_json(Mpq.REQ_DO, 0, 0, '2')
    queue.close()


def test_child_queue_outside_a_child_says_not_a_child(no_channel_env):
    queue = Mpq.Queue(role=Mpq.Role.CHILD)
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        queue.receive(0, None)
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        queue.send_json(Mpq.REQ_DO, 0, 0, '1')
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        queue.init(None)
    queue.close()


@pytest.mark.parametrize('make', [lambda: Mpq.Pipe(), lambda: GObject.new(Mpq.Pipe)],
                         ids=['constructor', 'GObject.new'])
def test_pipe_made_by_binding_is_whole(make):
    pipe = make()
    assert pipe.receive(0, None) is None
    pipe.close()


def test_child_pipe_outside_a_child_says_not_a_child(no_channel_env):
    pipe = Mpq.Pipe(role=Mpq.Role.CHILD)
    with raises_mpq(Mpq.Error.NOT_A_CHILD):
        pipe.receive(0, None)
