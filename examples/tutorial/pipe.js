// SPDX-License-Identifier: LGPL-2.1-or-later
//
// pipe.js — tutorial step 1 in JavaScript: a parent and a child on an
// Mpq.Pipe, with plain values (sendValue) and promises (receiveValue).
//
//   gjs -m pipe.js            the parent: spawns itself with --child
//   gjs -m pipe.js --child    the child (only as spawned by the parent)

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

// The override promises Mpq's calls; Gio's are promised as usual.
Gio._promisify(Gio.Subprocess.prototype, 'wait_check_async');

const script = GLib.filename_from_uri(import.meta.url)[0];

async function child() {
    const pipe = Mpq.Pipe.new_for_child();

    for (;;) {
        const {request, senderPid, data} = await pipe.receiveValue();

        if (request === Mpq.REQ_DIE)
            break;
        pipe.sendValue(Mpq.REQ_FINISHED, data ** 2, {recipientPid: senderPid});
    }
    pipe.close();  // sends what is left to send
}

async function parent() {
    const pipe = Mpq.Pipe.new();
    const process = pipe.spawn(['gjs', '-m', script, '--child']);

    for (const n of [1, 2, 3]) {
        pipe.sendValue(Mpq.REQ_DO, n);
        const answer = await pipe.receiveValue();  // {request, senderPid, recipientPid, data}
        print(`${n} squared is ${answer.data}`);
    }
    pipe.sendValue(Mpq.REQ_DIE);
    await process.wait_check_async(null);
    print('the child exited');
}

const loop = new GLib.MainLoop(null, false);
let status = 0;

(ARGV[0] === '--child' ? child() : parent())
    .catch(error => {
        logError(error);
        status = 1;
    })
    .finally(() => loop.quit());
loop.run();
system.exit(status);
