# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""One client connection (admin or project): line framing, size limits, output backpressure."""

from __future__ import annotations

import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue import AUDIT_BATCH
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import send_wiped
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    ADMIN_OUTPUT_HARD_LIMIT,
    DECISION_DENY,
    E_PROTOCOL_ERROR,
    MAX_ADMIN_MESSAGE_BYTES,
    MAX_PROJECT_MESSAGE_BYTES,
    OUTPUT_HIGH_WATER,
    OUTPUT_LOW_WATER,
    PROJECT_OUTPUT_HARD_LIMIT,
    PROJECT_TURN_REQUESTS,
    RATE_LIMITED_TURN_COST,
    READ_CHUNK_BYTES,
    REPLY_BATCH_BYTES,
)


class Connection:
    """asyncio.Protocol for one client connection (admin when ``project`` is None).

    The complete lines of a read are handled in order and the replies go out in one
    ``transport.write`` per REPLY_BATCH_BYTES.  A project answers about one share of
    PROJECT_TURN_REQUESTS requests per loop pass (project_turns.py): past that the
    connection keeps its unanswered lines in ``pending``, stops reading and waits for
    its project's next turn.  Output backpressure (docs/daemon.md#per-connection-memory):
    past OUTPUT_HIGH_WATER unsent bytes the connection stops reading and keeps its
    unanswered lines until the client reads; past the hard limit it is closed.
    """

    __slots__ = ("broker", "project", "transport", "buf", "limit", "pid", "uid", "peer", "last", "watching", "closed",
                 "admitted", "held", "output_paused", "hard_limit", "pending", "turn_waiting")

    def __init__(self, broker, project):
        self.broker = broker
        self.project = project
        self.transport = None
        self.buf = b""
        self.limit = MAX_PROJECT_MESSAGE_BYTES if project is not None else MAX_ADMIN_MESSAGE_BYTES
        self.hard_limit = PROJECT_OUTPUT_HARD_LIMIT if project is not None else ADMIN_OUTPUT_HARD_LIMIT
        self.pid = None
        self.uid = None
        self.peer = (None, None)
        self.last = 0.0
        self.watching = False
        self.closed = False
        self.admitted = False
        self.held = False           # buf holds complete lines read while ``pending`` or output waited
        self.output_paused = False
        self.pending = None         # (lines, index): lines of a read not answered yet
        self.turn_waiting = False   # in its project's queue for the next turn

    def admit(self):
        """Count it as open (listener.py admitted its peer); its transport comes next pass."""
        broker = self.broker
        self.admitted = True
        self.last = time.monotonic()
        broker.conns.add(self)
        broker.limits.opened(self)
        if self.project is not None:
            self.project.conns.add(self)

    # asyncio.Protocol interface (duck-typed: asyncio only calls these methods)
    def connection_made(self, transport):
        self.transport = transport
        broker = self.broker
        project = self.project
        transport.set_write_buffer_limits(OUTPUT_HIGH_WATER, OUTPUT_LOW_WATER)
        if self.closed or broker.draining or (project is not None and broker.projects.get(project.name) is not project):
            # Closed before it had a transport: draining, its project unregistered, its attestation changed.
            self.closed = True
            transport.abort()
            return
        if project is not None and project.name in broker.audit.paused_projects:
            transport.pause_reading()

    def connection_lost(self, exc):
        self.closed = True
        self.broker.conns.discard(self)
        if self.admitted:
            self.admitted = False
            self.broker.limits.closed(self)
        project = self.project
        if project is not None:
            project.conns.discard(self)
            project.watchers.discard(self)

    def pause_writing(self):
        """More than OUTPUT_HIGH_WATER unsent: read nothing more until the client reads."""
        self.output_paused = True
        if not self.closed:
            self.transport.pause_reading()

    def resume_writing(self):
        self.output_paused = False
        self.resume()

    def resume_turn(self):
        """Its project's next turn (project_turns.py)."""
        self.turn_waiting = False
        self.resume()

    def reading_blocked(self):
        """Why nothing more is read or answered now: output room, a turn, audit backpressure."""
        return self.closed or self.output_paused or self.turn_waiting or (
            self.project is not None and self.project.name in self.broker.audit.paused_projects)

    def resume(self):
        """Answer the lines kept while reading was paused, then read again, unless still blocked."""
        if self.reading_blocked():
            return
        if self.pending is not None:
            lines, index = self.pending
            self.pending = None
            self._answer(lines, index)
            if self.reading_blocked() or self.pending is not None:
                return
        if self.held:
            held, self.buf, self.held = self.buf, b"", False
            self.data_received(held)
            if self.reading_blocked() or self.pending is not None:
                return
        self.transport.resume_reading()

    def eof_received(self):
        return False

    def data_received(self, data):
        if self.closed:
            return
        if self.pending is not None or self.output_paused:
            # Reading was paused after this read was under way: keep it for resume().
            self.buf += data
            self.held = self.held or b"\n" in data
            self.transport.pause_reading()
            if len(self.buf) > self.limit + 2 * READ_CHUNK_BYTES:
                self._fail_close(b"", "client sends without reading replies", "output_backlog")
            return
        buf = self.buf + data if self.buf else data
        if b"\n" not in data:
            if len(buf) > self.limit:
                self._fail_close(b"", "message exceeds %d bytes" % self.limit, "message_too_large")
                return
            self.buf = buf
            return
        if self.project is not None and b"\n\n" in buf:
            # Runs of bare newlines are no requests: drop them at C speed, not one loop turn each
            # (project lines carry names only; an admin read is never copied: it is wiped).
            while b"\n\n\n\n" in buf:
                buf = buf.replace(b"\n\n\n\n", b"\n")
            buf = buf.replace(b"\n\n", b"\n")
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        self._answer(lines, 0)

    def _answer(self, lines, index):
        """Handle ``lines[index:]``: all of them, or up to this project's share of the pass."""
        out = []
        size = 0
        project = self.project
        handler = self.broker.handle_project if project is not None else self.broker.handle_admin
        limit = self.limit
        if project is not None:
            turns = self.broker.turns
            left = allowed = turns.left(project)
        else:
            turns = None
            left = allowed = len(lines)
        count = len(lines)
        while index < count:
            line = lines[index]
            if not line:
                index += 1
                continue    # a bare newline is no request: no reply, no token, no idle reset
            if left <= 0:
                turns.charge(project, allowed - left)
                left = allowed = turns.left(project)
            if left <= 0:
                # This project's share of the pass is used: the rest waits for its next turn.
                self.pending = (lines, index)
                self.turn_waiting = True
                turns.wait(self)
                if count - index > PROJECT_TURN_REQUESTS:
                    self.transport.pause_reading()
                # else reading goes on: a client that pipelines a few requests sends more only
                # once it has replies, and a read that comes meanwhile is kept and pauses
                # reading (data_received); pausing here cost it a loop pass per turn.
                if out:
                    self._write(out)
                if len(self.broker.audit.queue) >= AUDIT_BATCH:
                    self.broker.audit.pump()
                return
            index += 1
            left -= 1
            if len(line) > limit:
                self._fail_close(b"".join(out), "message exceeds %d bytes" % limit, "message_too_large")
                return
            try:
                reply = handler(self, line)
            except CloseAfter as close:
                out.append(close.reply)
                self.closed = True
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            except Exception as exc:  # pylint: disable=broad-except
                # Never log the exception text: it may quote the request.
                log("error", "request handler crashed: %s" % type(exc).__name__)
                reply = self.broker.internal_error_reply
            if turns is not None and project.tokens is not None and project.tokens < 1.0:
                # Out of rate-limit tokens: every request of it is a rate_limited reply now,
                # and such a project answers a smaller share per pass than one within its rate.
                left -= RATE_LIMITED_TURN_COST - 1
            if reply:
                out.append(reply)
                size += len(reply)
                if size >= REPLY_BATCH_BYTES:
                    if not self._write(out) or self.output_paused:
                        if turns is not None:
                            turns.charge(project, allowed - left)
                        if not self.closed and index < count:
                            # Keep the unanswered lines (at most one read) until the client reads.
                            self.pending = (lines, index)
                            self.transport.pause_reading()
                        return
                    out = []
                    size = 0
        if turns is not None:
            turns.charge(project, allowed - left)
        if not self.held and len(self.buf) > limit:
            self._fail_close(b"".join(out), "message exceeds %d bytes" % limit, "message_too_large")
            return
        if out:
            self._write(out)
        audit = self.broker.audit
        if len(audit.queue) >= AUDIT_BATCH:
            audit.pump()
        if self.broker.draining and not self.watching and not self.buf:
            self.closed = True
            self.transport.close()

    def _write(self, out):
        """Send ``out`` (reply lines); False when that passed the hard limit and closed."""
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            send_wiped(self.transport, out)    # a joined copy of replies that may carry values
        if self.output_paused and self.transport.get_write_buffer_size() > self.hard_limit:
            self._close_backlogged()
            return False
        return True

    def send_event(self, line):
        """A pushed line (watch event): the same hard limit as replies."""
        self.transport.write(line)
        if self.output_paused and self.transport.get_write_buffer_size() > self.hard_limit:
            self._close_backlogged()

    def _close_backlogged(self):
        project = self.project
        if project is not None:
            project.counters["protocol_error"] += 1
        self.broker.audit.emit_repeatable("protocol", project.name if project is not None else None, E_PROTOCOL_ERROR,
                                          DECISION_DENY, self.peer, 0, {"reason": "output_backlog"})
        self.closed = True
        self.buf = b""
        self.held = False
        self.transport.abort()   # the client reads nothing: dropping its backlog is the point

    def _fail_close(self, prefix, message, reason):
        project = self.project
        if project is not None:
            project.counters["protocol_error"] += 1
        self.broker.audit.emit_repeatable("protocol", project.name if project is not None else None, E_PROTOCOL_ERROR,
                                          DECISION_DENY, self.peer, 0)
        self.closed = True
        self.buf = b""
        self.held = False
        self.transport.write(prefix + err(E_PROTOCOL_ERROR, message, {"reason": reason}))
        close_or_abort(self)


def close_or_abort(conn):
    """Close after the pending output, or at once when the client is not reading it."""
    conn.closed = True
    if conn.transport is None:
        return      # admitted, no transport yet: connection_made aborts it
    if conn.output_paused:
        conn.transport.abort()
    else:
        conn.transport.close()
