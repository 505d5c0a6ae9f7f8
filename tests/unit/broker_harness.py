# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""THE test harness for every test that needs a remo-broker daemon process.

* ``Daemon`` starts the generated ``roles/broker_install/files/remo_broker.py`` the way
  the systemd unit does: byte-compiled in an install directory (as the role does),
  ``python3 -s -m remo_broker serve`` with PYTHONPATH, readiness from ``READY=1`` on a
  NOTIFY_SOCKET the harness binds.  Each daemon gets its own run/state/log dirs.
* ``RawConn`` / ``request`` / ``raw_exchange``: the one raw NDJSON client (independent of
  the collection's client, so a client bug cannot hide a daemon bug).
* ``Daemon.audit_events`` waits until every event emitted so far is written (the
  daemon's own ``status.audit.buffered`` reaches 0) or until a predicate holds.

Stdlib only (``Daemon.call`` imports the collection's client lazily), so
``benchmarks/`` imports it too.  Tests import it as
``ansible_collections.remo.broker.tests.unit.broker_harness``.
"""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

COLLECTION_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DAEMON = os.path.join(COLLECTION_ROOT, "roles", "broker_install", "files", "remo_broker.py")

# Reply codes as docs/protocol.md lists them.  Written here, not taken from _protocol.py,
# so the tests check the daemon against the documented contract.
PROJECT_CODES = frozenset(("denied", "not_found", "rate_limited", "protocol_error", "internal_error",
                           "peer_unexpected", "too_many_connections", "audit_unavailable"))
ADMIN_CODES = frozenset(("protocol_error", "invalid_payload", "payload_too_large", "manifest_invalid",
                         "manifest_not_found", "not_registered", "conflict", "internal_error",
                         "too_many_connections"))
PROJECT_LIMIT = 65536
ADMIN_LIMIT = 1048576

# Values that must never appear anywhere but in a get reply.
CANARIES = ("CANARY-ghp-7f3a9c1e-value", "CANARY-aws-secret-55d2", "CANARY-field-0b1d", "CANARY-other-e4e4")


def wait_for(predicate, timeout=10.0, interval=0.01, what="condition", get=None):
    """Poll until ``predicate`` holds; AssertionError on timeout.

    Without ``get``: ``predicate()``, and its truthy value is returned.  With ``get``:
    ``predicate(get())``, and that ``get()`` value is returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate() if get is None else get()
        if (value if get is None else predicate(value)):
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


class ReplyError(AssertionError):
    """A reply line that breaks the wire contract."""


def stop_process(pid, timeout=10.0):
    """SIGSTOP ``pid`` and wait until every thread of it is stopped: kill() returns before
    a process running on another core has stopped, so data sent meanwhile may be read."""
    os.kill(pid, signal.SIGSTOP)

    def stopped():
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid), encoding="ascii") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                    return False
        return True

    wait_for(stopped, timeout=timeout, what="process %d to stop" % pid)


def check_reply(line, codes, events_ok=False):
    """Validate one reply line (bytes, without the newline); return the decoded dict.

    Contract: a JSON object with a boolean ``ok``; when false, a ``code`` from ``codes``
    and a string ``message`` (``details`` optional, a dict).  ``events_ok`` also accepts a
    ``watch`` event line ``{"event": "changed", "names": [...], "at": ISO}``.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplyError("reply is not UTF-8: %r" % line[:200]) from None
    try:
        reply = json.loads(text)
    except ValueError:
        raise ReplyError("reply is not JSON: %r" % line[:200]) from None
    if not isinstance(reply, dict):
        raise ReplyError("reply is not a JSON object: %r" % line[:200])
    if events_ok and "event" in reply and "ok" not in reply:
        if reply.get("event") != "changed" or not isinstance(reply.get("names"), list) \
                or not isinstance(reply.get("at"), str):
            raise ReplyError("malformed watch event: %r" % line[:200])
        return reply
    ok = reply.get("ok")
    if not isinstance(ok, bool):
        raise ReplyError("reply has no boolean 'ok': %r" % line[:200])
    if not ok:
        if reply.get("code") not in codes:
            raise ReplyError("reply code %r is not a documented code: %r" % (reply.get("code"), line[:200]))
        if not isinstance(reply.get("message"), str):
            raise ReplyError("error reply has no string 'message': %r" % line[:200])
        if "details" in reply and not isinstance(reply["details"], dict):
            raise ReplyError("error reply 'details' is not an object: %r" % line[:200])
    return reply


# ---------------------------------------------------------------------------
# Projects and manifests
# ---------------------------------------------------------------------------
def write_manifest(project_dir, name, secrets=("TOKEN",), extra="", raw=None):
    """Create PROJECT_DIR/.remo/manifest.toml (schema 2) allowing ``secrets`` (env fetch).

    Modes 0755/0644 whatever the umask: the daemon reads only a manifest that nobody
    but its owner (root or the daemon's account, as the test runs) can write.
    """
    remo = os.path.join(project_dir, ".remo")
    os.makedirs(remo, mode=0o755, exist_ok=True)
    for directory in (project_dir, remo):
        os.chmod(directory, 0o755)
    if raw is None:
        lines = ["schema_version = 2", 'project = "%s"' % name, ""]
        for secret in secrets:
            lines += ["[secrets.%s]" % secret, 'fetch_as = "env"', ""]
        raw = "\n".join(lines) + extra
    path = os.path.join(remo, "manifest.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(raw)
    os.chmod(path, 0o644)
    return project_dir


# ---------------------------------------------------------------------------
# Raw connections
# ---------------------------------------------------------------------------
class RawConn:
    """A raw Unix stream connection with a line reader.  Never raises on a peer close."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.reset = False

    def send(self, data):
        """sendall; False when the daemon already closed (EPIPE / ECONNRESET)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            # Linux AF_UNIX: the daemon closed with our unread bytes still queued on
            # its side (it stops reading after a protocol_error).  Data it wrote first
            # was already delivered; this is still a clean close by the daemon.
            self.reset = True
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_line(self):
        """Next line without its newline, or None at EOF (partial tail returned as-is)."""
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 1:]
                return line
            if self.eof or not self._fill():
                if self.buf:
                    tail, self.buf = self.buf, b""
                    raise ReplyError("connection closed after an unterminated reply: %r" % tail[:200])
                return None

    def read_all(self):
        """Every line until the daemon closes the connection."""
        lines = []
        while True:
            line = self.read_line()
            if line is None:
                return lines
            lines.append(line)

    def half_close(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(path, req, timeout=10.0):
    """One request on a fresh connection; the decoded reply (raises on a bad reply)."""
    conn = RawConn(path, timeout)
    try:
        conn.send(json.dumps(req).encode("utf-8") + b"\n")
        line = conn.read_line()
        if line is None:
            raise ReplyError("connection closed without a reply to %r" % (req.get("op"),))
        return json.loads(line)
    finally:
        conn.close()


def raw_exchange(path, payload, timeout=3.0, read_until_close=False, max_lines=None):
    """Send raw bytes, return (decoded reply lines, closed by the daemon)."""
    conn = RawConn(path, timeout)
    try:
        if payload:
            conn.send(payload)
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not read_until_close and max_lines is not None and len(lines) >= max_lines:
                break
            try:
                line = conn.read_line()
            except socket.timeout:
                break
            if line is None:
                break
            if line:
                lines.append(json.loads(line))
        return lines, conn.eof
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# The daemon process
# ---------------------------------------------------------------------------
def rss_kib(pid):
    """VmRSS of ``pid`` in KiB (from /proc/PID/status)."""
    with open("/proc/%d/status" % pid, encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def wait_idle(pid, timeout=30.0):
    """Wait until the daemon's event loop waits for events (``epoll_wait``): every request
    it has answered is completely handled, including the work it does after the reply."""
    def idle():
        with open("/proc/%d/wchan" % pid, encoding="ascii") as handle:
            return "epoll" in handle.read()
    wait_for(idle, timeout, interval=0.001, what="pid %d to wait in epoll_wait" % pid)


def memory_hits(pid, needle, attempts=5):
    """Occurrences of ``needle`` in the readable memory of process ``pid`` (/proc/PID/maps + mem).

    Needs ptrace access to ``pid`` (root with CAP_SYS_PTRACE for the daemon, which is not
    dumpable).  Every mapping the process may read is read in full, in chunks that
    overlap by ``len(needle) - 1`` bytes.  A mapping that changed under the scan (a heap
    the allocator trimmed) restarts it from a fresh /proc/PID/maps; one that cannot be
    read after ``attempts`` scans raises, so an unreadable region never passes for one
    without the needle.
    """
    for _attempt in range(attempts):
        try:
            return _scan_memory(pid, needle)
        except OSError as exc:
            error = exc
    raise AssertionError("cannot read the memory of pid %d: %s" % (pid, error))


def _scan_memory(pid, needle):
    hits = 0
    chunk = 1 << 20
    overlap = len(needle) - 1
    with open("/proc/%d/maps" % pid, encoding="ascii") as maps:
        regions = [line.split() for line in maps]
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for fields in regions:
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or fields[-1].startswith(("[vvar", "[vsyscall")):
                continue        # kernel pages, not the process's memory
            pos, tail = low, b""
            while pos < high:
                mem.seek(pos)
                data = mem.read(min(chunk, high - pos))
                if not data:
                    raise OSError("short read at %#x in %s" % (pos, " ".join(fields)))
                window = tail + data
                hits += window.count(needle)
                tail = window[-overlap:] if overlap else b""
                pos += len(data)
    return hits


def pss_kib(pid):
    """Proportional set size of ``pid`` in KiB (from /proc/PID/smaps_rollup)."""
    with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError("no Pss for pid %d" % pid)


def acl_users(path):
    """{uid: permission bits} of the ``user:UID`` entries in the POSIX ACL of ``path``."""
    import struct
    try:
        raw = os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError:
        return {}
    entries = struct.iter_unpack("<HHI", raw[4:])
    return {ident: perm for tag, perm, ident in entries if tag == 0x02}


_INSTALLED = {}


def install_daemon(source=None):
    """The directory of a byte-compiled copy of ``source`` (as the role installs it).

    One copy per content hash under the system temp dir, so the checkout gets no
    bytecode and a changed daemon file is installed afresh.
    """
    source = source or DAEMON
    with open(source, "rb") as handle:
        data = handle.read()
    digest = hashlib.sha256(data).hexdigest()[:16]
    if digest in _INSTALLED:
        return _INSTALLED[digest]
    directory = os.path.join(tempfile.gettempdir(), "remo-broker-test-install-%s" % digest)
    target = os.path.join(directory, "remo_broker.py")
    if not os.path.exists(target):
        staging = tempfile.mkdtemp(prefix="remo-broker-test-install-")
        with open(os.path.join(staging, "remo_broker.py"), "wb") as handle:
            handle.write(data)
        os.chmod(os.path.join(staging, "remo_broker.py"), 0o644)
        py_compile.compile(os.path.join(staging, "remo_broker.py"), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        try:
            os.rename(staging, directory)
        except OSError:       # another test process installed it first
            shutil.rmtree(staging, ignore_errors=True)
    os.chmod(directory, 0o755)
    _INSTALLED[digest] = directory
    return directory


class Daemon:
    """``remo_broker serve`` in BASE/{run,state,log}, started as the unit starts it."""

    def __init__(self, base, extra_args=(), env=None, rate_limit=None, client_timeout=None, daemon=None, nofile=None,
                 wrapper=()):
        self.base = str(base)
        self.run_dir = os.path.join(self.base, "run")
        self.state_dir = os.path.join(self.base, "state")
        self.log_dir = os.path.join(self.base, "log")
        self.audit_log = os.path.join(self.log_dir, "audit.jsonl")
        self.admin_socket = os.path.join(self.run_dir, "admin.sock")
        self.stderr_path = os.path.join(self.base, "daemon.stderr")
        self.notify_path = os.path.join(self.base, "notify.sock")
        self.projects_root = os.path.join(self.base, "projects")
        self.rate_limit = rate_limit
        self.client_timeout = client_timeout
        self.extra_args = list(extra_args)
        self.env = env
        self.daemon = daemon or DAEMON
        self.nofile = nofile        # RLIMIT_NOFILE (soft and hard) to start the daemon with
        # argv run before the daemon's own (for example prlimit or setpriv); it must exec it
        self.wrapper = list(wrapper)
        self.proc = None
        self.ready_seconds = None
        self._notify = None
        self._t0 = None
        os.makedirs(self.projects_root, mode=0o755, exist_ok=True)

    @property
    def pid(self):
        return self.proc.pid

    def argv(self):
        argv = self.wrapper + [sys.executable, "-s", "-m", "remo_broker", "serve", "--run-dir", self.run_dir,
                               "--state-dir", self.state_dir, "--audit-log", self.audit_log]
        if self.rate_limit is not None:
            argv += ["--rate-limit", str(self.rate_limit)]
        if self.client_timeout is not None:
            argv += ["--client-timeout", str(self.client_timeout)]
        return argv + self.extra_args

    def start(self, wait=True, timeout=20.0):
        """Start; with ``wait``, return once READY=1 arrived on the notify socket."""
        # Only this account may write them, or the daemon refuses to start (docs/daemon.md).
        for directory, mode in ((self.run_dir, 0o755), (self.state_dir, 0o700), (self.log_dir, 0o750)):
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=mode)
        env = dict(os.environ)
        for name in ("NOTIFY_SOCKET", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"):
            env.pop(name, None)
        if self.env:
            env.update(self.env)
        if "NOTIFY_SOCKET" not in env:
            try:
                os.unlink(self.notify_path)
            except FileNotFoundError:
                pass
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(self.notify_path)
            env["NOTIFY_SOCKET"] = self.notify_path
        elif wait:
            raise ValueError("a test that brings its own NOTIFY_SOCKET waits for READY=1 itself (wait=False)")
        env["PYTHONPATH"] = install_daemon(self.daemon)
        self._t0 = time.monotonic()
        with open(self.stderr_path, "ab") as err:
            argv = self.argv()
            if self.nofile:     # prlimit execs the daemon: same pid, the limit set before it starts
                argv = [shutil.which("prlimit") or "/usr/bin/prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile),
                        "--"] + argv
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def vm_kib(self, field="VmHWM"):
        """``field`` (VmRSS, VmHWM, ...) of the daemon from /proc/PID/status, in KiB."""
        with open("/proc/%d/status" % self.proc.pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError("no %s for pid %d" % (field, self.proc.pid))

    def wait_ready(self, timeout=20.0):
        """Wait for READY=1 (or the process exiting: AssertionError with its stderr)."""
        notify = self._notify
        notify.settimeout(0.05)
        deadline = self._t0 + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    msg = notify.recv(4096)
                except socket.timeout:
                    msg = b""
                if b"READY=1" in msg.split(b"\n"):
                    self.ready_seconds = time.monotonic() - self._t0
                    return self
                if self.proc.poll() is not None:
                    raise AssertionError("remo-broker exited with %s:\n%s" % (self.proc.returncode, self.stderr()))
            self.kill()
            raise AssertionError("remo-broker sent no READY=1 in %ss:\n%s" % (timeout, self.stderr()))
        finally:
            notify.close()
            self._notify = None
            try:
                os.unlink(self.notify_path)
            except FileNotFoundError:
                pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    # -- requests -------------------------------------------------------------
    def request(self, req, path=None):
        """One raw request on the admin socket (or ``path``); the decoded reply."""
        return request(path or self.admin_socket, req)

    def admin(self, op, **fields):
        req = {"op": op}
        req.update(fields)
        return request(self.admin_socket, req)

    def admin_ok(self, op, **fields):
        reply = self.admin(op, **fields)
        if reply.get("ok") is not True:
            raise AssertionError("admin %s failed: %r" % (op, reply))
        return reply

    def status(self):
        return self.admin("status")

    def project_socket(self, name):
        """The host-side project socket path (RUN_DIR/NAME.sock, a symlink into its directory)."""
        return os.path.join(self.run_dir, name + ".sock")

    def project(self, project_name, op, **fields):
        req = {"op": op}
        req.update(fields)
        return request(self.project_socket(project_name), req)

    def client(self, path=None, timeout=5.0):
        """The collection's own client (raises BrokerError on an error reply)."""
        from ansible_collections.remo.broker.plugins.module_utils._broker_client import BrokerClient
        return BrokerClient(path or self.admin_socket, timeout=timeout)

    def call(self, op, **fields):
        """An admin request through the collection's client: the reply, or BrokerError."""
        return self.client().request(op, **fields)

    def project_call(self, project_name, op, /, **fields):
        return self.client(self.project_socket(project_name)).request(op, **fields)

    def add_project(self, name, secrets=("TOKEN",), base=None, expected_uid=None, register=True):
        """Write a manifest under BASE/projects/NAME and register it; returns the reply (or the dir)."""
        path = os.path.join(base or self.projects_root, name)
        write_manifest(path, name, secrets)
        if not register:
            return path
        fields = {"name": name, "project_path": path}
        if expected_uid is not None:
            fields["expected_uid"] = expected_uid
        return self.admin_ok("register", **fields)

    def make_project(self, name, secrets, register=True, expected_uid=None):
        """Like add_project; returns the project directory."""
        self.add_project(name, secrets, expected_uid=expected_uid, register=register)
        return os.path.join(self.projects_root, name)

    # -- audit ----------------------------------------------------------------
    def read_audit(self):
        try:
            with open(self.audit_log, encoding="utf-8") as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return []

    def audit_events(self, until=None, settle=True, timeout=10.0):
        """The audit events, once written.

        ``until(events)``: wait until it holds.  Otherwise (``settle``), wait until the
        daemon reports nothing buffered, i.e. every event before this call is written.
        A stopped daemon has written everything: its file is read as it is.
        """
        if until is not None:
            return wait_for(until, timeout, what="an audit event", get=self.read_audit)
        if settle and self.alive():
            wait_for(lambda: self.admin("status")["audit"]["buffered"] == 0, timeout, what="the audit log to be written")
        return self.read_audit()

    def audit_verify(self):
        """(returncode, stdout+stderr) of ``remo_broker.py audit verify``."""
        res = self.run_cli("audit", "verify", "--audit-log", self.audit_log, timeout=300)
        return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")

    # -- process --------------------------------------------------------------
    def run_cli(self, *args, stdin=None, timeout=15):
        """``python3 remo_broker.py ARGS`` (the CLI, by hand)."""
        return subprocess.run([sys.executable, self.daemon] + list(args), input=stdin, capture_output=True,
                              timeout=timeout, check=False, stdin=None if stdin is not None else subprocess.DEVNULL)

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """``sig`` (graceful drain), SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise
        return self.proc.returncode

    def written_files(self):
        """Every file the daemon or the tests' CLI calls wrote, except the manifests."""
        for dirpath, _dirs, files in os.walk(self.base):
            if dirpath.startswith(self.projects_root):
                continue
            for fname in files:
                yield os.path.join(dirpath, fname)


def assert_healthy(broker, project=None):
    """The daemon is alive and answers status (admin) and ping (project)."""
    if not broker.alive():
        raise AssertionError("daemon died (rc=%s):\n%s" % (broker.proc.returncode, broker.stderr()[-4000:]))
    status = broker.admin("status")
    if status.get("ok") is not True or status.get("protocol_version") != 2:
        raise AssertionError("status after the run: %r" % (status,))
    if project is not None:
        ping = broker.project(project, "ping")
        if ping.get("ok") is not True or ping.get("project") != project:
            raise AssertionError("ping after the run: %r" % (ping,))
    return status


def scan_for(needle, roots, skip_prefixes=(), newer_than=None):
    """Paths of regular files under ``roots`` whose bytes contain ``needle``.

    ``newer_than`` (epoch seconds) skips files last modified before it: a value
    generated at that time cannot be in them.
    """
    hits = []
    overlap = len(needle) - 1
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            if any(dirpath.startswith(p) for p in skip_prefixes):
                dirnames[:] = []
                continue
            for fname in filenames:
                path = os.path.join(dirpath, fname)
                try:
                    if not os.path.isfile(path) or os.path.islink(path):
                        continue
                    if newer_than is not None and os.stat(path).st_mtime < newer_than:
                        continue
                    with open(path, "rb") as handle:
                        tail = b""
                        while True:
                            chunk = handle.read(1 << 20)
                            if not chunk:
                                break
                            if needle in tail + chunk:
                                hits.append(path)
                                break
                            tail = chunk[-overlap:] if overlap else b""
                except OSError:
                    continue
    return hits
