// SPDX-License-Identifier: LGPL-2.1-or-later
//
// pool.js — tutorial step 4 in JavaScript: an Mpq.Pool with plain values
// and promises.
//
//   gjs -m pool.js [WORKER COMMAND LINE]   (default: gjs -m pool-worker.js)
//
// Two workers running the command line; one task submitted and awaited, a
// map over ten numbers, a task that fails, then shutdown.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const workerArgv = ARGV.length > 0 ? ARGV
    : ['gjs', '-m', GLib.build_filenamev([here, 'pool-worker.js'])];

async function main() {
    const pool = Mpq.Pool.new(workerArgv, 2);

    // One task: submitValue returns at once; await gives its result.
    const seven = await pool.submitValue('square', 7);
    print(`square of 7: ${seven}`);

    // A map, in input order.
    const squares = await pool.mapValues('square', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    print(`map: ${JSON.stringify(squares)}`);

    // A worker's error is the task's: MPQ_ERROR_TASK_FAILED.
    try {
        await pool.submitValue('square', 'seven');
    } catch (error) {
        if (!error.matches?.(Mpq.error_quark(), Mpq.Error.TASK_FAILED))
            throw error;
        print(`square of "seven" failed: ${error.message.split('\n')[0]}`);
    }

    await pool.shutdown_async(5000, null);
    print('the pool is shut down');
}

const loop = new GLib.MainLoop(null, false);
let status = 0;

main().catch(error => {
    logError(error);
    status = 1;
}).finally(() => loop.quit());
loop.run();
system.exit(status);
