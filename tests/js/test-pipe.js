// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of Mpq.Pipe: a JavaScript parent talks to a JavaScript child
// (pipe-child.js) it spawns with Mpq.Pipe.spawn(), first through signals in a
// GLib.MainLoop, then through a promisified receive_async(); the last tests
// use an in-process pair. Prints TAP; exits 1 on any failure or time-out.
//
//   gjs -m test-pipe.js [GJS]     (GJS: the interpreter for the child)

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {assert, assertEqual, assertRejects, runTests} from './tap.js';

Gio._promisify(Mpq.Pipe.prototype, 'receive_async', 'receive_finish');
Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');

const TIMEOUT_SECONDS = 45;

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const childArgv = [
    ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs',
    '-m', GLib.build_filenamev([here, 'pipe-child.js']),
];

const TASKS = [
    {id: 1, op: 'square', value: 7},
    {id: 2, op: 'words', text: 'the quick brown fox'},
    {id: 3, op: 'square', value: -12},
    {id: 4, op: 'words', text: 'naïve café — “quoted” ☃ snow'},
    {id: 5, op: 'square', value: 1000000},
    {id: 6, op: 'words', text: ''},
];
const RESULTS = [49, 4, 144, 6, 1e12, 0];

const children = [];  // every Gio.Subprocess spawned, killed on a time-out

// Helpers ------------------------------------------------------------------

function spawnChild(pipe) {
    const proc = pipe.spawn(childArgv);

    children.push(proc);
    return proc;
}

function sendTasks(pipe) {
    for (const task of TASKS)
        pipe.send_json(Mpq.REQ_DO, 0, 0, JSON.stringify(task));
}

// @answers: the Mpq.Message answers @pipe got from the child @childPid.
function checkAnswers(pipe, answers, childPid) {
    assertEqual(answers.length, TASKS.length, 'number of answers');
    answers.forEach((message, i) => {
        assertEqual(message.get_request(), Mpq.REQ_FINISHED, `request of answer ${i}`);
        assertEqual(message.get_sender_pid(), childPid, `sender pid of answer ${i}`);
        assertEqual(message.get_recipient_pid(), pipe.pid, `recipient pid of answer ${i}`);
        assertEqual(JSON.parse(message.dup_data_json()),
            {id: TASKS[i].id, result: RESULTS[i]}, `data of answer ${i}`);
    });
}

// Waits for @proc to end and checks that it exited with status 0.
async function checkExitedCleanly(proc) {
    await proc.wait_async(null);
    assert(proc.get_if_exited(), 'the child exited rather than being killed');
    assertEqual(proc.get_exit_status(), 0, 'exit status of the child');
}

// The tests ----------------------------------------------------------------

const state = {};

async function testSignals() {
    const pipe = Mpq.Pipe.new();
    assertEqual(pipe.role, Mpq.Role.PARENT, 'role of Mpq.Pipe.new()');

    const proc = spawnChild(pipe);
    const childPid = Number(proc.get_identifier());
    const answers = [];
    assert(childPid > 0, 'the child has a pid');

    const exited = proc.wait_async(null);
    await new Promise((resolve, reject) => {
        // A throw inside a signal handler would only be logged: reject instead.
        const guard = fn => (...args) => {
            try {
                fn(...args);
            } catch (e) {
                reject(e);
            }
        };

        pipe.connect('message-received::FINISHED', guard((channel, message) => {
            answers.push(message);
            if (answers.length === TASKS.length)
                channel.send(Mpq.REQ_DIE, 0, 0, null);
        }));
        pipe.connect('message-received', guard((channel, message) => {
            if (message.get_request() !== Mpq.REQ_FINISHED)
                throw new Error(`unexpected message ${message.to_json()[0]}`);
        }));
        pipe.connect('closed', guard(() => {
            state.closedAfter = answers.length;
            resolve();
        }));

        pipe.start();
        sendTasks(pipe);
    });
    await exited;

    state.signals = {pipe, proc};
    checkAnswers(pipe, answers, childPid);
}

async function testDieClosedExit() {
    const {pipe, proc} = state.signals;

    assertEqual(state.closedAfter, TASKS.length, 'answers delivered before closed');
    assert(proc.get_if_exited(), 'the child exited rather than being killed');
    assertEqual(proc.get_exit_status(), 0, 'exit status of the child');

    try {
        pipe.receive(0, null);
        throw new Error('receive() after closed did not fail');
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(Mpq.error_quark(), Mpq.Error.CLOSED),
            `receive() after closed fails with CLOSED, not ${e}`);
    }
    pipe.close();
}

async function testReceiveAsync() {
    const pipe = Mpq.Pipe.new();
    const proc = spawnChild(pipe);
    const childPid = Number(proc.get_identifier());
    const answers = [];

    sendTasks(pipe);
    for (let i = 0; i < TASKS.length; i++)
        answers.push(await pipe.receive_async(null));
    checkAnswers(pipe, answers, childPid);

    pipe.send(Mpq.REQ_DIE, 0, 0, null);
    await checkExitedCleanly(proc);
    await assertRejects(pipe.receive_async(null), Mpq.error_quark(), Mpq.Error.CLOSED,
        'receive_async() once the child is gone');
    pipe.close();
}

async function testCancelAndClose() {
    const [ok, parent, child] = Mpq.Pipe.new_pair();
    assert(ok, 'new_pair() returns true');

    // A cancelled receive_async() fails with CANCELLED and takes nothing.
    const cancellable = new Gio.Cancellable();
    const cancelled = child.receive_async(cancellable);
    cancellable.cancel();
    await assertRejects(cancelled, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'cancelled receive_async()');

    parent.send_json(Mpq.REQ_DO, 0, 0, '{"value":20}');
    const message = await child.receive_async(null);
    assertEqual(message.get_request(), Mpq.REQ_DO, 'request after a cancel');
    assertEqual(JSON.parse(message.dup_data_json()), {value: 20}, 'data after a cancel');

    // close() fails a pending receive_async() with CLOSED.
    const pending = child.receive_async(null);
    child.close();
    await assertRejects(pending, Mpq.error_quark(), Mpq.Error.CLOSED,
        'receive_async() pending at close()');
    parent.close();
}

async function testDetails() {
    const [, parent, child] = Mpq.Pipe.new_pair();
    const seen = [];

    await new Promise((resolve, reject) => {
        child.connect('message-received::DO', (c, m) => seen.push(`DO ${m.dup_data_json()}`));
        child.connect('message-received::DIE', () => {
            seen.push('DIE');
            resolve();
        });
        child.connect('message-received::FINISHED', () => reject(new Error('wrong detail')));
        child.start();

        parent.send(Mpq.REQ_DO, 0, 0, null);
        parent.send_json(Mpq.REQ_TEST_PARENT, 0, 0, '"ignored"');
        parent.send_json(Mpq.REQ_DO, 0, 0, '[1,"two",{"3":null}]');
        parent.send(Mpq.REQ_DIE, 0, 0, null);
    });
    assertEqual(seen, ['DO null', 'DO [1,"two",{"3":null}]', 'DIE'], 'handlers called');
    child.close();
    parent.close();
}

// A handler that runs a main loop of its own, as a dialog would, and
// makes a receive_async there gets the next message in it; the signal
// hands it the one after only once it returned.
async function testReceiveInHandlersLoop() {
    const [, parent, child] = Mpq.Pipe.new_pair();
    const handled = [], received = [];

    await new Promise(resolve => {
        child.connect('message-received', (c, m) => {
            handled.push(JSON.parse(m.dup_data_json()));
            if (handled.length > 1) {
                resolve();
                return;
            }
            const inner = new GLib.MainLoop(null, false);
            c.receive_async(null, (source, result) => {
                received.push(JSON.parse(source.receive_finish(result).dup_data_json()));
                inner.quit();
            });
            parent.send_json(Mpq.REQ_DO, 0, 0, '2');
            inner.run();
            parent.send_json(Mpq.REQ_DO, 0, 0, '3');
        });
        child.start();
        parent.send_json(Mpq.REQ_DO, 0, 0, '1');
    });
    assertEqual(handled, [1, 3], 'what the signal handed out');
    assertEqual(received, [2], 'what receive_async got in the handler\'s loop');
    child.close();
    parent.close();
}

async function testReceiveJson() {
    const [, parent, child] = Mpq.Pipe.new_pair();

    child.send_json('FINISHED', 0, 0, JSON.stringify({value: 6, list: [1, 'two']}));
    const message = JSON.parse(parent.receive_json(-1));
    assertEqual(message, ['FINISHED', parent.pid, null, {value: 6, list: [1, 'two']}],
        'receive_json() gives the message as JSON');
    assertEqual(parent.receive_json(0), null, 'receive_json(0) with nothing there');
    parent.close();
    child.close();
}

// new Mpq.Pipe() is g_object_new() without g_initable_init(): a whole
// parent's pipe all the same, and a child's without MPQ_CHANNEL_FD says
// NOT_A_CHILD from its first call.
async function testMadeByConstructor() {
    const pipe = new Mpq.Pipe();
    assertEqual(pipe.receive(0, null), null, 'receive(0) on new Mpq.Pipe()');
    assert(pipe.send_json('DO', 0, 0, '1'), 'send_json() on new Mpq.Pipe()');
    pipe.close();

    const child = new Mpq.Pipe({role: Mpq.Role.CHILD});
    let failed = null;
    try {
        child.receive(0, null);
    } catch (e) {
        failed = e;
    }
    assert(failed instanceof GLib.Error &&
        failed.matches(Mpq.error_quark(), Mpq.Error.NOT_A_CHILD),
    `a child's pipe without MPQ_CHANNEL_FD fails with NOT_A_CHILD (${failed})`);
    child.close();
}

function pattern(size, seed) {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++)
        bytes[i] = (i * 31 + seed) & 0xff;
    return bytes;
}

function sameBytes(a, b) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
}

// GLib.Bytes in and out: in this process, inline and by descriptor; to a
// spawned child and back through a line limit of 4 KiB (only a descriptor
// gets 8 MiB there).
async function testPayloads() {
    const [, parent, child] = Mpq.Pipe.new_pair();
    for (const size of [0, 100, 200000]) {
        const sent = pattern(size, size);
        parent.send_bytes('BLOB', 0, 0, new GLib.Bytes(sent));
        const got = child.receive(-1, null).get_bytes().toArray();
        assert(sameBytes(got, sent), `${size} bytes in a pair`);
    }
    parent.close();
    child.close();

    const pipe = Mpq.Pipe.new();
    pipe.max_message_size = 4096;
    const proc = spawnChild(pipe);
    const sent = pattern(8 * 1024 * 1024, 5);
    pipe.send_bytes('BLOB', 0, 0, new GLib.Bytes(sent));
    const answer = await new Promise((resolve, reject) => {
        pipe.receive_async(null, (p, result) => {
            try {
                resolve(p.receive_finish(result));
            } catch (e) {
                reject(e);
            }
        });
    });
    assertEqual(answer.get_request(), Mpq.REQ_FINISHED, 'the child answered');
    assert(sameBytes(answer.get_bytes().toArray(), sent), '8 MiB back from the child');
    pipe.send(Mpq.REQ_DIE, 0, 0, null);
    await checkExitedCleanly(proc);
    pipe.close();
}

const TESTS = [
    ['spawned child answers DO tasks through message-received signals', testSignals],
    ['DIE makes the child quit: parent sees closed, exit status 0', testDieClosedExit],
    ['promisified receive_async() gets every answer, then CLOSED', testReceiveAsync],
    ['receive_async() can be cancelled, and fails with CLOSED on close()', testCancelAndClose],
    ['message-received::DETAIL reaches only the handlers of that request', testDetails],
    ['a receive_async in a handler\'s own main loop is answered there', testReceiveInHandlersLoop],
    ['receive_json() returns the message as its JSON line', testReceiveJson],
    ['send_bytes() and get_bytes() carry GLib.Bytes, by descriptor to a child', testPayloads],
    ['new Mpq.Pipe() is whole without init(); a child\'s says NOT_A_CHILD', testMadeByConstructor],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
