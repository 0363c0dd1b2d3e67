// SPDX-License-Identifier: LGPL-2.1-or-later
//
// What the GJS tests share: assertions, and a runner that prints TAP, kills
// the children it is given on a time-out and exits 1 on any failure.

import GLib from 'gi://GLib';
import system from 'system';

export function assert(condition, what) {
    if (!condition)
        throw new Error(`assertion failed: ${what}`);
}

export function assertEqual(actual, expected, what) {
    const a = JSON.stringify(actual), e = JSON.stringify(expected);

    if (a !== e)
        throw new Error(`${what}: got ${a}, expected ${e}`);
}

export function errorText(e) {
    return e instanceof GLib.Error ? `${GLib.quark_to_string(e.domain)} ${e.code}: ${e.message}`
        : `${e}`;
}

export async function assertRejects(promise, domain, code, what) {
    try {
        await promise;
    } catch (e) {
        if (e instanceof GLib.Error && e.matches(domain, code))
            return;
        throw new Error(`${what}: failed with the wrong error: ${errorText(e)}`);
    }
    throw new Error(`${what}: did not fail`);
}

// Runs @tests, [name, async function] pairs, in a GLib.MainLoop; @children
// (Gio.Subprocess, added to as tests spawn them) are killed on a time-out
// and at the end. Does not return.
export function runTests(tests, timeoutSeconds, children) {
    const loop = new GLib.MainLoop(null, false);
    let failures = 0;

    GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, timeoutSeconds, () => {
        print(`Bail out! timed out after ${timeoutSeconds} s`);
        for (const proc of children)
            proc.force_exit();
        system.exit(1);
        return GLib.SOURCE_REMOVE;
    });

    async function main() {
        print(`1..${tests.length}`);
        for (const [i, [name, test]] of tests.entries()) {
            try {
                // eslint-disable-next-line no-await-in-loop
                await test();
                print(`ok ${i + 1} - ${name}`);
            } catch (e) {
                failures++;
                print(`not ok ${i + 1} - ${name}`);
                for (const line of `${errorText(e)}\n${e.stack ?? ''}`.trim().split('\n'))
                    print(`# ${line}`);
            }
        }
    }

    main().catch(e => {
        failures++;
        print(`Bail out! ${e}`);
    }).finally(() => loop.quit());
    loop.run();

    for (const proc of children)
        proc.force_exit();  // a no-op for the children that are gone
    system.exit(failures > 0 ? 1 : 0);
}
