# SPDX-License-Identifier: LGPL-2.1-or-later
"""pool_worker.py — tutorial step 4: a pool worker in Python.

Spawned by an Mpq.Pool (pool.c, pool.py, pool.js): Mpq.serve_worker calls
square() for each task; what it returns is the result, what it raises the
task's error.
"""

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402


def square(request, data):
    if request != 'square':
        raise ValueError(f'unknown request {request!r}')
    if not isinstance(data, int) or isinstance(data, bool):
        raise ValueError(f'not a whole number: {data!r}')
    return data * data


if __name__ == '__main__':
    Mpq.serve_worker(square)
