# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Encoded reply lines, and the exceptions that end a request with one."""

from __future__ import annotations

import json


def err(code, message, details=None, extra=None):
    reply = {"ok": False, "code": code, "message": message}
    if details:
        reply["details"] = details
    if extra:
        reply.update(extra)
    return json.dumps(reply, separators=(",", ":")).encode("utf-8") + b"\n"


def ok(fields):
    reply = {"ok": True}
    reply.update(fields)
    return json.dumps(reply, separators=(",", ":")).encode("utf-8") + b"\n"


class CloseAfter(Exception):
    """Ends a request: the connection writes ``reply`` (after earlier replies) and closes."""

    def __init__(self, reply):
        super().__init__("close")
        self.reply = reply


class AdminFail(Exception):
    """Ends an admin request with an error reply; the connection stays open."""

    def __init__(self, code, message, details=None, project=None):
        super().__init__(code)
        self.code = code
        self.message = message
        self.details = details
        self.project = project
