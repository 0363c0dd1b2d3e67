# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs every example of the tutorial (docs/tutorial.md) and checks what it
prints, then checks that every snippet the page (and the mapping page)
quotes from a file of examples/tutorial/ is still in that file.

Run by meson (`meson test --suite tutorial`), which sets
MPQ_TUTORIAL_BUILDDIR (the built C examples), MPQ_TUTORIAL_DOCS (docs/),
GI_TYPELIB_PATH and the overrides' paths.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILDDIR = os.environ.get('MPQ_TUTORIAL_BUILDDIR', '')
DOCS = os.environ.get('MPQ_TUTORIAL_DOCS', os.path.join(HERE, '..', '..', 'docs'))
PYTHON = sys.executable
GJS = shutil.which('gjs')


def built(name):
    return os.path.join(BUILDDIR, 'tutorial-' + name)


def source(name):
    return os.path.join(HERE, name)


def python(name):
    return [PYTHON, source(name)]


def gjs(name):
    return ['gjs', '-m', source(name)]


SQUARES_1_TO_3 = ['1 squared is 1', '2 squared is 4', '3 squared is 9', 'the child exited']
QUEUE = ['the sum of the squares of 1 to 10 is 385', 'joined: every message was taken',
         '3 workers exited']
DISPATCH = ['10 answers, their sum is 385', 'the workers exited']
POOL = ['square of 7: 49', 'map: [1,4,9,16,25,36,49,64,81,100]',
        re.compile(r'square of "seven" failed: .*not a whole number: .*seven.*'),
        'the pool is shut down']

# name: (argv, expected lines of stdout: strings or patterns to fullmatch[,
# the directory to run in: this one when not given])
EXAMPLES = {
    # The README's: its C parent spawns child.py from where it runs.
    'readme/parent.c': ([built('readme-parent')],
                        [re.compile(r'FINISHED from [1-9][0-9]*: \{"value":49\}')],
                        source('readme')),
    'pipe.c': ([built('pipe')], SQUARES_1_TO_3),
    'pipe.py': (python('pipe.py'), SQUARES_1_TO_3),
    'pipe.js': (gjs('pipe.js'), SQUARES_1_TO_3),
    'queue.c': ([built('queue')], QUEUE),
    'queue.py': (python('queue.py'), ['the children sent 45']),
    'queue.js': (gjs('queue.js'), QUEUE),
    'dispatch.c': ([built('dispatch')], DISPATCH),
    'dispatch.py': (python('dispatch.py'), DISPATCH),
}

# Every pool parent with every worker: C, Python, JS and plain JSON.
POOL_PARENTS = {'c': [built('pool')], 'python': python('pool.py'), 'js': gjs('pool.js')}
POOL_WORKERS = {'c': [built('pool-worker')], 'python': python('pool_worker.py'),
                'js': gjs('pool-worker.js'), 'plain': python('plain_worker.py')}
for parent, parent_argv in POOL_PARENTS.items():
    for worker, worker_argv in POOL_WORKERS.items():
        EXAMPLES[f'pool-{parent}-parent-{worker}-workers'] = (parent_argv + worker_argv, POOL)


def uses_gjs(argv):
    return 'gjs' in argv


@pytest.mark.parametrize('name', EXAMPLES)
def test_example(name):
    argv, expected, *where = EXAMPLES[name]
    if uses_gjs(argv) and GJS is None:
        pytest.skip('gjs is not installed')
    if not BUILDDIR and any(word.startswith(os.path.join(BUILDDIR, 'tutorial-'))
                            for word in argv if BUILDDIR):
        pytest.skip('MPQ_TUTORIAL_BUILDDIR is not set')
    # The time-out only turns a hang into a failure.
    done = subprocess.run(argv, cwd=where[0] if where else HERE, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f'{name} exited {done.returncode}:\n{done.stderr}'
    lines = done.stdout.splitlines()
    assert len(lines) == len(expected), f'{name} printed:\n{done.stdout}'
    for line, want in zip(lines, expected):
        if isinstance(want, str):
            assert line == want
        else:
            assert want.fullmatch(line), f'{line!r} does not match {want.pattern!r}'


# A snippet is a fenced block right after a line that ends with
# "`examples/tutorial/FILE`:" (blank lines between allowed).
SNIPPET = re.compile(r'`examples/tutorial/([\w./-]+)`[^\n`]*:\n\s*\n?```[a-z]*\n(.*?)\n```',
                     re.DOTALL)
PAGES = ['tutorial.md', 'from-pymulproc.md', os.path.join('..', 'README.md')]


def snippets(page):
    with open(os.path.join(DOCS, page), encoding='utf-8') as f:
        return SNIPPET.findall(f.read())


@pytest.mark.parametrize('page', PAGES)
def test_snippets_are_in_their_files(page):
    found = snippets(page)
    assert found or page != 'tutorial.md', 'the tutorial quotes no example'
    if page.endswith('README.md'):
        assert sorted(name for name, _ in found) == \
            ['readme/child.js', 'readme/child.py', 'readme/parent.c'], found
    for name, block in found:
        with open(source(name), encoding='utf-8') as f:
            text = f.read()
        assert block in text, f'{page}: this snippet is no longer in {name}:\n{block}'


def test_readme_js_child():
    """The README's JavaScript child, spawned as it says (gjs -m
    child.js), answers as its Python child does."""
    if GJS is None:
        pytest.skip('gjs is not installed')
    import gi
    gi.require_version('Mpq', '1.0')
    from gi.repository import Mpq

    pipe = Mpq.Pipe()
    child = pipe.spawn(gjs('readme/child.js'))
    try:
        pipe.send(Mpq.REQ_DO, data={'value': 7})
        # The time-out only turns a hang into a failure.
        answer = pipe.receive(block=True, timeout=120)
        assert answer == [Mpq.REQ_FINISHED, int(child.get_identifier()), pipe.pid,
                          {'value': 49}]
        pipe.send(Mpq.REQ_DIE)
    except BaseException:
        child.force_exit()
        raise
    assert child.wait_check()


def test_every_example_is_in_the_tutorial():
    with open(os.path.join(DOCS, 'tutorial.md'), encoding='utf-8') as f:
        page = f.read()
    for name in sorted(os.listdir(HERE)):
        if name.endswith(('.c', '.py', '.js')) and name != 'test_tutorial.py':
            assert f'examples/tutorial/{name}' in page, f'{name} is not in the tutorial'


# The API reference's examples (gi-docgen comments in pymulproc/*.c): each
# code block is an excerpt of a file the suite runs, named on the line
# before it ("... from `examples/tutorial/dispatch.py`:"), so that none
# can rot (the MpqQueue example once ended in a join (-1) that hung).
ROOT = os.path.join(HERE, '..', '..')
API_SNIPPET = re.compile(r'`((?:examples|tests)/[\w./-]+)`:\n\s*\n?```(c|python|js)\n(.*?)\n```',
                         re.DOTALL)
CODE_BLOCK = re.compile(r'^```(c|python|js)$', re.MULTILINE)


def doc_comments(path):
    """The text of @path's /** ... */ comments, without their ' * '."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for comment in re.findall(r'/\*\*\n(.*?)\*/', text, re.DOTALL):
        yield '\n'.join(re.sub(r'^ \* ?', '', line) for line in comment.splitlines())


def test_api_doc_examples_are_in_their_files():
    sources = os.path.join(ROOT, 'pymulproc')
    checked = 0
    for name in sorted(os.listdir(sources)):
        if not name.endswith(('.c', '.h')):
            continue
        for comment in doc_comments(os.path.join(sources, name)):
            quoted = API_SNIPPET.findall(comment)
            assert len(quoted) == len(CODE_BLOCK.findall(comment)), \
                f'{name}: a code example that names no file it comes from:\n{comment}'
            for path, _language, block in quoted:
                with open(os.path.join(ROOT, path), encoding='utf-8') as f:
                    assert block in f.read(), f'{name}: this example is no longer in {path}:\n{block}'
                checked += 1
    assert checked >= 6, f'only {checked} examples found in the API reference'
