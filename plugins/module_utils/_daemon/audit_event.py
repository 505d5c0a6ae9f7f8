# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The audit event: one named type, built by one helper (docs/daemon.md lists the fields)."""

from __future__ import annotations

import collections
import time

AuditEvent = collections.namedtuple(
    "AuditEvent", ("ts", "event", "project", "name", "decision", "outcome", "peer_pid", "peer_uid", "latency_us", "extra"))
AuditEvent.__doc__ = """One audit record.  Never a value.

ts          epoch seconds (float)
event       get, ping, info, watch, connect, protocol, an admin op, reload, start, stop
project     project name or None
name        None or a validated secret name
decision    "allow", "deny" or None (lifecycle events)
outcome     "ok" or an error code
peer_pid    SO_PEERCRED pid or None
peer_uid    SO_PEERCRED uid or None
latency_us  microseconds spent on the request
extra       None or a dict of counts (e.g. {"added": 2})
"""

_clock = time.time
_perf = time.perf_counter


def audit_event(event, project, outcome, decision, name, peer, t0, extra=None):
    """The fields of one AuditEvent, now, as the plain tuple the audit pipe carries.

    Positional arguments only: this runs once per request.  ``peer`` is the
    connection's (pid, uid); ``t0`` its time.perf_counter() start, or 0 for events that
    are no request (start, stop, reload).  A plain tuple, not an AuditEvent instance:
    marshal only takes exact tuples, and building the namedtuple would cost more than
    the rest of a ``get``.  ``AuditEvent(*fields)`` names them wherever they are read.
    """
    return (_clock(), event, project, name, decision, outcome, peer[0], peer[1],
            int((_perf() - t0) * 1e6) if t0 else 0, extra)
