"""The bundled daemon matches its module_utils sources and stays stdlib-only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from daemon_helpers import DAEMON, ROOT

BUNDLER = os.path.join(ROOT, "scripts", "bundle_daemon.py")
SOURCES = ("_protocol.py", "_manifest.py", "_broker_client.py")


def test_bundle_check_passes():
    res = subprocess.run([sys.executable, BUNDLER, "--check"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, "daemon drifted from module_utils; run scripts/bundle_daemon.py\n" + res.stdout + res.stderr


def test_bundle_check_detects_drift(tmp_path):
    for rel in ("roles/broker_install/files", "plugins/module_utils", "scripts"):
        (tmp_path / rel).mkdir(parents=True)
    for name in SOURCES:
        src = os.path.join(ROOT, "plugins", "module_utils", name)
        (tmp_path / "plugins" / "module_utils" / name).write_text(open(src, encoding="utf-8").read())
    text = open(DAEMON, encoding="utf-8").read()
    (tmp_path / "roles/broker_install/files/remo_broker.py").write_text(text)
    ok = subprocess.run([sys.executable, BUNDLER, "--check", "--root", str(tmp_path)], capture_output=True, check=False)
    assert ok.returncode == 0
    proto = tmp_path / "plugins/module_utils/_protocol.py"
    proto.write_text(proto.read_text() + "\nDRIFT = 1\n")
    bad = subprocess.run([sys.executable, BUNDLER, "--check", "--root", str(tmp_path)], capture_output=True, check=False)
    assert bad.returncode == 1
    fixed = subprocess.run([sys.executable, BUNDLER, "--root", str(tmp_path)], capture_output=True, check=False)
    assert fixed.returncode == 0
    assert "DRIFT = 1" in (tmp_path / "roles/broker_install/files/remo_broker.py").read_text()


def _imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield ".", node.lineno
            else:
                yield node.module.split(".")[0], node.lineno


def test_daemon_imports_only_stdlib():
    tree = ast.parse(open(DAEMON, encoding="utf-8").read())
    outside = [(mod, line) for mod, line in _imported_modules(tree)
               if mod not in sys.stdlib_module_names and mod != "__future__"]
    assert outside == []


def test_daemon_has_no_collection_imports_and_all_markers():
    text = open(DAEMON, encoding="utf-8").read()
    assert "ansible_collections" not in "\n".join(
        line for line in text.splitlines() if line.lstrip().startswith(("import ", "from ")))
    for name in SOURCES:
        assert "# >>> bundled from plugins/module_utils/%s" % name in text
    assert text.splitlines().count("# <<< end bundled") == len(SOURCES) + 1
    # Run as `python3 remo_broker.py` or `python3 -m remo_broker` (the role installs a
    # wrapper), so the file is a plain, non-executable module without a shebang.
    assert not text.startswith("#!")
    assert not os.stat(DAEMON).st_mode & 0o111


def _top_level_names(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_bundled_sources_do_not_redefine_each_others_names():
    """Spliced into one namespace, a later file must not silently shadow an earlier one."""
    seen = {}
    clashes = []
    for name in SOURCES:
        for top in _top_level_names(os.path.join(ROOT, "plugins", "module_utils", name)):
            if top in seen:
                clashes.append((top, seen[top], name))
            seen[top] = name
    assert clashes == []


def test_daemon_runs_with_isolated_python():
    """`python3 -I` (no site-packages, no env) is enough: nothing else installed."""
    res = subprocess.run([sys.executable, "-I", DAEMON, "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "remo-broker" in res.stdout
