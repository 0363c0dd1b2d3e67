// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Mpq.Pool.map_async in a process of its own, for test-pool.js: its replies
// (a GPtrArray) are released twice by GJS as long as the library annotates
// them (transfer full) (see testMapInOrder there).
//
//   gjs -m pool-map.js GJS COUNT
//
// Maps `square` over 0 … COUNT-1 on two pool-worker.js workers; prints the
// results as one JSON line, shuts the pool down and exits 0.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

Gio._promisify(Mpq.Pool.prototype, 'map_async', 'map_finish');
Gio._promisify(Mpq.Pool.prototype, 'shutdown_async', 'shutdown_finish');

const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const [gjsPath, count] = ARGV;
const loop = new GLib.MainLoop(null, false);
let status = 1;

async function main() {
    const pool = Mpq.Pool.new([gjsPath, '-m', GLib.build_filenamev([here, 'pool-worker.js'])], 2);
    const items = Array.from({length: Number(count)}, (_, i) => JSON.stringify(i));
    const replies = await pool.map_async('square', items, null);

    print(JSON.stringify(replies.map(r => JSON.parse(r.dup_data_json()))));
    await pool.shutdown_async(-1, null);
    status = 0;
}

main().catch(e => printerr(`pool-map.js: ${e}`)).finally(() => loop.quit());
loop.run();
system.exit(status);
