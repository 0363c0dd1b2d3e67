// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The pool worker test-pool.js's pools spawn: an Mpq.Worker (through GI)
// whose behaviour each task's request picks, as tests/mpq-pool-test-worker.c
// does for the C tests:
//
//   square        data n -> n * n
//   echo          data -> data
//   pid           -> this worker's pid
//   fail          throws Error('failing on purpose: <data>')
//   until-cancel  progress "started", iterates the main context until the
//                 task is cancelled, -> "stopped"
//   progress      data n: progress 1 … n, then -> n
//   anything else -> "unknown request"
//
// The handler runs inside try/catch: what it throws fails the task with
// the error's message and its stack (the C library cannot see a JS
// exception). Every request is appended, one per line, to
// $MPQ_TEST_LOG_DIR/<pid> when that is set. Exits 0 when told to die, 1
// when the pool is gone.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import {runWorker} from './worker-util.js';

const logDir = GLib.getenv('MPQ_TEST_LOG_DIR');
const worker = Mpq.Worker.new_for_child();
const pid = worker.get_pid();

function log(line) {
    if (logDir === null)
        return;
    const path = GLib.build_filenamev([logDir, `${pid}`]);
    const [, old] = GLib.file_test(path, GLib.FileTest.EXISTS)
        ? GLib.file_get_contents(path) : [true, new Uint8Array()];
    GLib.file_set_contents(path, new TextDecoder().decode(old) + `${line}\n`);
}

function handle(request, data, invocation) {
    switch (request) {
    case 'square':
        return data * data;
    case 'echo':
        return data;
    case 'pid':
        return pid;
    case 'fail':
        throw new Error(`failing on purpose: ${JSON.stringify(data)}`);
    case 'until-cancel': {
        const cancellable = invocation.get_cancellable();

        invocation.send_progress_json(JSON.stringify('started'));
        while (!cancellable.is_cancelled())
            GLib.MainContext.default().iteration(true);
        log('cancelled');
        return 'stopped';
    }
    case 'progress':
        for (let i = 1; i <= data; i++)
            invocation.send_progress_json(JSON.stringify(i));
        return data;
    default:
        return 'unknown request';
    }
}

worker.connect('task', (_worker, invocation) => {
    const request = invocation.get_request();

    log(request);
    try {
        const data = JSON.parse(invocation.dup_data_json());
        const result = handle(request, data, invocation);

        invocation.return_json(JSON.stringify(result ?? null));
    } catch (e) {
        invocation.return_error(`${e.message}\n${e.stack ?? ''}`);
    }
});

runWorker(worker);
