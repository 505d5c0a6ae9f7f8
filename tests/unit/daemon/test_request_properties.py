# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Property tests of the daemon's request parser (hypothesis).

Whatever bytes a client sends (random bytes, truncated or mutated valid requests,
huge lines, deep nesting, NUL bytes, surrogates, numbers as names, extra fields), every
reply is a well-formed JSON object line with ``ok`` and, when false, a ``code`` from the
documented set, or the daemon closes the connection cleanly; the daemon never dies.

Two layers:
* LIVE: a real ``remo_broker.py serve`` process, real sockets (the client half-closes,
  so the exchange ends deterministically when the daemon closes).
* IN-PROCESS: the daemon's source modules; bytes fed straight into its
  per-connection protocol object (``Connection.data_received``) with a recording
  transport (no sockets, no event loop), including the properties that the way a
  byte stream is cut into reads never changes the replies, and that every read is
  answered with ONE write.

Examples are derandomized (the same on every CI run) and no example database is
written; set REMO_HYPOTHESIS_RANDOM=1 to explore new examples locally.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.remo.broker.plugins.module_utils._daemon.cli import build_parser
from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import Connection
from ansible_collections.remo.broker.plugins.module_utils._daemon.registry import Project
from ansible_collections.remo.broker.plugins.module_utils._daemon.server import Broker
from ansible_collections.remo.broker.tests.unit.broker_harness import (
    ADMIN_CODES,
    ADMIN_LIMIT,
    DAEMON,
    PROJECT_CODES,
    PROJECT_LIMIT,
    Daemon,
    RawConn,
    ReplyError,
    assert_healthy,
    check_reply,
    write_manifest,
)

_RANDOM = os.environ.get("REMO_HYPOTHESIS_RANDOM") == "1"
LIVE = settings(max_examples=150, deadline=None, derandomize=not _RANDOM, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
INPROC = settings(max_examples=300, deadline=None, derandomize=not _RANDOM, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PROJECT = "propp"
ALLOWED = ("TOKEN", "DB")
SECRETS = {"TOKEN": "tok-value", "DB": {"user": "u", "password": "p"}}
SECRET_NAME = re.compile(r"^[A-Za-z0-9_]{1,128}$")
PROJECT_OPS = ("get", "ping", "info", "watch")
ADMIN_OPS = ("status", "register", "unregister", "reload", "push-creds", "diff-creds", "clear-creds", "ping")


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------
_text = st.text(alphabet=st.characters(codec=None), max_size=40)  # incl. lone surrogates and NUL
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=1 << 60),
                      st.floats(allow_nan=False), _text)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(_text, inner, max_size=4), max_leaves=12)
name_value = st.one_of(st.sampled_from(ALLOWED + ("NOPE", "", "A" * 129, "fz", "admin")), _text,
                       st.integers(), st.floats(allow_nan=False), st.none(), st.lists(json_leaf, max_size=3),
                       st.dictionaries(_text, json_leaf, max_size=2))


@st.composite
def requests(draw, ops):
    """A JSON object request: a known (or odd) op, odd field values, extra fields."""
    req = {"op": draw(st.one_of(st.sampled_from(ops), st.sampled_from(ops), json_value))}
    for key in ("name", "field", "project_path", "secrets", "expected_uid"):
        if draw(st.booleans()):
            req[key] = draw(name_value if key == "name" else json_value)
    req.update(draw(st.dictionaries(_text, json_value, max_size=3)))
    return req


def encode(req, ascii_only):
    # ensure_ascii=False + surrogatepass gives non-UTF-8 bytes for lone surrogates.
    return json.dumps(req, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw, ops):
    """A valid request's bytes, then truncated / edited / spliced."""
    data = bytearray(encode(draw(requests(ops)), draw(st.booleans())))
    for _i in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            data = data[:pos]
        elif kind == 1 and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == 2:
            data[pos:pos] = draw(st.sampled_from([
                b"\x00", b"\n", b"\xff", b"\xed\xa0\x80", b'"', b"{", b"]", b"\\", b"\\u", b"1e999999", b" " * 100]))
        elif kind == 3:
            del data[pos:pos + draw(st.integers(1, 10))]
        else:
            data[pos:pos] = draw(st.binary(max_size=20))
    return bytes(data)


def pipeline(item):
    return st.lists(item, min_size=1, max_size=6).map(lambda xs: b"".join(x + b"\n" for x in xs))


# ---------------------------------------------------------------------------
# LIVE daemon
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.mktemp("props")
    broker = Daemon(base, rate_limit=0).start()
    broker.add_project(PROJECT, ALLOWED)
    write_manifest(str(base / "projects" / "other"), "other", ["TOKEN"])
    broker.admin_ok("push-creds", secrets=SECRETS)
    yield broker
    # Mutated admin requests may have cleared or replaced the secrets: still serving?
    assert_healthy(broker, PROJECT)
    assert broker.stop() == 0, broker.stderr()[-4000:]
    rc, out = broker.audit_verify()
    assert rc == 0, out


def exchange(path, data, codes):
    """Send ``data``, half-close, read every reply until the daemon closes; validate."""
    conn = RawConn(path, timeout=15.0)
    try:
        conn.send(data)
        conn.half_close()
        lines = conn.read_all()
    finally:
        conn.close()
    return [check_reply(line, codes, events_ok=True) for line in lines]


def live_check(broker, socket_path, data, codes):
    try:
        replies = exchange(socket_path, data, codes)
    except ReplyError as exc:
        raise AssertionError("%s; request bytes %r" % (exc, data[:500])) from None
    if not broker.alive():
        raise AssertionError("daemon died on %r:\n%s" % (data[:500], broker.stderr()[-3000:]))
    return replies


def _restore(broker):
    """Undo what a mutated admin request may have done to the fixture state."""
    broker.admin_ok("register", name=PROJECT, project_path=os.path.join(broker.base, "projects", PROJECT))
    broker.admin_ok("push-creds", secrets=SECRETS)


@LIVE
@given(data=st.binary(max_size=3000))
@example(data=b"\x00" * 100 + b"\n")
@example(data=b"\n\n\n   \r\n\t\n")
@example(data=b'{"op":"get","name":"TOKEN"}')  # no newline, then EOF
def test_live_random_bytes_project(live, data):
    live_check(live, live.project_socket(PROJECT), data, PROJECT_CODES)


@LIVE
@given(data=st.binary(max_size=3000))
@example(data=b"\xff\xfe\xfd\n" * 3)
def test_live_random_bytes_admin(live, data):
    live_check(live, live.admin_socket, data, ADMIN_CODES)


@LIVE
@given(data=pipeline(mutated(PROJECT_OPS)))
def test_live_mutated_requests_project(live, data):
    live_check(live, live.project_socket(PROJECT), data, PROJECT_CODES)


@LIVE
@given(data=pipeline(mutated(ADMIN_OPS)))
def test_live_mutated_requests_admin(live, data):
    live_check(live, live.admin_socket, data, ADMIN_CODES)
    _restore(live)


@LIVE
@given(reqs=st.lists(st.tuples(requests(PROJECT_OPS), st.booleans()), min_size=1, max_size=8))
def test_live_structured_project_requests(live, reqs):
    data = b"".join(encode(req, ascii_only) + b"\n" for req, ascii_only in reqs)
    replies = [r for r in live_check(live, live.project_socket(PROJECT), data, PROJECT_CODES) if "event" not in r]
    # At most one reply per request; the replies answer the requests in order.
    assert len(replies) <= len(reqs)
    for (req, ascii_only), reply in zip(reqs, replies):
        name = req.get("name")
        if not reply["ok"]:
            # An error message never echoes a name that is not a well-formed secret name.
            if isinstance(name, str) and name and not SECRET_NAME.match(name) and len(name) > 3:
                assert name not in reply["message"], reply
        if req.get("op") == "ping" and ascii_only:
            assert reply == {"ok": True, "protocol_version": 2, "daemon_version": reply["daemon_version"],
                             "project": PROJECT}, "extra request fields must be ignored"
        if req.get("op") == "get" and ascii_only and isinstance(name, str) and name not in ALLOWED:
            assert reply["ok"] is False and reply["code"] == "denied", reply
            assert "value" not in reply and "value_b64" not in reply
        if not reply["ok"] and reply["code"] == "protocol_error":
            break  # the daemon closes after a protocol error


@LIVE
@given(secret=st.text(alphabet=st.characters(codec=None), max_size=200),
       fields=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=30), max_size=4))
def test_live_push_then_get_roundtrip(live, secret, fields):
    """Whatever string a secret holds (NUL, surrogates, newlines), get returns it exactly."""
    pushed = {"TOKEN": secret, "DB": fields} if fields else {"TOKEN": secret}
    data = json.dumps({"op": "push-creds", "secrets": pushed}).encode() + b"\n"
    [reply] = live_check(live, live.admin_socket, data, ADMIN_CODES)
    assert reply["ok"] is True, reply
    [got] = live_check(live, live.project_socket(PROJECT), b'{"op":"get","name":"TOKEN"}\n', PROJECT_CODES)
    assert got["ok"] is True, got
    if "value" in got:
        assert got["value"] == secret
    else:
        import base64
        raw = base64.b64decode(got["value_b64"])
        assert raw.decode("utf-8", "surrogateescape") == secret or raw.decode("utf-8", "surrogatepass") == secret
    if fields:
        field = sorted(fields)[0]
        line = json.dumps({"op": "get", "name": "DB", "field": field}).encode() + b"\n"
        [got] = live_check(live, live.project_socket(PROJECT), line, PROJECT_CODES)
        assert got.get("value") == fields[field], got
    _restore(live)


# Boundaries: a line of exactly the cap is served; one byte more is refused and closed.
@pytest.mark.parametrize("kind,limit", [("project", PROJECT_LIMIT), ("admin", ADMIN_LIMIT)])
@pytest.mark.parametrize("delta", [-1, 0, 1, 5000])
def test_live_line_length_boundary(live, kind, limit, delta):
    path = live.project_socket(PROJECT) if kind == "project" else live.admin_socket
    codes = PROJECT_CODES if kind == "project" else ADMIN_CODES
    head = b'{"op":"ping","pad":"'
    line = head + b"x" * (limit + delta - len(head) - 2) + b'"}'
    assert len(line) == limit + delta
    replies = live_check(live, path, line + b"\n" + b'{"op":"ping"}\n', codes)
    if delta <= 0:
        assert [r["ok"] for r in replies] == [True, True], replies
    else:
        assert len(replies) == 1 and replies[0]["code"] == "protocol_error", replies


@pytest.mark.parametrize("kind,limit", [("project", PROJECT_LIMIT), ("admin", ADMIN_LIMIT)])
def test_live_endless_line_is_refused_and_bounded(live, kind, limit):
    """A client that never sends a newline: protocol_error and a close, no unbounded buffer."""
    path = live.project_socket(PROJECT) if kind == "project" else live.admin_socket
    rss0 = live.rss_kib()
    conn = RawConn(path, timeout=15.0)
    try:
        chunk = b"A" * 65536
        sent = 0
        while sent < 32 * limit and conn.send(chunk):
            sent += len(chunk)
        lines = conn.read_all()
    finally:
        conn.close()
    assert sent <= limit + 16 * 1048576, "the daemon kept reading %d bytes of one line" % sent
    assert len(lines) == 1, lines
    assert check_reply(lines[0], ADMIN_CODES | PROJECT_CODES)["code"] == "protocol_error"
    assert live.rss_kib() - rss0 < 16 * 1024
    assert_healthy(live, PROJECT)


DEPTHS = [2, 100, 900, 5000, 30000]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", ["array", "object"])
def test_live_deep_nesting_gets_a_documented_reply(live, depth, shape):
    doc = (b"[" * depth + b"]" * depth) if shape == "array" else (b'{"a":' * depth + b"1" + b"}" * depth)
    replies = live_check(live, live.project_socket(PROJECT), doc + b"\n" + b'{"op":"ping"}\n', PROJECT_CODES)
    assert replies and not replies[0]["ok"]
    assert_healthy(live, PROJECT)


@pytest.mark.parametrize("depth", [5000, 30000])
@pytest.mark.parametrize("kind", ["project", "admin"])
def test_live_deep_nesting_is_a_protocol_error(live, depth, kind):
    """Too deep for the parser is a malformed request (protocol_error + close), not internal_error."""
    path, codes = (live.project_socket(PROJECT), PROJECT_CODES) if kind == "project" else (live.admin_socket, ADMIN_CODES)
    replies = live_check(live, path, b"[" * depth + b"]" * depth + b"\n" + b'{"op":"ping"}\n', codes)
    assert len(replies) == 1 and replies[0]["code"] == "protocol_error", replies


@pytest.mark.parametrize("payload,code", [
    (b'{"op":"get","name":"TO\x00KEN"}', "protocol_error"),          # raw NUL: invalid JSON
    (b'{"op":"get","name":"TO\\u0000KEN"}', "denied"),              # escaped NUL: not a valid name
    (b'{"op":"get","name":"\\ud800"}', "denied"),                   # escaped lone surrogate
    (b'{"op":"get","name":"\xed\xa0\x80"}', "protocol_error"),      # CESU-8 surrogate: not UTF-8
    (b'{"op":"get","name":12}', "protocol_error"),                  # number as name
    (b'{"op":"get","name":1e999}', "protocol_error"),
    (b'{"op":"get","name":' + b"9" * 5000 + b"}", "protocol_error"),  # beyond int digit limit
    (b'{"op":7}', "protocol_error"),
    (b'{"op":"GET","name":"TOKEN"}', "protocol_error"),
    (b"[]", "protocol_error"),
    (b'"op"', "protocol_error"),
    (b"\xef\xbb\xbf{\"op\":\"ping\"}", "protocol_error"),              # BOM
])
def test_live_specific_hostile_requests(live, payload, code):
    replies = live_check(live, live.project_socket(PROJECT), payload + b"\n", PROJECT_CODES)
    assert replies and replies[0]["code"] == code, replies
    assert "\x00" not in replies[0]["message"] and "\ud800" not in replies[0]["message"]


# ---------------------------------------------------------------------------
# IN-PROCESS: the daemon's protocol object fed directly
# ---------------------------------------------------------------------------
class FakeLoop:
    """The only loop call a connection makes: ``call_soon`` of its project's next turn."""

    def __init__(self):
        self.ready = []

    def call_soon(self, callback, *args):
        self.ready.append((callback, args))

    def run_passes(self):
        """Run the queued callbacks, and what they queue, as the following loop passes would."""
        while self.ready:
            ready, self.ready = self.ready, []
            for callback, args in ready:
                callback(*args)


class FakeTransport:
    def __init__(self):
        self.out = []
        self.closed = False
        self.reading = True

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def write(self, data):
        assert not self.closed, "write after close"
        self.out.append(bytes(data))

    def get_write_buffer_size(self):
        return 0        # every write is taken at once

    def close(self):
        self.closed = True

    def abort(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, _name, default=None):
        return default


class InProc:
    """The daemon's own source modules: a Broker (no event loop, no audit writer) and one project."""

    def __init__(self, base):
        self.broker = Broker(build_parser().parse_args([
            "serve", "--run-dir", os.path.join(base, "run"), "--state-dir", os.path.join(base, "state"),
            "--audit-log", os.path.join(base, "audit.jsonl"), "--rate-limit", "0"]), DAEMON)
        self.broker.started = time.monotonic()
        self.loop = self.broker.turns.loop = FakeLoop()
        path = write_manifest(os.path.join(base, "projects", PROJECT), PROJECT, ALLOWED)
        self.project = Project(PROJECT, path, os.getuid(), os.path.join(base, "run"))
        self.project.apply_manifest(self.broker.load_project_manifest(PROJECT, self.project.manifest_path))
        self.broker.projects[PROJECT] = self.project
        self.push(SECRETS)

    def push(self, secrets):
        out, closed = self.feed(None, [json.dumps({"op": "push-creds", "secrets": secrets}).encode() + b"\n"])
        assert json.loads(out)["ok"] is True and not closed

    def feed(self, project, chunks):
        """Feed ``chunks`` to a fresh connection; (all bytes written, closed)."""
        out, closed, _writes = self.feed_writes(project, chunks)
        return out, closed

    def feed_writes(self, project, chunks):
        """Like feed, plus the list of transport.write() calls per chunk."""
        conn = Connection(self.broker, project)
        transport = FakeTransport()
        conn.transport = transport
        conn.pid, conn.uid = 4242, os.getuid()
        conn.peer = (conn.pid, conn.uid)
        writes = []
        for chunk in chunks:
            if transport.closed:
                break
            before = len(transport.out)
            conn.data_received(chunk)
            self.loop.run_passes()      # the turns of a read past its project's share
            assert transport.reading or transport.closed or conn.output_paused
            writes.append(len(transport.out) - before)
        self.broker.audit.queue.clear()  # no writer process here
        return b"".join(transport.out), transport.closed, writes


@pytest.fixture(scope="module")
def inproc(tmp_path_factory):
    return InProc(str(tmp_path_factory.mktemp("inproc")))


def _validate_stream(out, codes, data):
    codes = codes - {"internal_error"}  # a handler crash on client input is a bug
    if out and not out.endswith(b"\n"):
        raise AssertionError("unterminated reply %r for %r" % (out[-200:], data[:300]))
    replies = []
    for line in out.split(b"\n")[:-1]:
        try:
            replies.append(check_reply(line, codes, events_ok=True))
        except ReplyError as exc:
            raise AssertionError("%s; request bytes %r" % (exc, data[:300])) from None
    return replies


@st.composite
def cut(draw, data):
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    pieces, prev = [], 0
    for c in cuts + [len(data)]:
        pieces.append(data[prev:c])
        prev = c
    return [p for p in pieces if p]


stream = st.one_of(st.binary(max_size=2000), pipeline(mutated(PROJECT_OPS)),
                   st.lists(requests(PROJECT_OPS), min_size=1, max_size=6).map(
                       lambda rs: b"".join(encode(r, True) + b"\n" for r in rs)))


@INPROC
@given(data=stream, st_data=st.data())
def test_inproc_project_replies_are_well_formed_and_cut_independent(inproc, data, st_data):
    whole, closed_whole = inproc.feed(inproc.project, [data])
    replies = _validate_stream(whole, PROJECT_CODES, data)
    if closed_whole:
        assert replies and replies[-1].get("code") == "protocol_error", replies
    pieces = st_data.draw(cut(data))
    parts, closed_parts = inproc.feed(inproc.project, pieces)
    assert parts == whole, "replies depend on how the stream was cut: %r" % pieces
    assert closed_parts == closed_whole


@INPROC
@given(data=st.one_of(st.binary(max_size=2000), pipeline(mutated(ADMIN_OPS))))
def test_inproc_admin_replies_are_well_formed(inproc, data):
    out, closed = inproc.feed(None, [data])
    replies = _validate_stream(out, ADMIN_CODES, data)
    if closed:
        assert replies and replies[-1].get("code") == "protocol_error", replies
    inproc.push(SECRETS)
    inproc.broker.projects[PROJECT] = inproc.project


def test_inproc_each_read_is_answered_with_one_write(inproc):
    """A client doing one recv() gets every reply to its pipelined requests, even a 60 KB one."""
    inproc.push(dict(SECRETS, TOKEN="y" * 60000))
    try:
        batch = b"".join(b'{"op":"get","name":"TOKEN"}\n' for _i in range(3)) + b'{"op":"ping"}\n'
        out, closed, writes = inproc.feed_writes(inproc.project, [batch, b'{"op":"get","name":"TOKEN"}\n'])
        assert not closed
        assert writes == [1, 1], "replies to one read went out in %r writes" % writes
        lines = out.split(b"\n")[:-1]
        assert len(lines) == 5 and json.loads(lines[0])["value"] == "y" * 60000
    finally:
        inproc.push(SECRETS)
