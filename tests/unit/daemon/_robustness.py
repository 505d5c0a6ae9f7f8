# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

"""Shared helpers for the daemon robustness tests (fuzz, properties, kill, soak).

Everything here talks to a REAL ``remo_broker.py serve`` child process over real Unix
sockets, with a raw test-side NDJSON reader (independent of the collection's client,
so a client bug cannot hide a daemon bug).  Stdlib only, so ``benchmarks/`` can import
it too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

COLLECTION_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DAEMON = os.path.join(COLLECTION_ROOT, "roles", "broker_install", "files", "remo_broker.py")

# Documented reply codes (docs/CONTRACTS.md).  Kept literally here rather than taken
# from _protocol.py, so the tests check the daemon against the CONTRACT.
PROJECT_CODES = frozenset(("denied", "not_found", "rate_limited", "protocol_error", "internal_error",
                           "peer_unexpected"))
ADMIN_CODES = frozenset(("protocol_error", "invalid_payload", "payload_too_large", "manifest_invalid",
                         "manifest_not_found", "not_registered", "conflict", "internal_error"))
PROJECT_LIMIT = 65536
ADMIN_LIMIT = 1048576


class ReplyError(AssertionError):
    """A reply line that breaks the wire contract."""


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
def write_manifest(project_dir, name, secrets=("TOKEN",), extra=""):
    """Create PROJECT_DIR/.remo/manifest.toml allowing ``secrets`` (env fetch)."""
    os.makedirs(os.path.join(project_dir, ".remo"), exist_ok=True)
    lines = ["schema_version = 2", 'project = "%s"' % name, ""]
    for secret in secrets:
        lines += ["[secrets.%s]" % secret, 'fetch_as = "env"', ""]
    with open(os.path.join(project_dir, ".remo", "manifest.toml"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + extra)
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


class BrokerProc:
    """``remo_broker.py serve`` in BASE/{run,state,log}; readiness via our NOTIFY_SOCKET."""

    def __init__(self, base, rate_limit=0, client_timeout=None, extra_args=(), module=False):
        self.base = str(base)
        # module=True starts it the way the systemd unit does: `python -s -m remo_broker`
        # with PYTHONPATH (bytecode, and no AST of the whole file kept alive by the
        # script runner for the process lifetime: ~7 MiB less RSS).
        self.module = module
        self.run_dir = os.path.join(self.base, "run")
        self.state_dir = os.path.join(self.base, "state")
        self.log_dir = os.path.join(self.base, "log")
        self.audit_log = os.path.join(self.log_dir, "audit.jsonl")
        self.admin_socket = os.path.join(self.run_dir, "admin.sock")
        self.stderr_path = os.path.join(self.base, "daemon.stderr")
        self.notify_path = os.path.join(self.base, "notify.sock")
        self.rate_limit = rate_limit
        self.client_timeout = client_timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self.ready_seconds = None

    @property
    def pid(self):
        return self.proc.pid

    def argv(self):
        if self.module:
            head = [sys.executable, "-s", "-m", os.path.splitext(os.path.basename(DAEMON))[0]]
        else:
            head = [sys.executable, DAEMON]
        argv = head + ["serve", "--run-dir", self.run_dir, "--state-dir", self.state_dir,
                       "--audit-log", self.audit_log]
        if self.rate_limit is not None:
            argv += ["--rate-limit", str(self.rate_limit)]
        if self.client_timeout is not None:
            argv += ["--client-timeout", str(self.client_timeout)]
        return argv + self.extra_args

    def start(self, timeout=20.0):
        """Start and wait for READY=1 on the notify socket; returns self."""
        for directory in (self.run_dir, self.state_dir, self.log_dir):
            os.makedirs(directory, exist_ok=True)
        try:
            os.unlink(self.notify_path)
        except FileNotFoundError:
            pass
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(self.notify_path)
        notify.settimeout(0.1)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.notify_path
        if self.module:
            env["PYTHONPATH"] = os.path.dirname(DAEMON)
            # Never write bytecode into the checkout.  (Not PYTHONPYCACHEPREFIX: that also
            # moves the stdlib's cache, so every start recompiled the stdlib: +200 ms.)
            # The role byte-compiles at install time, so this start is a bit slower than
            # production's (it compiles remo_broker itself).
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        t0 = time.monotonic()
        try:
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                try:
                    msg = notify.recv(4096)
                except socket.timeout:
                    msg = b""
                if b"READY=1" in msg.split(b"\n"):
                    self.ready_seconds = time.monotonic() - t0
                    return self
                if self.proc.poll() is not None:
                    raise RuntimeError("remo-broker exited with %s:\n%s" % (self.proc.returncode, self.stderr()))
            self.kill()
            raise RuntimeError("remo-broker sent no READY=1 in %ss:\n%s" % (timeout, self.stderr()))
        finally:
            notify.close()
            try:
                os.unlink(self.notify_path)
            except FileNotFoundError:
                pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def admin(self, op, **fields):
        req = {"op": op}
        req.update(fields)
        return request(self.admin_socket, req)

    def admin_ok(self, op, **fields):
        reply = self.admin(op, **fields)
        if reply.get("ok") is not True:
            raise AssertionError("admin %s failed: %r" % (op, reply))
        return reply

    def project_socket(self, name):
        return os.path.join(self.run_dir, name + ".sock")

    def project(self, project_name, op, **fields):
        req = {"op": op}
        req.update(fields)
        return request(self.project_socket(project_name), req)

    def add_project(self, name, secrets=("TOKEN",), base=None):
        """Write a manifest under BASE/projects/NAME and register it; returns the reply."""
        path = os.path.join(base or os.path.join(self.base, "projects"), name)
        write_manifest(path, name, secrets)
        return self.admin_ok("register", name=name, project_path=path)

    def audit_verify(self):
        """(returncode, stdout+stderr) of ``remo_broker.py audit verify``."""
        res = subprocess.run([sys.executable, DAEMON, "audit", "verify", "--audit-log", self.audit_log],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False)
        return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def kill(self):
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM (graceful drain), SIGKILL after 15 s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


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


# ---------------------------------------------------------------------------
# Fuzz corpus and mutators
# ---------------------------------------------------------------------------
def project_corpus(allowed, project):
    """One valid request of every project-socket op (plus variants)."""
    return [
        {"op": "get", "name": allowed[0]},
        {"op": "get", "name": allowed[-1], "field": "user"},
        {"op": "get", "name": "NOT_ALLOWED"},
        {"op": "get", "name": allowed[0], "project": project, "extra": [1, 2, {"x": None}]},
        {"op": "ping"},
        {"op": "ping", "project": project},
        {"op": "info"},
        {"op": "watch"},
        {"op": "status"},
    ]


def admin_corpus(project_path, secrets):
    """One valid request of every admin op.  Nothing here unregisters the fuzz target."""
    return [
        {"op": "ping"},
        {"op": "status"},
        {"op": "register", "name": "fz-other", "project_path": project_path},
        {"op": "register", "name": "fz-nope", "project_path": "/nonexistent/dir"},
        {"op": "reload", "name": "fz-other"},
        {"op": "unregister", "name": "fz-gone"},
        {"op": "push-creds", "secrets": secrets},
        {"op": "diff-creds", "secrets": secrets},
        {"op": "clear-creds"},
        {"op": "get", "name": "TOKEN"},
    ]


_INTERESTING_VALUES = [
    None, True, False, 0, -1, 1 << 63, 1 << 70, 1e308, -0.0, 3.5, "", " ", "\x00", "\ud800", "\udfff",
    "\ud83d\ude00", "a" * 300, "TOKEN\n", "../../etc/passwd", "/", "/tmp", "\u202e", [], {}, [[[]]],
    {"a": {"b": {"c": []}}}, ["TOKEN"], {"TOKEN": 1}, "admin", "0", "NaN",
]
_INTERESTING_RAW = [
    b"", b" ", b"\t", b"\r", b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"null", b"[]", b"{}",
    b'{"op":', b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"1" * 5000, b'"\\ud800"', b'"\\u0000"',
    b'{"op":"get","op":"ping"}', b'{"op":"get","name":"TOKEN"', b"\xef\xbb\xbf{}",
]


class Mutator:
    """Seeded generator of mutated / random request lines (bytes, each ending in b"\\n")."""

    def __init__(self, seed, corpus, limit):
        self.rnd = random.Random(seed)
        self.corpus = corpus
        self.encoded = [json.dumps(req, separators=(",", ":")).encode() for req in corpus]
        self.limit = limit

    def _json_value(self, depth=0):
        rnd = self.rnd
        kind = rnd.random()
        if kind < 0.45 or depth > 3:
            return rnd.choice(_INTERESTING_VALUES)
        if kind < 0.6:
            return rnd.randint(-(1 << 40), 1 << 40)
        if kind < 0.75:
            return "".join(chr(rnd.choice((rnd.randint(0, 0x7f), rnd.randint(0, 0x10ffff))))
                           for _i in range(rnd.randint(0, 40)))
        if kind < 0.9:
            return [self._json_value(depth + 1) for _i in range(rnd.randint(0, 4))]
        return {self.rnd.choice(("op", "name", "field", "secrets", "project", "x")): self._json_value(depth + 1)
                for _i in range(rnd.randint(0, 4))}

    def structural(self):
        """A valid JSON line with fields replaced, dropped, added or re-typed."""
        rnd = self.rnd
        req = dict(rnd.choice(self.corpus))
        for _i in range(rnd.randint(1, 3)):
            action = rnd.random()
            keys = list(req)
            if action < 0.35 and keys:
                req[rnd.choice(keys)] = self._json_value()
            elif action < 0.5 and keys:
                del req[rnd.choice(keys)]
            elif action < 0.75:
                req[rnd.choice(("extra", "field", "name", "secrets", "project", "op", "expected_uid"))] = self._json_value()
            elif action < 0.9:
                req["op"] = rnd.choice(("get", "ping", "info", "watch", "status", "register", "push-creds",
                                        "diff-creds", "clear-creds", "reload", "GET", "", "get ", None, 7))
            else:
                req = rnd.choice((self._json_value(), [req], "op"))
                break
        text = json.dumps(req, ensure_ascii=rnd.random() < 0.5)
        return text.encode("utf-8", "surrogatepass")

    def benign(self):
        """A request the daemon should answer without closing: right types, odd values."""
        rnd = self.rnd
        req = dict(rnd.choice(self.corpus))
        for _i in range(rnd.randint(0, 3)):
            action = rnd.random()
            if action < 0.4:
                req[rnd.choice(("extra", "x", "project", "pad", "secrets_", "\u0000"))] = self._json_value()
            elif action < 0.8 and isinstance(req.get("name"), str):
                req["name"] = rnd.choice((
                    "".join(chr(rnd.randint(0, 0x10ffff)) for _i in range(rnd.randint(0, 20))),
                    rnd.choice(("TOKEN", "DB", "API_KEY", "A" * 128, "A" * 129, "", "\ud800", "\x00",
                                "token", "T OKEN", "fz-other", "admin"))))
            elif "field" in req:
                req["field"] = rnd.choice(("user", "password", "", "\ud800", "nope"))
        text = json.dumps(req, ensure_ascii=rnd.random() < 0.5)
        return text.encode("utf-8", "surrogatepass")

    def bytewise(self):
        """A valid request with random byte edits (flip, insert, delete, splice)."""
        rnd = self.rnd
        data = bytearray(rnd.choice(self.encoded))
        for _i in range(rnd.randint(1, 4)):
            action = rnd.random()
            pos = rnd.randint(0, len(data))
            if action < 0.3 and data:
                data[min(pos, len(data) - 1)] = rnd.randint(0, 255)
            elif action < 0.5:
                data[pos:pos] = rnd.choice(_INTERESTING_RAW)
            elif action < 0.7 and data:
                del data[pos:pos + rnd.randint(1, 8)]
            elif action < 0.85:
                other = rnd.choice(self.encoded)
                data[pos:pos] = other[rnd.randint(0, len(other)):]
            else:
                data = data[:pos]
        return bytes(data)

    def random_bytes(self):
        rnd = self.rnd
        return bytes(rnd.getrandbits(8) for _i in range(rnd.randint(0, 200)))

    def special(self):
        """Huge lines, deep nesting, long numbers, NULs."""
        rnd = self.rnd
        pick = rnd.randint(0, 7)
        if pick == 0:
            depth = rnd.choice((100, 1000, 20000, self.limit // 2 - 10))
            return b"[" * depth + b"]" * depth
        if pick == 1:
            depth = rnd.choice((50, 900, 5000))
            return b'{"op":' * depth + b'"ping"' + b"}" * depth
        if pick == 2:
            # just over the limit (the daemon must refuse and close, never buffer forever)
            return b'{"op":"get","name":"' + b"A" * (self.limit + rnd.randint(1, 2000)) + b'"}'
        if pick == 3:
            # just under the limit: a valid but huge request
            return b'{"op":"ping","pad":"' + b"x" * (self.limit - rnd.randint(40, 200)) + b'"}'
        if pick == 4:
            return b'{"op":"get","name":' + b"9" * rnd.choice((10, 4300, 4301, 20000)) + b"}"
        if pick == 5:
            return b'{"op":"get","name":"TO\x00KEN"}'
        if pick == 6:
            return b'{"op":"get","name":"\\ud800\\udc00\\udfff"}'
        return b'{"op":"ping"}' + b" " * rnd.randint(1, 1000) + b"\x00"

    def message(self, benign=False):
        """One message: bytes ending in a newline (embedded newlines make several lines).

        ``benign`` mostly yields requests the daemon answers without closing the
        connection, so long pipelines get exercised too.
        """
        r = self.rnd.random()
        if benign and r < 0.95:
            return self.benign() + b"\n"
        if r < 0.38:
            body = self.structural()
        elif r < 0.73:
            body = self.bytewise()
        elif r < 0.83:
            body = self.random_bytes()
        elif r < 0.93:
            body = self.rnd.choice(self.encoded)
        else:
            body = self.special()
        return body + b"\n"

    def fragments(self, data):
        """Split ``data`` into 1-4 random pieces (exercises the daemon's line buffering)."""
        cuts = sorted(self.rnd.randint(0, len(data)) for _i in range(self.rnd.randint(0, 3)))
        out, prev = [], 0
        for cut in cuts + [len(data)]:
            out.append(data[prev:cut])
            prev = cut
        return [piece for piece in out if piece]


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
