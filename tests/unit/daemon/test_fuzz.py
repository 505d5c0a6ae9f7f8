# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Bounded, seeded fuzz run against a LIVE daemon over real Unix sockets.

At least 100,000 mutated and random messages are processed (counted as replies the
daemon actually wrote, not as bytes we pushed), on a project socket and on the admin
socket, pipelined many per connection and cut into random fragments.  Every reply must
be a well-formed reply line with a documented code, or the daemon closes the
connection; it never dies, never hangs, still answers ping and status afterwards and
its RSS stays bounded.  Reproduce a failure with REMO_FUZZ_SEED=<seed>.
"""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import (
    ADMIN_CODES,
    ADMIN_LIMIT,
    PROJECT_CODES,
    PROJECT_LIMIT,
    Daemon,
    RawConn,
    ReplyError,
    assert_healthy,
    check_reply,
    write_manifest,
)
from ansible_collections.remo.broker.tests.unit.daemon.fuzz_inputs import Mutator, admin_corpus, project_corpus

SEED = int(os.environ.get("REMO_FUZZ_SEED", "20261123"))
TARGET_MESSAGES = int(os.environ.get("REMO_FUZZ_MESSAGES", "100000"))
# A cap on a run that stopped making progress, not a speed target: the campaign is the
# message count (the daemon's speed is measured in benchmarks/bench_daemon.py).
TIME_BUDGET = float(os.environ.get("REMO_FUZZ_SECONDS", "900"))
RSS_GROWTH_LIMIT_KIB = 16 * 1024
PROJECT = "fuzzp"
ALLOWED = ["TOKEN", "DB", "API_KEY"]


class Channel:
    """One socket kind (project or admin): a connection that is re-opened when closed."""

    def __init__(self, path, codes, mutator, sentinel):
        self.path = path
        self.codes = codes
        self.mutator = mutator
        self.sentinel = sentinel          # n -> (request line, marker expected in the reply message)
        self.conn = None
        self.replies = 0
        self.connections = 0
        self.closes = 0
        self.by_code = {}

    def batch(self, counter, size):
        """Send ``size`` messages + a sentinel, read up to the sentinel reply or a close."""
        mut = self.mutator
        if self.conn is None:
            self.conn = RawConn(self.path, timeout=20.0)
            self.connections += 1
        conn = self.conn
        line, marker = self.sentinel(counter)
        # Half the batches are long pipelines of answerable requests (the connection
        # stays open across batches), the rest hostile (usually ending in a close).
        benign = mut.rnd.random() < 0.5
        data = b"".join(mut.message(benign) for _i in range(size if not benign else size * 4)) + line
        sent = []
        for piece in mut.fragments(data):
            if not conn.send(piece):
                break
            sent.append(piece)
        while True:
            try:
                raw = conn.read_line()
            except ReplyError as exc:
                raise AssertionError("%s (seed %d, batch %d, sent %r)" % (exc, SEED, counter, b"".join(sent)[:2000]))
            if raw is None:
                # The daemon closed the connection (after a protocol_error): clean.
                self.closes += 1
                conn.close()
                self.conn = None
                return
            try:
                reply = check_reply(raw, self.codes, events_ok=True)
            except ReplyError as exc:
                raise AssertionError("%s (seed %d, batch %d, sent %r)" % (exc, SEED, counter, b"".join(sent)[:2000]))
            if "event" in reply:
                continue
            if reply.get("ok") is False and marker in reply.get("message", ""):
                return
            self.replies += 1
            key = "ok" if reply["ok"] else reply["code"]
            self.by_code[key] = self.by_code.get(key, 0) + 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _project_sentinel(n):
    name = "SENTINEL%d" % n
    return ('{"op":"get","name":"%s"}\n' % name).encode(), "secret %s is" % name


def _admin_sentinel(n):
    name = "sentinel-%d" % n
    return ('{"op":"reload","name":"%s"}\n' % name).encode(), "project %s is" % name


@pytest.mark.slow
def test_fuzz_live_daemon(tmp_path):
    broker = Daemon(tmp_path, rate_limit=0).start()
    try:
        broker.add_project(PROJECT, ALLOWED)
        other = write_manifest(str(tmp_path / "projects" / "fz-other"), "fz-other", ["TOKEN"])
        secrets = {"TOKEN": "tok-value", "DB": {"user": "u", "password": "p"}, "API_KEY": "k\u00e9y"}
        broker.admin_ok("push-creds", secrets=secrets)

        project_ch = Channel(broker.project_socket(PROJECT), PROJECT_CODES,
                             Mutator(SEED, project_corpus(ALLOWED, PROJECT), PROJECT_LIMIT), _project_sentinel)
        admin_ch = Channel(broker.admin_socket, ADMIN_CODES,
                           Mutator(SEED + 1, admin_corpus(other, secrets), ADMIN_LIMIT), _admin_sentinel)
        sizes = Mutator(SEED + 2, [{}], 0).rnd

        start = time.monotonic()
        deadline = start + TIME_BUDGET
        rss_warm = None
        counter = 0
        while project_ch.replies + admin_ch.replies < TARGET_MESSAGES and time.monotonic() < deadline:
            counter += 1
            # 4 project batches per admin batch: the project socket is the exposed one.
            channel = admin_ch if counter % 5 == 0 else project_ch
            channel.batch(counter, sizes.randint(1, 12))
            if counter % 500 == 0:
                if not broker.alive():
                    raise AssertionError("daemon died at batch %d (seed %d):\n%s" % (counter, SEED, broker.stderr()[-4000:]))
                if rss_warm is None and counter >= 1000:
                    rss_warm = broker.rss_kib()
        elapsed = time.monotonic() - start
        project_ch.close()
        admin_ch.close()
        total = project_ch.replies + admin_ch.replies
        rss_end = broker.rss_kib()

        # The fuzz target is still registered: put the secrets back and check it serves.
        broker.admin_ok("register", name=PROJECT, project_path=str(tmp_path / "projects" / PROJECT))
        broker.admin_ok("push-creds", secrets=secrets)
        status = assert_healthy(broker, PROJECT)
        got = broker.project(PROJECT, "get", name="TOKEN")
        assert got == {"ok": True, "name": "TOKEN", "value": "tok-value"}
        assert status["audit"]["healthy"] is True
        print("\nfuzz: seed=%d messages=%d (project %d, admin %d) in %.1fs; connections %d/%d, closes %d/%d; "
              "rss %d -> %d KiB; codes project=%s admin=%s"
              % (SEED, total, project_ch.replies, admin_ch.replies, elapsed, project_ch.connections,
                 admin_ch.connections, project_ch.closes, admin_ch.closes, rss_warm or 0, rss_end,
                 sorted(project_ch.by_code.items()), sorted(admin_ch.by_code.items())))
        assert total >= TARGET_MESSAGES, "only %d messages before the %ss cap" % (total, TIME_BUDGET)
        # internal_error means a handler crashed on client input: never acceptable.
        assert "internal_error" not in project_ch.by_code and "internal_error" not in admin_ch.by_code
        assert rss_warm is not None
        assert rss_end - rss_warm < RSS_GROWTH_LIMIT_KIB, "RSS grew %d KiB during the fuzz run" % (rss_end - rss_warm)
    finally:
        rc = broker.stop()
    assert rc == 0, broker.stderr()[-4000:]
    verify_rc, out = broker.audit_verify()
    assert verify_rc == 0, out
