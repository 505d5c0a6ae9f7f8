# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The broker's admin socket, as the sidecar uses it (protocol 2, NDJSON)."""

import json
import os
import socket

ADMIN_SOCKET = os.environ.get("REMO_BROKER_SOCKET", "/run/remo-broker/admin.sock")
PROTOCOL_VERSION = 2
# The push source the sidecar's pushes carry; the broker replaces only this source's
# names once it knows sources (older daemons ignore the field).
PUSH_SOURCE = "vault"
MAX_REPLY_BYTES = 4 * 1024 * 1024
TIMEOUT = 10.0


class BrokerUnavailable(Exception):
    """The socket is missing, refuses or hangs up; the message names the socket."""


class BrokerRefused(Exception):
    """The broker answered ok=false; ``code`` is its error code."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


def request(op, path=None, **fields):
    path = path or ADMIN_SOCKET
    payload = json.dumps(dict(op=op, **fields), separators=(",", ":")).encode("utf-8") + b"\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(TIMEOUT)
    try:
        try:
            sock.connect(path)
            sock.sendall(payload)
            reader = sock.makefile("rb")
            line = reader.readline(MAX_REPLY_BYTES + 1)
        except OSError as exc:
            raise BrokerUnavailable("broker admin socket %s: %s" % (path, exc.strerror or exc)) from None
    finally:
        sock.close()
    if not line.endswith(b"\n"):
        raise BrokerUnavailable("broker admin socket %s: connection closed without a reply" % path)
    try:
        reply = json.loads(line)
    except ValueError:
        raise BrokerUnavailable("broker admin socket %s: reply is not JSON" % path) from None
    if not reply.get("ok"):
        raise BrokerRefused(reply.get("code", "unknown"), reply.get("message", ""))
    return reply


def push(secrets, path=None):
    """Replace the vault's names in the broker; returns the reply (counts and names only)."""
    return request("push-creds", path, secrets=secrets, source=PUSH_SOURCE)


def status(path=None):
    reply = request("status", path)
    if reply.get("protocol_version") != PROTOCOL_VERSION:
        raise BrokerRefused("protocol_mismatch", "broker speaks protocol %r, not %d"
                            % (reply.get("protocol_version"), PROTOCOL_VERSION))
    return reply
