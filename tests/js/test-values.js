// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS test of the override's channel helpers (js/overrides/Mpq.js):
// sendValue() and receiveValue() with plain JavaScript values on pipes and
// queues, Mpq.Message.unpack(), the promisified receive_async and
// join_async, and what no message can carry (BigInt, cyclic objects,
// NaN, an empty request) throwing before anything is sent. The children
// (values-child.js) use only the override too. Nothing here calls
// Gio._promisify on an Mpq type. Prints TAP; exits 1 on any failure.
//
//   gjs -m test-values.js [GJS]     (GJS: the interpreter for the children)
//
// Nothing sleeps to let something happen; the only time-outs are those of
// receives that must come back empty, where nothing will ever arrive.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {assert, assertEqual, assertRejects, runTests} from './tap.js';

Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');

const SLOW = GLib.getenv('MPQ_VALGRIND') ? 10 : 1;
const TIMEOUT_SECONDS = 50 * SLOW;

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const gjsPath = ARGV[0] ?? GLib.find_program_in_path('gjs') ?? 'gjs';
const childArgv = [gjsPath, '-m', GLib.build_filenamev([here, 'values-child.js'])];

const children = [];

// Values JSON carries as they are (doubles with a fraction, integers
// within 2^53, text beyond the BMP, nesting).
const VALUES = [
    null, true, false, 0, -17, 2 ** 53 - 1, 0.5, -1.25e-7, '', 'naïve ☃ 𝄞 "q"\n\t\\',
    [], {}, [1, [2, [3, {four: [5]}]]], {a: {b: null, c: [true, 'x']}},
];

function assertThrowsType(fn, type, what) {
    try {
        fn();
    } catch (e) {
        assert(e instanceof type, `${what}: threw ${e}, not a ${type.name}`);
        return e;
    }
    throw new Error(`${what}: did not throw`);
}

async function checkExit(proc) {
    await proc.wait_async(null);
    assert(proc.get_if_exited(), 'the child exited rather than being killed');
    assertEqual(proc.get_exit_status(), 0, 'exit status of the child');
}

// The tests ----------------------------------------------------------------

async function testValuesInAPair() {
    const [, parent, child] = Mpq.Pipe.new_pair();

    for (const value of VALUES) {
        const sent = parent.sendValue(Mpq.REQ_DO, value, {recipientPid: 4242});
        assertEqual(sent, [Mpq.REQ_DO, parent.pid, 4242, value], 'what sendValue() returns');
        // eslint-disable-next-line no-await-in-loop
        const got = await child.receiveValue();
        assertEqual(got.data, value, 'data');
        assertEqual(got.request, Mpq.REQ_DO, 'request');
        assertEqual(got.senderPid, parent.pid, 'senderPid');
        assertEqual(got[Mpq.S_PID_OFFSET], parent.pid, 'msg[S_PID_OFFSET]');
        assertEqual(got[Mpq.R_PID_OFFSET], 4242, 'msg[R_PID_OFFSET]');
        assertEqual([...got], [Mpq.REQ_DO, parent.pid, 4242, value], 'spread');
        assertEqual(got.payload, null, 'no payload');
    }

    // No data and no recipient are null, as in pymulproc's list.
    assertEqual(parent.sendValue(Mpq.REQ_DIE), [Mpq.REQ_DIE, parent.pid, null, null], 'DIE');
    const [request, sender, recipient, data] = await child.receiveValue();
    assertEqual([request, sender, recipient, data], [Mpq.REQ_DIE, parent.pid, null, null],
        'destructured');

    // unpack() on what the introspected calls return, and the C API's
    // own sends read back as plain values.
    parent.send_json('RAW', 77, 0, '{"x":[1,2.5]}');
    const raw = child.receive(-1, null).unpack();
    assertEqual(raw, ['RAW', 77, null, {x: [1, 2.5]}], 'unpack()');
    assertEqual(JSON.stringify(raw), '["RAW",77,null,{"x":[1,2.5]}]', 'wire form');
    parent.close();
    child.close();
}

async function testHostileDataThrows() {
    const [, parent, child] = Mpq.Pipe.new_pair();
    const cyclic = {name: 'loop'};
    cyclic.self = cyclic;
    const deepCycle = [[{}]];
    deepCycle[0][0].back = deepCycle;

    for (const [value, what] of [
        [10n, 'a BigInt'], [{n: 1n}, 'a nested BigInt'], [cyclic, 'a cyclic object'],
        [deepCycle, 'a deeper cycle'], [NaN, 'NaN'], [[1, Infinity], 'a nested Infinity'],
        [() => 1, 'a function'], [Symbol('s'), 'a symbol'],
    ])
        assertThrowsType(() => parent.sendValue(Mpq.REQ_DO, value), TypeError, what);
    assertThrowsType(() => parent.sendValue(''), TypeError, 'an empty request');
    assertThrowsType(() => parent.sendValue(42), TypeError, 'a request that is no string');
    assertThrowsType(() => parent.sendValue('DO', 1, {recipientPid: -1}), RangeError,
        'a negative pid');
    assertThrowsType(() => parent.sendValue('DO', 1, {senderPid: 1.5}), RangeError,
        'a pid that is no integer');
    try {
        await child.receiveValue({timeout: 'soon'});
        throw new Error('a timeout that is no number did not reject');
    } catch (e) {
        assert(e instanceof TypeError, `a timeout that is no number: ${e}`);
    }

    // Nesting past the library's bound (Mpq.MAX_DEPTH) is refused by the
    // library; far past the JS stack, by JSON.stringify: both are errors.
    const nest = depth => {
        let value = [];
        for (let i = 0; i < depth; i++)
            value = [value];
        return value;
    };
    try {
        parent.sendValue(Mpq.REQ_DO, nest(Mpq.MAX_DEPTH + 10));
        throw new Error('nesting past MAX_DEPTH did not throw');
    } catch (e) {
        assert(e instanceof GLib.Error && e.matches(Mpq.error_quark(), Mpq.Error.PROTOCOL),
            `nesting past MAX_DEPTH: ${e}`);
    }
    try {
        parent.sendValue(Mpq.REQ_DO, nest(1000000));
        throw new Error('a million levels did not throw');
    } catch (e) {
        assert(e instanceof TypeError || e instanceof GLib.Error, `a million levels: ${e}`);
    }

    // A message is made by its constructors: its properties are read-only.
    assertThrowsType(() => new Mpq.Message({request: 'DO'}), Error, 'a message made from properties');
    assertEqual(Mpq.Message.new('DO', 0, 0, null).get_request(), 'DO', 'Message.new');

    // Nothing was sent, and the pipe works on.
    assertEqual(await child.receiveValue({timeout: 0}), null, 'nothing was sent');
    parent.sendValue(Mpq.REQ_DO, 'after');
    assertEqual((await child.receiveValue()).data, 'after', 'the pipe works on');
    parent.close();
    child.close();
}

async function testTimeoutAndCancel() {
    const [, parent, child] = Mpq.Pipe.new_pair();

    assertEqual(await child.receiveValue({timeout: 0}), null, 'timeout 0 with nothing there');
    assertEqual(await child.receiveValue({timeout: 20}), null, 'timeout 20 with nothing sent');

    const cancellable = new Gio.Cancellable();
    const pending = child.receiveValue({cancellable});
    cancellable.cancel();
    await assertRejects(pending, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED, 'cancelled');

    const both = new Gio.Cancellable();
    const pendingBoth = child.receiveValue({timeout: 60000, cancellable: both});
    both.cancel();
    await assertRejects(pendingBoth, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED,
        'cancelled before its timeout');

    // The receives that gave up took nothing.
    parent.sendValue('ONE', 1);
    parent.sendValue('TWO', 2);
    assertEqual((await child.receiveValue({timeout: 60000})).data, 1, 'first after give-ups');
    assertEqual((await child.receiveValue({timeout: 60000})).data, 2, 'second');

    const waiting = child.receiveValue();
    parent.close();
    await assertRejects(waiting, Mpq.error_quark(), Mpq.Error.CLOSED, 'peer closed');
    child.close();
}

async function testPipeFilterKeepsFirst() {
    const [, parent, child] = Mpq.Pipe.new_pair();

    parent.sendValue('X', 1);
    parent.sendValue('Y', 2);
    assertEqual(await child.receiveValue({filter: m => m.request === 'Y'}), null, 'rejected');
    try {
        await child.receiveValue({filter: () => {
            throw new RangeError('filter failed');
        }});
        throw new Error('a throwing filter did not reject');
    } catch (e) {
        assert(e instanceof RangeError, `the filter's own error, not ${e}`);
    }
    assertEqual((await child.receiveValue()).request, 'X', 'X is still first');
    assertEqual((await child.receiveValue({filter: m => m.data === 2})).request, 'Y', 'Y');
    parent.close();
    child.close();
}

async function testQueueFilterPutsBack() {
    const queue = Mpq.Queue.new(0);
    const me = {recipientPid: queue.pid};

    queue.sendValue('X', 1, me);
    queue.sendValue('Y', 2, me);
    assertEqual(await queue.receiveValue({filter: m => m.request === 'Y'}), null, 'rejected');
    assertEqual((await queue.receiveValue()).request, 'Y', 'Y is first now');
    assertEqual((await queue.receiveValue()).request, 'X', 'X went to the back');
    assertEqual(await queue.receiveValue({timeout: 0}), null, 'nothing left');
    await queue.join_async(null);
    assert(queue.is_empty(), 'empty');
    queue.close();
}

async function testPipeChild() {
    const pipe = Mpq.Pipe.new();
    const proc = pipe.spawn(childArgv);
    children.push(proc);
    const childPid = Number(proc.get_identifier());

    VALUES.forEach((value, id) => pipe.sendValue(Mpq.REQ_DO, {id, value}));
    for (const [id, value] of VALUES.entries()) {
        // eslint-disable-next-line no-await-in-loop
        const answer = await pipe.receiveValue();
        assertEqual(answer, [Mpq.REQ_FINISHED, childPid, pipe.pid,
            {id, echo: value, type: typeof value}], `answer ${id}`);
    }
    // A pipe has one peer: the parent sends what the child's filter sorts.
    pipe.sendValue('SELF');
    pipe.sendValue('SELF-A');
    pipe.sendValue('SELF-B');
    assertEqual((await pipe.receiveValue()).data, ['SELF-A', 'SELF-B'],
        'a rejected message stays first in the child');
    pipe.sendValue(Mpq.REQ_DIE);
    await checkExit(proc);
    await assertRejects(pipe.receiveValue(), Mpq.error_quark(), Mpq.Error.CLOSED,
        'receiveValue() once the child is gone');
    pipe.close();
}

async function testQueueChildrenAndJoin() {
    const queue = Mpq.Queue.new(0);
    const procs = [0, 1, 2].map(() => queue.spawn(childArgv));
    children.push(...procs);
    const pids = procs.map(p => Number(p.get_identifier()));
    const N = 60;

    for (let id = 0; id < N; id++)
        queue.sendValue(Mpq.REQ_DO, {id, value: VALUES[id % VALUES.length]});
    const seen = new Set();
    for (let i = 0; i < N; i++) {
        // eslint-disable-next-line no-await-in-loop
        const [request, sender, recipient, data] = await queue.receiveValue();
        assertEqual([request, recipient], [Mpq.REQ_FINISHED, queue.pid], 'answer header');
        assert(pids.includes(sender), `answer from a child, not ${sender}`);
        assertEqual(data.echo, VALUES[data.id % VALUES.length], `answer ${data.id}`);
        seen.add(data.id);
    }
    assertEqual(seen.size, N, 'every task answered once');

    queue.sendValue('SELF', null, {recipientPid: pids[1]});
    const self = await queue.receiveValue();
    assertEqual([self.senderPid, self.data], [pids[1], ['SELF-B', 'SELF-A']],
        'a rejected message goes to the back in the child');

    for (const pid of pids)
        queue.sendValue(Mpq.REQ_DIE, null, {recipientPid: pid});
    await queue.join_async(null);
    for (const proc of procs)
        // eslint-disable-next-line no-await-in-loop
        await checkExit(proc);
    assert(queue.is_empty(), 'the queue is empty');
    queue.close();
}

async function testPromisifiedOnce() {
    // The override promisified these; a program that still calls
    // Gio._promisify itself (as older code does) changes nothing.
    Gio._promisify(Mpq.Pipe.prototype, 'receive_async', 'receive_finish');
    const [, parent, child] = Mpq.Pipe.new_pair();

    parent.sendValue('P', [1]);
    const message = await child.receive_async(null);
    assert(message instanceof Mpq.Message, 'receive_async(null) resolves to a message');
    assertEqual(message.unpack().data, [1], 'its data');
    parent.close();
    child.close();
}

const TESTS = [
    ['sendValue() and receiveValue() carry plain values; unpack()', testValuesInAPair],
    ['data with no JSON form throws before anything is sent', testHostileDataThrows],
    ['receiveValue() times out and cancels taking nothing', testTimeoutAndCancel],
    ['on a pipe, what a filter rejects stays first', testPipeFilterKeepsFirst],
    ['on a queue, what a filter rejects goes to the back', testQueueFilterPutsBack],
    ['a pipe child written with plain values and await', testPipeChild],
    ['queue children with plain values; join_async resolves', testQueueChildrenAndJoin],
    ['receive_async is promisified once, with or without Gio._promisify', testPromisifiedOnce],
];

runTests(TESTS, TIMEOUT_SECONDS, children);
