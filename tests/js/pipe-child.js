// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The child that test-pipe.js spawns through Mpq.Pipe.spawn(). It works only
// through signals in a GLib.MainLoop:
//
//   DO {"id": n, "op": "square", "value": x}    -> FINISHED {"id": n, "result": x * x}
//   DO {"id": n, "op": "words", "text": "a b"}  -> FINISHED {"id": n, "result": 2}
//   BLOB with a payload                          -> FINISHED with the same payload
//   DIE                                          -> quit, exit 0
//
// Every answer is addressed to the sender of the task. Anything else (another
// request, a task it cannot do, the parent hanging up before DIE) makes it
// exit 1, which the parent sees as a failed test.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const loop = new GLib.MainLoop(null, false);
let status = 0;

function fail(why) {
    printerr(`pipe-child.js: ${why}`);
    status = 1;
    loop.quit();
}

function work(task) {
    switch (task.op) {
    case 'square':
        return task.value * task.value;
    case 'words':
        return task.text.split(/\s+/).filter(w => w.length > 0).length;
    default:
        throw new Error(`unknown task ${JSON.stringify(task)}`);
    }
}

const pipe = Mpq.Pipe.new_for_child();

if (pipe.role !== Mpq.Role.CHILD)
    fail(`role is ${pipe.role}, not CHILD`);

pipe.connect('message-received::DO', (channel, message) => {
    try {
        const task = JSON.parse(message.dup_data_json());
        const answer = {id: task.id, result: work(task)};

        channel.send_json(Mpq.REQ_FINISHED, 0, message.get_sender_pid(),
            JSON.stringify(answer));
    } catch (e) {
        fail(`DO: ${e}`);
    }
});

// A payload goes back as it came (by descriptor: the same file).
pipe.connect('message-received::BLOB', (channel, message) => {
    try {
        channel.send_message(Mpq.Message.new_with_bytes(Mpq.REQ_FINISHED, 0,
            message.get_sender_pid(), null, message.get_bytes()));
    } catch (e) {
        fail(`BLOB: ${e}`);
    }
});

pipe.connect('message-received::DIE', () => loop.quit());

// Without a detail the handler sees every message: flag the unexpected ones.
pipe.connect('message-received', (channel, message) => {
    const request = message.get_request();

    if (request !== Mpq.REQ_DO && request !== Mpq.REQ_DIE && request !== 'BLOB')
        fail(`unexpected request ${message.to_json()[0]}`);
});

pipe.connect('closed', () => fail('the parent hung up before DIE'));

pipe.start();
loop.run();
pipe.close();

system.exit(status);
