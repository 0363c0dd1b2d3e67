# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures: a per-test watchdog, a spawner that cleans up its children, and
a private redis-server per test module."""

import faulthandler
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mpq_helpers import child_argv, redis_server, remember_pid  # noqa: E402  (requires the gi versions)

import pytest  # noqa: E402
from gi.repository import Mpq  # noqa: E402

# A test that hangs (in C, where no Python signal handler can run) is killed
# with a traceback of every thread instead of blocking the suite until
# meson's time-out. Debian 12 has no pytest-timeout installed by default.
# The traceback goes to the real stderr: visible with --capture=sys (as
# meson runs the suite) or -s.
# A test that needs longer says so with @pytest.mark.watchdog(seconds).
WATCHDOG_S = 90


def pytest_configure(config):
    config.addinivalue_line('markers', 'watchdog(seconds): the watchdog time of a long test')


@pytest.fixture(autouse=True)
def watchdog(request):
    marker = request.node.get_closest_marker('watchdog')
    seconds = marker.args[0] if marker is not None else WATCHDOG_S
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope='module')
def redis_uri():
    """The URI of a redis-server of the test module's own (a unix socket in
    a temporary directory); skips without redis-server or Redis support."""
    yield from redis_server()


@pytest.fixture
def spawn():
    """spawn(script, *args, pipe=None, launcher=None, max_message_size=None)
    -> (pipe, subprocess).

    Spawns tests/python/children/<script> with /usr/bin/python3 through
    Mpq.Pipe.spawn (or spawn_with_launcher), on a new pipe unless one is
    given, after setting max-message-size if asked; its pid is kept at once
    (pid_of). At teardown every pipe is closed and every child still
    running is killed and reaped."""
    started = []

    def _spawn(script, *args, pipe=None, launcher=None, max_message_size=None):
        if pipe is None:
            pipe = Mpq.Pipe.new()
        if max_message_size is not None:
            pipe.props.max_message_size = max_message_size
        argv = child_argv(script, *args)
        if launcher is not None:
            proc = pipe.spawn_with_launcher(launcher, argv)
        else:
            proc = pipe.spawn(argv)
        remember_pid(proc)          # now: see pid_of()
        started.append((pipe, proc))
        return pipe, proc

    yield _spawn

    for pipe, proc in started:
        pipe.close()
        proc.force_exit()
        proc.wait(None)
