# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fair turns: a project that pipelines thousands of requests cannot make another wait behind them.

The daemon answers fewer than two shares of ``PROJECT_TURN_REQUESTS`` requests of one
project per event-loop pass, and one share per pass while its connections wait for a
turn (docs/daemon.md#fair-turns).  The order the daemon handled requests in
is the order of their audit lines, so the tests read it from there.
"""

from __future__ import annotations

import json
import os
import signal
import threading

from ansible_collections.remo.broker.plugins.module_utils import _protocol as P
from ansible_collections.remo.broker.tests.unit.broker_harness import RawConn, assert_healthy, stop_process

PING = b'{"op":"ping"}\n'
A_CONNECTIONS = 4
A_PIPELINED = 1000      # per connection: its replies fit the socket buffer, no output backpressure
B_PIPELINED = 1000      # both under a project's share of the audit backlog: no audit pause


def _read_replies(conn, count):
    replies = [json.loads(conn.read_line()) for _i in range(count)]
    return sum(1 for reply in replies if reply.get("ok") is True)


def _longest_run(sequence, value):
    best = run = 0
    for item in sequence:
        run = run + 1 if item == value else 0
        best = max(best, run)
    return best


def test_a_pipelining_project_gets_one_share_per_pass_while_another_waits(broker_factory):
    broker = broker_factory(rate_limit=0)
    broker.add_project("alpha")
    broker.add_project("beta")
    flood = [RawConn(broker.project_socket("alpha"), timeout=60) for _i in range(A_CONNECTIONS)]
    neighbour = RawConn(broker.project_socket("beta"), timeout=60)
    conns = flood + [neighbour]
    try:
        for conn in conns:      # every connection accepted and admitted before the daemon stops
            conn.send(PING)
            assert json.loads(conn.read_line())["ok"] is True
        before = len([e for e in broker.audit_events(until=lambda ev: sum(e["event"] == "ping" for e in ev) >= 5)
                      if e["event"] == "ping"])
        # Everything is queued while the daemon is stopped, alpha's connections first: its
        # first pass finds all of it readable, and alpha's reads come first.
        stop_process(broker.pid)
        try:
            for conn in flood:
                assert conn.send(PING * A_PIPELINED)
            assert neighbour.send(PING * B_PIPELINED)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert _read_replies(neighbour, B_PIPELINED) == B_PIPELINED
        for conn in flood:
            assert _read_replies(conn, A_PIPELINED) == A_PIPELINED
        total = before + A_CONNECTIONS * A_PIPELINED + B_PIPELINED
        events = broker.audit_events(until=lambda ev: sum(e["event"] == "ping" for e in ev) >= total, timeout=60)
        order = [e["project"] for e in events if e["event"] == "ping"][before:]
        assert len(order) == total - before and order.count("beta") == B_PIPELINED
        first_b = order.index("beta")
        last_b = len(order) - 1 - order[::-1].index("beta")
        # alpha answers less than two shares in the pass that reads beta's first request (what
        # it answered before its turn started, then a share), one more when the daemon woke
        # for alpha's reads a pass before beta's (seen under load: 92), and at most two
        # between two of beta's (the end of one pass, the turn of the next), never a whole read.
        assert first_b < 3 * P.PROJECT_TURN_REQUESTS, first_b
        assert _longest_run(order[first_b:last_b + 1], "alpha") <= 2 * P.PROJECT_TURN_REQUESTS
        # So beta is done long before alpha's 4000: about one of alpha's for each of its own.
        assert order[:last_b].count("alpha") <= 2 * B_PIPELINED, order[:last_b].count("alpha")
    finally:
        for conn in conns:
            conn.close()
    assert_healthy(broker, "beta")


def test_a_rate_limited_flood_answers_a_smaller_share_per_pass(broker_factory):
    """Past its rate limit a project's requests are all ``rate_limited`` and cost
    RATE_LIMITED_TURN_COST of its share each: its queued flood takes that many more turns."""
    broker = broker_factory("--rate-burst", str(P.PROJECT_TURN_REQUESTS), rate_limit=1)
    broker.add_project("alpha")
    flood = [RawConn(broker.project_socket("alpha"), timeout=60) for _i in range(A_CONNECTIONS)]
    try:
        for conn in flood:      # admitted before the daemon stops; one token each
            conn.send(PING)
            assert json.loads(conn.read_line())["ok"] is True
        waits_before = broker.admin_ok("status")["connections"]["turn_waits"]
        stop_process(broker.pid)
        try:
            for conn in flood:
                assert conn.send(PING * A_PIPELINED)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        codes = {}
        for conn in flood:
            for _i in range(A_PIPELINED):
                code = json.loads(conn.read_line()).get("code", "ok")
                codes[code] = codes.get(code, 0) + 1
        assert codes.get("rate_limited", 0) >= A_CONNECTIONS * A_PIPELINED - P.PROJECT_TURN_REQUESTS - 5, codes
        waits = broker.admin_ok("status")["connections"]["turn_waits"] - waits_before
        # One wait per pass: 4,000 refusals at 32 / 4 per pass, against 4,000 / 32 at full cost.
        share = P.PROJECT_TURN_REQUESTS // P.RATE_LIMITED_TURN_COST
        assert waits >= 0.9 * codes["rate_limited"] / share, (waits, codes)
    finally:
        for conn in flood:
            conn.close()
    assert_healthy(broker)


def test_a_connection_that_keeps_sending_while_it_waits_for_turns_is_answered_in_order(broker_factory):
    """4 MiB of pipelined gets sent without pause: many reads arrive while the connection
    waits for its turn; each is kept, and every request is answered once, in order."""
    broker = broker_factory(rate_limit=0)
    broker.add_project("alpha", ("TOKEN", "OTHER"))
    broker.admin_ok("push-creds", secrets={"TOKEN": "t-value", "OTHER": "o-value"})
    names = ["TOKEN" if i % 3 else "OTHER" for i in range(150000)]
    payload = b"".join(b'{"op":"get","name":"%s"}\n' % name.encode() for name in names)
    conn = RawConn(broker.project_socket("alpha"), timeout=60)
    sender = threading.Thread(target=conn.sock.sendall, args=(payload,), daemon=True)
    try:
        sender.start()
        got = [json.loads(conn.read_line()).get("name") for _name in names]
        sender.join(60)
        assert not sender.is_alive()
        assert got == names
        assert broker.admin_ok("status")["connections"]["turn_waits"] >= len(names) // P.PROJECT_TURN_REQUESTS // 2
    finally:
        conn.close()
    assert_healthy(broker, "alpha")


def test_runs_of_bare_newlines_answer_nothing_and_keep_the_requests_between_them(broker_factory):
    """Blank lines are dropped in bulk: the requests among them are answered, in order, once each."""
    broker = broker_factory(rate_limit=0)
    broker.add_project("alpha", ("TOKEN", "OTHER"))
    broker.admin_ok("push-creds", secrets={"TOKEN": "t-value", "OTHER": "o-value"})
    conn = RawConn(broker.project_socket("alpha"), timeout=30)
    try:
        payload = (b"\n" * 70001 + b'{"op":"get","name":"TOKEN"}' + b"\n" * 3 + b'{"op":"get","name":"OTHER"}\n'
                   + b"\n" * 2 + PING + b"\n" * 65536 + b'{"op":"get",' + b"\n" * 5)
        assert conn.send(payload)
        names = [json.loads(conn.read_line()).get("name") for _i in range(2)]
        assert names == ["TOKEN", "OTHER"]
        assert json.loads(conn.read_line())["ok"] is True      # the ping
        # The request split by newlines is two bad lines: a protocol error, then the close.
        assert json.loads(conn.read_line())["code"] == "protocol_error"
        assert conn.read_line() is None
    finally:
        conn.close()
    assert_healthy(broker, "alpha")
