# SPDX-License-Identifier: LGPL-2.1-or-later
"""A pool worker without gi that reads a map's batches pickled, as
docs/protocol.md says ("Payloads of a pool's tasks"): its READY names the
format "python-pickle", and each batch comes as a task whose data is
{"pickled_items": n} and whose payload (inline: it does not ask for
descriptors) is the pickled list, or range, of the items.

It squares each item. $MPQ_TEST_PICKLE picks how it answers a batch:
  good          the pickled list of the squares
  evil-global   a pickle that would run os.system ("touch $MPQ_TEST_DIR/pwned")
  wrong-count   the pickled list, one short
  garbage       bytes that are no pickle
  json          the squares as a JSON array in "result", no payload
Plain tasks ({"data": n}) are answered n * n. It leaves on DIE and at
end-of-file.
"""

import base64
import io
import json
import os
import pickle
import socket

ME = os.getpid()
MODE = os.environ.get('MPQ_TEST_PICKLE', 'good')


class Refuse(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('builtins', 'range'):
            return range
        raise pickle.UnpicklingError(f'{module}.{name}')


class Evil:
    def __reduce__(self):
        return (os.system, (f'touch {os.environ["MPQ_TEST_DIR"]}/pwned',))


def answer_payload(squares):
    if MODE == 'evil-global':
        return pickle.dumps([Evil()] * len(squares))
    if MODE == 'wrong-count':
        return pickle.dumps(squares[:-1])
    if MODE == 'garbage':
        return b'no pickle at all'
    return pickle.dumps(squares)


def main():
    sock = socket.socket(fileno=int(os.environ['MPQ_CHANNEL_FD']))
    lines = sock.makefile('r', encoding='utf-8', newline='\n')

    def put(obj):
        sock.sendall((json.dumps(obj, separators=(',', ':')) + '\n').encode())

    pool = json.loads(lines.readline())['pid']
    put({'op': 'start', 'prefetch': 2})
    put(['READY', ME, pool, {'batch': True, 'format': 'python-pickle'}])
    for line in lines:
        frame = json.loads(line)
        if frame['op'] != 'msg':
            continue
        message = frame['msg']
        request, sender, _, data = message[:4]
        if sender == pool and isinstance(data, dict) and 'data' in data:
            task, value = data['task'], data['data']
            if isinstance(value, dict) and 'pickled_items' in value:
                blob = base64.b64decode(message[4]['base64'])
                squares = [n * n for n in Refuse(io.BytesIO(blob)).load()]
                if MODE == 'json':
                    put(['FINISHED', ME, pool, {'task': task, 'result': squares}])
                else:
                    payload = base64.b64encode(answer_payload(squares)).decode()
                    put(['FINISHED', ME, pool, {'task': task, 'result': None},
                         {'base64': payload}])
            else:
                put(['FINISHED', ME, pool, {'task': task, 'result': value * value}])
        put({'op': 'ack', 'tag': frame['tag']})
        if request == 'DIE' and data is None:
            break


main()
