# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate the one-file daemon roles/broker_install/files/remo_broker.py from its sources.

The daemon ships as ONE stdlib-only file, yet its code lives in
plugins/module_utils/_daemon/ (one concern per file) and shares
plugins/module_utils/{_protocol,_manifest,_broker_client,_trusted_path}.py with the modules.  This
script writes the whole file:

* a header, then the functions of plugins/module_utils/_daemon/bundle.py (the importer);
* every source, its text unchanged (only indented, and ``from __future__`` lines left
  blank so line numbers stay), as the body of a never-executed ``class`` statement;
* a table naming each module, and the entry point (_daemon/cli.py ``main``).

At run time each source becomes its own module under its real name, with its source
path and line numbers (bundle.py explains how), so a traceback names the file to edit.

Usage: ``scripts/bundle_daemon.py`` rewrites the daemon; ``--check`` exits 1 (and
prints a unified diff) when the daemon differs from what its sources generate.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import os
import sys
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = "roles/broker_install/files/remo_broker.py"
PACKAGE = "ansible_collections.remo.broker"
SHARED = (
    "plugins/module_utils/_protocol.py",
    "plugins/module_utils/_manifest.py",
    "plugins/module_utils/_broker_client.py",
    "plugins/module_utils/_trusted_path.py",
)
DAEMON_DIR = "plugins/module_utils/_daemon"
LOADER = DAEMON_DIR + "/bundle.py"
FUTURES = frozenset(("annotations",))
INDENT = " " * 8   # the wrapper classes sit in an `if` block

HEADER = '''\
# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# remo-broker: the in-memory credential broker daemon and its command-line client.
# ONE stdlib-only file (Python 3.11+), GENERATED IN FULL by scripts/bundle_daemon.py
# from plugins/module_utils/_daemon/*.py and plugins/module_utils/{_protocol,_manifest,
# _broker_client,_trusted_path}.py: edit those files and re-run the script, never this file.
# See docs/daemon.md and docs/protocol.md.
#
# pylint reads the embedded module bodies below as class bodies and cannot resolve their
# names; each source is linted as itself (plugins/module_utils/...), so these checks are
# off for this file only:
# pylint: disable=undefined-variable,no-self-argument,no-method-argument,self-cls-assignment,using-constant-test
"""remo-broker: in-memory credential broker daemon (protocol 2) and its CLI client."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Keep idle RSS low: the daemon needs neither TLS nor OpenSSL's hashes, and without
    # them asyncio skips its ssl support and hashlib uses its builtin sha256.  (The audit
    # writer process imports this file as a module, so it keeps OpenSSL's fast sha256.)
    sys.modules.setdefault("ssl", None)
    sys.modules.setdefault("_ssl", None)
    sys.modules.setdefault("_hashlib", None)
'''

FOOTER = '''
FINDER = install(__file__, _MODULES, sys._getframe().f_code)  # pylint: disable=protected-access

if __name__ == "__main__":
    from ansible_collections.remo.broker.plugins.module_utils._daemon.cli import main
    sys.exit(main(sys.argv[1:], __file__))
'''


class BundleError(Exception):
    pass


def sources(root):
    """(path relative to root, module name) of every embedded module, shared ones first."""
    own = sorted(f for f in os.listdir(os.path.join(root, DAEMON_DIR))
                 if f.endswith(".py") and f != os.path.basename(LOADER))
    out = []
    for rel in list(SHARED) + ["%s/%s" % (DAEMON_DIR, f) for f in own]:
        out.append((rel, PACKAGE + "." + rel[:-3].replace("/", ".")))
    return out


def _read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as handle:
        return handle.read()


def _check_source(rel, text):
    """Refuse what would behave differently inside a class body; return the tree."""
    tree = ast.parse(text, filename=rel)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            extra = {alias.name for alias in node.names} - FUTURES
            if extra:
                raise BundleError("%s:%d: __future__ %s is not enabled in the daemon file" % (rel, node.lineno, sorted(extra)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if getattr(node, "level", 0):
                    raise BundleError("%s:%d: use absolute imports" % (rel, node.lineno))
                if top != "ansible_collections" and top not in sys.stdlib_module_names:
                    raise BundleError("%s:%d: %s is not in the standard library" % (rel, node.lineno, name))
                if top == "ansible_collections" and not name.startswith(PACKAGE + ".plugins.module_utils."):
                    raise BundleError("%s:%d: the daemon can only import module_utils of %s" % (rel, node.lineno, PACKAGE))
        elif isinstance(node, ast.Name) and node.id.startswith("__") and not node.id.endswith("__"):
            # a class body would mangle it
            raise BundleError("%s:%d: rename %s (no leading double underscore)" % (rel, node.lineno, node.id))
    return tree


def _string_continuation_lines(text):
    """1-based numbers of lines that continue a multi-line string (must not be indented)."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            lines.update(range(tok.start[0] + 1, tok.end[0] + 1))
    return lines


def _body(rel, text):
    """The source as a class body: indented, ``from __future__`` lines blanked."""
    tree = _check_source(rel, text)
    blank = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            blank.update(range(node.lineno, node.end_lineno + 1))
    keep = _string_continuation_lines(text)
    out = []
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        if number in blank or not line.strip() and number not in keep:
            out.append("")
        elif number in keep:
            out.append(line)
        else:
            out.append(INDENT + line)
    # Inside a class body pep8 allows one blank line between statements; a module allows
    # two.  The extra blank lines become empty comments, so line numbers stay the same.
    for index in range(len(out) - 1):
        if out[index] == "" and out[index + 1] == "" and index + 1 not in keep and index + 2 not in keep:
            out[index] = INDENT + "#"
    return out


def _loader_text(root):
    """bundle.py without its header comments, docstring and __future__ import."""
    text = _read(root, LOADER)
    tree = ast.parse(text, filename=LOADER)
    first = next(node for node in tree.body
                 if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
                 and not (isinstance(node, ast.ImportFrom) and node.module == "__future__"))
    return "\n".join(text.split("\n")[first.lineno - 1:]).strip("\n") + "\n"


def generate(root=ROOT):
    """The full text of the daemon file generated from the sources under ``root``."""
    lines = HEADER.split("\n")[:-1]
    lines += ["", ""] + _loader_text(root).split("\n")[:-1]
    lines += ["", "", 'if __name__ == "<embedded modules>":  # never true: install() runs each body as a module']
    table = []
    for index, (rel, name) in enumerate(sources(root)):
        wrapper = "_m%02d" % index
        lines += ["    # " + "-" * 72, "    class %s:  # %s" % (wrapper, rel)]
        body = _body(rel, _read(root, rel))
        table.append((name, rel, wrapper, len(lines) + 1, len(body)))
        lines += body
        lines.append("")
    lines += ["", "_MODULES = ("]
    for entry in table:
        lines.append("    (%r, %r, %r, %d, %d)," % entry)
    lines.append(")")
    return "\n".join(lines) + "\n" + FOOTER


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the daemon differs from its sources")
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = os.path.join(args.root, DAEMON)
    try:
        generated = generate(args.root)
    except (BundleError, SyntaxError, OSError) as exc:
        sys.stderr.write("bundle_daemon: %s\n" % exc)
        return 2
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = None
    if args.check:
        if current == generated:
            print("bundle_daemon: %s is up to date" % DAEMON)
            return 0
        diff = difflib.unified_diff((current or "").splitlines(True), generated.splitlines(True), DAEMON,
                                    DAEMON + " (generated)", n=1)
        sys.stdout.writelines(list(diff)[:200])
        sys.stderr.write("bundle_daemon: %s differs from its sources: run scripts/bundle_daemon.py\n" % DAEMON)
        return 1
    if current != generated:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(generated)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        print("bundle_daemon: wrote %s" % DAEMON)
    else:
        print("bundle_daemon: %s already up to date" % DAEMON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
