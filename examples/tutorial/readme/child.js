// SPDX-License-Identifier: LGPL-2.1-or-later
// The README's JavaScript child, as it shows it (test_tutorial.py spawns
// it with `gjs -m child.js`).
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';

const pipe = Mpq.Pipe.new_for_child();
const loop = new GLib.MainLoop(null, false);

pipe.connect('message-received::DO', (p, msg) => {
    const {value} = msg.unpack().data;
    p.sendValue(Mpq.REQ_FINISHED, {value: value ** 2}, {recipientPid: msg.get_sender_pid()});
});
pipe.connect('message-received::DIE', () => loop.quit());
pipe.connect('closed', () => loop.quit());
pipe.start();
loop.run();
