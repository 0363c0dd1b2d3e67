# SPDX-License-Identifier: LGPL-2.1-or-later
"""A main script that spawns a function of its own with spawn_function.

Prints one JSON line: what the child sent. The child imports this file as
__mp_main__, so the block under ``if __name__ == '__main__'`` must not run
there (it would spawn again, for ever): the child reports its __name__."""

import json
import sys

import gi

gi.require_version('Mpq', '1.0')
from gi.repository import Mpq  # noqa: E402


def child_side(channel, word):
    channel.send('FROM_MAIN', data={'word': word, 'name': __name__,
                                    'main': sys.modules['__main__'].__name__})


if __name__ == '__main__':
    pipe = Mpq.Pipe.new()
    proc = pipe.spawn_function(child_side, ('hello',))
    message = pipe.receive(block=True)
    proc.wait_check()
    print(json.dumps({'message': message, 'exit': proc.get_exit_status()}))
