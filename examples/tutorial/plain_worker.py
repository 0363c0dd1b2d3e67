# SPDX-License-Identifier: LGPL-2.1-or-later
"""plain_worker.py — tutorial step 5: a pool worker in plain JSON.

No gi, no library: the inherited socket (MPQ_CHANNEL_FD) and the json
module, speaking docs/protocol.md ("Being a pool worker without the
library"). Any pool parent (pool.c, pool.py, pool.js) can run it:

    pool /usr/bin/python3 plain_worker.py
"""

import json
import os
import socket

sock = socket.socket(fileno=int(os.environ['MPQ_CHANNEL_FD']))
lines = sock.makefile('r', encoding='utf-8', newline='\n')
me = os.getpid()


def put(obj):
    sock.sendall((json.dumps(obj, separators=(',', ':')) + '\n').encode())


pool = json.loads(lines.readline())['pid']     # the queue's hello frame
put({'op': 'start', 'prefetch': 2})             # dispatch: push me my tasks
put(['READY', me, pool, None])                  # the pool hands me none before
for line in lines:                              # ends when the pool is gone
    frame = json.loads(line)
    if frame['op'] != 'msg':
        continue
    request, sender, _, data = frame['msg']
    if sender == pool and isinstance(data, dict) and 'data' in data:
        n = data['data']
        if request == 'square' and isinstance(n, int) and not isinstance(n, bool):
            put(['FINISHED', me, pool, {'task': data['task'], 'result': n * n}])
        else:
            put(['FAILED', me, pool, {'task': data['task'], 'error': f'not a whole number: {n!r}'}])
    put({'op': 'ack', 'tag': frame['tag']})         # after the answer: nothing is lost
    if request == 'DIE' and data is None:
        break
