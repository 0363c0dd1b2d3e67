// SPDX-License-Identifier: LGPL-2.1-or-later
//
// What the GJS tests of Mpq.Pool share (test-pool.js, test-pool-bytes.js,
// test-pool-redis.js): a pool's signals kept on it, and a promise that
// resolves once a condition holds.

// Keeps what @pool signals in pool.started (pids) and pool.exited
// ({pid, status, expected}), and adds it to @children, what runTests ()
// kills on a time-out (a pool, disposed of, kills its workers). Returns
// @pool.
export function watchPool(pool, children) {
    pool.started = [];
    pool.exited = [];
    pool.connect('worker-started', (_pool, pid) => pool.started.push(pid));
    pool.connect('worker-exited', (_pool, pid, status, expected) =>
        pool.exited.push({pid, status, expected}));
    children.push({force_exit: () => pool.run_dispose()});
    return pool;
}

// Resolves once @condition() holds, checked after each of the signals
// @emitters names ([emitter, signal] pairs).
export function until(condition, emitters) {
    return new Promise(resolve => {
        if (condition()) {
            resolve();
            return;
        }
        const ids = [];
        const check = () => {
            if (!condition())
                return;
            for (const [emitter, id] of ids)
                emitter.disconnect(id);
            resolve();
        };
        for (const [emitter, signal] of emitters)
            ids.push([emitter, emitter.connect(signal, check)]);
    });
}
