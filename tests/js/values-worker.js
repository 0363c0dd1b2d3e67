// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The pool worker test-serve-worker.js's pools spawn, written with the
// override's Mpq.serveWorker(): a handler of plain values whose return
// value (or promise) is the result and whose exception fails the task.
//
//   square        data n -> n * n
//   later         data n -> a promise of n * n, settled from an idle
//   echo          data -> data
//   pid           -> this worker's pid
//   fail          throws RangeError('failing on purpose: <data>')
//   reject        returns a promise rejected with Error('rejected: <data>')
//   throw-string  throws the string 'a bare string'
//   bigint, cyclic, nan
//                 returns what has no JSON form
//   progress      data n: progress 1 … n, then -> n
//   until-cancel  progress "started", then a promise settled ("stopped")
//                 when the pool cancels the task
//   config        (a broadcast) -> null
//
// Exits 0 when serveWorker() says the pool told it to die, 1 otherwise.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const pid = new Gio.Credentials().get_unix_pid();

function handle(request, data, progress) {
    switch (request) {
    case 'square':
        return data * data;
    case 'later':
        return new Promise(resolve => GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
            resolve(data * data);
            return GLib.SOURCE_REMOVE;
        }));
    case 'echo':
        return data;
    case 'pid':
        return pid;
    case 'fail':
        throw new RangeError(`failing on purpose: ${JSON.stringify(data)}`);
    case 'reject':
        return Promise.reject(new Error(`rejected: ${JSON.stringify(data)}`));
    case 'throw-string':
        // eslint-disable-next-line no-throw-literal
        throw 'a bare string';
    case 'bigint':
        return {n: 10n};
    case 'cyclic': {
        const cyclic = {};
        cyclic.self = cyclic;
        return cyclic;
    }
    case 'nan':
        return [1, NaN];
    case 'too-deep': {
        // Deeper than the library takes: JSON.stringify writes it, the
        // library refuses it.
        let deep = [];
        for (let i = 0; i < Mpq.MAX_DEPTH; i++)
            deep = [deep];
        return deep;
    }
    case 'progress':
        for (let i = 1; i <= data; i++)
            progress(i);
        return data;
    case 'until-cancel':
        progress('started');
        return new Promise(resolve => {
            progress.cancellable.connect(() => resolve('stopped'));
        });
    case 'config':
        return null;
    default:
        throw new Error(`unknown request ${request}`);
    }
}

system.exit(Mpq.serveWorker(handle) ? 0 : 1);
