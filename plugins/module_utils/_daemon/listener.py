# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Accepting connections: each is admitted or refused on its raw socket, before asyncio sees it.

asyncio's own accept loop builds a task, a transport and a protocol for every socket it
accepts, which costs far more than refusing one: a project that queues thousands of
connections past its limit would make every other project wait behind that work.  Here
a readable listening socket accepts at most ``ACCEPT_BATCH`` sockets per loop pass; each
one's peer is checked (uid, attested container, connection limits) and a refused one
gets its one-line reply and is closed on the spot.  Only an admitted connection gets a
transport (``loop.connect_accepted_socket``).
"""

from __future__ import annotations

import errno
import socket
import struct

from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import NOT_IN_CONTAINER_REPLY, peer_in_container
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    ACCEPT_BATCH,
    DECISION_DENY,
    E_PEER_UNEXPECTED,
    LISTEN_BACKLOG,
)

ACCEPT_RETRY_DELAY = 1.0    # seconds a socket rests after accept() failed for want of resources (as asyncio)
_SKIP = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN))
_PEERCRED = struct.Struct("3i")


class Listener:
    """One listening Unix socket (a project's, or the admin socket when ``project`` is None)."""

    __slots__ = ("broker", "sock", "project", "factory", "loop", "fd", "closed", "_retry")

    def __init__(self, broker, sock, project, factory):
        self.broker = broker
        self.sock = sock
        self.project = project
        self.factory = factory      # () -> Connection
        self.loop = broker.loop
        self.fd = sock.fileno()
        self.closed = False
        self._retry = None

    def start(self):
        self.sock.setblocking(False)
        self.sock.listen(LISTEN_BACKLOG)
        self.loop.add_reader(self.fd, self._accept_ready)
        return self

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        else:
            self.loop.remove_reader(self.fd)
        self.sock.close()

    def _resume(self):
        self._retry = None
        if not self.closed:
            self.loop.add_reader(self.fd, self._accept_ready)

    def _accept_ready(self):
        # socket.accept() would look up the listener's family and type as enums for every
        # socket; the raw accept and the known constants cost a third less per refusal.
        accept = self.sock._accept     # pylint: disable=protected-access
        for _attempt in range(ACCEPT_BATCH):
            try:
                conn_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, accept()[0])
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _SKIP:
                    continue
                # Out of descriptors or memory (or anything unforeseen): count it, warn once
                # per interval, and rest this socket instead of spinning on the error.
                self.broker.limits.note_accept_failure(exc)
                self.loop.remove_reader(self.fd)
                self._retry = self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            conn_sock.setblocking(False)    # an accepted socket starts blocking; the loop must never wait on one
            try:
                self._admit(conn_sock)
            except Exception as exc:  # pylint: disable=broad-except
                # An admission check that cannot run refuses the connection (by type only:
                # no peer data in the log).
                log("error", "cannot admit a connection: %s" % type(exc).__name__)
                conn_sock.close()

    def _admit(self, sock):
        broker = self.broker
        project = self.project
        try:
            pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        except (OSError, struct.error):
            pid = uid = None
        peer = (pid, uid)
        if project is not None:
            reply = None
            extra = None
            if project.expected_uid is not None and uid != project.expected_uid:
                reply = broker.peer_unexpected_reply
            elif project.attestation is not None and not peer_in_container(sock, pid, project.attestation):
                reply, extra = NOT_IN_CONTAINER_REPLY, {"reason": "not_in_container"}
            if reply is not None:
                project.counters["peer_unexpected"] += 1
                broker.audit.emit_repeatable("connect", project.name, E_PEER_UNEXPECTED, DECISION_DENY, peer, 0, extra)
                _refuse(sock, reply)
                return
        limits = broker.limits
        refused = limits.check(pid, project, broker.projects)
        if refused is not None:
            if project is not None:
                project.counters["connections_refused"] += 1
            limits.note_refusal(broker, project, refused[0], peer)
            _refuse(sock, limits.refusal_reply(pid, project, *refused))
            return
        conn = self.factory()
        conn.pid, conn.uid, conn.peer = pid, uid, peer
        conn.admit()
        task = self.loop.create_task(self.loop.connect_accepted_socket(lambda: conn, sock))
        task.add_done_callback(lambda done: _transport_failed(done, conn, sock))


def _refuse(sock, reply):
    """Send a refusal's one line (it fits a fresh socket's buffer) and close."""
    try:
        sock.send(reply)
    except OSError:
        pass
    sock.close()


def _transport_failed(task, conn, sock):
    if task.cancelled() or task.exception() is not None:
        if conn.transport is None:
            log("warning", "cannot serve an accepted connection: %s"
                % (type(task.exception()).__name__ if not task.cancelled() else "cancelled"))
            conn.connection_lost(None)
            sock.close()
