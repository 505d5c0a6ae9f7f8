# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is not a public API: it can change at
# any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
# module, in the generated daemon roles/broker_install/files/remo_broker.py.

"""Stdlib NDJSON client for the remo-broker Unix sockets.

Modelled on community.docker's ``unixconn`` transport: one AF_UNIX stream socket, a
timeout on connect and on every read, one JSON object per line.  Error messages never
contain request contents (a request may carry secrets) and never contain reply
values.
"""

from __future__ import annotations

import errno
import json
import socket
import time

from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DEFAULT_CLIENT_TIMEOUT,
    E_CONNECTION_ERROR,
    E_PROTOCOL_ERROR,
    MAX_REPLY_BYTES,
)


class BrokerError(Exception):
    """A failed broker request: ``code``, ``message`` and optional ``details``."""

    def __init__(self, code, message, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def __str__(self):
        return "%s: %s" % (self.code, self.message)

    def to_dict(self):
        """The failure as a JSON-able dict (code, message, details)."""
        return {"code": self.code, "message": self.message, "details": dict(self.details)}


class BrokerConnectionError(BrokerError):
    """The socket could not be reached, or the connection failed mid-request."""

    def __init__(self, message, details=None):
        super().__init__(E_CONNECTION_ERROR, message, details)


def _connect_error(socket_path, exc):
    """Turn a connect-time OSError into an actionable BrokerConnectionError."""
    err = getattr(exc, "errno", None)
    if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
        hint = "timed out connecting; is remo-broker overloaded or stopped?"
    elif err in (errno.ENOENT, errno.ENOTDIR):
        hint = "socket not found; is remo-broker running and is the socket path right?"
    elif err == errno.ECONNREFUSED:
        hint = "connection refused; is remo-broker running and is the socket path right?"
    elif err in (errno.EACCES, errno.EPERM):
        hint = ("permission denied; is this user in the broker's admin group? "
                "(for a project socket: does this uid match the project's expected_uid?)")
    else:
        hint = "%s" % (exc.strerror or type(exc).__name__)
    return BrokerConnectionError(
        "Error connecting to remo-broker at %s: %s" % (socket_path, hint),
        {"socket_path": socket_path, "errno": err},
    )


class BrokerClient:
    """One request per call over a fresh Unix stream connection.

    ``BrokerClient(path).request("status")`` returns the reply dict when it carries
    ``"ok": true``; otherwise raises :class:`BrokerError` with the daemon's code.
    """

    def __init__(self, socket_path, timeout=DEFAULT_CLIENT_TIMEOUT, max_reply_bytes=MAX_REPLY_BYTES):
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes

    def connect(self):
        """Open and return a connected socket (raises BrokerConnectionError)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise _connect_error(self.socket_path, exc) from None
        return sock

    @staticmethod
    def encode(op, fields):
        """The request line for ``op`` with ``fields`` (bytes, newline-terminated)."""
        req = {"op": op}
        req.update(fields)
        return json.dumps(req, separators=(",", ":")).encode("utf-8") + b"\n"

    def request(self, op, **fields):
        """Send one request and return the decoded ``ok`` reply."""
        try:
            line = self.encode(op, fields)
        except (TypeError, ValueError):
            # Never echo the request: it may hold secrets.
            raise BrokerError(E_PROTOCOL_ERROR, "request for op %r is not JSON-serializable" % (op,)) from None
        sock = self.connect()
        try:
            return self._exchange(sock, line)
        finally:
            sock.close()

    def _exchange(self, sock, line):
        try:
            sock.sendall(line)
        except OSError as exc:
            raise BrokerConnectionError(
                "Error sending to remo-broker at %s: %s" % (self.socket_path, exc.strerror or type(exc).__name__),
                {"socket_path": self.socket_path},
            ) from None
        reader = LineReader(sock, self.socket_path, self.max_reply_bytes)
        return decode_reply(reader.read_line())

    def stream(self, op, **fields):
        """Send one request and yield every reply line (for ``watch``).

        The first yielded item is the decoded first reply (raising BrokerError when
        it is an error); later items are event dicts.  The socket timeout applies to
        each read; pass ``timeout=None`` to the client to wait forever.
        """
        line = self.encode(op, fields)
        sock = self.connect()
        try:
            sock.sendall(line)
            reader = LineReader(sock, self.socket_path, self.max_reply_bytes)
            yield decode_reply(reader.read_line())
            while True:
                yield decode_reply(reader.read_line(), events_ok=True)
        finally:
            sock.close()


class LineReader:
    """Read newline-terminated lines from a socket under a size cap."""

    def __init__(self, sock, socket_path, max_bytes):
        self.sock = sock
        self.socket_path = socket_path
        self.max_bytes = max_bytes
        self.buf = b""

    def read_line(self):
        """Return the next line without its newline (bytes)."""
        start = time.monotonic()
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 1:]
                return line
            if len(self.buf) > self.max_bytes:
                raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker exceeds %d bytes" % self.max_bytes)
            try:
                chunk = self.sock.recv(262144)
            except (socket.timeout, TimeoutError):
                raise BrokerConnectionError(
                    "timed out after %.1fs waiting for a reply from remo-broker at %s"
                    % (time.monotonic() - start, self.socket_path),
                    {"socket_path": self.socket_path},
                ) from None
            except OSError as exc:
                raise BrokerConnectionError(
                    "Error reading from remo-broker at %s: %s" % (self.socket_path, exc.strerror or type(exc).__name__),
                    {"socket_path": self.socket_path},
                ) from None
            if not chunk:
                raise BrokerConnectionError(
                    "remo-broker at %s closed the connection without a complete reply" % self.socket_path,
                    {"socket_path": self.socket_path},
                )
            self.buf += chunk


def decode_reply(line, events_ok=False):
    """Decode one reply line; return it when ok, raise BrokerError otherwise."""
    try:
        reply = json.loads(line)
    except ValueError:
        raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker is not valid JSON") from None
    if not isinstance(reply, dict):
        raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker is not a JSON object")
    if events_ok and "event" in reply:
        return reply
    if reply.get("ok") is True:
        return reply
    code = reply.get("code")
    message = reply.get("message")
    details = reply.get("details")
    if "retry_after_seconds" in reply:
        details = dict(details or {})
        details["retry_after_seconds"] = reply["retry_after_seconds"]
    raise BrokerError(
        code if isinstance(code, str) else E_PROTOCOL_ERROR,
        message if isinstance(message, str) else "remo-broker returned an error without a message",
        details if isinstance(details, dict) else None,
    )
