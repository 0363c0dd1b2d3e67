// SPDX-License-Identifier: LGPL-2.1-or-later
//
// What the GJS pool workers share (pool-worker.js, bytes-worker.js).

import Mpq from 'gi://Mpq?version=1.0';
import system from 'system';

// Runs @worker (an Mpq.Worker) until the pool tells it to die (exit 0) or
// is gone (exit 1). Does not return.
export function runWorker(worker) {
    let toldToDie = false;

    try {
        toldToDie = worker.run();
    } catch (e) {
        if (!e.matches?.(Mpq.error_quark(), Mpq.Error.CLOSED))
            throw e;
    }
    system.exit(toldToDie ? 0 : 1);
}
