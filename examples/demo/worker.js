// SPDX-License-Identifier: LGPL-2.1-or-later

// The GJS worker of the pymulproc demo: an Mpq.Worker through GObject
// introspection. Run it with `gjs -m worker.js`.
//
// One of the processes of mpq-demo's GJS pool. It serves tasks with
// Mpq.Worker, one at a time, until the pool tells it to die:
//
//   count {"lo", "hi"}  counts the primes in [lo, hi) with a segmented
//                       sieve of Eratosthenes, reporting progress
//                       {"done", "primes"} at every tenth of the range, and
//                       answers {"primes", "us"}, "us" being the
//                       microseconds it took;
//   crash               the poison task of --poison-task: the worker
//                       crashes the way GLib does on a fatal error (an
//                       error-level message stops the process with
//                       SIGTRAP), as a worker with a bug would. The pool replaces it and
//                       hands the task to another worker, until it gave up
//                       on it.
//
// The pool matches each answer to its task: the worker never names the
// task it answers. Same program as worker.c and worker.py.

import GLib from 'gi://GLib';
import Mpq from 'gi://Mpq?version=1.0';
import System from 'system';

// Numbers sieved in one pass: their flags fit in a typical L2 cache.
const BLOCK_SIZE = 256 * 1024;

class PrimeCounter {
    constructor() {
        this.basePrimes = [];
        this.baseBound = 0;
        this.block = new Uint8Array(BLOCK_SIZE);
    }

    // Knows every prime up to bound; grows geometrically so a run whose
    // tasks climb towards the limit re-sieves the small primes rarely.
    ensureBasePrimes(bound) {
        if (bound <= this.baseBound)
            return;
        bound = Math.max(bound, this.baseBound * 2);
        const composite = new Uint8Array(bound + 1);
        this.basePrimes = [];
        for (let i = 2; i <= bound; i++) {
            if (composite[i])
                continue;
            this.basePrimes.push(i);
            for (let m = i * i; m <= bound; m += i)
                composite[m] = 1;
        }
        this.baseBound = bound;
    }

    // Counts the primes n with lo <= n < hi, a block at a time (flags that
    // stay in the cache make the sieve several times faster), and calls
    // progress(done, primes) at every tenth of the range but the last.
    // Numbers are doubles: exact far beyond any limit the demo accepts.
    count(lo, hi, progress) {
        if (hi > 2)
            this.ensureBasePrimes(Math.floor(Math.sqrt(hi - 1)));
        let count = 0;
        let tenths = 0;
        for (let start = lo; start < hi; start += BLOCK_SIZE) {
            const end = Math.min(start + BLOCK_SIZE, hi);
            count += this.countBlock(start, end);
            const now = Math.floor((end - lo) * 10 / (hi - lo));
            if (end < hi && now > tenths) {
                tenths = now;
                progress(end - lo, count);
            }
        }
        return count;
    }

    countBlock(lo, hi) {
        const size = hi - lo;
        const flags = this.block;
        flags.fill(1, 0, size);
        for (let n = lo; n < Math.min(hi, 2); n++)
            flags[n - lo] = 0;
        for (const p of this.basePrimes) {
            if (p * p >= hi)
                break;
            // Smaller multiples of p were crossed out by smaller primes.
            const start = Math.max(p * p, Math.ceil(lo / p) * p) - lo;
            for (let i = start; i < size; i += p)
                flags[i] = 0;
        }
        let count = 0;
        for (let i = 0; i < size; i++)
            count += flags[i];
        return count;
    }
}

function onTask(counter, invocation) {
    const request = invocation.get_request();
    if (request === 'crash') {
        // What a bug would do: GLib stops the process on an error-level
        // message. The demo's parent turned core dumps off.
        GLib.log_structured('worker.js', GLib.LogLevelFlags.LEVEL_ERROR,
            {MESSAGE: 'the poison task: crashing on purpose'});
        return;
    }

    let task = null;
    try {
        task = JSON.parse(invocation.dup_data_json());
    } catch (e) {
        task = null;
    }
    if (request !== 'count' || !task || !Number.isInteger(task.lo) ||
        !Number.isInteger(task.hi) || task.lo < 0 || task.lo > task.hi) {
        // The task fails with this text: MPQ_ERROR_TASK_FAILED.
        invocation.return_error(
            `worker.js does not know ${request} ${invocation.dup_data_json()}`);
        return;
    }

    const progress = (done, primes) => {
        // Progress is a courtesy: a pool that is gone will not read the
        // answer either, and run() returns.
        try {
            invocation.send_progress_json(JSON.stringify({done, primes}));
        } catch (e) {
        }
    };
    const started = GLib.get_monotonic_time();
    const primes = counter.count(task.lo, task.hi, progress);
    invocation.return_json(JSON.stringify({
        primes,
        us: GLib.get_monotonic_time() - started,
    }));
}

let worker;
try {
    worker = Mpq.Worker.new_for_child();
} catch (e) {
    printerr(`worker.js: ${e.message}`);
    System.exit(1);
}
const counter = new PrimeCounter();
worker.connect('task', (_worker, invocation) => onTask(counter, invocation));
try {
    // Serves until the pool says DIE, or is gone (an error).
    worker.run();
} catch (e) {
    printerr(`worker.js[${worker.get_pid()}]: ${e.message}`);
    System.exit(1);
}
System.exit(0);
