"""Helpers that run the REAL bundled daemon in a subprocess with throw-away dirs.

``broker_factory(**opts)`` starts ``remo_broker.py serve`` with its own run dir
(short, under /tmp, because AF_UNIX paths are limited to 108 bytes), state dir and
audit log, and waits until the admin socket answers.  ``broker`` is one started with
defaults.  At teardown every daemon is stopped and every file it wrote (stdout,
stderr, audit log, state) is checked for the planted canary values.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from ansible_collections.remo.broker.plugins.module_utils._broker_client import BrokerClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DAEMON = os.path.join(ROOT, "roles", "broker_install", "files", "remo_broker.py")

# Values that must never appear anywhere but in a get reply.
CANARIES = ("CANARY-ghp-7f3a9c1e-value", "CANARY-aws-secret-55d2", "CANARY-field-0b1d", "CANARY-other-e4e4")


def write_manifest(project_dir, project, secrets, raw=None):
    """Write PROJECT/.remo/manifest.toml (schema 2) allowing ``secrets``."""
    os.makedirs(os.path.join(project_dir, ".remo"), exist_ok=True)
    path = os.path.join(project_dir, ".remo", "manifest.toml")
    if raw is None:
        lines = ["schema_version = 2", 'project = "%s"' % project, ""]
        for name in secrets:
            lines += ["[secrets.%s]" % name, 'fetch_as = "env"', ""]
        raw = "\n".join(lines)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(raw)
    return path


def raw_exchange(path, payload, timeout=3.0, read_until_close=False, max_lines=None):
    """Send raw bytes, return (lines, closed) read from the socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    try:
        if payload:
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon may answer and close before we finish sending
        buf = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not read_until_close and max_lines is not None and buf.count(b"\n") >= max_lines:
                break
            try:
                chunk = sock.recv(262144)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        lines = [json.loads(x) for x in buf.split(b"\n") if x]
        return lines, closed
    finally:
        sock.close()


class Daemon:
    """One daemon process and its files."""

    def __init__(self, base, extra_args=(), env=None):
        self.base = base
        self.run_dir = os.path.join(base, "run")
        self.state_dir = os.path.join(base, "state")
        self.audit_log = os.path.join(base, "log", "audit.jsonl")
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.stdout_path = os.path.join(base, "stdout.txt")
        self.stderr_path = os.path.join(base, "stderr.txt")
        self.projects_root = os.path.join(base, "projects")
        os.makedirs(self.projects_root, exist_ok=True)

    @property
    def admin_socket(self):
        return os.path.join(self.run_dir, "admin.sock")

    def project_socket(self, name):
        return os.path.join(self.run_dir, name + ".sock")

    def start(self, wait=True):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if self.env:
            env.update(self.env)
        cmd = [sys.executable, DAEMON, "serve", "--run-dir", self.run_dir, "--state-dir", self.state_dir,
               "--audit-log", self.audit_log] + self.extra_args
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited with %s: %s" % (self.proc.returncode, self.stderr()))
            try:
                self.admin("ping")
                return
            except Exception:  # pylint: disable=broad-except
                time.sleep(0.01)
        raise AssertionError("daemon did not become ready: %s" % self.stderr())

    def client(self, path=None, timeout=5.0):
        return BrokerClient(path or self.admin_socket, timeout=timeout)

    def admin(self, op, **fields):
        return self.client().request(op, **fields)

    def project(self, project_name, op, /, **fields):
        return self.client(self.project_socket(project_name)).request(op, **fields)

    def make_project(self, name, secrets, register=True, expected_uid=None):
        pdir = os.path.join(self.projects_root, name)
        write_manifest(pdir, name, secrets)
        if register:
            fields = {"name": name, "project_path": pdir}
            if expected_uid is not None:
                fields["expected_uid"] = expected_uid
            self.admin("register", **fields)
        return pdir

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def audit_events(self, settle=True):
        if settle:
            time.sleep(0.15)  # audit is flushed in batches every 50 ms
        try:
            with open(self.audit_log, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
        except FileNotFoundError:
            return []

    def run_cli(self, *args, stdin=None, timeout=15):
        cmd = [sys.executable, DAEMON] + list(args)
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)

    def written_files(self):
        """Every file the daemon or the tests' CLI calls wrote, except the manifests."""
        for top in (self.base,):
            for dirpath, _dirs, files in os.walk(top):
                if dirpath.startswith(self.projects_root):
                    continue
                for fname in files:
                    yield os.path.join(dirpath, fname)
