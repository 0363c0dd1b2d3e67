// SPDX-License-Identifier: LGPL-2.1-or-later
//
// What the GJS tests on Redis share (test-queue-redis.js,
// test-pool-redis.js): a redis-server of the test's own on a unix socket in
// a temporary folder, without persistence, and the test that stops it. The
// test skips (TAP "1..0 # SKIP") without redis-server or without Redis
// support in the library.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';
import {assert, assertEqual} from './tap.js';

Gio._promisify(Gio.Subprocess.prototype, 'wait_async', 'wait_finish');
Gio._promisify(Gio.DataInputStream.prototype, 'read_line_async', 'read_line_finish_utf8');

// Starts redis-server on a unix socket in a new temporary folder, without
// persistence; resolves once its log (on its stdout) says it is ready.
async function startServer(serverPath, children) {
    const dir = GLib.dir_make_tmp('mpq-redis-js-XXXXXX');
    const socket = GLib.build_filenamev([dir, 'redis.sock']);
    const server = Gio.Subprocess.new(
        [serverPath, '--port', '0', '--unixsocket', socket, '--unixsocketperm', '700',
            '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''],
        Gio.SubprocessFlags.STDOUT_PIPE | Gio.SubprocessFlags.STDERR_MERGE);
    const log = new Gio.DataInputStream({base_stream: server.get_stdout_pipe()});

    children.push(server);
    for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const [line] = await log.read_line_async(GLib.PRIORITY_DEFAULT, null);

        if (line === null)
            throw new Error('redis-server exited before it was ready');
        // 7.0 on a unix socket only: "... ready to accept connections at PATH".
        if (line.toLowerCase().includes('ready to accept connections'))
            break;
    }
    // Keeps reading its log, so that it never blocks on a full pipe.
    const drain = () => log.read_line_async(GLib.PRIORITY_DEFAULT, null)
        .then(([line]) => line !== null && drain()).catch(() => {});
    drain();
    return [server, dir, `redis+unix://${socket}`];
}

// Starts the server (in a main loop of its own) and returns {server, dir,
// uri}; the server is added to @children, which runTests () kills on a
// time-out. Exits, skipping the whole test, without redis-server or Redis
// support; bails out when the server does not start.
export function startServerOrSkip(children) {
    const serverPath = GLib.find_program_in_path('redis-server');
    if (serverPath === null) {
        print('1..0 # SKIP no redis-server');
        system.exit(0);
    }

    const loop = new GLib.MainLoop(null, false);
    let server = null, dir = null, uri = null, startError = null;
    startServer(serverPath, children).then(([s, d, u]) => {
        [server, dir, uri] = [s, d, u];
    }).catch(e => {
        startError = e;
    }).finally(() => loop.quit());
    loop.run();
    if (startError !== null) {
        print(`Bail out! ${startError}`);
        system.exit(1);
    }

    try {
        Mpq.Queue.new_for_uri(uri, 'js-support', 0).close();
    } catch (e) {
        if (e instanceof GLib.Error && e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_SUPPORTED)) {
            print('1..0 # SKIP the library was built without Redis support');
            server.force_exit();
            system.exit(0);
        }
        throw e;
    }
    return {server, dir, uri};
}

// The last test: the server goes, and its folder with it (its socket is
// all it holds).
export function serverStopsTest({server, dir}) {
    return ['the server stops when asked', async () => {
        server.send_signal(15);
        await server.wait_async(null);
        assert(server.get_if_exited(), 'redis-server exited on SIGTERM');
        GLib.unlink(GLib.build_filenamev([dir, 'redis.sock']));
        assertEqual(GLib.rmdir(dir), 0, 'its folder removed, nothing left in it');
    }];
}
