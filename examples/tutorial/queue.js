// SPDX-License-Identifier: LGPL-2.1-or-later
//
// queue.js — tutorial step 2 in JavaScript: a parent and three workers on
// an Mpq.Queue, with plain values and promises.
//
//   gjs -m queue.js             the parent: spawns itself three times
//   gjs -m queue.js --worker    a worker (only as spawned by the parent)

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

Gio._promisify(Gio.Subprocess.prototype, 'wait_check_async');

const script = GLib.filename_from_uri(import.meta.url)[0];
const N_WORKERS = 3;
const N_TASKS = 10;

async function worker() {
    const queue = Mpq.Queue.new_for_child();

    for (;;) {
        // The next message for this worker or for nobody.
        const {request, data} = await queue.receiveValue();

        if (request === Mpq.REQ_DIE)
            break;
        queue.sendValue(Mpq.REQ_FINISHED, data ** 2, {recipientPid: queue.get_parent_pid()});
    }
    queue.close();
}

async function parent() {
    const queue = Mpq.Queue.new(0);  // 0: unbounded
    const workers = [];

    for (let i = 0; i < N_WORKERS; i++)
        workers.push(queue.spawn(['gjs', '-m', script, '--worker']));

    for (let n = 1; n <= N_TASKS; n++)
        queue.sendValue(Mpq.REQ_DO, n);  // for nobody: any worker takes it

    let sum = 0;
    for (let i = 0; i < N_TASKS; i++)
        sum += (await queue.receiveValue()).data;  // eslint-disable-line no-await-in-loop
    print(`the sum of the squares of 1 to ${N_TASKS} is ${sum}`);

    for (const process of workers)
        queue.sendValue(Mpq.REQ_DIE, null, {recipientPid: Number(process.get_identifier())});
    await queue.join_async(null);
    print('joined: every message was taken');
    await Promise.all(workers.map(process => process.wait_check_async(null)));
    print(`${N_WORKERS} workers exited`);
}

const loop = new GLib.MainLoop(null, false);
let status = 0;

(ARGV[0] === '--worker' ? worker() : parent())
    .catch(error => {
        logError(error);
        status = 1;
    })
    .finally(() => loop.quit());
loop.run();
system.exit(status);
