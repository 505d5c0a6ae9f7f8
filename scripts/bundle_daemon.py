"""Splice the shared module_utils into the one-file daemon.

``roles/broker_install/files/remo_broker.py`` must stay ONE stdlib-only file, yet the
protocol constants, the manifest code and the socket client are shared with the
collection's modules (docs/CONTRACTS.md).  This script copies

    plugins/module_utils/_protocol.py
    plugins/module_utils/_manifest.py
    plugins/module_utils/_broker_client.py

into the daemon between marker lines::

    # >>> bundled from plugins/module_utils/_protocol.py
    ...
    # <<< end bundled

For each source it (using ``ast``, so multi-line imports are handled):

* drops ``from ansible_collections.remo.broker... import ...`` statements (the names
  are already defined earlier in the same file),
* drops ``from __future__ import ...`` (the daemon header carries them; a feature the
  header lacks is an error),
* hoists the other top-level imports into the ``# >>> bundled imports`` block at the
  top of the daemon (deduplicated, minus those the daemon makes itself above that
  block), so the file has all imports first,
* drops the module docstring (a bare string in the middle of a file).

Usage: ``scripts/bundle_daemon.py`` rewrites the daemon; ``--check`` exits 1 (and
prints a unified diff) when the bundled copy differs from the sources.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAEMON = "roles/broker_install/files/remo_broker.py"
SOURCES = (
    "plugins/module_utils/_protocol.py",
    "plugins/module_utils/_manifest.py",
    "plugins/module_utils/_broker_client.py",
)
COLLECTION_PREFIX = "ansible_collections.remo.broker"
BEGIN = "# >>> bundled from %s"
IMPORTS_BEGIN = "# >>> bundled imports"
END = "# <<< end bundled"


class BundleError(Exception):
    pass


def _strip_source(rel, text, header_futures):
    """Return (body, hoisted_import_lines) for one module_utils source."""
    tree = ast.parse(text, filename=rel)
    lines = text.splitlines()
    drop = set()
    hoisted = []
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            missing = {alias.name for alias in node.names} - header_futures
            if missing:
                raise BundleError("%s uses __future__ %s, which the daemon header lacks" % (rel, sorted(missing)))
            drop.update(range(node.lineno - 1, node.end_lineno))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(COLLECTION_PREFIX):
            drop.update(range(node.lineno - 1, node.end_lineno))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if node.lineno == node.end_lineno and ";" in lines[node.lineno - 1]:
                raise BundleError("%s:%d: put each import on its own line" % (rel, node.lineno))
            hoisted.append(ast.unparse(node))
            drop.update(range(node.lineno - 1, node.end_lineno))
    # Any remaining intra-collection import (e.g. inside try:) cannot be resolved.
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(COLLECTION_PREFIX) \
                and node.lineno - 1 not in drop:
            raise BundleError("%s:%d: collection imports must be top-level statements" % (rel, node.lineno))
        if isinstance(node, ast.Import) and any(a.name.startswith(COLLECTION_PREFIX) for a in node.names):
            raise BundleError("%s:%d: use `from %s... import ...`" % (rel, node.lineno, COLLECTION_PREFIX))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    body_text = "\n".join(kept).strip("\n")
    body_text = re.sub(r"\n{4,}", "\n\n\n", body_text)
    return body_text, hoisted


def _header_futures(daemon_text):
    tree = ast.parse(daemon_text)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            names.update(alias.name for alias in node.names)
    return names


def _own_imports(daemon_text):
    """Import statements the daemon itself makes above the bundled imports block."""
    head = daemon_text.split("\n" + IMPORTS_BEGIN + "\n", 1)[0]
    return {ast.unparse(node) for node in ast.parse(head).body if isinstance(node, (ast.Import, ast.ImportFrom))}


def _replace_block(text, begin, content, rel):
    lines = text.split("\n")
    try:
        start = lines.index(begin)
    except ValueError:
        raise BundleError("%s: marker line %r not found" % (DAEMON, begin)) from None
    try:
        end = lines.index(END, start + 1)
    except ValueError:
        raise BundleError("%s: no %r after %r" % (DAEMON, END, begin)) from None
    new = lines[:start + 1] + (content.split("\n") if content else []) + lines[end:]
    return "\n".join(new)


def _sort_key(stmt):
    # `import x` before `from x import y`, then alphabetical.
    return (stmt.startswith("from "), stmt)


def bundle(root=ROOT):
    """Return (current_text, bundled_text) of the daemon."""
    path = os.path.join(root, DAEMON)
    with open(path, encoding="utf-8") as fh:
        current = fh.read()
    futures = _header_futures(current)
    text = current
    all_imports = []
    for rel in SOURCES:
        with open(os.path.join(root, rel), encoding="utf-8") as fh:
            src = fh.read()
        body, hoisted = _strip_source(rel, src, futures)
        all_imports.extend(hoisted)
        text = _replace_block(text, BEGIN % rel, body, rel)
    own = _own_imports(current)
    imports = sorted(set(all_imports) - own, key=_sort_key)
    text = _replace_block(text, IMPORTS_BEGIN, "\n".join(imports), "imports")
    return current, text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the daemon's bundled code is out of date")
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        current, bundled = bundle(args.root)
    except (BundleError, SyntaxError, OSError) as exc:
        sys.stderr.write("bundle_daemon: %s\n" % exc)
        return 2
    if args.check:
        if current == bundled:
            print("bundle_daemon: %s is up to date" % DAEMON)
            return 0
        diff = difflib.unified_diff(current.splitlines(True), bundled.splitlines(True), DAEMON, DAEMON + " (bundled)", n=1)
        sys.stdout.writelines(list(diff)[:200])
        sys.stderr.write("bundle_daemon: %s is out of date: run scripts/bundle_daemon.py\n" % DAEMON)
        return 1
    if current != bundled:
        path = os.path.join(args.root, DAEMON)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(bundled)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        print("bundle_daemon: updated %s" % DAEMON)
    else:
        print("bundle_daemon: %s already up to date" % DAEMON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
