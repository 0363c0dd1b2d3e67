// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Pool's tasks with bytes payloads: a JavaScript parent
// and JavaScript workers (bytes-worker.js, an Mpq.Worker through GI) that
// answer a payload with its length and its bytes flipped (XOR 0xFF), through
// submit_bytes (), get_bytes (), return_bytes () and the reply's
// get_bytes (): a small payload (inline) and a large one (a memfd), a task
// without one, the format the workers name in their READY, wait_async
// (promisified), and a null payload refused in JavaScript.
// Prints TAP; exits 1 on any failure or time-out.
//
//   gjs -m test-pool-bytes.js [GJS]     (GJS: the interpreter for the workers)
//
// Nothing here sleeps to let something happen: the parent waits for what
// it expects (a task's end, a signal); the runner's time-out only turns a
// hang into a failure.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {until, watchPool} from './pool-util.js';
import {assert, assertEqual, errorText, runTests} from './tap.js';

Gio._promisify(Mpq.Task.prototype, 'wait_async', 'wait_finish');

// Under valgrind (meson test --setup=valgrind) everything is slower.
const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;  // meson's is 120 s (× 10 under valgrind)

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const workerScript = GLib.build_filenamev([here, 'bytes-worker.js']);

const SMALL = 100;                // inline, base64 in the line
const LARGE = 2 * 1024 * 1024;    // past Mpq.PAYLOAD_INLINE_MAX (64 KiB): a sealed memfd

// What runTests kills on a time-out: each pool, disposed of, kills its
// workers.
const children = [];

// Helpers ------------------------------------------------------------------

function newPool(nWorkers, format = null) {
    const argv = [gjsPath, '-m', workerScript];

    if (format !== null)
        argv.push(`--format=${format}`);
    return watchPool(Mpq.Pool.new(argv, nWorkers), children);
}

// @n bytes that differ from one position to the next (not a period of 256
// only: a byte dropped or repeated anywhere shows).
function pattern(n, seed) {
    const data = new Uint8Array(n);
    let x = seed >>> 0 || 1;

    for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        data[i] = x & 0xff;
    }
    return data;
}

function flipped(data) {
    return data.map(b => b ^ 0xff);
}

// Compares two Uint8Arrays byte for byte; says where they first differ.
function assertSameBytes(actual, expected, what) {
    assert(actual instanceof Uint8Array, `${what}: a ${actual?.constructor?.name}, not a Uint8Array`);
    assertEqual(actual.length, expected.length, `${what}: length`);
    for (let i = 0; i < expected.length; i++) {
        if (actual[i] !== expected[i])
            throw new Error(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
}

// Checks @reply, the answer to @task, a bytes-echo of @sent (a Uint8Array).
function checkEcho(task, reply, sent, what) {
    assert(reply !== null, `${what}: a reply`);
    assertEqual(reply.get_request(), Mpq.REQ_FINISHED, `${what}: reply request`);
    assertEqual(reply.get_sender_pid(), task.get_worker_pid(), `${what}: reply sender`);
    assertEqual(task.get_state(), Mpq.TaskState.DONE, `${what}: task state`);
    assertEqual(JSON.parse(reply.dup_data_json()), sent.length, `${what}: the length`);
    const bytes = reply.get_bytes();
    assert(bytes instanceof GLib.Bytes, `${what}: reply bytes are ${bytes}`);
    // Only toArray (): under GJS 1.74 a GLib.Bytes whose own methods are
    // called (get_size (), get_data ()) is never freed, which
    // `meson test --setup=valgrind` reports as a definite leak.
    assertSameBytes(bytes.toArray(), flipped(sent), `${what}: the bytes`);
}

function shutdown(pool, nWorkers) {
    assert(pool.shutdown(-1), 'shutdown');
    assertEqual(pool.exited.filter(e => !e.expected).length, 0, 'unexpected exits');
    assertEqual(pool.exited.length, nWorkers, 'every worker exited');
    for (const {pid, status} of pool.exited)
        assert(GLib.spawn_check_wait_status(status), `worker ${pid} exited with 0`);
}

// Tests --------------------------------------------------------------------

async function testSmallAndLarge() {
    const pool = newPool(2);
    const small = pattern(SMALL, 1);
    const large = pattern(LARGE, 2);
    const tasks = [
        [small, pool.submit_bytes('bytes-echo', null, new GLib.Bytes(small)), 'small'],
        [large, pool.submit_bytes('bytes-echo', JSON.stringify({big: true}),
            new GLib.Bytes(large)), 'large'],
    ];

    // Several of each at once, on both workers; and the edges: empty, the
    // largest sent inline, the smallest in a memfd.
    const sizes = [SMALL, LARGE, SMALL, LARGE, 0, Mpq.PAYLOAD_INLINE_MAX,
        Mpq.PAYLOAD_INLINE_MAX + 1];
    for (const [i, size] of sizes.entries()) {
        const data = pattern(size, 10 + i);
        tasks.push([data, pool.submit_bytes('bytes-echo', JSON.stringify(i),
            new GLib.Bytes(data)), `#${i}, ${size} bytes`]);
    }
    for (const [sent, task, what] of tasks) {
        checkEcho(task, task.wait(-1), sent, what);
        assertEqual(task.get_attempts(), 1, `${what}: attempts`);
    }
    shutdown(pool, 2);
}

async function testNoPayload() {
    const pool = newPool(1);
    const task = pool.submit('bytes-echo', JSON.stringify('nothing'));
    const reply = task.wait(-1);

    assertEqual(reply.get_request(), Mpq.REQ_FINISHED, 'reply request');
    assertEqual(reply.dup_data_json(), 'null', 'no payload: null');
    assertEqual(reply.get_bytes(), null, 'no bytes in the reply');
    // A task with bytes after one without: the worker saw none left over.
    const data = pattern(SMALL, 3);
    const after = pool.submit_bytes('bytes-echo', null, new GLib.Bytes(data));
    checkEcho(after, after.wait(-1), data, 'after');
    const again = pool.submit('bytes-echo', null);
    assertEqual(again.wait(-1).get_bytes(), null, 'no bytes left from the task before');
    shutdown(pool, 1);
}

async function testWorkerFormat() {
    const pool = newPool(2, 'gjs-test');

    assertEqual(pool.get_worker_format(), null, 'format before any worker is ready');
    await until(() => pool.started.length >= 1, [[pool, 'worker-started']]);
    assertEqual(pool.get_worker_format(), 'gjs-test', 'format after the first worker-started');
    await until(() => pool.started.length === 2, [[pool, 'worker-started']]);
    assertEqual(pool.get_worker_format(), 'gjs-test', 'format after both');
    shutdown(pool, 2);

    // Workers that name none: still null once they are ready.
    const plain = newPool(1);
    await until(() => plain.started.length === 1, [[plain, 'worker-started']]);
    assertEqual(plain.get_worker_format(), null, 'no format named');
    shutdown(plain, 1);
}

async function testWaitAsync() {
    const pool = newPool(2);
    const sent = [pattern(SMALL, 4), pattern(LARGE, 5), pattern(SMALL + 1, 6)];
    const tasks = sent.map(data => pool.submit_bytes('bytes-echo', null, new GLib.Bytes(data)));
    const replies = await Promise.all(tasks.map(task => task.wait_async(null)));

    for (const [i, reply] of replies.entries())
        checkEcho(tasks[i], reply, sent[i], `wait_async ${i}`);
    // Waited for again, once final: the same bytes.
    checkEcho(tasks[1], await tasks[1].wait_async(null), sent[1], 'wait_async again');
    shutdown(pool, 2);
}

async function testNullPayload() {
    const pool = newPool(1);

    // The payload is not nullable: GJS refuses null before C is called
    // (no critical from g_return_val_if_fail).
    for (const payload of [null, undefined]) {
        let error = null;

        try {
            pool.submit_bytes('bytes-echo', null, payload);
        } catch (e) {
            error = e;
        }
        assert(error !== null, `submit_bytes () with ${payload} did not throw`);
        assert(!(error instanceof GLib.Error) && error.message.includes('payload'),
            `submit_bytes () with ${payload}: ${errorText(error)}`);
    }
    // Nothing was queued: the next task is the first.
    const data = pattern(SMALL, 7);
    const task = pool.submit_bytes('bytes-echo', null, new GLib.Bytes(data));
    checkEcho(task, task.wait(-1), data, 'after the refused ones');
    assertEqual(task.get_id(), 1, 'the first task queued');
    shutdown(pool, 1);
}

const TESTS = [
    ['a small and a large payload, answered with bytes', testSmallAndLarge],
    ['a task without a payload: a reply without bytes', testNoPayload],
    ['the format the workers name, null before the first is ready', testWorkerFormat],
    ['wait_async (promisified) gives the reply with its bytes', testWaitAsync],
    ['a null payload is refused in JavaScript, nothing queued', testNullPayload],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
