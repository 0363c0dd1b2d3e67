// SPDX-License-Identifier: LGPL-2.1-or-later

// The GJS worker of the pymulproc demo; run it with `gjs -m worker.js`.
//
// Spawned by mpq-demo on the MpqQueue it shares with the other workers. It
// takes tasks by dispatch, one at a time (prefetch 1), and says READY to the
// parent once it does. For each DO {"task", "lo", "hi"} it counts the primes
// in [lo, hi) with a segmented sieve of Eratosthenes and answers FINISHED
// {"task", "lo", "hi", "primes", "us"} to the parent, "us" being the
// microseconds it took. A task is taken once its handler has returned, so a
// worker that dies in the middle loses nothing. DIE ends it.
// Same program as worker.c and worker.py.

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

    // Counts the primes n with lo <= n < hi, a block at a time: flags that
    // stay in the cache make the sieve several times faster. Numbers are
    // doubles: exact far beyond any limit the demo accepts.
    count(lo, hi) {
        if (hi > 2)
            this.ensureBasePrimes(Math.floor(Math.sqrt(hi - 1)));
        let count = 0;
        for (let start = lo; start < hi; start += BLOCK_SIZE)
            count += this.countBlock(start, Math.min(start + BLOCK_SIZE, hi));
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

class Worker {
    constructor() {
        this.loop = new GLib.MainLoop(null, false);
        this.counter = new PrimeCounter();
        this.status = 1;
        this.queue = Mpq.Queue.new_for_child();
        this.parentPid = this.queue.get_parent_pid();
        this.handlers = [
            this.queue.connect(`message-received::${Mpq.REQ_DO}`, this.onDo.bind(this)),
            this.queue.connect(`message-received::${Mpq.REQ_DIE}`, this.onDie.bind(this)),
            this.queue.connect('closed', this.onClosed.bind(this)),
        ];
    }

    fail(message) {
        this.status = 1;
        this.loop.quit();
        printerr(`worker.js[${this.queue.pid}]: ${message}`);
    }

    onDo(queue, message) {
        let task;
        try {
            task = JSON.parse(message.dup_data_json());
        } catch (e) {
            task = null;
        }
        if (!task || !Number.isInteger(task.lo) || !Number.isInteger(task.hi)) {
            this.fail('DO without a valid {task, lo, hi}');
            return;
        }

        const started = GLib.get_monotonic_time();
        const primes = this.counter.count(task.lo, task.hi);
        const reply = {
            task: task.task,
            lo: task.lo,
            hi: task.hi,
            primes,
            us: GLib.get_monotonic_time() - started,
        };
        try {
            queue.send_json(Mpq.REQ_FINISHED, 0, this.parentPid, JSON.stringify(reply));
        } catch (e) {
            this.fail(`could not answer: ${e.message}`);
        }
    }

    // The queue is closed after the loop: closing it here, before the
    // handler returns, would hand DIE back to the queue as not taken.
    onDie() {
        this.status = 0;
        this.loop.quit();
    }

    // The parent went away without saying DIE: nobody is left to work for.
    onClosed() {
        this.fail('the parent hung up');
    }

    run() {
        // One task at a time: the next one stays in the queue for whichever
        // worker is free first.
        this.queue.set_prefetch(1);
        this.queue.start();
        let ready = false;
        try {
            this.queue.send('READY', 0, this.parentPid, null);
            ready = true;
        } catch (e) {
            this.fail(`could not say READY: ${e.message}`);
        }
        if (ready)
            this.loop.run();
        for (const handler of this.handlers)
            this.queue.disconnect(handler);
        this.queue.close();
        return this.status;
    }
}

let worker;
try {
    worker = new Worker();
} catch (e) {
    printerr(`worker.js: ${e.message}`);
    System.exit(1);
}
System.exit(worker.run());
