# SPDX-License-Identifier: LGPL-2.1-or-later
"""Maps between Python processes, pickled (_mpq_pickle.py): Mpq.Pool.map
sends a map's batches as pickled payloads to workers that say they read
them (Mpq.serve_worker does), and gives what a JSON map gives, errors
included. Real workers: children/pool_worker.py (serve_worker) and
children/pickle_pool_worker.py (no gi, the protocol by hand, hostile on
demand).

No sleeps: each wait is for the event expected, with a bound that only
turns a hang into a failure."""

import json
import os

import pytest
from gi.repository import Gio, GLib, Mpq
from gi.overrides import _mpq_pickle

from mpq_helpers import CHILDREN, PROMPT_S, PYTHON, dispose_pools, raises_mpq, run_until

WORKER = [PYTHON, os.path.join(CHILDREN, 'pool_worker.py')]
PICKLE_WORKER = [PYTHON, os.path.join(CHILDREN, 'pickle_pool_worker.py')]


@pytest.fixture
def ready_pool():
    """ready_pool(n_workers=2, argv=WORKER, env=None, **props) -> an
    Mpq.Pool whose workers all said READY; shut down at teardown."""
    made = []

    def new(n_workers=2, argv=WORKER, env=None, **props):
        launcher = Gio.SubprocessLauncher.new(Gio.SubprocessFlags.NONE)
        for key, value in (env or {}).items():
            launcher.setenv(key, value, True)
        started = []
        pool = Mpq.Pool(argv, n_workers, launcher=launcher, **props)
        made.append(pool)
        pool.connect('worker-started', lambda _pool, pid: started.append(pid))
        run_until(lambda: len(started) == n_workers, 'the workers said READY')
        return pool

    yield new
    dispose_pools(made)


@pytest.fixture
def pickled(monkeypatch):
    """How many batches went pickled since the test began."""
    count = []
    dumps = _mpq_pickle.dumps

    def counting(values):
        count.append(len(values))
        return dumps(values)

    monkeypatch.setattr(_mpq_pickle, 'dumps', counting)
    return count


def test_workers_say_they_read_pickles(ready_pool):
    pool = Mpq.Pool(WORKER, 1)
    try:
        # Before any worker said READY, no format is known.
        assert pool.get_worker_format() is None
        run_until(lambda: pool.get_worker_format() is not None, 'READY')
        assert pool.get_worker_format() == 'python-pickle'
    finally:
        pool.shutdown(-1)
        pool.run_dispose()


def test_a_map_goes_pickled_and_comes_back_in_order(ready_pool, pickled):
    pool = ready_pool(3)
    assert pool.map('square', range(1001)) == [i * i for i in range(1001)]
    # 3 workers, 4 batches each: multiprocessing's Pool.map sizes.
    assert len(pickled) == 12 and sum(pickled) == 1001
    del pickled[:]
    values = [None, True, False, 0, -2**63, 2**63 - 1, 1.5, -0.0, 1e308, '', 'é😀', 'x' * 1000]
    assert pool.map('echo', values) == values
    assert pool.map('echo', tuple(values)) == values
    assert pool.map('echo', (v for v in values)) == values
    assert pool.map('echo', range(-5, 5, 3)) == [-5, -2, 1, 4]
    assert len(pickled) > 4                  # each of the four maps
    # The workers' own results: the JSON way when not all plain.
    assert pool.map('square', [3, 4]) == [9, 16]
    assert pool.map('echo', []) == []


def test_what_json_refuses_fails_the_same_way(ready_pool, pickled):
    """Items JSON has no form for are refused before anything is sent,
    and results the library refuses fail the map, as they do without
    pickles (one of each goes the JSON way, none pickled)."""
    pool = ready_pool(1)
    for items in ([1, 2**63], [-2**63 - 1], [1.0, float('nan')], [float('inf')],
                  ['a', 'b\x00'], ['\ud800'], range(2**63, 2**63 + 2), [{'a': 1}, 2**64]):
        with raises_mpq(Mpq.Error.PROTOCOL):
            pool.map('echo', items)
    assert pickled == []
    # A result out of range: the worker answers it the JSON way, refused.
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map('square', [1, 2**62, 3])
    assert info.value.message.startswith('The result was refused: ')
    assert pickled
    with raises_mpq(Mpq.Error.TASK_FAILED):
        pool.map('nan', [1, 2])
    # Items that are not scalars go the JSON way, and work.
    sent = len(pickled)
    assert pool.map('echo', [[1, 2], {'k': None}]) == [[1, 2], {'k': None}]
    assert len(pickled) == sent


def test_json_way_when_a_task_timeout_is_set(ready_pool, pickled):
    pool = ready_pool(2, task_timeout=PROMPT_S * 10_000)
    assert pool.map('square', range(100)) == [i * i for i in range(100)]
    assert pickled == []


def test_handler_errors_and_poison_in_pickled_batches(ready_pool, pickled, tmp_path):
    pool = ready_pool(2, max_attempts=2)
    with raises_mpq(Mpq.Error.TASK_FAILED) as info:
        pool.map('fail', range(40))
    assert 'ValueError: failing on purpose' in info.value.message
    assert 'Traceback' in info.value.message
    # A batch holding 13 crashes each worker it is handed to.
    with raises_mpq(Mpq.Error.WORKER_LOST):
        pool.map('crash-on', range(40))
    assert pickled
    assert pool.map('square', range(10)) == [i * i for i in range(10)]


def test_cancelling_a_pickled_map(ready_pool, pickled):
    pool = ready_pool(2)
    cancellable = Gio.Cancellable()
    # The first batch reports it started; the map is cancelled then.
    GLib.idle_add(lambda: cancellable.cancel() or GLib.SOURCE_REMOVE)
    with pytest.raises(GLib.Error) as info:
        pool.map('until-cancel', range(8), cancellable=cancellable)
    assert info.value.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)
    assert pickled
    already = Gio.Cancellable()
    already.cancel()
    with pytest.raises(GLib.Error):
        pool.map('square', range(8), cancellable=already)
    assert pool.map('square', range(8)) == [i * i for i in range(8)]


def test_a_plain_worker_serves_pickled_batches(ready_pool, pickled):
    pool = ready_pool(2, PICKLE_WORKER)
    assert pool.get_worker_format() == 'python-pickle'
    assert pool.map('square', range(500)) == [i * i for i in range(500)]
    assert pool.map('square', [7, -3]) == [49, 9]
    assert pickled


@pytest.mark.parametrize('mode', ['evil-global', 'wrong-count', 'garbage'])
def test_a_hostile_workers_pickle_costs_only_its_map(ready_pool, tmp_path, mode):
    """A worker's pickle is read with globals refused: one that would run
    a command runs nothing; a wrong one fails the map it answered, with
    MPQ_ERROR_PROTOCOL, and the pool goes on."""
    pool = ready_pool(1, PICKLE_WORKER, env={'MPQ_TEST_PICKLE': mode,
                                             'MPQ_TEST_DIR': str(tmp_path)})
    with raises_mpq(Mpq.Error.PROTOCOL) as info:
        pool.map('square', range(20))
    assert info.value.message.startswith('A worker answered a batch wrongly: ')
    assert not (tmp_path / 'pwned').exists()
    assert pool.submit('square', 6).result(PROMPT_S) == 36


def test_a_worker_reads_only_plain_pickles(ready_pool, tmp_path):
    """What a parent sends a serve_worker as a pickled batch is read with
    globals refused too: a pickle naming os.system fails its task."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path}/pwned',))

    pool = ready_pool(1)
    for payload, n in ((pickle.dumps([Evil()]), 1), (pickle.dumps([1, 2]), 3),
                       (b'garbage', 1), (pickle.dumps({1: 2}), 1)):
        task = Mpq.Pool.submit_bytes(pool, 'echo', _mpq_pickle.batch_data(n),
                                     GLib.Bytes.new(payload))
        with raises_mpq(Mpq.Error.TASK_FAILED) as info:
            task.result(PROMPT_S)
        assert info.value.message.startswith('The payload is '), info.value.message
    assert not (tmp_path / 'pwned').exists()
    # Bytes with other data are a plain task: the handler gets the data.
    task = Mpq.Pool.submit_bytes(pool, 'echo', json.dumps({'k': 1}), GLib.Bytes.new(b'x'))
    assert task.result(PROMPT_S) == {'k': 1}
