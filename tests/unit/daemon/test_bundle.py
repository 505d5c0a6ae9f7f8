# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The generated daemon file: generated in full from its sources, stdlib-only, runnable as shipped."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import COLLECTION_ROOT, DAEMON, install_daemon

BUNDLER = os.path.join(COLLECTION_ROOT, "scripts", "bundle_daemon.py")


def _bundler():
    spec = importlib.util.spec_from_file_location("bundle_daemon", BUNDLER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUNDLE = _bundler()
SOURCES = [rel for rel, _name in BUNDLE.sources(COLLECTION_ROOT)]


def test_check_passes_on_the_checkout():
    res = subprocess.run([sys.executable, BUNDLER, "--check"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, "the daemon differs from its sources; run scripts/bundle_daemon.py\n" + res.stdout + res.stderr


def test_every_source_is_embedded_and_nothing_else():
    listed = set(SOURCES)
    on_disk = {"plugins/module_utils/_daemon/" + f for f in os.listdir(os.path.join(COLLECTION_ROOT, "plugins/module_utils/_daemon"))
               if f.endswith(".py") and f != "bundle.py"}
    assert on_disk <= listed
    assert {"plugins/module_utils/_protocol.py", "plugins/module_utils/_manifest.py",
            "plugins/module_utils/_broker_client.py"} <= listed


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    """The generator's inputs and output copied to a scratch tree."""
    root = tmp_path_factory.mktemp("bundle")
    for rel in SOURCES + [BUNDLE.LOADER, BUNDLE.DAEMON]:
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(COLLECTION_ROOT, rel), root / rel)
    return root


@pytest.mark.parametrize("rel", SOURCES + ["plugins/module_utils/_daemon/bundle.py"])
def test_one_character_change_in_any_source_fails_the_check(tree_copy, rel):
    path = tree_copy / rel
    original = path.read_text(encoding="utf-8")
    # change one character of the last line that has code (a `)` or a letter)
    index = max(original.rfind(")"), original.rfind("e"))
    path.write_text(original[:index] + ("]" if original[index] == ")" else "E") + original[index + 1:], encoding="utf-8")
    try:
        res = subprocess.run([sys.executable, BUNDLER, "--check", "--root", str(tree_copy)], capture_output=True,
                             text=True, check=False)
    finally:
        path.write_text(original, encoding="utf-8")
    assert res.returncode != 0, "a one-character change in %s went unnoticed" % rel


def test_one_character_change_in_the_generated_file_fails_the_check(tree_copy):
    path = tree_copy / BUNDLE.DAEMON
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace("DRAIN_TIMEOUT = 5.0", "DRAIN_TIMEOUT = 6.0", 1), encoding="utf-8")
    try:
        res = subprocess.run([sys.executable, BUNDLER, "--check", "--root", str(tree_copy)], capture_output=True, check=False)
        assert res.returncode == 1
        fixed = subprocess.run([sys.executable, BUNDLER, "--root", str(tree_copy)], capture_output=True, check=False)
        assert fixed.returncode == 0 and path.read_text(encoding="utf-8") == original
    finally:
        path.write_text(original, encoding="utf-8")


def test_a_non_stdlib_import_in_a_source_is_refused(tree_copy):
    path = tree_copy / "plugins/module_utils/_daemon/process.py"
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace("import os\n", "import os\nimport yaml\n", 1), encoding="utf-8")
    try:
        res = subprocess.run([sys.executable, BUNDLER, "--check", "--root", str(tree_copy)], capture_output=True,
                             text=True, check=False)
    finally:
        path.write_text(original, encoding="utf-8")
    assert res.returncode == 2 and "process.py" in res.stderr and "yaml is not in the standard library" in res.stderr


def test_generated_file_imports_only_the_stdlib():
    tree = ast.parse(open(DAEMON, encoding="utf-8").read())
    outside = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__" and \
                    not name.startswith("ansible_collections.remo.broker.plugins.module_utils."):
                outside.append((name, node.lineno))
    assert outside == []
    # Run as `python3 remo_broker.py` or `python3 -m remo_broker` (the role installs a
    # wrapper), so the file is a plain, non-executable module without a shebang.
    text = open(DAEMON, encoding="utf-8").read()
    assert not text.startswith("#!") and "GENERATED IN FULL by scripts/bundle_daemon.py" in text
    assert not os.stat(DAEMON).st_mode & 0o111


def test_runs_with_isolated_python_as_script_and_as_module():
    """`python3 -I` (no site-packages, no env) is enough: nothing else installed."""
    res = subprocess.run([sys.executable, "-I", DAEMON, "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "remo-broker" in res.stdout
    res = subprocess.run([sys.executable, "-s", "-m", "remo_broker", "--version"], capture_output=True, text=True,
                         check=False, env={"PYTHONPATH": install_daemon(), "PATH": os.environ["PATH"]})
    assert res.returncode == 0 and "remo-broker" in res.stdout


def test_a_traceback_names_the_source_file_and_line(tmp_path):
    """An exception raised inside an embedded module points at its source file."""
    code = ("import runpy, sys\n"
            "sys.argv = ['remo_broker.py', '--version']\n"
            "mod = runpy.run_path(%r, run_name='remo_broker_tb')\n"
            "from ansible_collections.remo.broker.plugins.module_utils import _manifest\n"
            "_manifest.parse_manifest(None)\n") % DAEMON
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False, cwd=str(tmp_path))
    assert res.returncode == 1
    frames = [line.strip() for line in res.stderr.splitlines() if line.strip().startswith('File "plugins/')]
    assert frames and frames[0].startswith('File "plugins/module_utils/_manifest.py", line '), res.stderr
    line = int(frames[0].split("line ")[1].split(",")[0])
    source = open(os.path.join(COLLECTION_ROOT, "plugins/module_utils/_manifest.py"), encoding="utf-8").read().split("\n")
    assert "def parse_manifest" in source[line - 1] or "parse_manifest" in res.stderr
    # the source line is shown too (from the daemon file, no checkout needed)
    assert "in parse_manifest" in res.stderr


def test_embedded_modules_keep_their_names():
    code = ("import runpy\n"
            "runpy.run_path(%r, run_name='remo_broker_names')\n"
            "from ansible_collections.remo.broker.plugins.module_utils._manifest import _parse_v2, ManifestError\n"
            "from ansible_collections.remo.broker.plugins.module_utils._daemon.server import Broker\n"
            "print(_parse_v2.__qualname__, ManifestError.__qualname__, ManifestError.__module__, Broker.serve.__qualname__)\n"
            ) % DAEMON
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["_parse_v2", "ManifestError", "ansible_collections.remo.broker.plugins.module_utils._manifest",
                                  "Broker.serve"]
