// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Queue: a JavaScript parent and JavaScript children
// (queue-child.js, spawned with Mpq.Queue.spawn()) sharing one joinable
// queue. Children put for the parent; the parent puts tasks for the
// children, some addressed to one of them, and poison pills; filters put
// messages back at the end; a bounded queue fills up; join() and
// join_async() wait for every message to be taken; dispatch spreads tasks
// over three workers, each task handled once; a worker dies with a task in
// hand and another one gets it; a cancelled receive_async() takes nothing;
// receive_for_me() collects without a main loop.
// Prints TAP; exits 1 on any failure or time-out.
//
//   gjs -m test-queue.js [GJS]     (GJS: the interpreter for the children)
//
// Nothing here sleeps to let something happen: the parent waits for what it
// expects (a message, a child's exit) with a bound that only turns a hang
// into a failure.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {assert, assertEqual, assertRejects, errorText, runTests} from './tap.js';

Gio._promisify(Mpq.Queue.prototype, 'receive_async', 'receive_finish');
Gio._promisify(Mpq.Queue.prototype, 'join_async', 'join_finish');
Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');

// Under valgrind (meson test --setup=valgrind) everything is slower.
const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 100 * SLOW;  // meson's is 120 s (× 10 under valgrind)
const PROMPT_MS = 20000 * SLOW;  // bound on a blocking receive() or join()

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const childScript = GLib.build_filenamev([here, 'queue-child.js']);

const children = [];  // every Gio.Subprocess spawned, killed on a time-out

// Helpers ------------------------------------------------------------------

// Checks that @e is the GLib.Error Mpq.Error @code, domain and code both.
function assertMpqError(e, code, what) {
    assert(e instanceof GLib.Error, `${what}: a GLib.Error, not ${e}`);
    assertEqual(e.domain, Mpq.error_quark(), `${what}: error domain (${errorText(e)})`);
    assertEqual(GLib.quark_to_string(e.domain), 'mpq-error-quark', `${what}: domain name`);
    assertEqual(e.code, code, `${what}: error code (${errorText(e)})`);
    assert(e.matches(Mpq.error_quark(), code), `${what}: matches()`);
}

function assertThrows(fn, code, what) {
    try {
        fn();
    } catch (e) {
        assertMpqError(e, code, what);
        return;
    }
    throw new Error(`${what}: did not fail`);
}

const childPids = new Map();  // Gio.Subprocess → pid, which it forgets once reaped

function spawnChild(queue, ...args) {
    const proc = queue.spawn([gjsPath, '-m', childScript, ...args.map(String)]);

    children.push(proc);
    childPids.set(proc, Number(proc.get_identifier()));
    return proc;
}

function pidOf(proc) {
    return childPids.get(proc);
}

// Waits for @proc to end and checks that it exited with @status.
async function checkExit(proc, status = 0) {
    await proc.wait_async(null);
    assert(proc.get_if_exited(), `child ${pidOf(proc)} exited rather than being killed`);
    assertEqual(proc.get_exit_status(), status, `exit status of child ${pidOf(proc)}`);
}

// A blocking receive that must get a message.
function take(queue, filter = null) {
    const message = queue.receive(PROMPT_MS, filter);

    assert(message !== null, `a message within ${PROMPT_MS} ms`);
    return message;
}

function dataOf(message) {
    return JSON.parse(message.dup_data_json());
}

// What the parent must find once everything is over: nothing waiting, and
// every message ever put taken.
function checkDrained(queue) {
    assertEqual(queue.receive(0, null), null, 'receive(0) on the drained queue');
    assert(queue.is_empty(), 'is_empty() on the drained queue');
    assert(queue.join(PROMPT_MS), 'join() on the drained queue');
}

// Runs the main loop (through the promise) until @connect's handlers
// resolve; a throw inside a signal handler would only be logged, so the
// handlers get guard() to reject instead.
function untilSignalled(connect) {
    return new Promise((resolve, reject) => {
        const guard = fn => (...args) => {
            try {
                fn(...args);
            } catch (e) {
                reject(e);
            }
        };

        connect(resolve, guard);
    });
}

// The tests ----------------------------------------------------------------

async function testProperties() {
    const queue = Mpq.Queue.new(0);

    assertEqual(queue.role, Mpq.Role.PARENT, 'role of Mpq.Queue.new()');
    assertEqual(queue.pid, new Gio.Credentials().get_unix_pid(), 'pid is our own');
    assertEqual(queue.get_max_size(), 0, 'max size of an unbounded queue');
    assertEqual(queue.put_timeout, Mpq.DEFAULT_PUT_TIMEOUT, 'default put-timeout');
    assertEqual(queue.put_attempts, Mpq.DEFAULT_PUT_ATTEMPTS, 'default put-attempts');
    assertEqual(queue.prefetch, Mpq.DEFAULT_PREFETCH, 'default prefetch');
    assert(queue instanceof Mpq.Channel, 'a queue is an Mpq.Channel');

    // A process that was not spawned with a queue cannot be a child.
    assertThrows(() => Mpq.Queue.new_for_child(), Mpq.Error.NOT_A_CHILD,
        'new_for_child() in the test itself');
    queue.close();
}

async function testReceiveZero() {
    const queue = Mpq.Queue.new(0);

    assertEqual(queue.receive(0, null), null, 'receive(0) on an empty queue');
    assertEqual(queue.receive(0, () => true), null, 'receive(0, filter) on an empty queue');
    assertEqual(queue.receive(1, null), null, 'receive(1) on an empty queue');
    assert(queue.is_empty(), 'a new queue is empty');
    assert(queue.join(0), 'join(0) on a new queue');

    // The parent takes what it put itself, data intact.
    queue.send_json(Mpq.REQ_DO, 0, 0, '{"value":20,"text":"naïve ☃"}');
    assert(!queue.is_empty(), 'not empty after a put');
    const message = queue.receive(0, null);
    assert(message !== null, 'receive(0) gets the message waiting');
    assertEqual(message.get_request(), Mpq.REQ_DO, 'request');
    assertEqual(message.get_sender_pid(), queue.pid, 'sender pid 0 means mine');
    assertEqual(message.get_recipient_pid(), 0, 'no recipient');
    assertEqual(dataOf(message), {value: 20, text: 'naïve ☃'}, 'data');
    assertEqual(queue.receive(0, null), null, 'receive(0) once it is taken');
    assert(queue.is_empty(), 'empty again');
    queue.close();
    assertThrows(() => queue.receive(0, null), Mpq.Error.CLOSED, 'receive() after close()');
    assertThrows(() => queue.send(Mpq.REQ_DO, 0, 0, null), Mpq.Error.CLOSED,
        'send() after close()');
}

async function testChildrenToParent() {
    const PUTS = 40;
    const queue = Mpq.Queue.new(0);
    const procs = [0, 1, 2].map(() => spawnChild(queue, 'put', PUTS));
    // A child that puts and exits may be reaped before its pid is read
    // (the identifier is gone then): children are known by what they put.
    const next = new Map();
    const exited = procs.map(proc => checkExit(proc));

    for (let n = 0; n < PUTS * procs.length; n++) {
        const message = take(queue);
        const data = dataOf(message);
        const sender = message.get_sender_pid();

        assertEqual(message.get_request(), Mpq.REQ_FINISHED, `request of message ${n}`);
        if (!next.has(sender))
            next.set(sender, 0);
        assert(next.size <= procs.length, `message ${n} comes from a fourth sender, ${sender}`);
        assertEqual(data, {i: next.get(sender), worker: sender},
            `message ${n}: each child's messages in the order it put them`);
        assertEqual(message.get_recipient_pid(), queue.pid, `recipient of message ${n}`);
        next.set(sender, next.get(sender) + 1);
    }
    for (const proc of procs) {
        const pid = pidOf(proc);

        assert(!pid || next.has(pid), `child ${pid} put something`);
    }
    await Promise.all(exited);
    checkDrained(queue);
    queue.close();
}

async function testTargeted() {
    const queue = Mpq.Queue.new(0);
    const procs = [0, 1, 2].map(() => spawnChild(queue, 'targeted'));
    const pids = procs.map(pidOf);
    const exited = procs.map(proc => checkExit(proc));
    const expected = [];

    // Two tasks addressed to each child, interleaved.
    for (let round = 0; round < 2; round++) {
        pids.forEach((pid, i) => {
            const id = expected.length;

            queue.send_json(Mpq.REQ_DO, 0, pid, JSON.stringify({id, value: 10 * i + round}));
            expected.push({id, result: (10 * i + round) ** 2, worker: pid});
        });
    }

    // receive_async() takes only what is addressed to the parent (or to
    // nobody): never the children's tasks.
    const answers = [];
    for (let n = 0; n < expected.length; n++) {
        // eslint-disable-next-line no-await-in-loop
        const message = await queue.receive_async(null);

        assertEqual(message.get_request(), Mpq.REQ_FINISHED, `request of answer ${n}`);
        assertEqual(message.get_recipient_pid(), queue.pid, `answer ${n} is for the parent`);
        assertEqual(message.get_sender_pid(), dataOf(message).worker, `sender of answer ${n}`);
        answers.push(dataOf(message));
    }
    answers.sort((a, b) => a.id - b.id);
    assertEqual(answers, expected, 'each task answered by the child it was addressed to');

    // The poison pills, one for each child, addressed to it.
    for (const pid of pids)
        queue.send(Mpq.REQ_DIE, 0, pid, null);
    await Promise.all(exited);
    checkDrained(queue);
    queue.close();
}

async function testFilterPutsBack() {
    const queue = Mpq.Queue.new(0);
    const seen = [];

    for (const name of ['a', 'b', 'c'])
        queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify(name));

    // The filter sees the message at the front; refused, it goes to the end.
    const refused = queue.receive(0, message => {
        seen.push(dataOf(message));
        return false;
    });
    assertEqual(refused, null, 'receive() whose filter refuses');
    assertEqual(seen, ['a'], 'the filter saw the front message only');
    assert(!queue.is_empty(), 'the refused message is still queued');
    assertThrows(() => queue.join(0), Mpq.Error.TIMED_OUT, 'join(0) with messages waiting');

    const accepted = queue.receive(0, message => dataOf(message) === 'b');
    assertEqual(accepted === null ? null : dataOf(accepted), 'b', 'accepted by the filter');
    assertEqual(dataOf(take(queue)), 'c', 'then c');
    assertEqual(dataOf(take(queue)), 'a', 'the refused one came back last');
    checkDrained(queue);

    // A child's filter: the parent put first and second; the child refuses
    // first, which goes behind second, then puts REJECTED after it.
    queue.send_json(Mpq.REQ_DO, 0, 0, '"first"');
    queue.send_json(Mpq.REQ_DO, 0, 0, '"second"');
    await checkExit(spawnChild(queue, 'reject'));
    assertEqual(dataOf(take(queue)), 'second', 'the child refused first: second is in front');
    assertEqual(dataOf(take(queue)), 'first', 'first is behind it');
    const rejected = take(queue);
    assertEqual([rejected.get_request(), dataOf(rejected)], ['REJECTED', {saw: Mpq.REQ_DO}],
        'the child\'s report comes last');
    checkDrained(queue);
    queue.close();
}

async function testFull() {
    const queue = Mpq.Queue.new(2);

    assertEqual(queue.get_max_size(), 2, 'max size');
    queue.put_timeout = 10;
    queue.put_attempts = 3;
    assertEqual([queue.put_timeout, queue.put_attempts], [10, 3], 'put-timeout, put-attempts');

    queue.send_json(Mpq.REQ_DO, 0, 0, '1');
    queue.send_json(Mpq.REQ_DO, 0, 0, '2');
    const before = GLib.get_monotonic_time();
    assertThrows(() => queue.send_json(Mpq.REQ_DO, 0, 0, '3'), Mpq.Error.FULL,
        'send() into a full queue');
    const waited = (GLib.get_monotonic_time() - before) / 1000;
    assert(waited >= 25, `send() waited put-timeout × put-attempts (30 ms), not ${waited} ms`);

    // Nothing half-sent: the third message is not there.
    assertEqual(dataOf(take(queue)), 1, 'first message');
    queue.send_json(Mpq.REQ_DO, 0, 0, '4');  // room again
    assertEqual(dataOf(take(queue)), 2, 'second message');
    assertEqual(dataOf(take(queue)), 4, 'the one put once there was room');
    checkDrained(queue);

    // A child filling the queue gets FULL too, after exactly max_size puts.
    await checkExit(spawnChild(queue, 'flood', 2));
    assertEqual(dataOf(take(queue)), {i: 0}, 'the child\'s first put');
    assertEqual(dataOf(take(queue)), {i: 1}, 'the child\'s second put');
    checkDrained(queue);
    queue.close();
}

async function testJoin() {
    const queue = Mpq.Queue.new(0);
    const proc = spawnChild(queue, 'worker');
    const worker = pidOf(proc);
    const exited = checkExit(proc);

    // Tasks addressed to the worker, so that the parent's receive_async()
    // cannot take them: it takes only what is for the parent or nobody.
    for (let id = 0; id < 3; id++)
        queue.send_json(Mpq.REQ_DO, 0, worker, JSON.stringify({id, value: id + 2}));

    // The answers are not taken yet, whatever the worker did meanwhile.
    assertThrows(() => queue.join(50), Mpq.Error.TIMED_OUT, 'join(50) with answers untaken');

    // A cancelled join_async() fails with CANCELLED.
    const cancellable = new Gio.Cancellable();
    const cancelled = queue.join_async(cancellable);
    cancellable.cancel();
    await assertRejects(cancelled, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'cancelled join_async()');

    let resolved = false;
    const joined = queue.join_async(null).then(value => {
        resolved = true;
        return value;
    });
    const answers = [];
    for (let n = 0; n < 3; n++) {
        assert(!resolved, `join_async() waits while answer ${n} is untaken`);
        // eslint-disable-next-line no-await-in-loop
        answers.push(dataOf(await queue.receive_async(null)));
    }
    assertEqual(answers.map(a => a.result).sort((a, b) => a - b), [4, 9, 16], 'answers');
    assertEqual(await joined, true, 'join_async() once everything is taken');

    queue.send(Mpq.REQ_DIE, 0, worker, null);
    await exited;
    assert(queue.join(PROMPT_MS), 'join() after the pill was taken');
    assert(await queue.join_async(null), 'join_async() on a drained queue');
    checkDrained(queue);
    queue.close();
}

async function testDispatch() {
    const TASKS = 60;
    const queue = Mpq.Queue.new(0);
    const procs = [0, 1, 2].map(() => spawnChild(queue, 'worker', '--ready'));
    const pids = procs.map(pidOf);

    // Each worker says so once its dispatch is on, so that every one of them
    // is there before the first task is put.
    const ready = [];
    for (let n = 0; n < pids.length; n++) {
        const message = take(queue);

        assertEqual(message.get_request(), Mpq.REQ_TEST_CHILD, 'a worker is ready');
        ready.push(message.get_sender_pid());
    }
    assertEqual(ready.sort(), [...pids].sort(), 'every worker is ready');

    // The parent collects the answers, addressed to it, through its own
    // dispatch in the main loop, while the workers take the tasks it puts
    // for anybody: a process is never handed its own work for anyone, so
    // no task reaches the parent.
    const answers = await untilSignalled((resolve, guard) => {
        const got = [];

        queue.connect('message-received::FINISHED', guard((channel, message) => {
            got.push(message);
            if (got.length === TASKS) {
                channel.stop();
                resolve(got);
            }
        }));
        queue.connect('message-received::DO', guard(() => {
            throw new Error('a task reached the parent');
        }));
        queue.connect('message-received', guard((channel, message) => {
            assertEqual(message.get_recipient_pid(), channel.pid, 'the parent gets its own');
        }));
        queue.start();

        for (let id = 0; id < TASKS; id++)
            queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({id, value: id}));
    });

    // The poison pills, one addressed to each worker.
    for (const pid of pids)
        queue.send(Mpq.REQ_DIE, 0, pid, null);
    await Promise.all(procs.map(proc => checkExit(proc)));

    const done = new Map(pids.map(pid => [pid, 0]));
    const ids = answers.map(message => {
        const data = dataOf(message);

        assertEqual(message.get_sender_pid(), data.worker, `sender of answer ${data.id}`);
        assert(done.has(data.worker), `answer ${data.id} comes from one of the workers`);
        assertEqual(data.result, data.id * data.id, `result of task ${data.id}`);
        done.set(data.worker, done.get(data.worker) + 1);
        return data.id;
    }).sort((a, b) => a - b);
    assertEqual(ids, Array.from({length: TASKS}, (_, i) => i), 'every task handled exactly once');
    for (const [pid, count] of done)
        assert(count > 0, `worker ${pid} took part (${[...done.values()]})`);
    checkDrained(queue);
    queue.close();
}

async function testReceiveAsyncCancel() {
    const queue = Mpq.Queue.new(0);

    // In the parent, with messages it addresses to itself (receive_async()
    // takes only what is addressed to this process, or to nobody).
    const cancellable = new Gio.Cancellable();
    const cancelled = queue.receive_async(cancellable);
    cancellable.cancel();
    await assertRejects(cancelled, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'cancelled receive_async()');
    queue.send_json(Mpq.REQ_DO, 0, queue.pid, '{"id":1,"value":3}');
    assertEqual(dataOf(await queue.receive_async(null)), {id: 1, value: 3},
        'the cancelled call took nothing');

    // Cancelled before it started, with a message waiting: fails the same,
    // takes nothing.
    queue.send_json(Mpq.REQ_DO, 0, queue.pid, '{"id":2,"value":4}');
    await assertRejects(queue.receive_async(cancellable), Gio.io_error_quark(),
        Gio.IOErrorEnum.CANCELLED, 'receive_async() with a cancelled cancellable');
    assertEqual(dataOf(take(queue)), {id: 2, value: 4}, 'the task is still there');

    // close() fails a pending receive_async() with CLOSED.
    const pending = queue.receive_async(null);
    checkDrained(queue);
    queue.close();
    await assertRejects(pending, Mpq.error_quark(), Mpq.Error.CLOSED,
        'receive_async() pending at close()');
}

async function testReceiveAsyncCancelChild() {
    const queue = Mpq.Queue.new(0);

    // The task waits before the child starts, so the server may hand it
    // over before the child's cancel arrives: the cancelled call must still
    // fail with CANCELLED, and the task come back to be handed over again,
    // once, to the child's next receive_async().
    queue.send_json(Mpq.REQ_DO, 0, 0, '{"id":3,"value":5}');
    const proc = spawnChild(queue, 'cancel');
    await checkExit(proc);
    const answer = take(queue);
    assertEqual(dataOf(answer), {id: 3, result: 25, worker: pidOf(proc)}, 'the child\'s answer');
    checkDrained(queue);
    queue.close();
}

async function testWorkerDies() {
    const queue = Mpq.Queue.new(0);

    queue.send_json(Mpq.REQ_DO, 0, 0, '{"id":42,"value":6}');

    // The first worker exits with status 7 inside its DO handler: the task
    // was in its hand, not taken.
    await checkExit(spawnChild(queue, 'die'), 7);
    assertThrows(() => queue.join(0), Mpq.Error.TIMED_OUT, 'join(0): the task is not taken');

    // The next one gets it, whenever the server saw the first one go.
    const proc = spawnChild(queue, 'once');
    await checkExit(proc);
    const answer = take(queue);
    assertEqual(answer.get_sender_pid(), pidOf(proc), 'answered by the second worker');
    assertEqual(dataOf(answer), {id: 42, result: 36, worker: pidOf(proc)}, 'the answer');
    checkDrained(queue);
    queue.close();
}

// W4 without a main loop: the parent puts tasks for anyone, two children
// take them with receive_for_me() and answer, the parent collects with
// receive_for_me(). It never gets its own tasks back, and nothing goes to
// the back of the queue (each child checks that its tasks come in order).
async function testReceiveForMe() {
    const TASKS = 200;
    const queue = Mpq.Queue.new(0);

    for (let id = 0; id < TASKS; id++)
        queue.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify({id, value: id}));
    queue.send_json(Mpq.REQ_DO, 0, 1, '{"id":-1,"value":0}');  // pid 1: nobody's
    const procs = [spawnChild(queue, 'for-me'), spawnChild(queue, 'for-me')];
    const pids = procs.map(pidOf);

    const ids = [];
    for (let i = 0; i < TASKS / 2; i++) {
        const message = queue.receive_for_me(PROMPT_MS);

        assert(message !== null, `answer ${i} within ${PROMPT_MS} ms`);
        assertEqual(message.get_request(), Mpq.REQ_FINISHED, 'an answer');
        assert(pids.includes(message.get_sender_pid()), 'from one of the children');
        ids.push(dataOf(message).id);
    }
    // The other half in batches: one JSON array a call, at most 16.
    while (ids.length < TASKS) {
        const batch = JSON.parse(queue.receive_batch_json(16, PROMPT_MS));

        assert(batch.length >= 1 && batch.length <= 16, `a batch of 1 to 16, not ${batch.length}`);
        for (const [request, sender, , data] of batch) {
            assertEqual(request, Mpq.REQ_FINISHED, 'an answer in a batch');
            assert(pids.includes(sender), 'from one of the children');
            ids.push(data.id);
        }
    }
    ids.sort((a, b) => a - b);
    assertEqual(ids, Array.from({length: TASKS}, (_, i) => i), 'every task answered once');
    assertEqual(queue.receive_for_me(0), null, 'receive_for_me(0): nothing for the parent');
    assertEqual(queue.receive_batch_json(0, 0), '[]', 'receive_batch_json(): nothing either');

    for (const _ of procs)
        queue.send(Mpq.REQ_DIE, 0, 0, null);
    await Promise.all(procs.map(proc => checkExit(proc)));
    assertEqual(dataOf(take(queue)).id, -1, 'the message for pid 1 stayed');
    checkDrained(queue);
    queue.close();
    assertThrows(() => queue.receive_for_me(0), Mpq.Error.CLOSED, 'receive_for_me() after close()');
}

const TESTS = [
    ['properties, defaults, and NOT_A_CHILD outside a spawned child', testProperties],
    ['receive(0) returns null on an empty queue; close() then CLOSED', testReceiveZero],
    ['three children put for the parent; each one\'s order kept', testChildrenToParent],
    ['tasks addressed to one child each; poison pills', testTargeted],
    ['a filter that says no puts the message back at the end', testFilterPutsBack],
    ['a full queue fails send() with Mpq.Error.FULL, in parent and child', testFull],
    ['join() times out; join_async() waits until every message is taken', testJoin],
    ['dispatch over three workers: every task handled exactly once', testDispatch],
    ['receive_async() with a cancelled Gio.Cancellable takes nothing', testReceiveAsyncCancel],
    ['in a child too: CANCELLED, and the task handed over again once', testReceiveAsyncCancelChild],
    ['a worker dies with a task in hand: the next worker gets it', testWorkerDies],
    ['receive_for_me() and receive_batch_json() collect without a main loop, put nothing back',
        testReceiveForMe],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
