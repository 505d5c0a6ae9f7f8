# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The admin socket's connection: its reads carry values, so each is wiped once handled."""

from __future__ import annotations

from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import Connection
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import wipe


class AdminConnection(Connection):
    """A ``Connection`` (project None) that overwrites every read and partial line it drops.

    ``handle_admin`` wipes each complete line and its decoded text; this wipes what the
    transport handed in (``data``), the concatenation of a line that spanned reads, and
    a partial line left at close (secret_memory.py).
    """

    __slots__ = ()

    def __init__(self, broker):
        super().__init__(broker, None)

    def data_received(self, data):
        old = self.buf
        if old:
            self.buf = b""
            joined = old + data
            wipe(old)
        else:
            joined = data
        try:
            Connection.data_received(self, joined)
        finally:
            if self.buf is not joined:
                wipe(joined, refs=1)
            if joined is not data:
                wipe(data, refs=1)

    def connection_lost(self, exc):
        Connection.connection_lost(self, exc)
        wipe(self.buf, refs=1)
        self.buf = b""
