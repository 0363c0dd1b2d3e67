# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the library writes, judged by a worker that uses only Python's
strict json module and the inherited descriptor (raw_child.py judge)."""

import json
import os

import pytest
from gi.repository import Json, Mpq

from mpq_helpers import RAW_CHILD, assert_same, pid_of, wait_exit

SAMPLES = [
    None, True, False, 0, -17, 2**53, -2**63, 0.5, -0.0, 0.1, 1.5e300, 5e-324, '',
    'h\u00e9llo \u2713 \U0001F600', 'q"b\\s/', 'nl\ncr\rtab\t',
    ''.join(chr(c) for c in range(1, 0x1f)),
    '\u2028\u2029\x7f', [], {}, {'a': [1, {'b': None}], '\u00e9': [[], {}]},
]


@pytest.fixture
def judge(spawn):
    pipe, proc = spawn(RAW_CHILD, 'judge')
    yield pipe, pid_of(proc)
    pipe.close()
    wait_exit(proc)
    assert proc.get_successful()


def verdict(pipe):
    """The judge's verdict on the next line: (parsed, compact, line)."""
    reply = pipe.receive(-1)
    # strict=False: the verdict quotes U+001F, which dup_data_json() writes
    # raw (see test_data_json_glib_cannot_write); that is not under test here.
    found = json.loads(reply.dup_data_json(), strict=False)
    assert reply.get_request() == 'OK', found
    parsed, compact, line = found
    return parsed, compact, line


def test_readme_wire_line(judge):
    """The README's example line, byte for byte."""
    pipe, _ = judge
    pipe.send_json(Mpq.REQ_DO, 0, 0, '{"value": 20}')
    parsed, compact, line = verdict(pipe)
    assert line == f'["DO",{os.getpid()},null,{{"value":20}}]'
    assert parsed == ['DO', os.getpid(), None, {'value': 20}]
    assert compact


def test_wire_offsets(judge):
    """The request, sender and recipient sit at S_PID_OFFSET - 1,
    S_PID_OFFSET and R_PID_OFFSET, the data at S_PID_OFFSET + 2."""
    pipe, pid = judge
    pipe.send_json(Mpq.REQ_FINISHED, 777, pid, '[1]')
    parsed, _, _ = verdict(pipe)
    assert parsed[Mpq.S_PID_OFFSET - 1] == Mpq.REQ_FINISHED
    assert parsed[Mpq.S_PID_OFFSET] == 777
    assert parsed[Mpq.R_PID_OFFSET] == pid
    assert parsed[Mpq.S_PID_OFFSET + 2] == [1]


@pytest.mark.parametrize('value', SAMPLES, ids=[repr(v)[:30] for v in SAMPLES])
def test_data_is_strict_compact_json(judge, value):
    """Each sample, sent as text and as a Json.Node, is one line of compact
    JSON that a strict parser reads back as the same value."""
    pipe, _ = judge
    pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps(value))
    pipe.send(Mpq.REQ_DO, 0, 0, Json.from_string(json.dumps(value)))
    for _ in range(2):
        parsed, compact, _ = verdict(pipe)
        assert compact
        assert_same(parsed[3], value)


def test_requests_are_strict_json(judge):
    """Requests with quotes, backslashes, newlines and every control
    character are escaped into valid JSON strings."""
    pipe, _ = judge
    requests = ['say "hi"\\', 'multi\nline', ''.join(chr(c) for c in range(1, 0x20)) + '\x7f',
                '\U0001F600', Mpq.REQ_TEST_CHILD]
    for request in requests:
        pipe.send(request, 0, 0, None)
        parsed, compact, _ = verdict(pipe)
        assert parsed == [request, os.getpid(), None, None] and compact


@pytest.mark.parametrize('value', [1e22, 1e-300, 'a\x1fb'])
def test_data_json_glib_could_not_write(judge, value):
    """Doubles written with an exponent and no '.', and strings holding
    U+001F, are still valid JSON on the wire."""
    pipe, _ = judge
    pipe.send_json(Mpq.REQ_DO, 0, 0, json.dumps(value))
    parsed, _, _ = verdict(pipe)
    assert_same(parsed[3], value)
