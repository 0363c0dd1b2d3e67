# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers shared by the pytest suite (imported by conftest and the tests)."""

import contextlib
import json
import os

import gi

gi.require_version('Mpq', '1.0')
gi.require_version('Json', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import GLib, Mpq  # noqa: E402
import pytest  # noqa: E402

PYTHON = '/usr/bin/python3'
HERE = os.path.dirname(os.path.abspath(__file__))
CHILDREN = os.path.join(HERE, 'children')
MPQ_CHILD = 'mpq_child.py'
RAW_CHILD = 'raw_child.py'
NOVEL_REQUEST = 'NOVEL request \u2713'   # what mpq_child.py burst sends

# Upper bound for anything that should happen "promptly". Generous: it only
# turns a hang into a failure, it never decides a pass.
PROMPT_S = 20


def child_argv(script, *args):
    return [PYTHON, os.path.join(CHILDREN, script), *(str(a) for a in args)]


def child_pid(proc):
    return int(proc.get_identifier())


def error_text(error):
    return f'{error.domain}:{error.code} {error.message}'


def is_mpq_error(error, code):
    return isinstance(error, GLib.Error) and error.matches(Mpq.error_quark(), code)


@contextlib.contextmanager
def raises_mpq(code):
    """Like pytest.raises, for a GLib.Error in the Mpq domain with @code."""
    with pytest.raises(GLib.Error) as info:
        yield info
    assert is_mpq_error(info.value, code), \
        f'expected Mpq.Error.{Mpq.Error(code).value_nick.upper()}, got {error_text(info.value)}'


def run_loop(loop, timeout_s=PROMPT_S):
    """Runs @loop until it quits; fails if that takes more than @timeout_s."""
    timed_out = []

    def on_timeout():
        timed_out.append(True)
        loop.quit()
        return GLib.SOURCE_REMOVE

    source = GLib.timeout_source_new_seconds(timeout_s)
    source.set_callback(on_timeout)
    source.attach(loop.get_context())
    try:
        loop.run()
    finally:
        source.destroy()
    assert not timed_out, f'main loop still running after {timeout_s} s'


def wait_exit(proc, timeout_s=PROMPT_S):
    """Waits for @proc to exit, in a private main context so that no source
    of the default context (a pipe's) is dispatched meanwhile."""
    context = GLib.MainContext()
    loop = GLib.MainLoop(context)
    done = []

    def on_exit(p, result):
        done.append(p.wait_finish(result))
        loop.quit()

    context.push_thread_default()
    try:
        proc.wait_async(None, on_exit)
        run_loop(loop, timeout_s)
    finally:
        context.pop_thread_default()
    assert done == [True]


def iterate_default_context():
    """Dispatches what is ready on the default main context, without blocking."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass


def receive_until_error(pipe, timeout_ms=PROMPT_S * 1000):
    """Takes messages until receive fails; returns (messages, error)."""
    messages = []
    while True:
        try:
            msg = pipe.receive(timeout_ms)
        except GLib.Error as error:
            return messages, error
        assert msg is not None, f'no message and no error after {timeout_ms} ms'
        messages.append(msg)


def data_of(msg):
    """The message's data as a Python value, through dup_data_json()."""
    return json.loads(msg.dup_data_json())


def summary(messages):
    return [(m.get_request(), data_of(m)) for m in messages]


def assert_same(got, want, path='data'):
    """Deep equality that also compares types (True is not 1, 1.0 is not 1)."""
    assert type(got) is type(want), f'{path}: {got!r} is not a {type(want).__name__}'
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f'{path}: keys {sorted(got)} != {sorted(want)}'
        for key in want:
            assert_same(got[key], want[key], f'{path}[{key!r}]')
    elif isinstance(want, list):
        assert len(got) == len(want), f'{path}: length {len(got)} != {len(want)}'
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f'{path}[{i}]')
    elif isinstance(want, float):
        assert got == want and str(got) == str(want), f'{path}: {got!r} != {want!r}'
    else:
        assert got == want, f'{path}: {got!r} != {want!r}'
