// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The child that test-queue.js spawns through Mpq.Queue.spawn(). Its first
// argument says what it does:
//
//   worker [--ready]   dispatch (start() and a GLib.MainLoop):
//                      DO {"id": n, "value": x} -> FINISHED {"id": n, "result": x * x,
//                      "worker": pid} to the parent; DIE -> quit. With --ready it
//                      puts Mpq.REQ_TEST_CHILD for the parent once dispatch is on.
//   once               dispatch, but quits after its first DO.
//   die                dispatch; exits with status 7 inside its first DO
//                      handler, so that the task is still in its hand.
//   put N              puts N FINISHED {"i": 0 … N-1, "worker": pid} for the parent.
//   targeted           pymulproc's way: receive(-1, filter) taking only what is
//                      addressed to this pid, so the rest goes back to the end;
//                      DO as for worker, DIE -> quit.
//   reject             one receive(-1, filter) whose filter says no; then puts
//                      REJECTED {"saw": request the filter saw} for the parent.
//   flood MAX          puts into a bounded queue (put-timeout 20 ms, 2 attempts)
//                      until it fails; the failure must be FULL, after MAX puts.
//   cancel             a receive_async() cancelled at once must fail with
//                      CANCELLED; the next one must get the DO, answered as for
//                      worker.
//   for-me             receive_for_me(-1) in a loop, without a main loop: DO as
//                      for worker, DIE -> quit; the DOs' ids must rise (the
//                      parent put them in order, and nothing goes back).
//
// Every mode exits 0 when all went as expected, 1 otherwise (with the reason
// on stderr), so the parent checks the exit status.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

Gio._promisify(Mpq.Queue.prototype, 'receive_async', 'receive_finish');

const [mode, arg] = ARGV;
const loop = new GLib.MainLoop(null, false);
let status = 0;
let queue = null;  // Mpq.Queue.new_for_child(), below

function fail(why) {
    printerr(`queue-child.js ${mode} [${queue?.pid}]: ${why}`);
    status = 1;
    loop.quit();
}

function isMpqError(e, code) {
    return e instanceof GLib.Error && e.matches(Mpq.error_quark(), code);
}

// Answers the task in @message to the parent.
function answer(channel, message) {
    const task = JSON.parse(message.dup_data_json());

    channel.send_json(Mpq.REQ_FINISHED, 0, channel.get_parent_pid(),
        JSON.stringify({id: task.id, result: task.value * task.value, worker: channel.pid}));
}

// Dispatch: @onDo handles each DO; DIE quits; anything else is a failure.
function serve(onDo) {
    queue.connect('message-received::DO', (channel, message) => {
        try {
            onDo(channel, message);
        } catch (e) {
            fail(`DO: ${e}`);
        }
    });
    queue.connect('message-received::DIE', () => loop.quit());
    queue.connect('message-received', (channel, message) => {
        const request = message.get_request();

        if (request !== Mpq.REQ_DO && request !== Mpq.REQ_DIE)
            fail(`unexpected message ${message.to_json()[0]}`);
    });
    queue.connect('closed', () => {
        if (loop.is_running())  // not our own close() at the end
            fail('the queue closed before DIE');
    });
    queue.start();
}

const MODES = {
    worker() {
        serve(answer);
        if (arg === '--ready')
            queue.send(Mpq.REQ_TEST_CHILD, 0, queue.get_parent_pid(), null);
        loop.run();
    },

    once() {
        serve((channel, message) => {
            answer(channel, message);
            channel.stop();
            loop.quit();
        });
        loop.run();
    },

    die() {
        serve(() => system.exit(7));
        loop.run();
    },

    put() {
        for (let i = 0; i < Number(arg); i++) {
            queue.send_json(Mpq.REQ_FINISHED, 0, queue.get_parent_pid(),
                JSON.stringify({i, worker: queue.pid}));
        }
    },

    targeted() {
        const mine = message => message.get_recipient_pid() === queue.pid;

        for (;;) {
            const message = queue.receive(-1, mine);

            if (message === null)
                continue;  // someone else's: it went back to the end
            if (!mine(message))
                throw new Error(`took ${message.to_json()[0]}, not addressed to me`);
            if (message.get_request() === Mpq.REQ_DIE)
                break;
            if (message.get_request() !== Mpq.REQ_DO)
                throw new Error(`unexpected message ${message.to_json()[0]}`);
            answer(queue, message);
        }
    },

    reject() {
        const seen = [];
        const message = queue.receive(-1, m => {
            seen.push(m.get_request());
            return false;
        });

        if (message !== null)
            throw new Error('receive() returned a message its filter refused');
        if (seen.length !== 1)
            throw new Error(`the filter was called ${seen.length} times`);
        queue.send_json('REJECTED', 0, queue.get_parent_pid(), JSON.stringify({saw: seen[0]}));
    },

    flood() {
        const max = Number(arg);
        let sent = 0;

        queue.set_put_timeout(20);
        queue.set_put_attempts(2);
        try {
            for (; sent <= max; sent++)
                queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({i: sent}));
        } catch (e) {
            if (!isMpqError(e, Mpq.Error.FULL))
                throw new Error(`a put into the full queue failed with ${e}, not FULL`);
        }
        if (sent !== max)
            throw new Error(`${sent} puts went through, not ${max}`);
    },

    'for-me'() {
        let last = -1;

        for (;;) {
            const message = queue.receive_for_me(-1);

            if (message.get_request() === Mpq.REQ_DIE)
                break;
            if (message.get_request() !== Mpq.REQ_DO)
                throw new Error(`unexpected message ${message.to_json()[0]}`);
            const {id} = JSON.parse(message.dup_data_json());
            if (id <= last)
                throw new Error(`task ${id} came after ${last}`);
            last = id;
            answer(queue, message);
        }
    },

    async cancel() {
        const cancellable = new Gio.Cancellable();
        const cancelled = queue.receive_async(cancellable);

        cancellable.cancel();
        try {
            const message = await cancelled;
            throw new Error(`a cancelled receive_async() returned ${message?.to_json()[0]}`);
        } catch (e) {
            if (!(e instanceof GLib.Error && e.matches(Gio.io_error_quark(),
                Gio.IOErrorEnum.CANCELLED)))
                throw e;
        }
        answer(queue, await queue.receive_async(null));
    },
};

try {
    queue = Mpq.Queue.new_for_child();
    if (queue.role !== Mpq.Role.CHILD)
        throw new Error(`role is ${queue.role}, not CHILD`);
    if (queue.get_parent_pid() <= 0)
        throw new Error(`parent pid is ${queue.get_parent_pid()}`);
    if (!(mode in MODES))
        throw new Error(`unknown mode ${mode}`);

    const result = MODES[mode]();
    if (result instanceof Promise) {
        result.catch(e => fail(e)).finally(() => loop.quit());
        loop.run();
    }
} catch (e) {
    fail(e);
}
queue?.close();

system.exit(status);
