// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS overrides for Mpq, pymulproc for GLib: plain JavaScript values and
// promises on top of the introspected API.
//
// GJS runs _init() below the first time a program imports the namespace,
// with `import Mpq from 'gi://Mpq?version=1.0'` as with `imports.gi.Mpq`:
// nothing else is imported. The file is installed as
// $datadir/gjs-1.0/overrides/Mpq.js, which GJS finds through
// $XDG_DATA_DIRS (/usr/local/share and /usr/share by default) or $GJS_PATH;
// the tests find it in the source tree through GJS_PATH. It is a legacy
// GJS script, not an ES module, because GJS 1.74 loads overrides only in
// that form. See docs/design-decisions.md, "JavaScript: the GJS module",
// for why this is an override rather than a module in a GResource.
//
// Every name added here is new (camelCase, where GI's are snake_case):
// no introspected method is replaced, so code written against the bare
// typelib keeps working.

/* exported _init */

const {Gio, GLib} = imports.gi;

let Mpq;

/*
 * Data in: a plain value as the JSON text the C API takes. What has no
 * JSON form throws a TypeError here, before anything is sent: a BigInt,
 * a cyclic object (JSON.stringify's own errors), a function or a symbol,
 * and NaN and ±Infinity, which JSON.stringify would silently write as
 * null but the library refuses (MPQ_ERROR_PROTOCOL) from every language.
 */
function _refuseNonFinite(key, value) {
    if (typeof value === 'number' && !Number.isFinite(value))
        throw new TypeError(`${value} is not a JSON number`);
    return value;
}

function _toJson(value, what) {
    let text;

    if (value === undefined || value === null)
        return null;
    try {
        text = JSON.stringify(value, _refuseNonFinite);
    } catch (error) {   // TypeError, or InternalError past the stack's depth
        throw new TypeError(`${what} has no JSON form: ${error.message}`, {cause: error});
    }
    if (text === undefined)
        throw new TypeError(`${what} has no JSON form: a ${typeof value}`);
    return text;
}

function _fromJson(text) {
    return text === null ? null : JSON.parse(text);
}

function _checkRequest(request) {
    if (typeof request !== 'string' || request.length === 0)
        throw new TypeError(`the request must be a non-empty string, not ${JSON.stringify(request)}`);
}

function _checkPid(pid, what) {
    if (pid === undefined || pid === null)
        return 0;
    if (!Number.isInteger(pid) || pid < 0 || pid > 0x7fffffff)
        throw new RangeError(`${what} must be a pid or 0, not ${pid}`);
    return pid;
}

function _isError(error, domain, code) {
    return error instanceof GLib.Error && error.matches(domain, code);
}

function _isClosed(error) {
    return _isError(error, Mpq.error_quark(), Mpq.Error.CLOSED);
}

function _isCancelled(error) {
    return _isError(error, Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED);
}

/**
 * MessageValue:
 *
 * A message as plain values, what `message.unpack()` and the
 * channel helpers give: `request`, `senderPid`, `recipientPid` (`null`
 * when there is none), `data` (what `JSON.parse` gives; `null` when there
 * is none) and `payload` (a `GLib.Bytes`, or `null`).
 *
 * It also reads like pymulproc's list: `msg[Mpq.S_PID_OFFSET]` is the
 * sender, `const [request, sender, recipient, data] = msg` unpacks it,
 * and `JSON.stringify(msg)` is its wire form, the 4-element array.
 */
class MessageValue {
    constructor(request, senderPid, recipientPid, data, payload = null) {
        this.request = request;
        this.senderPid = senderPid;
        this.recipientPid = recipientPid;
        this.data = data;
        this.payload = payload;
    }

    get 0() {
        return this.request;
    }

    get 1() {
        return this.senderPid;
    }

    get 2() {
        return this.recipientPid;
    }

    get 3() {
        return this.data;
    }

    get length() {
        return 4;
    }

    *[Symbol.iterator]() {
        yield this.request;
        yield this.senderPid;
        yield this.recipientPid;
        yield this.data;
    }

    toJSON() {
        return [this.request, this.senderPid, this.recipientPid, this.data];
    }
}

/**
 * mpq_message_unpack:
 *
 * The message as a MessageValue of plain JavaScript values. Throws a
 * TypeError if its data has no JSON form (a message built in C with a
 * NaN double).
 *
 * Returns: a MessageValue
 */
function _unpackMessage() {
    const text = this.dup_data_json();

    if (text === null)
        throw new TypeError('the message\'s data has no JSON form');
    return new MessageValue(this.get_request(), this.get_sender_pid(),
        this.get_recipient_pid() || null, JSON.parse(text), this.get_bytes());
}

/**
 * mpq_channel_send_value:
 * @request: what the message asks, a non-empty string
 * @data: (optional): any value JSON.stringify takes; `undefined` or
 *   `null` for none
 * @options: (optional): `recipientPid` (default: none), `senderPid`
 *   (default: this process)
 *
 * Sends one message with plain JavaScript data. Throws a TypeError or
 * RangeError for what no message can carry (an empty request, a negative
 * pid, data with no JSON form) before anything is sent, and the
 * `GLib.Error` of [method@Mpq.Channel.send_json] (`MPQ_ERROR_FULL`,
 * `MPQ_ERROR_CLOSED`, …).
 *
 * Returns: the MessageValue sent
 */
function _sendValue(request, data = null, {recipientPid = 0, senderPid = 0} = {}) {
    _checkRequest(request);
    const recipient = _checkPid(recipientPid, 'recipientPid');
    const sender = _checkPid(senderPid, 'senderPid');
    const text = _toJson(data, 'data');

    this.send_json(request, sender, recipient, text);
    return new MessageValue(request, sender || this.pid, recipient || null, _fromJson(text));
}

/*
 * Pipes have no "back of the queue": what a filter of receiveValue()
 * rejected on a pipe waits here, first in line for this pipe's next
 * receiveValue(), as a rejected message stays first in line for the
 * synchronous receive().
 */
const _heldBack = new WeakMap();

/*
 * start(cancellable) as a promise that gives up after @timeout ms: its
 * cancellable is cancelled by @cancellable or by a timer, and a
 * G_IO_ERROR_CANCELLED the timer caused becomes what onTimeout() returns
 * (or throws).
 */
function _withTimeout(timeout, cancellable, start, onTimeout) {
    const timer = new Gio.Cancellable();
    const chained = cancellable?.connect(() => timer.cancel()) ?? 0;
    let timedOut = false;
    const id = GLib.timeout_add(GLib.PRIORITY_DEFAULT, timeout, () => {
        timedOut = true;
        timer.cancel();
        return GLib.SOURCE_REMOVE;
    });

    return start(timer).catch(error => {
        if (timedOut && _isCancelled(error))
            return onTimeout();
        throw error;
    }).finally(() => {
        if (!timedOut)
            GLib.source_remove(id);
        if (chained !== 0)
            cancellable.disconnect(chained);
    });
}

function _receiveOnce(channel, timeout, cancellable) {
    if (timeout === 0)
        return Promise.resolve(channel.receive_for_me(0));
    if (timeout < 0)
        return channel.receive_async(cancellable);
    return _withTimeout(timeout, cancellable, c => channel.receive_async(c), () => null);
}

/**
 * mpq_channel_receive_value:
 * @options: (optional): `timeout` in ms (-1, the default, waits for ever;
 *   0 polls; > 0 waits at most that long), `filter` (a function of a
 *   MessageValue), `cancellable` (a `Gio.Cancellable`)
 *
 * Receives the next message addressed to this process, or to nobody, as
 * plain values: [method@Mpq.Channel.receive_async] as a promise.
 *
 * A `filter` that returns false rejects the message, and the promise
 * resolves to `null`, as pymulproc's `receive (func)` returns nothing: on
 * a queue the message goes back at the end of the queue; on a pipe it is
 * kept first in line for the pipe's next `receiveValue()`. What the
 * filter throws rejects the promise, and the message is given back the
 * same way.
 *
 * Returns: a promise of a MessageValue, or of `null` when nothing came in
 *   time or the filter said no; it rejects with the channel's `GLib.Error`
 *   (`MPQ_ERROR_CLOSED` once the peer is gone, `G_IO_ERROR_CANCELLED`)
 */
async function _receiveValue({timeout = -1, filter = null, cancellable = null} = {}) {
    if (!Number.isInteger(timeout))
        throw new TypeError(`timeout must be an integer number of ms, not ${timeout}`);
    if (filter !== null && typeof filter !== 'function')
        throw new TypeError('filter must be a function');

    const held = _heldBack.get(this);
    let message;

    if (held !== undefined && held.length > 0)
        message = held.shift();
    else
        message = await _receiveOnce(this, timeout, cancellable);
    if (message === null)
        return null;

    const value = _unpackMessage.call(message);
    let accepted = false;

    try {
        accepted = filter === null || Boolean(filter(value));
    } finally {
        if (!accepted)
            _giveBack(this, message);
    }
    return accepted ? value : null;
}

function _giveBack(channel, message) {
    if (channel instanceof Mpq.Queue) {
        channel.send_message(message);
        return;
    }

    let held = _heldBack.get(channel);

    if (held === undefined) {
        held = [];
        _heldBack.set(channel, held);
    }
    held.unshift(message);
}

/**
 * TaskPromise:
 *
 * What `pool.submitValue()` returns: a thenable, so `await
 * task` gives the task's result as a plain value, or throws the task's
 * `GLib.Error` (`MPQ_ERROR_TASK_FAILED` with the worker's text,
 * `MPQ_ERROR_WORKER_LOST`, `MPQ_ERROR_TIMED_OUT`,
 * `G_IO_ERROR_CANCELLED`). `task.task` is the [class@Mpq.Task] itself,
 * for its `progress` signal and getters.
 *
 * Deliberately not a method on Mpq.Task.prototype: a `then` there would
 * make every Mpq.Task a thenable, and an async function returning one
 * would hand back its result instead of the task.
 */
class TaskPromise {
    constructor(task) {
        this.task = task;
        this._result = null;
    }

    /**
     * TaskPromise.result:
     * @options: (optional): `timeout` in ms (-1, the default, waits for
     *   ever), `cancellable` (cancels the wait, not the task)
     *
     * Returns: a promise of the result; past `timeout` it rejects with
     *   `G_IO_ERROR_TIMED_OUT` and the task goes on (as
     *   `concurrent.futures`' `result (timeout)` raises TimeoutError)
     */
    result({timeout = -1, cancellable = null} = {}) {
        if (timeout < 0 && cancellable === null) {
            this._result ??= _waitValue(this.task, null);
            return this._result;
        }
        if (timeout < 0)
            return _waitValue(this.task, cancellable);

        return _withTimeout(timeout, cancellable, c => _waitValue(this.task, c), () => {
            throw new GLib.Error(Gio.io_error_quark(), Gio.IOErrorEnum.TIMED_OUT,
                `task ${this.task.get_id()} did not end within ${timeout} ms`);
        });
    }

    then(onFulfilled, onRejected) {
        return this.result().then(onFulfilled, onRejected);
    }

    catch(onRejected) {
        return this.result().catch(onRejected);
    }

    finally(onFinally) {
        return this.result().finally(onFinally);
    }

    /** Cancels the task ([method@Mpq.Task.cancel]). */
    cancel() {
        this.task.cancel();
    }

    get id() {
        return this.task.get_id();
    }

    get state() {
        return this.task.get_state();
    }

    get workerPid() {
        return this.task.get_worker_pid();
    }

    get attempts() {
        return this.task.get_attempts();
    }
}

async function _waitValue(task, cancellable) {
    const reply = await task.wait_async(cancellable);

    return _fromJson(reply.dup_data_json());
}

/**
 * mpq_pool_submit_value:
 * @request: what the worker is asked to do
 * @data: (optional): the task's data, any value JSON.stringify takes
 *
 * [method@Mpq.Pool.submit] with plain data. Throws a TypeError for data
 * with no JSON form, and the pool's `GLib.Error` (`MPQ_ERROR_CLOSED` after
 * shutdown).
 *
 * Returns: a TaskPromise
 */
function _submitValue(request, data = null) {
    _checkRequest(request);
    return new TaskPromise(this.submit(request, _toJson(data, 'data')));
}

/**
 * mpq_pool_map_values:
 * @request: the request of every task
 * @items: an iterable of values JSON.stringify takes
 * @options: (optional): `cancellable` (cancels every task of the map)
 *
 * [method@Mpq.Pool.map_json_async] over plain values (one JSON array each
 * way, batched to the workers).
 *
 * Returns: a promise of the results, in input order; it rejects with the
 *   first failing item's `GLib.Error`, or a TypeError naming the item that
 *   has no JSON form (then nothing was submitted)
 */
async function _mapValues(request, items, {cancellable = null} = {}) {
    _checkRequest(request);
    const texts = Array.from(items, (item, i) => _toJson(item, `item ${i}`) ?? 'null');

    if (texts.length === 0)
        return [];
    // One JSON array each way: no message per item.
    return JSON.parse(await this.map_json_async(request, `[${texts.join(',')}]`, cancellable));
}

function _errorText(error) {
    if (error instanceof Error)
        return `${error}\n\n${error.stack ?? ''}`.trimEnd();
    if (error instanceof GLib.Error)
        return `${GLib.quark_to_string(error.domain)}: ${error.message}\n\n${error.stack ?? ''}`.trimEnd();
    return `${error}`;
}

function _answer(invocation, answer) {
    try {
        answer();
    } catch (error) {
        if (!_isClosed(error))      // the pool is gone: run() ends
            throw error;
    }
}

function _returnResult(invocation, result) {
    let text;

    try {
        text = _toJson(result, 'the result');
    } catch (error) {
        _returnError(invocation, error);
        return;
    }
    _answer(invocation, () => {
        try {
            invocation.return_json(text);
        } catch (error) {
            if (_isClosed(error))
                throw error;
            // A result the library refuses (nesting deeper than
            // Mpq.MAX_DEPTH) fails the task with why: left unanswered,
            // the task would wait for ever.
            invocation.return_error(`The result was refused: ${error.message}`);
        }
    });
}

function _returnError(invocation, error) {
    _answer(invocation, () => invocation.return_error(_errorText(error)));
}

/*
 * One task: a handler that returns a value is answered before the task
 * signal returns, as a C handler would; one that returns a promise (any
 * thenable) when it settles.
 */
function _progressOf(invocation) {
    const progress = value => _answer(invocation,
        () => invocation.send_progress_json(_toJson(value, 'progress')));

    progress.cancellable = invocation.get_cancellable();
    progress.invocation = invocation;
    return progress;
}

function _serveTask(handler, invocation) {
    let result;

    try {
        const data = _fromJson(invocation.dup_data_json());

        result = handler(invocation.get_request(), data, _progressOf(invocation));
    } catch (error) {
        _returnError(invocation, error);
        return;
    }
    if (typeof result?.then === 'function') {
        Promise.resolve(result).then(value => _returnResult(invocation, value),
            error => _returnError(invocation, error))
            .catch(error => logError(error, 'Mpq.serveWorker'));
    } else {
        _returnResult(invocation, result);
    }
}

/*
 * A map's batch, whole (Mpq.Worker::batch): the handler is called for
 * each item in turn, and the batch is answered with the array of the
 * results (once every promise among them settled); the first exception
 * or rejection fails the batch, and so the map.
 */
function _serveBatch(handler, invocation) {
    let results;

    try {
        const request = invocation.get_request();
        const progress = _progressOf(invocation);

        results = JSON.parse(invocation.dup_data_json()).map(
            item => handler(request, item, progress));
    } catch (error) {
        _returnError(invocation, error);
        return;
    }
    if (results.some(result => typeof result?.then === 'function')) {
        Promise.all(results).then(values => _returnResult(invocation, values),
            error => _returnError(invocation, error))
            .catch(error => logError(error, 'Mpq.serveWorker'));
    } else {
        _returnResult(invocation, results);
    }
}

/**
 * mpq_serve_worker:
 * @handler: `handler(request, data, progress)`, called for each task
 *
 * Serves the [class@Mpq.Pool] that spawned this process until the pool
 * tells the worker to die: the JavaScript worker helper.
 *
 * @handler gets the task's request and its data as plain values (what
 * `JSON.parse` gives) and returns the result, a value JSON.stringify
 * takes, or a promise of one. What it throws (or its promise rejects
 * with, or a result with no JSON form) fails the task with
 * `MPQ_ERROR_TASK_FAILED` and a text made of the error (`Error: text`),
 * an empty line and its stack; the task is not tried again and the
 * worker goes on. The third argument is optional to use:
 * `progress(value)` reports @value as the task's progress, and
 * `progress.cancellable` is cancelled when the pool cancels the task
 * (`progress.invocation` is the [class@Mpq.Invocation], for the rest).
 * Broadcasts reach @handler too; their answers are dropped.
 *
 * A handler returning a promise lets the worker take its next task
 * before the promise settles.
 *
 * Returns: true when the pool told the worker to die, false when the
 *   pool's process is gone; throws `MPQ_ERROR_NOT_A_CHILD` in a process
 *   no pool spawned
 */
function _serveWorker(handler) {
    if (typeof handler !== 'function')
        throw new TypeError('serveWorker() needs a handler function');

    const worker = Mpq.Worker.new_for_child();

    worker.connect('task', (_worker, invocation) => _serveTask(handler, invocation));
    worker.connect('batch', (_worker, invocation) => _serveBatch(handler, invocation));
    try {
        return worker.run();
    } catch (error) {
        if (_isClosed(error))
            return false;
        throw error;
    } finally {
        worker.run_dispose();
    }
}

function _init() {
    Mpq = this;

    for (const [klass, asyncName] of [
        [Mpq.Pipe, 'receive_async'],
        [Mpq.Queue, 'receive_async'],
        [Mpq.Queue, 'join_async'],
        [Mpq.Task, 'wait_async'],
        [Mpq.Pool, 'map_async'],
        [Mpq.Pool, 'map_json_async'],
        [Mpq.Pool, 'shutdown_async'],
    ])
        Gio._promisify(klass.prototype, asyncName);

    Mpq.Message.prototype.unpack = _unpackMessage;

    for (const klass of [Mpq.Pipe, Mpq.Queue]) {
        klass.prototype.sendValue = _sendValue;
        klass.prototype.receiveValue = _receiveValue;
    }

    Mpq.Pool.prototype.submitValue = _submitValue;
    Mpq.Pool.prototype.mapValues = _mapValues;

    Mpq.serveWorker = _serveWorker;
    Mpq.MessageValue = MessageValue;
    Mpq.TaskPromise = TaskPromise;
}
