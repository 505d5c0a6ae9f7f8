# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Coalescing of the outcomes a client can repeat at will (rate limited, protocol errors, ...).

A flood of them would otherwise write one audit line each.  The first outcome of a peer
is logged as usual; the repeats of the same (event, project, outcome, peer) are counted
and written as ONE summary event per ``AUDIT_COALESCE_INTERVAL`` carrying
``{"repeats": N}``.  A key without repeats in an interval is forgotten, so its next
outcome is logged in full again.  The table holds at most ``COALESCE_ENTRIES`` peers;
beyond that, new peers' repeats are counted under their (event, project, outcome) with
a null peer, so the table stays bounded however many processes a project starts.
"""

from __future__ import annotations

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event

COALESCE_ENTRIES = 1024     # peers tracked one by one; more fold into one entry per (event, project, outcome)


class Coalescer:
    """Counts repeats per peer between ``flush`` calls (the audit queue's interval timer)."""

    __slots__ = ("_emit", "table")

    def __init__(self, emit):
        self._emit = emit
        self.table = {}     # (event, project, outcome, extra items, pid, uid) -> [repeats since the last line, decision]

    def emit(self, event, project, outcome, decision, peer, t0, extra=None):
        """Audit one repeatable outcome: logged when new for this peer, else counted.

        ``extra`` (small, constant per call site, e.g. a refusal reason) is part of the key
        and repeated in the summary."""
        table = self.table
        tag = tuple(sorted(extra.items())) if extra else ()
        key = (event, project, outcome, tag, peer[0], peer[1])
        entry = table.get(key)
        if entry is None and len(table) >= COALESCE_ENTRIES:
            key = (event, project, outcome, tag, None, None)
            entry = table.get(key)
        if entry is not None:
            entry[0] += 1
            return
        table[key] = [0, decision]
        self._emit(audit_event(event, project, outcome, decision, None, peer, t0, extra))

    def flush(self):
        """One summary event per key repeated since the last flush; forget the quiet keys."""
        table = self.table
        for key, entry in list(table.items()):
            repeats = entry[0]
            if not repeats:
                del table[key]
                continue
            event, project, outcome, tag, pid, uid = key
            entry[0] = 0
            self._emit(audit_event(event, project, outcome, entry[1], None, (pid, uid), 0, dict(tag, repeats=repeats)))
