// SPDX-License-Identifier: LGPL-2.1-or-later
//
// pool-worker.js — tutorial step 4: a pool worker in JavaScript.
//
// Spawned by an Mpq.Pool (pool.c, pool.py, pool.js) as `gjs -m
// pool-worker.js`: Mpq.serveWorker calls the handler for each task; what it
// returns (or a promise of it) is the result, what it throws the task's
// error.

import Mpq from 'gi://Mpq?version=1.0';

Mpq.serveWorker((request, data) => {
    if (request !== 'square')
        throw new Error(`unknown request ${request}`);
    if (!Number.isInteger(data))
        throw new TypeError(`not a whole number: ${JSON.stringify(data)}`);
    return data * data;
});
