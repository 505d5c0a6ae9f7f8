# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Constants of the wire protocol (the single source of truth)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.plugins.module_utils import _protocol as P

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_daemon_version_equals_galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", fh.read(), re.MULTILINE)
    assert match, "galaxy.yml has no version"
    assert P.DAEMON_VERSION == match.group(1)


def test_protocol_version_and_limits():
    assert P.PROTOCOL_VERSION == 2
    assert P.MAX_PROJECT_MESSAGE_BYTES == 65536
    assert P.MAX_ADMIN_MESSAGE_BYTES == 1048576
    assert P.MAX_REPLY_BYTES >= P.MAX_ADMIN_MESSAGE_BYTES
    assert P.DRAIN_TIMEOUT == 5.0


def test_default_paths():
    assert P.DEFAULT_RUN_DIR == "/run/remo-broker"
    assert P.DEFAULT_STATE_DIR == "/var/lib/remo-broker"
    assert P.DEFAULT_AUDIT_LOG == "/var/log/remo-broker/audit.jsonl"
    assert P.DEFAULT_ADMIN_SOCKET == "/run/remo-broker/admin.sock"
    assert P.admin_socket_path("/run/x/") == "/run/x/admin.sock"
    assert P.project_socket_path("/run/x", "demo") == "/run/x/demo.sock"


def test_ops_and_error_codes():
    assert P.ADMIN_OPS == {"status", "register", "unregister", "reload", "attest", "push-creds", "diff-creds", "clear-creds", "ping"}
    assert P.PROJECT_OPS == {"get", "ping", "info", "watch"}
    assert P.ADMIN_ERROR_CODES == {"protocol_error", "invalid_payload", "payload_too_large", "manifest_invalid",
                                   "manifest_not_found", "not_registered", "conflict", "internal_error",
                                   "too_many_connections"}
    assert P.PROJECT_ERROR_CODES == {"denied", "not_found", "rate_limited", "protocol_error", "internal_error",
                                     "peer_unexpected", "too_many_connections", "audit_unavailable"}
    assert P.E_CONNECTION_ERROR not in P.ERROR_CODES
    assert P.COUNTER_NAMES == ("allowed", "denied", "not_found", "rate_limited", "peer_unexpected", "protocol_error",
                               "connections_refused", "audit_unavailable")


def test_exit_codes_distinct():
    codes = {name: getattr(P, name) for name in dir(P) if name.startswith("EXIT_")}
    assert len(codes) >= 6
    assert len(set(codes.values())) == len(codes), "two EXIT_ constants share a value: %r" % codes
    assert all(isinstance(code, int) and 0 <= code < 126 for code in codes.values())   # 126+ mean "shell/signal"
    assert codes["EXIT_OK"] == 0


def test_patterns_are_the_documented_ones():
    assert P.PROJECT_NAME_RE.pattern == r"^[a-z0-9][a-z0-9_-]{0,63}$"
    assert P.SECRET_NAME_RE.pattern == r"^[A-Za-z0-9_]{1,128}$"


@pytest.mark.parametrize("name,ok", [
    ("demo", True), ("a", True), ("0-x_y", True), ("a" * 64, True),
    ("a" * 65, False), ("-a", False), ("_a", False), ("Demo", False), ("", False), ("a b", False),
    ("demo\n", False), ("admin", False), (None, False), (5, False),
])
def test_is_valid_project_name(name, ok):
    assert P.is_valid_project_name(name) is ok


@pytest.mark.parametrize("name,ok", [
    ("GITHUB_TOKEN", True), ("gh", True), ("a" * 128, True), ("9", True),
    ("a" * 129, False), ("", False), ("A-B", False), ("A.B", False), ("A\n", False), (None, False),
])
def test_is_valid_secret_name(name, ok):
    assert P.is_valid_secret_name(name) is ok


def test_module_is_private():
    with open(P.__file__, encoding="utf-8") as fh:
        text = fh.read()
    assert "PRIVATE to the collection" in text
    assert "\nassert " not in text and "    assert " not in text


# ---------------------------------------------------------------------------
# Every module_utils file the daemon embeds: stdlib only, no side effect at import
# ---------------------------------------------------------------------------
MODULE_UTILS = os.path.dirname(P.__file__)
EMBEDDED = sorted(
    ["plugins/module_utils/" + f for f in ("_protocol.py", "_manifest.py", "_broker_client.py")]
    + ["plugins/module_utils/_daemon/" + f for f in os.listdir(os.path.join(MODULE_UTILS, "_daemon")) if f.endswith(".py")])

# Run in a fresh `python -I -B`: import the module with an audit hook that records every
# effect outside the interpreter (a file opened for writing, a file removed or renamed,
# a directory made, a socket, a process), then print them.
_AUDIT_IMPORT = r"""
import os, sys
effects = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
def hook(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None])[:3]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS):
            effects.append("open for writing: %r" % (path,))
    elif event.startswith(("os.remove", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.truncate",
                           "socket.connect", "socket.bind", "subprocess.", "os.system", "os.posix_spawn", "os.fork",
                           "os.exec", "os.kill", "shutil.")):
        effects.append("%s%r" % (event, args[:2]))
sys.path.insert(0, sys.argv[1])
sys.addaudithook(hook)
__import__(sys.argv[2])
print("\\n".join(effects))
"""


@pytest.mark.parametrize("rel", EMBEDDED)
def test_embedded_module_imports_only_the_stdlib(rel):
    tree = ast.parse(open(os.path.join(ROOT, rel), encoding="utf-8").read(), filename=rel)
    outside = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or "."] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            if name.split(".")[0] in sys.stdlib_module_names or name == "__future__":
                continue
            if name.startswith("ansible_collections.remo.broker.plugins.module_utils."):
                continue
            outside.append("%s:%d imports %s" % (rel, node.lineno, name))
    assert outside == []


@pytest.mark.parametrize("rel", EMBEDDED)
def test_embedded_module_has_no_side_effect_at_import(rel):
    collections_root = os.path.dirname(list(sys.modules["ansible_collections"].__path__)[0])
    module = "ansible_collections.remo.broker." + rel[:-3].replace("/", ".")
    res = subprocess.run([sys.executable, "-I", "-B", "-c", _AUDIT_IMPORT, collections_root, module],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", "%s acts on the system when imported:\n%s" % (rel, res.stdout)
