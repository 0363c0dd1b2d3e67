# SPDX-License-Identifier: LGPL-2.1-or-later
"""A map's items pickled, between a Python pool and Python workers
(private: used by _mpq_pool.py and Mpq.serve_worker).

JSON makes every item of a map be written, framed, scanned and parsed
again at each hop; pickling a list of plain values is one C call each
way. When the pool's workers say they read ``python-pickle``
(``Mpq.serve_worker`` does, through ``Mpq.Worker.set_format``), the
override's ``Pool.map`` sends each batch as one task whose bytes payload
is the pickled list of its items, and the worker answers with the
pickled list of their results (docs/python.md, "Maps between Python
processes").

Only plain scalars the library's JSON takes go this way (``None``,
``bool``, 64-bit ``int``, finite ``float``, ``str`` without NUL or lone
surrogates: what JSON gives back as they were), so a map gives the same
results, and fails the same way, whether its workers read pickles or
not (which depends on whether one said it was ready). Payloads are read with an
unpickler that refuses every global: a hostile peer's pickle can build
lists, dicts and scalars, never call anything.
"""

import io
import json
import math
import pickle

from gi.repository import GLib

from ..module import get_introspection_module

Mpq = get_introspection_module('Mpq')

FORMAT = 'python-pickle'

# The data of a pickled batch's task: {"pickled_items": n}.
MEMBER = 'pickled_items'

_PLAIN = frozenset((type(None), bool, int, float, str))

# What the library's JSON takes (docs/protocol.md): 64-bit signed ints.
_INT_MIN = -2**63
_INT_MAX = 2**63 - 1


def batch_data(n_items):
    """The JSON data of a pickled batch of @n_items."""
    return '{"%s":%d}' % (MEMBER, n_items)


def batch_size(data_json):
    """How many items the task whose data is @data_json holds pickled in
    its payload, or None when it is no pickled batch."""
    if data_json is None or not data_json.startswith('{"%s":' % MEMBER):
        return None
    try:
        n = json.loads(data_json).get(MEMBER)
    except ValueError:
        return None
    return n if type(n) is int and n >= 0 else None


def _of(values, kind, kinds):
    return values if len(kinds) == 1 else [v for v in values if type(v) is kind]


def all_plain(values):
    """Whether each of @values (a list, tuple or range) is a plain scalar
    the library's JSON takes as it is: None, a bool, a 64-bit int, a
    finite float, a str without NUL or lone surrogates. What is not goes
    the JSON way, and fails there as it always did. A pass over the
    values per kind, in C: about 1.5 ms for 100,000 ints."""
    if type(values) is range:
        return not values or (min(values[0], values[-1]) >= _INT_MIN and
                              max(values[0], values[-1]) <= _INT_MAX)
    kinds = set(map(type, values))
    if not kinds <= _PLAIN:
        return False
    if int in kinds:
        ints = _of(values, int, kinds)
        if min(ints) < _INT_MIN or max(ints) > _INT_MAX:
            return False
    if float in kinds and not all(map(math.isfinite, _of(values, float, kinds))):
        return False
    if str in kinds:
        text = ''.join(_of(values, str, kinds))
        if '\x00' in text:
            return False
        if not text.isascii():
            try:
                text.encode('utf-8')        # refuses lone surrogates
            except UnicodeEncodeError:
                return False
    return True


class _Unpickler(pickle.Unpickler):
    """Builds plain values only: a pickle naming any class or function
    (the way a pickle makes code run) is refused; @ranges lets ``range``
    through (a map of a range sends its batches as ranges)."""

    def __init__(self, data, ranges):
        super().__init__(io.BytesIO(data))
        self._ranges = ranges

    def find_class(self, module, name):
        if self._ranges and module == 'builtins' and name == 'range':
            return range
        raise pickle.UnpicklingError(f'{module}.{name} is not a plain value')


def dumps(values):
    """@values (a list of plain values, or a range) as a GLib.Bytes
    payload."""
    return GLib.Bytes.new(pickle.dumps(values, pickle.HIGHEST_PROTOCOL))


def _load(payload, n_items, kinds):
    try:
        values = _Unpickler(payload.get_data(), range in kinds).load()
    except Exception as error:      # noqa: BLE001: all a broken pickle raises
        raise ValueError(f'The payload is no plain pickle: {error}') from None
    if type(values) not in kinds or len(values) != n_items:
        raise ValueError(f'The payload is not a list of {n_items} values')
    return values


def loads_items(payload, n_items):
    """A worker's: the @n_items items pickled in @payload (a GLib.Bytes),
    a list or a range. Raises ValueError for anything else: a pickle that
    is broken, names another global, or holds something other than that."""
    return _load(payload, n_items, (list, range))


def loads_results(payload, n_items):
    """A pool's: the list of @n_items results pickled in @payload, as
    loads_items () says (a range is refused: a list of plain values
    costs what it holds, a range of any length costs nothing to send)."""
    return _load(payload, n_items, (list,))
