// SPDX-License-Identifier: LGPL-2.1-or-later
//
// queue-parent.js — a GJS parent spreading tasks over workers in any language.
//
//   gjs -m queue-parent.js [WORKER COMMAND LINE [-- WORKER COMMAND LINE]...]
//                          (default: three of gjs -m queue-worker.js)
//
// One worker is spawned for each command line, all on one Mpq.Queue. The
// parent puts 20 tasks DO {"value": n}, addressed to nobody: whichever worker
// has room takes the next one. Each worker answers FINISHED {"value": n * n}
// to the parent, which collects the answers with receive_async(). Then it
// sends the poison pills, one DIE addressed to each worker, joins the queue
// with join_async() (every message put has been taken) and waits for the
// workers with wait_check_async(). Exits 0 only if the sum of the answers is
// right and every worker exited with 0.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

Gio._promisify(Mpq.Queue.prototype, 'receive_async', 'receive_finish');
Gio._promisify(Mpq.Queue.prototype, 'join_async', 'join_finish');
Gio._promisify(Gio.Subprocess.prototype, 'wait_check_async', 'wait_check_finish');

const N_TASKS = 20;
const TIMEOUT_SECONDS = 30;

// Splits the arguments at each "--" into command lines.
function workerCommands(args) {
    const commands = [[]];

    for (const arg of args) {
        if (arg === '--')
            commands.push([]);
        else
            commands.at(-1).push(arg);
    }
    return commands.filter(command => command.length > 0);
}

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
let commands = workerCommands(ARGV);
if (commands.length === 0)
    commands = Array(3).fill(['gjs', '-m', GLib.build_filenamev([here, 'queue-worker.js'])]);

const queue = Mpq.Queue.new(0);  // 0: no bound on its size
const workers = new Map();  // pid → {name, process, tasks}
let total = 0;

async function main() {
    for (const command of commands) {
        const process = queue.spawn(command);
        const pid = Number(process.get_identifier());
        const name = command.map(word => GLib.path_get_basename(word)).join(' ');

        workers.set(pid, {name, process, tasks: 0});
        print(`worker ${pid}: ${name}`);
    }

    // The tasks, for anybody (but never handed back to the parent that put them).
    for (let n = 1; n <= N_TASKS; n++)
        queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({value: n}));
    print(`put ${N_TASKS} tasks`);

    // The answers are addressed to the parent: receive_async() takes them one
    // by one, while a thread of the library serves the workers. Give up on
    // them and on the join below after TIMEOUT_SECONDS.
    const cancellable = new Gio.Cancellable();
    const watchdog = GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, TIMEOUT_SECONDS, () => {
        cancellable.cancel();
        return GLib.SOURCE_REMOVE;
    });
    for (let i = 0; i < N_TASKS; i++) {
        // eslint-disable-next-line no-await-in-loop
        const message = await queue.receive_async(cancellable);

        total += JSON.parse(message.dup_data_json()).value;
        workers.get(message.get_sender_pid()).tasks++;
    }

    // The pills, one for each worker, addressed to it.
    for (const pid of workers.keys())
        queue.send(Mpq.REQ_DIE, 0, pid, null);

    // join: every message ever put has been taken, the pills included.
    await queue.join_async(cancellable);
    GLib.source_remove(watchdog);
    print('joined: every message was taken');
}

// Waits for every worker; rejects if one failed.
async function waitForWorkers() {
    const exits = await Promise.allSettled(
        [...workers.values()].map(worker => worker.process.wait_check_async(null)));
    const failed = [...workers].map(([pid, worker], i) => exits[i].status === 'rejected'
        ? `worker ${pid}: ${exits[i].reason.message}` : null).filter(Boolean);

    if (failed.length > 0)
        throw new Error(failed.join('; '));
}

const loop = new GLib.MainLoop(null, false);
let status = 0;

main().catch(e => {
    printerr(`queue-parent.js: ${e.message}`);
    status = 1;
    for (const worker of workers.values())
        worker.process.force_exit();  // a no-op for the workers that are gone
}).then(waitForWorkers).catch(e => {
    printerr(`queue-parent.js: ${e.message}`);
    status = 1;
}).finally(() => loop.quit());
loop.run();
queue.close();

for (const [pid, worker] of workers)
    print(`worker ${pid} (${worker.name}) did ${worker.tasks} tasks`);
const expected = N_TASKS * (N_TASKS + 1) * (2 * N_TASKS + 1) / 6;  // 2870
const right = total === expected;
print(`sum of the squares of 1 to ${N_TASKS}: ${total} (${right ? 'right' : 'WRONG'})`);
system.exit(right ? status : 1);
