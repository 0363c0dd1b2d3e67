// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Pool over a queue kept on Redis (issue 14): a pool made
// with Mpq.Pool.new_for_queue() that spawns JavaScript workers
// (pool-worker.js, as test-pool.js's), and a pool that spawns nobody
// (argv null) served by a worker started by hand with only
// MPQ_QUEUE_URI, MPQ_QUEUE_NAME and MPQ_POOL_WORKER=1 in its environment,
// as a worker on another host would be. On Redis the pids of the pool's
// signals and of Task.get_worker_pid() are participant ids from the
// server; a worker the pool did not spawn exits with wait_status -1.
// Against a redis-server of this test's own (redis-server.js); skips (TAP
// "1..0 # SKIP") without redis-server or without Redis support.
//
//   gjs -m test-pool-redis.js [GJS]     (GJS: the interpreter for the workers)
//
// Nothing here sleeps to let something happen: the test awaits what it
// expects (a task's end, a signal, a worker's exit); the runner's time-out
// only turns a hang into a failure.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {until, watchPool} from './pool-util.js';
import {startServerOrSkip, serverStopsTest} from './redis-server.js';
import {assert, assertEqual, runTests} from './tap.js';

Gio._promisify(Mpq.Task.prototype, 'wait_async', 'wait_finish');
Gio._promisify(Mpq.Pool.prototype, 'map_async', 'map_finish');
Gio._promisify(Mpq.Pool.prototype, 'shutdown_async', 'shutdown_finish');
Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');

const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;  // meson's is 120 s (× 10 under valgrind)

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const workerArgv = [gjsPath, '-m', GLib.build_filenamev([here, 'pool-worker.js'])];

const children = [];  // the server, the workers started by hand, the pools
let uri = null;       // the server's, once it is ready
let queues = 0;       // each test's queue has a name of its own

// Helpers ------------------------------------------------------------------

function newQueue() {
    return Mpq.Queue.new_for_uri(uri, `js-pool-${GLib.getenv('USER') ?? 'u'}-${queues++}`, 0);
}

// A pool over @queue running @argv (null: spawning nobody), what it
// signals kept in pool.started and pool.exited.
function newPool(queue, argv, nWorkers) {
    return watchPool(Mpq.Pool.new_for_queue(queue, argv, nWorkers), children);
}

// Starts pool-worker.js by hand as a worker joining the pool of @queue:
// this process's environment without any MPQ_ variable but the three that
// name the queue.
function joinWorker(queue) {
    const launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.NONE);

    launcher.set_environ(GLib.get_environ().filter(v => !v.startsWith('MPQ_')));
    launcher.setenv(Mpq.QUEUE_URI_ENV, uri, true);
    launcher.setenv(Mpq.QUEUE_NAME_ENV, queue.name, true);
    launcher.setenv(Mpq.POOL_WORKER_ENV, '1', true);
    const proc = launcher.spawnv(workerArgv);
    children.push(proc);
    return proc;
}

function submit(pool, request, value) {
    return pool.submit(request, JSON.stringify(value));
}

async function resultOf(task) {
    const reply = await task.wait_async(null);

    assertEqual(reply.get_request(), Mpq.REQ_FINISHED, 'reply request');
    assertEqual(task.get_state(), Mpq.TaskState.DONE, 'task state');
    return JSON.parse(reply.dup_data_json());
}

async function mapSquares(pool, n) {
    const items = Array.from({length: n}, (_, i) => JSON.stringify(i));
    const replies = await pool.map_async('square', items, null);

    assertEqual(replies.map(r => JSON.parse(r.dup_data_json())),
        items.map((_, i) => i * i), 'map results in order');
}

function byPid(a, b) {
    return a.pid - b.pid;
}

// Tests --------------------------------------------------------------------

// new_for_queue() with argv: two spawned workers serve tasks and a map;
// their ids are distinct positive participant ids; shutdown reaps both.
async function testSpawnedWorkers() {
    const queue = newQueue();
    const pool = newPool(queue, workerArgv, 2);

    assertEqual(pool.queue === queue, true, 'the pool\'s queue property');
    assertEqual(pool.n_workers, 2, 'n-workers');
    const tasks = Array.from({length: 60}, (_, i) => submit(pool, 'square', i));
    assertEqual(await Promise.all(tasks.map(resultOf)), tasks.map((_, i) => i * i), 'results');
    await mapSquares(pool, 200);
    await until(() => pool.started.length === 2, [[pool, 'worker-started']]);
    const [a, b] = pool.started;
    assert(a !== b && a > 0 && b > 0, `two participant ids, not ${pool.started}`);
    assert(a !== queue.pid && b !== queue.pid, 'not the pool\'s own id');
    for (const task of tasks) {
        assert(pool.started.includes(task.get_worker_pid()), `task ${task.get_id()}'s worker`);
        assertEqual(task.get_attempts(), 1, 'attempts');
    }
    assert(await pool.shutdown_async(-1, null), 'shutdown_async');
    assertEqual(pool.exited.sort(byPid),
        pool.started.map(pid => ({pid, status: 0, expected: true})).sort(byPid),
        'both reaped, told to go');
    queue.close();
}

// argv null: the pool spawns nobody; a worker started by hand joins it,
// serves it (pool-worker.js's "pid" is its id as the pool knows it), and
// leaves when the pool shuts down: exit 0, an expected exit, status -1.
async function testJoinedWorker() {
    const queue = newQueue();
    const pool = newPool(queue, null, 0);

    assertEqual(pool.n_workers, 0, 'n-workers of a pool that spawns nobody');
    const proc = joinWorker(queue);
    await until(() => pool.started.length === 1, [[pool, 'worker-started']]);
    const [id] = pool.started;
    assert(id > 0 && id !== queue.pid, `a participant id, not ${id}`);
    const tasks = Array.from({length: 30}, (_, i) => submit(pool, 'square', i));
    assertEqual(await Promise.all(tasks.map(resultOf)), tasks.map((_, i) => i * i), 'results');
    assert(tasks.every(task => task.get_worker_pid() === id), 'all done by the joined worker');
    await mapSquares(pool, 200);
    const pidTask = submit(pool, 'pid', null);
    assertEqual(await resultOf(pidTask), id, 'Worker.get_pid() is the pool\'s id for it');
    assertEqual(pool.n_workers, 0, 'n-workers still 0');
    assert(await pool.shutdown_async(-1, null), 'shutdown_async');
    await proc.wait_async(null);
    assert(proc.get_if_exited() && proc.get_exit_status() === 0,
        'the joined worker exited 0 (told to die)');
    assertEqual(pool.exited, [{pid: id, status: -1, expected: true}], 'worker-exited');
    queue.close();
}

const TESTS = [
    ['new_for_queue() with argv: two spawned workers on Redis, tasks and a map', testSpawnedWorkers],
    ['argv null: a worker started by hand joins, serves, leaves at shutdown', testJoinedWorker],
];

// The server, then the tests; on a time-out runTests () kills the server,
// the workers started by hand and the pools.
const server = startServerOrSkip(children);
uri = server.uri;
TESTS.push(serverStopsTest(server));
runTests(TESTS, TIMEOUT_SECONDS, children);
