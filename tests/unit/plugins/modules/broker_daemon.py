# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test helpers: a REAL remo-broker daemon in temporary directories, and a module runner.

Used by the module unit tests (through ``conftest.py``) and by the leak-canary driver.
The daemon is the bundled ``roles/broker_install/files/remo_broker.py`` started as a
child process; nothing here fakes the socket protocol.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import redirect_stdout

from ansible.module_utils.testing import patch_module_args

COLLECTION_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
DAEMON = os.path.join(COLLECTION_ROOT, "roles", "broker_install", "files", "remo_broker.py")


class Daemon:
    """A running ``remo_broker.py serve`` with its own run dir, state dir and audit log."""

    def __init__(self, base):
        self.base = str(base)
        self.run_dir = os.path.join(self.base, "run")
        self.state_dir = os.path.join(self.base, "state")
        self.audit_log = os.path.join(self.base, "log", "audit.jsonl")
        self.admin_socket = os.path.join(self.run_dir, "admin.sock")
        self.stderr_path = os.path.join(self.base, "daemon.stderr")
        self.proc = None

    def start(self, timeout=15.0, extra_args=()):
        for directory in (self.run_dir, self.state_dir, os.path.dirname(self.audit_log)):
            os.makedirs(directory, exist_ok=True)
        argv = [
            sys.executable, DAEMON, "serve",
            "--run-dir", self.run_dir,
            "--state-dir", self.state_dir,
            "--audit-log", self.audit_log,
        ] + list(extra_args)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("remo-broker exited with %s:\n%s" % (self.proc.returncode, self.stderr()))
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("remo-broker did not open %s in %ss:\n%s" % (self.admin_socket, timeout, self.stderr()))

    def ping(self):
        try:
            reply = self.request({"op": "status"})
        except OSError:
            return False
        return reply.get("ok") is True

    def request(self, req):
        """A raw admin request (test-side, independent of the collection's client)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(self.admin_socket)
            sock.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            sock.close()
        return json.loads(buf)

    def status(self):
        return self.request({"op": "status"})

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class ModuleResult(dict):
    """The JSON a module printed, plus the exit code."""

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(main, args, check_mode=False, diff=False, verbosity=0):
    """Run a module's ``main()`` in-process the way Ansible would, and return its JSON result.

    The arguments go through ``patch_module_args`` (ansible-core's unit-test helper), so
    argument_spec validation, no_log masking and check/diff handling are the real ones.
    """
    module_args = dict(args)
    module_args["_ansible_check_mode"] = check_mode
    module_args["_ansible_diff"] = diff
    module_args["_ansible_verbosity"] = verbosity
    out = io.StringIO()
    code = None
    with patch_module_args(module_args), redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    text = out.getvalue()
    if code is None:
        raise AssertionError("module returned without exit_json/fail_json; output: %r" % text)
    result = ModuleResult(json.loads(text))
    result["_rc"] = code
    result["_raw"] = text
    return result


def run_module_as(uid, gid, main, args, **kwargs):
    """Run :func:`run_module` in a forked child that dropped root to ``uid``/``gid``.

    Tests run as root, and root connects to any socket whatever its mode; a real
    unprivileged process is the only honest way to see "permission denied".
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            result = run_module(main, args, **kwargs)
            payload = json.dumps(result).encode()
        except BaseException as exc:  # report anything to the parent
            payload = json.dumps({"_child_error": repr(exc)}).encode()
            status = 1
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return ModuleResult(json.loads(data))
