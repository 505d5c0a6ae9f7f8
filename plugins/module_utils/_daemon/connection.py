# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""One client connection (admin or project): line framing, size limits, output backpressure."""

from __future__ import annotations

import socket
import struct
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue import AUDIT_BATCH
from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import NOT_IN_CONTAINER_REPLY, peer_in_container
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import send_wiped
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    ADMIN_OUTPUT_HARD_LIMIT,
    DECISION_DENY,
    E_PEER_UNEXPECTED,
    E_PROTOCOL_ERROR,
    MAX_ADMIN_MESSAGE_BYTES,
    MAX_PROJECT_MESSAGE_BYTES,
    OUTPUT_HIGH_WATER,
    OUTPUT_LOW_WATER,
    PROJECT_OUTPUT_HARD_LIMIT,
    READ_CHUNK_BYTES,
    REPLY_BATCH_BYTES,
)


class Connection:
    """asyncio.Protocol for one client connection (admin when ``project`` is None).

    Every complete line in one ``data_received`` is handled in order and the replies
    go out in one ``transport.write`` per REPLY_BATCH_BYTES. Output backpressure
    (docs/daemon.md#per-connection-memory): past OUTPUT_HIGH_WATER unsent bytes the
    connection stops reading and keeps its unanswered lines until the client reads;
    past the hard limit it is closed.
    """

    __slots__ = ("broker", "project", "transport", "buf", "limit", "pid", "uid", "peer", "last", "watching", "closed",
                 "admitted", "held", "output_paused", "hard_limit")

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
        self.held = False           # buf holds complete lines waiting for output room
        self.output_paused = False

    # asyncio.Protocol interface (duck-typed: asyncio only calls these methods)
    def connection_made(self, transport):
        self.transport = transport
        self.last = time.monotonic()
        broker = self.broker
        broker.conns.add(self)
        sock = None
        try:
            sock = transport.get_extra_info("socket")
            self.pid, self.uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        except (OSError, AttributeError, struct.error):
            self.pid = self.uid = None
        self.peer = (self.pid, self.uid)
        project = self.project
        if project is not None:
            if project.expected_uid is not None and self.uid != project.expected_uid:
                self._refuse_peer(broker.peer_unexpected_reply, None)
                return
            if project.attestation is not None and not peer_in_container(sock, self.pid, project.attestation):
                self._refuse_peer(NOT_IN_CONTAINER_REPLY, {"reason": "not_in_container"})
                return
        refused = broker.limits.check(self, broker.projects)
        if refused is not None:
            if project is not None:
                project.counters["connections_refused"] += 1
            broker.limits.note_refusal(broker, self, refused[0])
            self.closed = True
            transport.write(broker.limits.refusal_reply(self, *refused))
            transport.close()
            return
        self.admitted = True
        broker.limits.opened(self)
        transport.set_write_buffer_limits(OUTPUT_HIGH_WATER, OUTPUT_LOW_WATER)
        if project is not None:
            project.conns.add(self)
            if project.name in broker.audit.paused_projects:
                transport.pause_reading()
        if broker.draining:
            self.closed = True
            transport.close()

    def _refuse_peer(self, reply, extra):
        project = self.project
        project.counters["peer_unexpected"] += 1
        self.broker.audit.emit_repeatable("connect", project.name, E_PEER_UNEXPECTED, DECISION_DENY, self.peer, 0, extra)
        self.closed = True
        self.transport.write(reply)
        self.transport.close()

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
        if self.closed:
            return
        if self.held:
            held, self.buf, self.held = self.buf, b"", False
            self.data_received(held)
            if self.closed or self.output_paused:
                return
        if not (self.project is not None and self.project.name in self.broker.audit.paused_projects):
            self.transport.resume_reading()

    def eof_received(self):
        return False

    def data_received(self, data):
        if self.closed:
            return
        if self.held or self.output_paused:
            # Reading was resumed elsewhere (audit backpressure) while output waits.
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
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        out = []
        size = 0
        handler = self.broker.handle_project if self.project is not None else self.broker.handle_admin
        limit = self.limit
        index = 0
        for line in lines:
            index += 1
            if not line:
                continue    # a bare newline is no request: no reply, no token, no idle reset
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
            if reply:
                out.append(reply)
                size += len(reply)
                if size >= REPLY_BATCH_BYTES:
                    if not self._write(out) or self.output_paused:
                        if not self.closed and index < len(lines):
                            # Keep the unanswered lines (at most one read) until the client reads.
                            lines.append(self.buf)
                            self.buf = b"\n".join(lines[index:])
                            self.held = True
                        return
                    out = []
                    size = 0
        if len(self.buf) > limit:
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
    if conn.output_paused:
        conn.transport.abort()
    else:
        conn.transport.close()
