// SPDX-License-Identifier: LGPL-2.1-or-later
//
// pipe-parent.js — a GJS parent handing tasks to a child in any language.
//
//   gjs -m pipe-parent.js [CHILD COMMAND LINE...]  (default: /usr/bin/python3 pipe_child.py)
//
// Sends DO with a number (to square) or a text (to count its words), takes the
// FINISHED answers {"task": …, "result": n} through message-received signals
// in a main loop, sends DIE after the last one and waits for the child.
// Exits 0 only if every answer was right and the child exited with 0.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const TASKS = [7, 'the quick brown fox', -12, 'naïve café au lait', 1000000];
const RESULTS = [49, 4, 144, 4, 1e12];

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const childArgv = ARGV.length > 0 ? ARGV
    : ['/usr/bin/python3', GLib.build_filenamev([here, 'pipe_child.py'])];

const loop = new GLib.MainLoop(null, false);
const pipe = Mpq.Pipe.new();
let childPid = 0, answers = 0, right = 0, exitedWell = false, pending = 2; // ::closed and the exit

pipe.connect('message-received::FINISHED', (channel, message) => {
    const answer = JSON.parse(message.dup_data_json());
    const good = message.get_sender_pid() === childPid &&
        answer?.task === TASKS[answers] && answer?.result === RESULTS[answers];

    print(`answer ${answers + 1} from ${childPid}: ${message.dup_data_json()} ${good ? 'ok' : 'WRONG'}`);
    right += good ? 1 : 0;
    if (++answers === TASKS.length)  // the poison pill; the child then hangs up
        channel.send(Mpq.REQ_DIE, 0, 0, null);
});

pipe.connect('closed', () => {
    print('the child hung up');
    if (--pending === 0)
        loop.quit();
});

try {
    const child = pipe.spawn(childArgv);

    childPid = Number(child.get_identifier());
    child.wait_check_async(null, (proc, result) => {
        try {
            exitedWell = proc.wait_check_finish(result);
        } catch (e) {
            printerr(`pipe-parent.js: ${e.message}`);
        }
        if (--pending === 0)
            loop.quit();
    });

    pipe.start();
    for (const task of TASKS)
        pipe.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify(task));
    loop.run();
} catch (e) {  // could not spawn, or the child hung up before taking every task
    printerr(`pipe-parent.js: ${e.message}`);
}
pipe.close();

print(`${right} of ${TASKS.length} answers right; child ${exitedWell ? 'exited with 0' : 'failed'}`);
system.exit(right === TASKS.length && exitedWell ? 0 : 1);
