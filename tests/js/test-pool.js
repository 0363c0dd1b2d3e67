// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Pool: a JavaScript parent and JavaScript workers
// (pool-worker.js, an Mpq.Worker through GI). Tasks awaited with
// wait_async (promisified), map_async in input order, a throwing handler
// failing its task with the error's text and stack, cancel of a queued and
// a running task, progress in order, broadcast reaching each worker once,
// shutdown_async with tasks in flight.
// Prints TAP; exits 1 on any failure or time-out.
//
//   gjs -m test-pool.js [GJS]     (GJS: the interpreter for the workers)
//
// Nothing here sleeps to let something happen: the parent awaits what it
// expects (a task's end, a signal); the runner's time-out only turns a hang
// into a failure.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {until, watchPool} from './pool-util.js';
import {assert, assertEqual, errorText, runTests} from './tap.js';

Gio._promisify(Mpq.Task.prototype, 'wait_async', 'wait_finish');
Gio._promisify(Mpq.Pool.prototype, 'map_async', 'map_finish');
Gio._promisify(Mpq.Pool.prototype, 'shutdown_async', 'shutdown_finish');

// Under valgrind (meson test --setup=valgrind) everything is slower.
const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;  // meson's is 120 s (× 10 under valgrind)

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const workerScript = GLib.build_filenamev([here, 'pool-worker.js']);

// What runTests kills on a time-out: each pool, disposed of, kills its
// workers.
const children = [];

// Helpers ------------------------------------------------------------------

function newPool(nWorkers, logDir = null) {
    const launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.NONE);

    if (logDir !== null)
        launcher.setenv('MPQ_TEST_LOG_DIR', logDir, true);
    const pool = Mpq.Pool.new_with_launcher(launcher, [gjsPath, '-m', workerScript], nWorkers);
    return watchPool(pool, children);
}

function submit(pool, request, value) {
    return pool.submit(request, JSON.stringify(value));
}

async function resultOf(task) {
    const reply = await task.wait_async(null);

    assertEqual(reply.get_request(), Mpq.REQ_FINISHED, 'reply request');
    assertEqual(reply.get_sender_pid(), task.get_worker_pid(), 'reply sender');
    assertEqual(task.get_state(), Mpq.TaskState.DONE, 'task state');
    return JSON.parse(reply.dup_data_json());
}

async function failureOf(task, domain, code, what) {
    try {
        await task.wait_async(null);
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(domain, code),
            `${what}: failed with the wrong error: ${errorText(e)}`);
        return e;
    }
    throw new Error(`${what}: did not fail`);
}

async function submitUntilCancel(pool) {
    const task = submit(pool, 'until-cancel', 0);
    let started = null;
    const id = task.connect('progress', (_task, msg) => {
        started = msg;
    });

    await until(() => started !== null, [[task, 'progress']]);
    task.disconnect(id);
    assertEqual(JSON.parse(started.dup_data_json()), 'started', 'until-cancel progress');
    return task;
}

async function shutdown(pool) {
    assert(await pool.shutdown_async(-1, null), 'shutdown_async');
}

function readLog(dir, pid) {
    const path = GLib.build_filenamev([dir, `${pid}`]);

    if (!GLib.file_test(path, GLib.FileTest.EXISTS))
        return '';
    return new TextDecoder().decode(GLib.file_get_contents(path)[1]);
}

function removeDir(dir) {
    const file = Gio.File.new_for_path(dir);
    const children_ = file.enumerate_children('standard::name', Gio.FileQueryInfoFlags.NONE, null);
    let info;

    while ((info = children_.next_file(null)) !== null)
        file.get_child(info.get_name()).delete(null);
    file.delete(null);
}

// Tests --------------------------------------------------------------------

async function testSubmitAndWait() {
    const pool = newPool(3);
    const tasks = [];

    for (let i = 0; i < 60; i++)
        tasks.push(submit(pool, 'square', i));
    const results = await Promise.all(tasks.map(resultOf));
    assertEqual(results, tasks.map((_, i) => i * i), 'results');
    for (const [i, task] of tasks.entries()) {
        assertEqual(task.get_id(), i + 1, 'task id');
        assertEqual(task.get_attempts(), 1, 'attempts');
    }
    const pids = new Set(tasks.map(t => t.get_worker_pid()));
    assert(pids.size >= 1 && pids.size <= 3, `${pids.size} workers served`);
    await shutdown(pool);
    assertEqual(pool.exited.filter(e => !e.expected).length, 0, 'unexpected exits');
}

async function testMapInOrder() {
    const pool = newPool(4);
    const items = Array.from({length: 200}, (_, i) => JSON.stringify(i));
    const replies = await pool.map_async('square', items, null);

    assertEqual(replies.map(r => JSON.parse(r.dup_data_json())),
        items.map((_, i) => i * i), 'map results');
    await shutdown(pool);
}

async function testMapFailsWithFirstError() {
    const pool = newPool(2);

    try {
        await pool.map_async('fail', ['1', '2', '3'], null);
        throw new Error('map_async did not fail');
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(Mpq.error_quark(), Mpq.Error.TASK_FAILED),
            `map_async failed with ${errorText(e)}`);
        assert(e.message.includes('failing on purpose'), e.message);
    }
    await shutdown(pool);
}

async function testThrowingHandler() {
    const pool = newPool(1);
    const failing = submit(pool, 'fail', 7);
    const after = submit(pool, 'square', 5);
    const e = await failureOf(failing, Mpq.error_quark(), Mpq.Error.TASK_FAILED, 'fail');

    assert(e.message.startsWith('failing on purpose: 7\n'), e.message);
    assert(e.message.includes('pool-worker.js'), `no stack in ${e.message}`);
    assertEqual(failing.get_state(), Mpq.TaskState.FAILED, 'state');
    assertEqual(failing.get_attempts(), 1, 'attempts');
    assertEqual(await resultOf(after), 25, 'the worker lives on');
    assertEqual(after.get_worker_pid(), failing.get_worker_pid(), 'same worker');
    await shutdown(pool);
    assertEqual(pool.exited.filter(x => !x.expected).length, 0, 'unexpected exits');
}

async function testCancel() {
    const dir = GLib.dir_make_tmp('mpq-pool-js-XXXXXX');
    const pool = newPool(1, dir);
    const running = await submitUntilCancel(pool);
    const pid = running.get_worker_pid();
    const waiting = submit(pool, 'echo', 1);
    const queued = submit(pool, 'echo', 2);

    // The window is two: "waiting" sits at the worker, "queued" here.
    assertEqual(waiting.get_state(), Mpq.TaskState.RUNNING, 'waiting state');
    assertEqual(queued.get_state(), Mpq.TaskState.QUEUED, 'queued state');
    queued.cancel();
    waiting.cancel();
    running.cancel();
    assertEqual(running.get_state(), Mpq.TaskState.CANCELLED, 'running cancelled at once');
    for (const task of [running, waiting, queued]) {
        // eslint-disable-next-line no-await-in-loop
        await failureOf(task, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED, 'cancelled');
        assertEqual(task.get_state(), Mpq.TaskState.CANCELLED, 'state');
    }
    const after = submit(pool, 'square', 7);
    assertEqual(await resultOf(after), 49, 'after');
    assertEqual(after.get_worker_pid(), pid, 'same worker');
    await shutdown(pool);
    assertEqual(readLog(dir, pid), 'until-cancel\ncancelled\nsquare\n', 'what the worker did');
    removeDir(dir);
}

async function testProgressInOrder() {
    const pool = newPool(2);
    const task = submit(pool, 'progress', 150);
    const seen = [];

    task.connect('progress', (source, msg) => {
        assertEqual(msg.get_request(), 'PROGRESS', 'progress request');
        assertEqual(source.get_state(), Mpq.TaskState.RUNNING, 'state during progress');
        seen.push(JSON.parse(msg.dup_data_json()));
    });
    assertEqual(await resultOf(task), 150, 'result');
    assertEqual(seen, Array.from({length: 150}, (_, i) => i + 1), 'progress in order');
    await shutdown(pool);
}

async function testBroadcast() {
    const dir = GLib.dir_make_tmp('mpq-pool-js-XXXXXX');
    const pool = newPool(3, dir);

    await until(() => pool.started.length === 3, [[pool, 'worker-started']]);
    assertEqual(pool.broadcast('config', JSON.stringify({level: 2})), 3, 'broadcast count');
    const pids = pool.dup_worker_pids();
    assertEqual([...pids].sort(), [...pool.started].sort(), 'worker pids');
    await shutdown(pool);
    for (const pid of pids)
        assertEqual(readLog(dir, pid), 'config\n', `worker ${pid} got it once`);
    removeDir(dir);
}

async function testShutdownWithTasksInFlight() {
    const pool = newPool(2);
    const tasks = [];

    for (let i = 0; i < 30; i++)
        tasks.push(submit(pool, 'square', i));
    await shutdown(pool);
    for (const [i, task] of tasks.entries()) {
        assertEqual(task.get_state(), Mpq.TaskState.DONE, `task ${i} done`);
        // eslint-disable-next-line no-await-in-loop
        assertEqual(await resultOf(task), i * i, `task ${i}`);
    }
    assertEqual(pool.exited.filter(e => e.expected).length, 2, 'workers told to go');
    assertEqual(pool.exited.filter(e => !e.expected).length, 0, 'unexpected exits');
    try {
        submit(pool, 'square', 1);
        throw new Error('submit after shutdown did not fail');
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(Mpq.error_quark(), Mpq.Error.CLOSED),
            `submit after shutdown: ${errorText(e)}`);
    }
}

const TESTS = [
    ['submit and wait_async', testSubmitAndWait],
    ['map_async in order', testMapInOrder],
    ['map_async fails with the first error', testMapFailsWithFirstError],
    ['a throwing handler fails its task with the text', testThrowingHandler],
    ['cancel of queued and running tasks', testCancel],
    ['progress in order', testProgressInOrder],
    ['broadcast reaches each worker once', testBroadcast],
    ['shutdown_async with tasks in flight', testShutdownWithTasksInFlight],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
