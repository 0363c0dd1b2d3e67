// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The child that test-values.js spawns, on a pipe or a queue (as
// $MPQ_CHANNEL_KIND says), written only with the override's plain values
// and promises (js/overrides/Mpq.js): no JSON text, no Gio._promisify.
//
//   DO {"id": n, "value": v}  -> FINISHED {"id": n, "echo": v, "type": typeof v}
//                                to the sender
//   SELF                      -> SELF-A then SELF-B (on a queue, it sends them
//                                to itself; on a pipe, the parent sends them
//                                after SELF): a filter that wants SELF-B
//                                rejects SELF-A, then two receives; answers
//                                FINISHED with the two requests in the order
//                                they came: ["SELF-A", "SELF-B"] on a pipe,
//                                ["SELF-B", "SELF-A"] on a queue
//   DIE                       -> exit 0
//
// Anything else, or the parent hanging up before DIE, exits 1.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

const channel = GLib.getenv('MPQ_CHANNEL_KIND') === 'queue'
    ? Mpq.Queue.new_for_child() : Mpq.Pipe.new_for_child();

// A filter that wants SELF-B rejects SELF-A, which then waits first in
// line on a pipe and at the back of the queue on a queue.
async function filtered(channel_) {
    if (channel_ instanceof Mpq.Queue) {
        channel_.sendValue('SELF-A', null, {recipientPid: channel_.pid});
        channel_.sendValue('SELF-B', null, {recipientPid: channel_.pid});
    }
    const rejected = await channel_.receiveValue({filter: m => m.request === 'SELF-B'});
    if (rejected !== null)
        throw new Error(`the filter took ${JSON.stringify(rejected)}`);
    const first = await channel_.receiveValue();
    const second = await channel_.receiveValue();
    return [first.request, second.request];
}

async function main() {
    for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const msg = await channel.receiveValue();
        const [request, sender, , data] = msg;

        switch (request) {
        case Mpq.REQ_DO:
            channel.sendValue(Mpq.REQ_FINISHED,
                {id: data.id, echo: data.value, type: typeof data.value},
                {recipientPid: sender});
            break;
        case 'SELF':
            // eslint-disable-next-line no-await-in-loop
            channel.sendValue(Mpq.REQ_FINISHED, await filtered(channel), {recipientPid: sender});
            break;
        case Mpq.REQ_DIE:
            return 0;
        default:
            printerr(`values-child.js: unexpected ${JSON.stringify(msg)}`);
            return 1;
        }
    }
}

let status = 1;
try {
    status = await main();
} catch (e) {
    printerr(`values-child.js: ${e}\n${e.stack ?? ''}`);
}
channel.close();
system.exit(status);
