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

_new = tuple.__new__   # skips NamedTuple's Python-level __new__ on the serving path


def audit_event(event, project, outcome, decision=None, name=None, peer=None, t0=None, extra=None):
    """Build an AuditEvent now.  ``peer`` is a (pid, uid) pair; ``t0`` a perf_counter() start."""
    pid, uid = peer if peer is not None else (None, None)
    latency = int((time.perf_counter() - t0) * 1e6) if t0 is not None else 0
    return _new(AuditEvent, (time.time(), event, project, name, decision, outcome, pid, uid, latency, extra))
