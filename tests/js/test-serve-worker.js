// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of the override's pool helpers (js/overrides/Mpq.js): a
// JavaScript parent using submitValue(), `await task`, task.result() and
// mapValues() with plain values, and JavaScript workers (values-worker.js)
// served by Mpq.serveWorker(), whose handler returns values or promises
// and whose exceptions fail their task with the text and stack. Data with
// no JSON form throws in the parent, and fails the task in a worker.
// Nothing here calls Gio._promisify on an Mpq type. Prints TAP; exits 1
// on any failure or time-out.
//
//   gjs -m test-serve-worker.js [GJS]     (GJS: the interpreter for the workers)
//
// Nothing sleeps to let something happen: the parent awaits what it
// expects. The one short time-out is result()'s, on a task that cannot
// end before it is cancelled.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {assert, assertEqual, assertRejects, runTests} from './tap.js';

const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const workerArgv = [gjsPath, '-m', GLib.build_filenamev([here, 'values-worker.js'])];
const MPQ = Mpq.error_quark();

const children = [];

function newPool(nWorkers) {
    const pool = Mpq.Pool.new(workerArgv, nWorkers);

    pool.exited = [];
    pool.connect('worker-exited', (_pool, pid, status, expected) =>
        pool.exited.push({pid, status, expected}));
    children.push({force_exit: () => pool.run_dispose()});
    return pool;
}

// Shuts @pool down and checks that each worker's serveWorker() returned
// true (exit status 0) when told to go, and that none went unexpectedly.
async function shutdown(pool, nWorkers) {
    await pool.shutdown_async(-1, null);
    assertEqual(pool.exited.filter(e => !e.expected).length, 0, 'unexpected exits');
    assertEqual(pool.exited.length, nWorkers, 'every worker exited');
    for (const {pid, status} of pool.exited)
        assert(GLib.spawn_check_wait_status(status), `worker ${pid} exited with 0`);
}

async function failureOf(promise, code, what) {
    try {
        await promise;
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(MPQ, code),
            `${what}: failed with ${e}, not Mpq.Error ${code}`);
        return e.message;
    }
    throw new Error(`${what}: did not fail`);
}

// The tests ----------------------------------------------------------------

async function testSubmitAndAwait() {
    const pool = newPool(3);
    const tasks = Array.from({length: 40}, (_, i) => pool.submitValue('square', i));

    assertEqual(await Promise.all(tasks), tasks.map((_, i) => i * i), 'await Promise.all');
    assertEqual(await tasks[7], 49, 'a task awaited twice');
    assertEqual(await tasks[7].result(), 49, 'result()');
    for (const task of tasks) {
        assert(task.task instanceof Mpq.Task, '.task is the Mpq.Task');
        assertEqual(task.state, Mpq.TaskState.DONE, 'state');
        assertEqual(task.attempts, 1, 'attempts');
        assert(task.workerPid > 0, 'workerPid');
    }
    assertEqual(tasks.map(t => t.id), tasks.map((_, i) => i + 1), 'ids');

    const value = {text: 'naïve ☃ 𝄞', list: [1, 2.5, null, true], nested: {a: [[]]}};
    assertEqual(await pool.submitValue('echo', value), value, 'a value round trip');
    assertEqual(await pool.submitValue('echo'), null, 'no data');
    assertEqual(await pool.submitValue('later', 12), 144, 'a handler returning a promise');
    const later = await Promise.all([1, 2, 3, 4].map(n => pool.submitValue('later', n)));
    assertEqual(later, [1, 4, 9, 16], 'promises of several tasks');
    await shutdown(pool, 3);
}

async function testMapValues() {
    const pool = newPool(4);
    const items = Array.from({length: 300}, (_, i) => ({i, s: `${i}`}));

    assertEqual(await pool.mapValues('echo', items), items, 'results in input order');
    assertEqual(await pool.mapValues('square', new Set([3, 4])), [9, 16], 'any iterable');
    assertEqual(await pool.mapValues('square', []), [], 'nothing to map');
    const message = await failureOf(pool.mapValues('fail', [1, 2, 3]),
        Mpq.Error.TASK_FAILED, 'a map with failing items');
    assert(message.startsWith('RangeError: failing on purpose: '), message);
    // The workers take the map's batches whole: promises among the
    // results are waited for, a rejection or a result with no JSON form
    // fails the batch and the map.
    const squares = Array.from({length: 100}, (_, i) => i * i);
    assertEqual(await pool.mapValues('later', squares.keys()), squares, 'promised results');
    const rejected = await failureOf(pool.mapValues('reject', [1, 2]),
        Mpq.Error.TASK_FAILED, 'a map with rejected items');
    assert(rejected.startsWith('Error: rejected: '), rejected);
    await failureOf(pool.mapValues('nan', [1, 2]), Mpq.Error.TASK_FAILED,
        'a map with a result that has no JSON form');
    const refused = await failureOf(pool.mapValues('too-deep', [1, 2]),
        Mpq.Error.TASK_FAILED, 'a map with a result the library refuses');
    assert(refused.startsWith('The result was refused: '), refused);
    assertEqual(await pool.mapValues('square', [5]), [25], 'the pool goes on');
    await shutdown(pool, 4);
}

async function testHostileDataInTheParent() {
    const pool = newPool(1);
    const cyclic = [];
    cyclic.push(cyclic);

    for (const [value, what] of [[1n, 'a BigInt'], [cyclic, 'a cyclic array'],
        [{x: -Infinity}, 'an infinity']]) {
        try {
            pool.submitValue('echo', value);
            throw new Error(`submitValue() of ${what} did not throw`);
        } catch (e) {
            assert(e instanceof TypeError, `submitValue() of ${what}: ${e}`);
        }
        try {
            // eslint-disable-next-line no-await-in-loop
            await pool.mapValues('echo', [1, value, 3]);
            throw new Error(`mapValues() with ${what} did not reject`);
        } catch (e) {
            assert(e instanceof TypeError && e.message.includes('item 1'),
                `mapValues() with ${what}: ${e}`);
        }
    }
    try {
        pool.submitValue('', 1);
        throw new Error('an empty request did not throw');
    } catch (e) {
        assert(e instanceof TypeError, `an empty request: ${e}`);
    }
    // Nothing of that reached a worker; the pool works on.
    assertEqual(await pool.submitValue('square', 5), 25, 'the pool works on');
    assertEqual((await pool.submitValue('square', 5)).constructor, Number, 'a number');
    await shutdown(pool, 1);
}

async function testHandlerErrorsFailTheTask() {
    const pool = newPool(1);
    const pid = await pool.submitValue('pid');
    const fail = pool.submitValue('fail', {n: 7});
    const reject = pool.submitValue('reject', 8);
    const bare = pool.submitValue('throw-string');
    const bigint = pool.submitValue('bigint');
    const cyclic = pool.submitValue('cyclic');
    const nan = pool.submitValue('nan');
    const deep = pool.submitValue('too-deep');
    const after = pool.submitValue('square', 6);

    let text = await failureOf(fail, Mpq.Error.TASK_FAILED, 'a throwing handler');
    assert(text.startsWith('RangeError: failing on purpose: {"n":7}\n\n'), text);
    assert(text.includes('values-worker.js'), `the stack in ${text}`);
    text = await failureOf(reject, Mpq.Error.TASK_FAILED, 'a rejected promise');
    assert(text.startsWith('Error: rejected: 8\n\n'), text);
    text = await failureOf(bare, Mpq.Error.TASK_FAILED, 'a thrown string');
    assertEqual(text, 'a bare string', 'a thrown string is the text');
    text = await failureOf(bigint, Mpq.Error.TASK_FAILED, 'a BigInt result');
    assert(text.startsWith('TypeError: the result has no JSON form: BigInt'), text);
    text = await failureOf(cyclic, Mpq.Error.TASK_FAILED, 'a cyclic result');
    assert(text.startsWith('TypeError: the result has no JSON form: cyclic'), text);
    text = await failureOf(nan, Mpq.Error.TASK_FAILED, 'a NaN in the result');
    assert(text.startsWith('TypeError: the result has no JSON form: NaN'), text);
    text = await failureOf(deep, Mpq.Error.TASK_FAILED, 'a result the library refuses');
    assert(text.startsWith('The result was refused: '), text);
    for (const task of [fail, reject, bare, bigint, cyclic, nan, deep]) {
        assertEqual(task.state, Mpq.TaskState.FAILED, 'state');
        assertEqual(task.attempts, 1, 'not tried again');
    }

    assertEqual(await after, 36, 'the worker lives on');
    assertEqual(after.workerPid, pid, 'the same worker');
    await shutdown(pool, 1);
}

async function testProgressTimeoutAndCancel() {
    const pool = newPool(1);
    const counted = pool.submitValue('progress', 50);
    const seen = [];
    counted.task.connect('progress', (_task, msg) => seen.push(msg.unpack().data));
    assertEqual(await counted, 50, 'result after progress');
    assertEqual(seen, Array.from({length: 50}, (_, i) => i + 1), 'progress in order');

    const running = pool.submitValue('until-cancel');
    await new Promise(resolve => {
        const id = running.task.connect('progress', () => {
            running.task.disconnect(id);
            resolve();
        });
    });
    await assertRejects(running.result({timeout: 20}), Gio.io_error_quark(),
        Gio.IOErrorEnum.TIMED_OUT, 'result() past its timeout');
    assertEqual(running.state, Mpq.TaskState.RUNNING, 'the task goes on');

    const waiting = new Gio.Cancellable();
    const waited = running.result({cancellable: waiting});
    waiting.cancel();
    await assertRejects(waited, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'a cancelled wait');
    assertEqual(running.state, Mpq.TaskState.RUNNING, 'cancelling a wait leaves the task');

    running.cancel();
    await assertRejects(running.result(), Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'the cancelled task');
    assertEqual(running.state, Mpq.TaskState.CANCELLED, 'state');
    assertEqual(await pool.submitValue('square', 9), 81, 'the worker goes on');
    await shutdown(pool, 1);
}

async function testBroadcastAndClosed() {
    const pool = newPool(2);

    assertEqual(await pool.mapValues('square', [1, 2, 3, 4]), [1, 4, 9, 16], 'warm');
    pool.broadcast('config', JSON.stringify({level: 1}));
    await shutdown(pool, 2);
    try {
        pool.submitValue('square', 1);
        throw new Error('submitValue() after shutdown did not throw');
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(MPQ, Mpq.Error.CLOSED),
            `submitValue() after shutdown: ${e}`);
    }
    await failureOf(pool.mapValues('square', [1]), Mpq.Error.CLOSED, 'mapValues() after shutdown');
}

const TESTS = [
    ['submitValue() gives a task to await, with result()', testSubmitAndAwait],
    ['mapValues() over plain values, in order; a failing item fails it', testMapValues],
    ['data with no JSON form throws in the parent, nothing is submitted', testHostileDataInTheParent],
    ['what a handler throws, rejects or returns without JSON form fails its task',
        testHandlerErrorsFailTheTask],
    ['progress in order; result() times out and cancels without the task', testProgressTimeoutAndCancel],
    ['serveWorker() returns true when told to die; submit after shutdown', testBroadcastAndClosed],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
