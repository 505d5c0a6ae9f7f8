# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The importer of the generated daemon file: each source runs as its own module.

scripts/bundle_daemon.py copies this file's functions to the top of
roles/broker_install/files/remo_broker.py and puts every source's text, unchanged,
in the body of a never-executed ``class`` statement (a class body compiles like a
module body: names are stored in a namespace, not in function locals).  So the
bytecode of every module is part of the one file's own bytecode (the role compiles
it once at install time), and ``install`` gives each module its real name, its
source file name and its source line numbers: a traceback names the file to edit.
"""

from __future__ import annotations


def relocate(code, filename, shift, prefix):
    """``code`` and its nested code objects renamed to ``filename``, ``shift`` lines up, ``prefix`` off qualnames."""
    new_consts = []
    for const in code.co_consts:
        if isinstance(const, type(code)):
            const = relocate(const, filename, shift, prefix)
        elif const == code.co_qualname and not code.co_flags & 1:
            const = const[len(prefix):]    # a class body stores its own __qualname__ (CO_OPTIMIZED unset)
        new_consts.append(const)
    qualname = code.co_qualname
    if qualname.startswith(prefix):
        qualname = qualname[len(prefix):]
    return code.replace(co_filename=filename, co_firstlineno=code.co_firstlineno - shift, co_qualname=qualname,
                        co_consts=tuple(new_consts))


class EmbeddedModules:
    """A sys.meta_path finder and loader of the modules embedded in the daemon file."""

    def __init__(self, program, modules, top_code):
        # modules: (module name, source path, wrapper class name, first line of its body in the file, line count)
        bodies = {c.co_name: c for c in top_code.co_consts if isinstance(c, type(top_code))}
        self.program = program
        self.modules = {}
        self.packages = set()
        for name, path, wrapper, first_line, count in modules:
            self.modules[name] = (path, bodies[wrapper], wrapper, first_line, count)
            parts = name.split(".")
            self.packages.update(".".join(parts[:i]) for i in range(1, len(parts)))

    def find_spec(self, name, path=None, target=None):
        if name not in self.modules and name not in self.packages:
            return None
        from importlib.machinery import ModuleSpec  # pylint: disable=import-outside-toplevel
        origin = self.modules[name][0] if name in self.modules else None
        return ModuleSpec(name, self, origin=origin, is_package=name in self.packages)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        if name in self.packages:
            module.__path__ = []
            return
        path, body, wrapper, first_line, count = self.modules[name]
        if body is None:
            raise ImportError("%s was already loaded once or forgotten" % name, name=name)
        self.modules[name] = (path, None, wrapper, first_line, count)   # the module's code is its own now
        namespace = module.__dict__
        exec(relocate(body, path, first_line - 1, wrapper + "."), namespace)  # pylint: disable=exec-used
        namespace.pop("__qualname__", None)
        namespace.pop("__module__", None)

    def forget_unloaded(self):
        """Drop the code of every module not loaded yet (the audit writer needs two of them)."""
        for name, (path, _body, wrapper, first_line, count) in list(self.modules.items()):
            self.modules[name] = (path, None, wrapper, first_line, count)

    def get_source(self, name):
        """The source lines as embedded (indented), for tracebacks through linecache."""
        if name not in self.modules:
            return None
        first_line, count = self.modules[name][3:]
        with open(self.program, encoding="utf-8") as handle:
            lines = handle.read().split("\n")[first_line - 1:first_line - 1 + count]
        return "\n".join(lines) + "\n"


def install(program, modules, top_code):
    """Serve the embedded modules, unless the collection's own sources are importable here."""
    import sys  # pylint: disable=import-outside-toplevel
    if "ansible_collections" in sys.modules:
        return None    # imported inside a process that already loads the collection's sources
    finder = EmbeddedModules(program, modules, top_code)
    sys.meta_path.insert(0, finder)
    return finder
