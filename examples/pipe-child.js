// SPDX-License-Identifier: LGPL-2.1-or-later
//
// pipe-child.js — a GJS child for any of the pipe-parent examples.
//
// Spawned through Mpq.Pipe.spawn() as `gjs -m pipe-child.js`, it serves
// messages through signals in a GLib main loop: DO 7 is answered
// FINISHED {"task": 7, "result": 49}, DO "a text" with its number of words,
// and DIE ends it with status 0.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const loop = new GLib.MainLoop(null, false);
const pipe = Mpq.Pipe.new_for_child();  // the end MPQ_CHANNEL_FD names
let status = 0;

function fail(why) {
    printerr(`pipe-child.js: ${why}`);
    status = 1;
    loop.quit();
}

function work(task) {
    if (typeof task === 'string')
        return task.split(/\s+/).filter(word => word !== '').length;
    if (Number.isInteger(task))
        return task * task;
    throw new Error(`cannot do ${JSON.stringify(task)}`);
}

pipe.connect('message-received::DO', (channel, message) => {
    try {
        const task = JSON.parse(message.dup_data_json());
        const answer = {task, result: work(task)};

        // Answer whoever asked: the recipient is the sender of the task.
        channel.send_json(Mpq.REQ_FINISHED, 0, message.get_sender_pid(), JSON.stringify(answer));
    } catch (e) {
        fail(e.message);
    }
});
pipe.connect('message-received::DIE', () => loop.quit());
pipe.connect('closed', () => fail('the parent hung up before DIE'));

pipe.start();
loop.run();
pipe.close();
system.exit(status);
