# SPDX-License-Identifier: LGPL-2.1-or-later
"""spawn_function's two halves (private: see _mpq_channel.ChannelMixin).

The parent describes the target on the child's command line; the child
(``sys.executable -c _BOOTSTRAP SPEC``) imports the target's module, claims
its end of the channel (MPQ_CHANNEL_FD, as any spawned child does) and
calls the target, exiting as ``multiprocessing.Process`` does.

Nothing here imports ``gi.repository.Mpq`` at module level: this module is
loaded while PyGObject is still loading the Mpq override.
"""

import base64
import importlib
import importlib.util
import json
import marshal
import sys
import traceback
import types

# -c rather than -m: the child finds this module wherever the parent's
# override was found (build tree through PYTHONPATH, or installed), and
# its own name in sys.modules stays the one Mpq.py imported it under.
_BOOTSTRAP = ("import gi; gi.require_version('Mpq', '1.0'); "
              "from gi.repository import Mpq; "
              "from gi.overrides import _mpq_spawn; "
              "_mpq_spawn.child_main()")


def _lookup(module, qualname):
    obj = module
    for part in qualname.split('.'):
        obj = getattr(obj, part, None)
    return obj


def _describe(target):
    """What the child needs to find @target again, or TypeError."""
    if not isinstance(target, types.FunctionType):
        raise TypeError(f'target must be a Python function, not {type(target).__name__}')
    module = sys.modules.get(target.__module__)
    path = getattr(module, '__file__', None)
    if path is None:
        raise TypeError(f'the module of {target.__qualname__} has no file to import in the child')
    spec = {'module': target.__module__, 'file': path, 'qualname': target.__qualname__,
            'code': None}
    if _lookup(module, target.__qualname__) is target:
        return spec
    # Nested or a lambda: its code, in its module's globals. A closure's
    # cells are values of another process's frame: refused, as pickle
    # refuses them for multiprocessing.
    if target.__closure__:
        raise TypeError(f'{target.__qualname__} uses variables of the function around it '
                        f'({", ".join(target.__code__.co_freevars)}): it cannot be '
                        'started in a new process')
    try:
        code = marshal.dumps((target.__code__, target.__defaults__, target.__kwdefaults__))
    except ValueError as error:
        raise TypeError(f'the defaults of {target.__qualname__} cannot be sent to a new '
                        f'process: {error}') from None
    spec['code'] = base64.b64encode(code).decode('ascii')
    return spec


def child_argv(kind, target, args, dumps):
    """The argv starting ``target(channel, *args)`` in a child of a
    @kind ('pipe' or 'queue') channel; @dumps makes JSON text or raises
    the GLib.Error of a value with none."""
    if not isinstance(args, (tuple, list)):
        raise TypeError(f'args must be a tuple or a list, not {type(args).__name__}')
    spec = _describe(target)
    spec['kind'] = kind
    spec['path'] = list(sys.path)
    spec['args'] = json.loads(dumps(list(args), 'args'))
    return [sys.executable, '-c', _BOOTSTRAP, json.dumps(spec, separators=(',', ':'))]


def _import_module(name, path):
    """The target's module: by name (the parent's sys.path is ours),
    as multiprocessing's spawn does, else from its file. The main script
    is loaded as __mp_main__, so its ``if __name__ == '__main__'`` block
    does not run in the child."""
    if name != '__main__':
        try:
            return importlib.import_module(name)
        except ImportError:
            pass                    # not importable by name here: its file
    alias = '__mp_main__' if name == '__main__' else name
    spec = importlib.util.spec_from_file_location(alias, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    if name == '__main__':
        sys.modules['__main__'] = module
    spec.loader.exec_module(module)
    return module


def _load_target(spec):
    module = _import_module(spec['module'], spec['file'])
    if spec['code'] is None:
        return _lookup(module, spec['qualname'])
    code, defaults, kwdefaults = marshal.loads(base64.b64decode(spec['code']))
    target = types.FunctionType(code, module.__dict__, code.co_name, defaults)
    target.__kwdefaults__ = kwdefaults
    target.__qualname__ = spec['qualname']
    return target


def _exit_code(exit_request):
    """A SystemExit's code as multiprocessing's Process reads it."""
    code = exit_request.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def child_main():
    """The child's side: ``target(channel, *args)``, then exit."""
    spec = json.loads(sys.argv[1])
    sys.argv[1:] = []
    sys.path[:] = spec['path']
    try:
        from gi.repository import Mpq

        target = _load_target(spec)
        channel = (Mpq.Pipe if spec['kind'] == 'pipe' else Mpq.Queue).new_for_child()
        try:
            target(channel, *spec['args'])
        finally:
            channel.close()         # flushes what the target sent
        status = 0
    except SystemExit as exit_request:
        status = _exit_code(exit_request)
    except BaseException:           # noqa: BLE001: multiprocessing's exit 1
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)
