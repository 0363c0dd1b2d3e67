// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Queue kept on Redis (issue 14): the same JavaScript
// children as test-queue.js (queue-child.js, unchanged: they join with
// Mpq.Queue.new_for_child(), which finds MPQ_QUEUE_URI in the environment
// Mpq.Queue.spawn() gives them) against a redis-server this test starts on
// a unix socket in a temporary folder and stops at the end. Dispatch at
// both ends, receive_async() and join_async() as promises, FIFO per
// producer, routed receive without a main loop, a cancelled receive.
// Skips (TAP "1..0 # SKIP") without redis-server or without Redis support
// in the library (the server: redis-server.js).
//
//   gjs -m test-queue-redis.js [GJS]     (GJS: the interpreter for the children)
//
// Nothing here sleeps to let something happen: the test waits for what it
// expects (the server's "ready" line, a message, a child's exit) with a
// bound that only turns a hang into a failure.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {startServerOrSkip, serverStopsTest} from './redis-server.js';
import {assert, assertEqual, assertRejects, runTests} from './tap.js';

Gio._promisify(Mpq.Queue.prototype, 'receive_async', 'receive_finish');
Gio._promisify(Mpq.Queue.prototype, 'join_async', 'join_finish');
Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');

const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;  // meson's is 120 s (× 10 under valgrind)
const PROMPT_MS = 20000 * SLOW;  // bound on a blocking receive()

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const childScript = GLib.build_filenamev([here, 'queue-child.js']);

const children = [];  // every Gio.Subprocess, the server too: killed on a time-out
let uri = null;       // the server's, once it is ready
let queues = 0;       // each test's queue has a name of its own

// Helpers ------------------------------------------------------------------

function newQueue(maxSize = 0) {
    return Mpq.Queue.new_for_uri(uri, `js-${GLib.getenv('USER') ?? 'u'}-${queues++}`, maxSize);
}

function spawnChild(queue, ...args) {
    const proc = queue.spawn([gjsPath, '-m', childScript, ...args.map(String)]);

    children.push(proc);
    return proc;
}

async function checkExit(proc, status = 0) {
    await proc.wait_async(null);
    assert(proc.get_if_exited(), `child ${proc.get_identifier()} exited rather than being killed`);
    assertEqual(proc.get_exit_status(), status, 'a child\'s exit status');
}

function dataOf(message) {
    return JSON.parse(message.dup_data_json());
}

// Children's pids on Redis are queue-wide ids, not the OS's: a DIE for
// anyone per child, and each child takes one.
async function endChildren(queue, procs) {
    for (const _ of procs)
        queue.send(Mpq.REQ_DIE, 0, 0, null);
    await Promise.all(procs.map(proc => checkExit(proc)));
}

// Resolves with the next @n messages dispatch hands the parent, or rejects
// after PROMPT_MS.
function collect(queue, n) {
    return new Promise((resolve, reject) => {
        const got = [];
        const id = queue.connect('message-received', (channel, message) => {
            got.push(message);
            if (got.length === n) {
                queue.disconnect(id);
                GLib.source_remove(timer);
                resolve(got);
            }
        });
        const timer = GLib.timeout_add(GLib.PRIORITY_DEFAULT, PROMPT_MS, () => {
            queue.disconnect(id);
            reject(new Error(`${got.length} of ${n} messages within ${PROMPT_MS} ms`));
            return GLib.SOURCE_REMOVE;
        });
    });
}

// The tests ------------------------------------------------------------------

// Dispatch at both ends: two JS workers serve tasks for anyone, each
// answers to the parent's id; the parent takes the answers by
// message-received. Every task once; join_async() then resolves.
async function testDispatch() {
    const TASKS = 60;
    const queue = newQueue();

    queue.start();
    const procs = [spawnChild(queue, 'worker', '--ready'), spawnChild(queue, 'worker', '--ready')];
    const ready = await collect(queue, 2);
    for (const message of ready)
        assertEqual(message.get_request(), Mpq.REQ_TEST_CHILD, 'each worker says it is ready');
    const workers = ready.map(message => message.get_sender_pid());
    assert(workers[0] !== workers[1] && workers.every(id => id > 0),
        `two queue-wide ids, not ${workers}`);

    const answers = collect(queue, TASKS);
    for (let id = 0; id < TASKS; id++)
        queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({id, value: id + 1}));
    const ids = [];
    for (const message of await answers) {
        const {id, result, worker} = dataOf(message);

        assertEqual(message.get_request(), Mpq.REQ_FINISHED, 'an answer');
        assertEqual(message.get_recipient_pid(), queue.pid, 'addressed to the parent\'s id');
        assert(workers.includes(worker), `from one of the workers, not ${worker}`);
        assertEqual(result, (id + 1) * (id + 1), `the answer to task ${id}`);
        ids.push(id);
    }
    ids.sort((a, b) => a - b);
    assertEqual(ids, Array.from({length: TASKS}, (_, i) => i), 'every task answered once');

    queue.stop();
    await endChildren(queue, procs);
    await queue.join_async(null);
    assert(queue.is_empty(), 'nothing left');
    queue.close();
}

// Two children put for the parent; receive_async() takes everything, each
// child's messages in the order it put them.
async function testReceiveAsyncInOrder() {
    const N = 40;
    const queue = newQueue();
    const procs = [spawnChild(queue, 'put', N), spawnChild(queue, 'put', N)];
    const next = new Map();  // worker id → the next i it must send

    for (let k = 0; k < 2 * N; k++) {
        // eslint-disable-next-line no-await-in-loop
        const message = await queue.receive_async(null);
        const {i, worker} = dataOf(message);

        assertEqual(message.get_sender_pid(), worker, 'the sender is the worker\'s id');
        assertEqual(i, next.get(worker) ?? 0, `worker ${worker}'s messages in order`);
        next.set(worker, i + 1);
    }
    assertEqual([...next.values()], [N, N], 'every message of both');
    await Promise.all(procs.map(proc => checkExit(proc)));
    await queue.join_async(null);
    queue.close();
}

// Without a main loop at either end: tasks for anyone, two children take
// them with receive_for_me() (checking their order), the parent collects
// with receive_for_me() and never gets its own tasks back.
async function testReceiveForMe() {
    const TASKS = 40;
    const queue = newQueue();

    for (let id = 0; id < TASKS; id++)
        queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({id, value: id}));
    const procs = [spawnChild(queue, 'for-me'), spawnChild(queue, 'for-me')];
    const ids = [];
    for (let k = 0; k < TASKS; k++) {
        const message = queue.receive_for_me(PROMPT_MS);

        assert(message !== null, `answer ${k} within ${PROMPT_MS} ms`);
        assertEqual(message.get_request(), Mpq.REQ_FINISHED, 'an answer, not a task');
        ids.push(dataOf(message).id);
    }
    ids.sort((a, b) => a - b);
    assertEqual(ids, Array.from({length: TASKS}, (_, i) => i), 'every task answered once');
    assertEqual(queue.receive_for_me(0), null, 'nothing more for the parent');
    await endChildren(queue, procs);
    queue.close();
}

// A cancelled receive_async() takes nothing, in the parent and in a child:
// the task is handed over once, to the child's next receive_async().
async function testCancel() {
    const queue = newQueue();
    const cancellable = new Gio.Cancellable();
    const cancelled = queue.receive_async(cancellable);

    cancellable.cancel();
    await assertRejects(cancelled, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'a cancelled receive_async()');

    const proc = spawnChild(queue, 'cancel');
    queue.send_json(Mpq.REQ_DO, 0, 0, '{"id":7,"value":3}');
    const answer = queue.receive_for_me(PROMPT_MS);
    assert(answer !== null, 'the child answered');
    assertEqual(dataOf(answer).result, 9, 'the answer');
    await checkExit(proc);
    assert(queue.is_empty(), 'the task was taken once');
    queue.close();
}

const TESTS = [
    ['dispatch at both ends over Redis: every task answered once, join_async()', testDispatch],
    ['receive_async() takes two children\'s puts, each one\'s order kept', testReceiveAsyncInOrder],
    ['receive_for_me() at both ends, without a main loop', testReceiveForMe],
    ['a cancelled receive_async() takes nothing, in parent and child', testCancel],
];

// The server, then the tests; on a time-out runTests () kills the server
// with the children.
const server = startServerOrSkip(children);
uri = server.uri;
TESTS.push(serverStopsTest(server));
runTests(TESTS, TIMEOUT_SECONDS, children);
