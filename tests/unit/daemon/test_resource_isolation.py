# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Attacks of one hostile project on the daemon's descriptors, memory and idle timer.

Each test runs a real daemon (``broker_harness.Daemon``), most with a small
RLIMIT_NOFILE so that descriptor exhaustion takes hundreds of connections, not tens
of thousands. The limits themselves are in docs/daemon.md#resource-limits.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.remo.broker.plugins.module_utils import _protocol as P
from ansible_collections.remo.broker.tests.unit.broker_harness import RawConn, assert_healthy, stop_process, wait_for

PING = b'{"op":"ping"}\n'


def _connect_many(path, count):
    """``count`` connections to ``path`` (each may be refused by the daemon later)."""
    return [RawConn(path, timeout=10.0) for _conn in range(count)]


def _refusal(conn, timeout=10.0):
    """The decoded line the daemon sent before closing ``conn``, or None if it stays open."""
    conn.sock.settimeout(timeout)
    try:
        line = conn.read_line()
    except socket.timeout:
        return None
    return json.loads(line) if line else None


def _connections(broker):
    return broker.admin_ok("status")["connections"]


def _close_all(conns):
    for conn in conns:
        conn.close()


def test_idle_flood_from_one_project_leaves_admin_and_other_projects_served(broker_factory):
    """Project A opens every connection it may: it is refused past its share, the admin
    socket and project B still answer, and the refusals are reported once, not each."""
    broker = broker_factory("--max-project-connections", "100000", "--max-peer-connections", "100000", nofile=512)
    broker.add_project("alpha")
    broker.add_project("beta")
    limits = _connections(broker)
    budget = limits["project_budget"]
    assert limits["descriptor_limit"] == 512
    assert budget == 512 - P.FD_RESERVE - 2
    share = budget - P.PROJECT_CONNECTION_FLOOR      # beta keeps its floor
    flood = _connect_many(broker.project_socket("alpha"), share + 40)
    try:
        wait_for(lambda: _connections(broker)["refused"] >= 40, timeout=60, what="40 refusals")
        status = _connections(broker)
        assert status["project_open"] == share, status
        reply = _refusal(flood[-1])
        assert reply["code"] == "too_many_connections" and reply["details"]["scope"] == "daemon", reply
        assert "all projects together" in reply["message"]
        # The admin socket and beta still answer, beta up to its floor.
        assert broker.admin_ok("status")["connections"]["refused"] == 40
        beta = _connect_many(broker.project_socket("beta"), P.PROJECT_CONNECTION_FLOOR)
        try:
            for conn in beta:
                conn.send(PING)
                assert json.loads(conn.read_line())["ok"] is True
        finally:
            _close_all(beta)
        counters = {p["name"]: p["counters"] for p in broker.admin_ok("status")["projects"]}
        assert counters["alpha"]["connections_refused"] == 40
        assert counters["beta"]["connections_refused"] == 0
    finally:
        _close_all(flood)
    wait_for(lambda: _connections(broker)["project_open"] == 0, timeout=30, what="the flood to be closed")
    assert_healthy(broker, "alpha")
    # 40 refusals inside one report interval: one warning, one audit event.
    assert broker.stderr().count("refused") == 1, broker.stderr()
    events = [e for e in broker.audit_events() if e.get("outcome") == "too_many_connections"]
    assert len(events) == 1, events


def _hold(path, count):
    """A child process holding ``count`` connections to ``path``: (process, first refusal or None)."""
    code = (
        "import json, socket, sys\n"
        "conns = []\n"
        "for _ in range(%d):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect(%r); conns.append(s)\n"
        "s.settimeout(5)\n"
        "try:\n"
        "    line = s.recv(4096)\n"
        "except socket.timeout:\n"
        "    line = b''\n"
        "print(line.decode().strip() or 'open', flush=True)\n"
        "sys.stdin.read()\n" % (count, path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_project_and_peer_limits_refuse_with_a_clear_reply(broker_factory):
    broker = broker_factory("--max-project-connections", "12", "--max-peer-connections", "5", nofile=512)
    broker.add_project("alpha")
    # One process: its sixth connection passes the per-process limit.
    first, line = _hold(broker.project_socket("alpha"), 6)
    second = third = None
    try:
        reply = json.loads(line)
        assert reply["code"] == "too_many_connections" and reply["details"] == {"scope": "peer", "limit": 5}, reply
        # Two more processes: together past the project's 12.
        second, line = _hold(broker.project_socket("alpha"), 5)
        assert line == "open"
        third, line = _hold(broker.project_socket("alpha"), 3)
        reply = json.loads(line)
        assert reply["details"] == {"scope": "project", "limit": 12}, reply
        assert _connections(broker)["project_open"] == 12
    finally:
        for proc in (first, second, third):
            if proc is not None:
                proc.stdin.close()
                proc.wait(timeout=30)
    wait_for(lambda: _connections(broker)["project_open"] == 0, timeout=30, what="the holders to be closed")
    assert_healthy(broker, "alpha")


# A client process of project A: queue COUNT connections, then report what each got.
_QUEUE_BURST = """
import json, socket, sys
path, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)     # returns once queued: the daemon is stopped
    conns.append(s)
print("queued", flush=True)
codes, messages = {}, set()
for s in conns[limit:]:     # accepted in order: the first LIMIT are admitted, these refused
    s.settimeout(60)
    line = b""
    while not line.endswith(b"\\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        line += chunk
    reply = json.loads(line) if line else {"code": "closed without a line"}
    codes[reply.get("code")] = codes.get(reply.get("code"), 0) + 1
    messages.add(reply.get("message"))
served = 0
for s in conns[:limit]:
    s.settimeout(60)
    s.sendall(b'{"op":"ping"}\\n')
    served += json.loads(s.recv(4096))["ok"] is True
print(json.dumps({"codes": codes, "messages": sorted(messages, key=str), "served": served}), flush=True)
"""


def test_a_queued_burst_past_the_limits_is_refused_line_by_line(broker_factory):
    """While the daemon is stopped, two processes of project A each queue 150 connections,
    far past the per-process limit. Once it runs again, every connection past the limit
    gets its own ``too_many_connections`` line naming its own process, the first ones are
    served, project B answers, and the burst is one warning."""
    limit = 4
    broker = broker_factory("--max-peer-connections", str(limit), nofile=1024)
    broker.add_project("alpha")
    broker.add_project("beta")
    holders = []
    stop_process(broker.pid)
    try:
        for _process in range(2):
            holder = subprocess.Popen([sys.executable, "-c", _QUEUE_BURST, broker.project_socket("alpha"), "150",
                                       str(limit)], stdout=subprocess.PIPE, text=True)
            holders.append(holder)
            assert holder.stdout.readline().strip() == "queued"
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    for holder in holders:
        result = json.loads(holder.communicate(timeout=120)[0])
        assert result["codes"] == {"too_many_connections": 150 - limit}, result
        assert result["messages"] == ["process %d already has %d open connection(s), the limit; close one and retry"
                                      % (holder.pid, limit)], result
        assert result["served"] == limit, result
    assert _connections(broker)["refused"] == 2 * (150 - limit)
    assert_healthy(broker, "beta")
    assert broker.stderr().count("refused") == 1, broker.stderr()


def test_accept_emfile_is_reported_without_a_log_storm(broker_factory):
    """With the descriptors gone (RLIMIT_NOFILE lowered under the running daemon), every
    accept fails; the socket rests a second after each failure instead of spinning on it.
    The daemon logs one warning per report interval and serves again once descriptors are
    back."""
    broker = broker_factory(nofile=512)
    broker.add_project("alpha")
    resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (40, 512))
    conns = []
    try:
        conns = _connect_many(broker.project_socket("alpha"), 60)
        wait_for(lambda: "cannot accept connections" in broker.stderr(), timeout=30, what="the EMFILE warning")
        # The window over which the listener keeps retrying (once a second) and failing.
        window_end = time.monotonic() + 4
        while time.monotonic() < window_end:
            time.sleep(0.1)
    finally:
        resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (512, 512))
        _close_all(conns)
    status = wait_for(lambda: _connections(broker)["project_open"] == 0 and _connections(broker), timeout=30,
                      what="the daemon to serve again")
    # Retried about once a second over the 4 s window, not once per queued connection or loop pass.
    assert 3 <= status["accept_failures"] <= 4 * 3, status
    warnings = [line for line in broker.stderr().splitlines() if "cannot accept connections" in line]
    assert 1 <= len(warnings) <= 2, warnings
    assert "event loop error" not in broker.stderr()
    assert_healthy(broker, "alpha")


def _flood(conn, payload, limit_bytes, stall=30):
    """Send ``payload`` repeatedly without reading until ``limit_bytes`` are sent, the daemon
    stops reading (``stall`` seconds without progress) or it closes: (bytes sent, closed)."""
    conn.sock.setblocking(False)
    sent = 0
    stalled_since = None
    block = payload * max(1, 65536 // len(payload))
    while sent < limit_bytes:
        try:
            sent += conn.sock.send(block)
            stalled_since = None
        except BlockingIOError:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > stall:
                return sent, False
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            return sent, True
    return sent, False


def _closed_by_daemon(conn, timeout=60.0):
    """True once the daemon closed ``conn`` (EOF or reset; unread replies are discarded)."""
    conn.sock.setblocking(True)
    conn.sock.settimeout(timeout)
    try:
        while True:
            if not conn.sock.recv(1 << 20):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _last_reply(conn):
    """The last line the daemon sent before it closed (None when there is none)."""
    last = None
    try:
        while True:
            line = conn.read_line()
            if line is None:
                return last
            last = line
    except (socket.timeout, OSError):
        return last


def test_never_reading_ping_flooder_is_paused_and_memory_stays_bounded(broker_factory):
    """Every ping past the rate limit still earns a reply line; a client that never reads
    them makes the daemon stop reading it, so its memory stays flat, and it is closed
    at the client timeout (no request of it is served meanwhile)."""
    broker = broker_factory(client_timeout=30, nofile=512)
    broker.add_project("alpha")
    before = broker.vm_kib("VmRSS")
    conn = RawConn(broker.project_socket("alpha"))
    try:
        # The client timeout is longer than the stall: the daemon must stop reading by itself.
        sent, closed = _flood(conn, PING, 16 << 20, stall=10)
        assert not closed
        # The daemon stopped reading long before 16 MiB (about 150 MiB of replies).
        assert sent < 8 << 20, sent
        assert _closed_by_daemon(conn)
    finally:
        conn.close()
    grown = broker.vm_kib("VmHWM") - before
    assert grown < 16 * 1024, "daemon peak RSS grew by %d KiB" % grown
    wait_for(lambda: _connections(broker)["project_open"] == 0, timeout=30, what="the flooder's descriptor to be freed")
    assert_healthy(broker)
    # The flood emptied alpha's token bucket: alpha is served again once it refills.
    wait_for(lambda: broker.project("alpha", "ping").get("ok") is True, timeout=30, what="alpha to be served again")


def test_never_reading_info_flooder_is_paused_by_its_own_output(broker_factory):
    """``info`` on a manifest of long names answers 15 bytes with about 11 KiB, and
    without a rate limit nothing else (audit pressure, rate limit) slows the client:
    only the connection's own output bound keeps 128 KiB of requests from costing the
    daemon some 90 MiB of unsent replies."""
    names = ["NAME_%03d_%s" % (i, "X" * 100) for i in range(100)]
    broker = broker_factory(rate_limit=0, client_timeout=5, nofile=512)
    broker.add_project("alpha", names)
    before = broker.vm_kib("VmRSS")
    conn = RawConn(broker.project_socket("alpha"))
    try:
        _sent, closed = _flood(conn, b'{"op":"info"}\n', 128 << 10, stall=10)
        assert closed or _closed_by_daemon(conn)
    finally:
        conn.close()
    grown = broker.vm_kib("VmHWM") - before
    assert grown < 16 * 1024, "daemon peak RSS grew by %d KiB" % grown
    wait_for(lambda: _connections(broker)["project_open"] == 0, timeout=30, what="the flooder's descriptor to be freed")
    assert_healthy(broker, "alpha")


def test_bare_newline_flooder_gets_nothing_and_is_closed_at_the_timeout(broker_factory):
    broker = broker_factory(client_timeout=3, nofile=512)
    broker.add_project("alpha")
    before = broker.vm_kib("VmRSS")
    conn = RawConn(broker.project_socket("alpha"))
    try:
        _sent, closed = _flood(conn, b"\n", 1 << 40)
        assert closed, "the daemon kept reading bare newlines without closing"
    finally:
        conn.close()
    grown = broker.vm_kib("VmHWM") - before
    assert grown < 16 * 1024, "daemon peak RSS grew by %d KiB" % grown
    status = broker.admin_ok("status")
    assert status["projects"][0]["counters"]["rate_limited"] == 0   # a blank line takes no token


def test_watcher_that_never_reads_is_closed_past_the_hard_limit(broker_factory):
    names = ["NAME_%03d_%s" % (i, "X" * 100) for i in range(120)]
    broker = broker_factory(nofile=512)
    broker.add_project("alpha", names)
    watcher = RawConn(broker.project_socket("alpha"))
    watcher.send(b'{"op":"watch"}\n')
    assert json.loads(watcher.read_line())["ok"] is True
    try:
        # Each push changes every name: one ~14 KiB event line the watcher never reads.
        for round_ in range(400):
            broker.admin_ok("push-creds", secrets={name: "v%d" % round_ for name in names})
            if _connections(broker)["project_open"] == 0:
                break
        assert _connections(broker)["project_open"] == 0, "the watcher's backlog was never cut"
        # Closed past the hard limit: at most that much + one event was ever pending.
        assert round_ * 25000 > P.PROJECT_OUTPUT_HARD_LIMIT
        assert _closed_by_daemon(watcher)
    finally:
        watcher.close()
    events = broker.audit_events(until=lambda evs: any(e.get("reason") == "output_backlog" for e in evs))
    assert [e["event"] for e in events if e.get("reason") == "output_backlog"] == ["protocol"]
    assert_healthy(broker, "alpha")


@pytest.mark.parametrize("filler", [b"\n", PING], ids=["bare-newline", "rate-limited-ping"])
def test_idle_timer_is_not_reset_by_blank_lines_or_rate_limited_requests(broker_factory, filler):
    # One token and almost no refill: after the first ping every request is rate limited.
    broker = broker_factory("--rate-burst", "1", rate_limit=0.001, client_timeout=2, nofile=512)
    broker.add_project("alpha")
    conn = RawConn(broker.project_socket("alpha"), timeout=1)
    try:
        conn.send(PING)
        assert json.loads(conn.read_line())["ok"] is True
        timeout_reply = None
        deadline = time.monotonic() + 30
        while timeout_reply is None and time.monotonic() < deadline:
            if not conn.send(filler):
                # The daemon closed first; its timeout reply may still wait unread.
                line = _last_reply(conn)
                if line is not None and json.loads(line).get("details", {}).get("reason") == "timeout":
                    timeout_reply = json.loads(line)
                break
            try:
                line = conn.read_line()
            except socket.timeout:
                continue
            if line is None:
                break
            reply = json.loads(line)
            if reply.get("details", {}).get("reason") == "timeout":
                timeout_reply = reply
            else:
                assert reply["code"] == "rate_limited", reply
        assert timeout_reply is not None, "the connection outlived the client timeout"
    finally:
        conn.close()


def test_project_socket_admits_its_uid_through_an_acl_and_no_other(broker_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as other uids")
    broker = broker_factory(nofile=512)
    os.chmod(broker.base, 0o755)
    broker.add_project("alpha", expected_uid=4321)
    path = os.path.realpath(broker.project_socket("alpha"))
    assert os.stat(path).st_uid == os.geteuid()
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "    s.connect(%r)\n"
            "except PermissionError:\n"
            "    print('EACCES'); sys.exit()\n"
            "s.sendall(b'{\"op\":\"ping\"}\\n'); print(s.recv(4096).decode().strip())\n" % path)

    def as_uid(uid):
        return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                               "/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout

    assert json.loads(as_uid(4321))["project"] == "alpha"
    assert as_uid(4322).strip() == "EACCES"
