# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pool worker test_pool.py's pools spawn: Mpq.serve_worker with a
handler whose behaviour each task's request picks (as
tests/mpq-pool-test-worker.c does for the C tests).

  square        data n -> n * n
  echo          data -> data
  pid           -> this worker's pid
  fail          raises ValueError('failing on purpose: <data>')
  nan           -> float('nan'), which has no JSON form
  crash-on      data n: SIGSEGV when n is 13, else n * n
  hang          never answers, never returns (sleeps in pause())
  until-cancel  reports progress "started", iterates the main context
                until the task is cancelled, -> "stopped"
  progress      data n: progress 1..n, then -> n
  anything else -> "unknown request"

Every request is appended, one per line, to $MPQ_TEST_LOG_DIR/<pid> when
that is set ("cancelled" too, once until-cancel heard it). At exit the
worker prints nothing and exits 0 whether it was told to die or lost its
pool (serve_worker's return value goes to $MPQ_TEST_LOG_DIR/<pid>.end).

With --two-args the handler given to serve_worker takes (request, data)
only: no progress; until-cancel then fails.
"""

import os
import signal
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import GLib, Mpq  # noqa: E402

LOG_DIR = os.environ.get('MPQ_TEST_LOG_DIR')


def log(line, suffix=''):
    if LOG_DIR is not None:
        with open(os.path.join(LOG_DIR, f'{os.getpid()}{suffix}'), 'a') as file:
            file.write(line + '\n')


def until_cancel(progress):
    progress('started')
    context = GLib.MainContext.default()
    while not progress.cancellable.is_cancelled():
        context.iteration(True)
    log('cancelled')
    return 'stopped'


def handler(request, data, progress):
    log(request)
    if request == 'square':
        return data * data
    if request == 'echo':
        return data
    if request == 'pid':
        return os.getpid()
    if request == 'fail':
        raise ValueError(f'failing on purpose: {data}')
    if request == 'nan':
        return float('nan')
    if request == 'crash-on':
        if data == 13:
            os.kill(os.getpid(), signal.SIGSEGV)
        return data * data
    if request == 'hang':
        while True:
            signal.pause()
    if request == 'until-cancel':
        return until_cancel(progress)
    if request == 'progress':
        for i in range(1, data + 1):
            progress(i)
        return data
    return 'unknown request'


def two_args(request, data):
    return handler(request, data, None)


if __name__ == '__main__':
    told_to_die = Mpq.serve_worker(two_args if '--two-args' in sys.argv else handler)
    log(f'told to die: {told_to_die}', '.end')
    sys.exit(0)
