# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""One client connection (admin or project): line framing, size limits, one write per read."""

from __future__ import annotations

import socket
import struct
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue import AUDIT_BATCH
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import send_wiped
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DECISION_DENY,
    E_PEER_UNEXPECTED,
    E_PROTOCOL_ERROR,
    MAX_ADMIN_MESSAGE_BYTES,
    MAX_PROJECT_MESSAGE_BYTES,
)


class Connection:
    """asyncio.Protocol for one client connection (admin when ``project`` is None).

    Every complete line in one ``data_received`` is handled in order and the replies
    go out in ONE ``transport.write``.
    """

    __slots__ = ("broker", "project", "transport", "buf", "limit", "pid", "uid", "peer", "last", "watching", "closed")

    def __init__(self, broker, project):
        self.broker = broker
        self.project = project
        self.transport = None
        self.buf = b""
        self.limit = MAX_PROJECT_MESSAGE_BYTES if project is not None else MAX_ADMIN_MESSAGE_BYTES
        self.pid = None
        self.uid = None
        self.peer = (None, None)
        self.last = 0.0
        self.watching = False
        self.closed = False

    # asyncio.Protocol interface (duck-typed: asyncio only calls these methods)
    def connection_made(self, transport):
        self.transport = transport
        self.last = time.monotonic()
        broker = self.broker
        broker.conns.add(self)
        try:
            sock = transport.get_extra_info("socket")
            self.pid, self.uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        except (OSError, AttributeError, struct.error):
            self.pid = self.uid = None
        self.peer = (self.pid, self.uid)
        project = self.project
        if project is not None:
            project.conns.add(self)
            if broker.audit.paused:
                transport.pause_reading()
            if project.expected_uid is not None and self.uid != project.expected_uid:
                project.counters["peer_unexpected"] += 1
                broker.audit.emit(audit_event("connect", project.name, E_PEER_UNEXPECTED, DECISION_DENY, None, self.peer, 0))
                self.closed = True
                transport.write(broker.peer_unexpected_reply)
                transport.close()
                return
        if broker.draining:
            self.closed = True
            transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self.broker.conns.discard(self)
        project = self.project
        if project is not None:
            project.conns.discard(self)
            project.watchers.discard(self)

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    def eof_received(self):
        return False

    def data_received(self, data):
        if self.closed:
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
        self.last = time.monotonic()
        out = []
        handler = self.broker.handle_project if self.project is not None else self.broker.handle_admin
        limit = self.limit
        for line in lines:
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
        if len(self.buf) > limit:
            self._fail_close(b"".join(out), "message exceeds %d bytes" % limit, "message_too_large")
            return
        if out:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                send_wiped(self.transport, out)    # a joined copy of replies that may carry values
        audit = self.broker.audit
        if len(audit.queue) >= AUDIT_BATCH:
            audit.pump()
        if self.broker.draining and not self.watching and not self.buf:
            self.closed = True
            self.transport.close()

    def _fail_close(self, prefix, message, reason):
        project = self.project
        if project is not None:
            project.counters["protocol_error"] += 1
        self.broker.audit.emit(audit_event("protocol", project.name if project is not None else None, E_PROTOCOL_ERROR,
                                           DECISION_DENY, None, self.peer, 0))
        self.closed = True
        self.buf = b""
        self.transport.write(prefix + err(E_PROTOCOL_ERROR, message, {"reason": reason}))
        self.transport.close()
