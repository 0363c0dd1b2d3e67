// SPDX-License-Identifier: LGPL-2.1-or-later
//
// queue-worker.js — a GJS worker for any of the queue-parent examples.
//
// Spawned through Mpq.Queue.spawn() as `gjs -m queue-worker.js`, it takes its
// tasks by dispatch: it starts the queue and runs a GLib main loop, and the
// queue emits message-received for each message addressed to it or to
// nobody. DO {"value": n} is answered FINISHED {"value": n * n} to the
// parent; DIE ends it with status 0.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const loop = new GLib.MainLoop(null, false);
const queue = Mpq.Queue.new_for_child();  // the socket MPQ_CHANNEL_FD names
let status = 0;

function fail(why) {
    printerr(`queue-worker.js: ${why}`);
    status = 1;
    loop.quit();
}

const handlers = [
    queue.connect('message-received::DO', (channel, message) => {
        try {
            const {value} = JSON.parse(message.dup_data_json());

            if (!Number.isSafeInteger(value * value))
                throw new Error('not a small whole number');
            // The parent's pid comes from the queue's server: answers go there.
            channel.send_json(Mpq.REQ_FINISHED, 0, channel.get_parent_pid(),
                JSON.stringify({value: value * value}));
        } catch (e) {
            fail(`cannot do ${message.to_json()[0]}: ${e.message}`);
        }
    }),
    queue.connect('message-received::DIE', () => loop.quit()),
    queue.connect('closed', () => fail('the queue closed before DIE')),
];

queue.start();
loop.run();

// Whatever was handed to us and not handled goes back to the queue.
handlers.forEach(id => queue.disconnect(id));
queue.close();
system.exit(status);
