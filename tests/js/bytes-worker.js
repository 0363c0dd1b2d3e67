// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The pool worker test-pool-bytes.js's pools spawn: an Mpq.Worker (through
// GI) that answers tasks carrying a binary payload:
//
//   bytes-echo  a payload of n bytes -> return_bytes (n, the payload with
//               each byte XOR 0xFF); no payload -> null, with no bytes
//   pid         -> this worker's pid
//   anything else -> "unknown request"
//
// `--format=NAME` among the arguments: the worker's READY names NAME as the
// format of payloads it reads (worker.set_format (), before run ()).
// The handler runs inside try/catch: what it throws fails the task with the
// error's message and its stack. Exits 0 when told to die, 1 when the pool
// is gone.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {runWorker} from './worker-util.js';

const worker = Mpq.Worker.new_for_child();
const pid = worker.get_pid();

for (const arg of ARGV) {
    if (arg.startsWith('--format='))
        worker.set_format(arg.slice('--format='.length));
}

function bytesEcho(invocation) {
    const payload = invocation.get_bytes();

    if (payload === null) {
        invocation.return_json('null');
        return;
    }
    const data = payload.toArray();
    const flipped = new Uint8Array(data.length);

    for (let i = 0; i < data.length; i++)
        flipped[i] = data[i] ^ 0xff;
    invocation.return_bytes(String(data.length), new GLib.Bytes(flipped));
}

worker.connect('task', (_worker, invocation) => {
    try {
        switch (invocation.get_request()) {
        case 'bytes-echo':
            bytesEcho(invocation);
            break;
        case 'pid':
            invocation.return_json(JSON.stringify(pid));
            break;
        default:
            invocation.return_json(JSON.stringify('unknown request'));
        }
    } catch (e) {
        invocation.return_error(`${e.message}\n${e.stack ?? ''}`);
    }
});

runWorker(worker);
