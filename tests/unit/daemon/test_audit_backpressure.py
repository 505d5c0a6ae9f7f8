# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The audit writer process: bounded backlog (backpressure), crash and stop behaviour.

Audit events are sent from the event loop to a writer process started after READY,
which formats, chains and appends them.  When a project has more than its share of
AUDIT_HIGH_WATER events not yet consumed by the writer (all of it when it is the only
project), the daemon stops reading that project's connections until it is below a
quarter of its share: memory stays bounded, and so does the number of served requests
without an audit line.  These tests stop the writer with SIGSTOP to force it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon, assert_healthy, stop_process, wait_for

HIGH_WATER = 10000      # AUDIT_HIGH_WATER in remo_broker.py
BATCH = 1024            # AUDIT_BATCH
READ_LINES = 262144 // len(b'{"op":"get","name":"TOKEN"}\n') + 1   # most lines one read (256 KiB) can hold
GET = b'{"op":"get","name":"TOKEN"}\n'
VALUE = "tok-" + "v" * 20


def _start(tmp_path):
    # These tests stop the writer on purpose; its stall detection (fail closed after
    # 10 s without progress) is test_audit_hardening.py's concern.
    broker = Daemon(tmp_path, ("--audit-stall-timeout", "600"), rate_limit=0).start()
    broker.add_project("bp", ("TOKEN",))
    broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
    return broker


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid, timeout=10.0):
    wait_for(lambda: not _alive(pid), timeout, what="process %d to exit" % pid)


def _audit_gets(path):
    with open(path, "rb") as handle:
        return sum(1 for line in handle if b'"event":"get"' in line and line.endswith(b"\n"))


def _wait_drained(broker, timeout=20.0):
    def drained():
        audit = broker.admin("status")["audit"]
        return audit if audit["buffered"] == 0 and not audit.get("backpressure") else None
    return wait_for(drained, timeout, what="the audit backlog to drain")


class Counter:
    """Reads replies of one connection in a thread and counts complete lines."""

    def __init__(self, sock):
        self.sock = sock
        self.lines = 0
        self.bad = 0
        self.data_tail = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                if line != b'{"ok":true,"name":"TOKEN","value":"%s"}' % VALUE.encode():
                    self.bad += 1
            self.lines += len(lines)

    def settle(self, quiet=1.0, timeout=30.0):
        """Wait until no new reply arrived for ``quiet`` seconds; returns the count."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.lines != last:
                last, since = self.lines, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return last
            time.sleep(0.05)
        return self.lines


def test_writer_process_is_reported_in_status_and_exits_with_the_daemon(tmp_path):
    broker = _start(tmp_path)
    try:
        audit = broker.admin("status")["audit"]
        pid = audit["writer_pid"]
        assert isinstance(pid, int) and pid != broker.pid and _alive(pid)
        assert audit["healthy"] is True and audit["backpressure"] is False
        # The writer holds no secret: it was forked before the push, and never receives values.
        assert broker.project("bp", "get", name="TOKEN")["value"] == VALUE
    finally:
        assert broker.stop() == 0
    _wait_gone(pid, timeout=5)
    with open(broker.audit_log, "rb") as handle:
        assert VALUE.encode() not in handle.read()
    events = [json.loads(line) for line in open(broker.audit_log, "rb")]
    assert events[-1]["event"] == "stop"     # flushed at SIGTERM, after the drain
    assert broker.audit_verify()[0] == 0


def test_backpressure_bounds_the_backlog_while_the_writer_is_stuck(tmp_path):
    broker = _start(tmp_path)
    total = 40000
    sock = None
    try:
        writer = broker.admin("status")["audit"]["writer_pid"]
        before = _audit_gets(broker.audit_log) if os.path.exists(broker.audit_log) else 0
        stop_process(writer)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(broker.project_socket("bp"))
            counter = Counter(sock)
            sender = threading.Thread(target=sock.sendall, args=(GET * total,), daemon=True)
            sender.start()
            served = counter.settle(quiet=1.5)
            # The daemon stopped reading: the backlog (and the served-but-unaudited
            # requests) stay below the high-water mark plus one batch and one read.
            assert served < total, "no backpressure: all %d requests served while the writer was stopped" % served
            assert served <= HIGH_WATER + BATCH + READ_LINES, served
            audit = broker.admin("status")["audit"]     # the admin socket still answers
            assert audit["backpressure"] is True, audit
            assert HIGH_WATER <= audit["buffered"] <= HIGH_WATER + BATCH + READ_LINES, audit
        finally:
            os.kill(writer, signal.SIGCONT)
        sender.join(timeout=60)
        wait_for(lambda: counter.lines >= total, 60, what="every reply")
        assert counter.lines == total and counter.bad == 0, (counter.lines, counter.bad)
        audit = _wait_drained(broker)
        assert audit["healthy"] is True and audit["dropped"] == 0, audit
        assert _audit_gets(broker.audit_log) - before == total
        assert_healthy(broker, "bp")
    finally:
        if sock is not None:
            sock.close()
        assert broker.stop() == 0
    rc, out = broker.audit_verify()
    assert rc == 0, out


def test_sigkill_of_the_daemon_loses_at_most_one_batch_of_audit_lines(tmp_path):
    broker = _start(tmp_path)
    try:
        writer = broker.admin("status")["audit"]["writer_pid"]
        _wait_drained(broker)
        before = _audit_gets(broker.audit_log)
        n = 20000
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(broker.project_socket("bp"))
        counter = Counter(sock)
        sock.sendall(GET * n)
        wait_for(lambda: counter.lines >= n, 60, interval=0.001, what="every reply")
        assert counter.lines == n
        broker.kill()
        sock.close()
        # The writer drains what the daemon had sent, then exits on EOF.
        _wait_gone(writer)
        missing = n - (_audit_gets(broker.audit_log) - before)
        assert 0 <= missing <= HIGH_WATER + BATCH + READ_LINES, missing
        # A restart waits for the old writer (file lock) and continues the chain.
        broker.start()
        assert broker.project("bp", "ping")["ok"] is True
    finally:
        assert broker.stop() == 0
    rc, out = broker.audit_verify()
    assert rc == 0, out


def test_a_dead_writer_is_reported_and_the_daemon_fails_closed(tmp_path):
    broker = _start(tmp_path)
    try:
        writer = broker.admin("status")["audit"]["writer_pid"]
        os.kill(writer, signal.SIGKILL)
        _wait_gone(writer)
        # the next batch sent to the pipe finds the writer gone; from then on no value is
        # served without its audit line (test_audit_hardening.py covers the refusal)
        audit = wait_for(lambda a: a["healthy"] is False, what="the dead writer to be reported",
                         get=lambda: (broker.project("bp", "ping"), broker.admin("status")["audit"])[1])
        assert audit["healthy"] is False and audit["last_error"] == "audit writer process exited", audit
        assert audit["write_errors"] >= 1 and audit["dropped"] >= 1
        assert audit["backpressure"] is False
        wait_for(lambda: broker.admin("status")["audit"]["available"] is False, what="the refusal to start")
        assert broker.project("bp", "get", name="TOKEN")["code"] == "audit_unavailable"
        assert broker.project("bp", "ping")["ok"] is True
    finally:
        assert broker.stop() == 0
