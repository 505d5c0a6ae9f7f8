# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Who may open one more connection, and bounded reports of who may not (docs/daemon.md).

Descriptors come from RLIMIT_NOFILE. ``FD_RESERVE`` of them never go to project
connections, so the admin socket always answers; every project keeps
``PROJECT_CONNECTION_FLOOR`` connections the others cannot take; a project and a client
process each have their own cap. A refused connection gets one ``too_many_connections``
line and is closed; refusals and accept failures are logged and audited as one summary
per ``LIMIT_REPORT_INTERVAL``, not once each.
"""

from __future__ import annotations

import os
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import err
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DECISION_DENY,
    E_TOO_MANY_CONNECTIONS,
    FD_RESERVE,
    LIMIT_REPORT_INTERVAL,
    MAX_ADMIN_CONNECTIONS,
    PROJECT_CONNECTION_FLOOR,
)

_REPLY_CACHE_SIZE = 256


def descriptor_limit():
    """The soft RLIMIT_NOFILE, raised to the hard limit when allowed (the unit sets both)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass    # the unit's syscall filter refuses setrlimit; LimitNOFILE set both
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class ConnectionLimits:
    """Open-connection accounting for one Broker."""

    def __init__(self, max_project, max_peer, nofile=None):
        self.nofile = descriptor_limit() if nofile is None else nofile
        self.max_project = max_project
        self.max_peer = max_peer
        self.by_pid = {}
        self.project_open = 0
        self.admin_open = 0
        self.refused = 0
        self.pending = {}          # project name (None: admin) -> [refusals not yet reported, window start, reason]
        self.accept_failures = 0
        self._accept_pending = [0, 0.0, None]
        self._replies = {}

    def project_budget(self, nprojects):
        """Descriptors project connections may hold (one more per project for its listener)."""
        return max(0, self.nofile - FD_RESERVE - nprojects)

    def check(self, pid, project, projects):
        """None when one more connection of ``pid`` to ``project`` (None: admin) may open,
        else (scope, limit) of the limit it would pass."""
        if pid is not None and self.by_pid.get(pid, 0) >= self.max_peer:
            return "peer", self.max_peer
        if project is None:
            if self.admin_open >= MAX_ADMIN_CONNECTIONS:
                return "admin", MAX_ADMIN_CONNECTIONS
            return None
        held = len(project.conns)
        budget = self.project_budget(len(projects))
        cap = min(self.max_project, budget)
        if held >= cap:
            return "project", cap
        if held >= PROJECT_CONNECTION_FLOOR:
            # Above its floor a project may only use what the others' floors leave free.
            unused_floors = 0
            for other in projects.values():
                if len(other.conns) < PROJECT_CONNECTION_FLOOR:
                    unused_floors += PROJECT_CONNECTION_FLOOR - len(other.conns)
            if self.project_open + unused_floors >= budget:
                return "daemon", budget
        return None

    def opened(self, conn):
        if conn.pid is not None:
            self.by_pid[conn.pid] = self.by_pid.get(conn.pid, 0) + 1
        if conn.project is None:
            self.admin_open += 1
        else:
            self.project_open += 1

    def closed(self, conn):
        pid = conn.pid
        if pid is not None:
            left = self.by_pid.get(pid, 1) - 1
            if left > 0:
                self.by_pid[pid] = left
            else:
                self.by_pid.pop(pid, None)
        if conn.project is None:
            self.admin_open -= 1
        else:
            self.project_open -= 1

    def refusal_reply(self, pid, project, scope, limit):
        """The ``too_many_connections`` line, built once per (scope, who, limit): a flood repeats it."""
        self.refused += 1
        who = pid if scope == "peer" else project.name if scope == "project" else None
        key = (scope, who, limit)
        reply = self._replies.get(key)
        if reply is None:
            what = {"peer": "process %s" % pid, "admin": "the admin socket", "daemon": "all projects together"}
            where = what.get(scope, "project %s" % who)
            reply = err(E_TOO_MANY_CONNECTIONS, "%s already has %d open connection(s), the limit; close one and retry"
                        % (where, limit), {"scope": scope, "limit": limit})
            if len(self._replies) >= _REPLY_CACHE_SIZE:
                self._replies.clear()   # many refused pids: bounded, rebuilt on demand
            self._replies[key] = reply
        return reply

    def note_refusal(self, broker, project, scope, peer):
        """Count a refusal; log and audit it now only when its window has no report yet."""
        key = project.name if project is not None else None
        now = time.monotonic()
        entry = self.pending.get(key)
        if entry is None or now - entry[1] >= LIMIT_REPORT_INTERVAL:
            refused = 1 + (entry[0] if entry is not None else 0)
            self.pending[key] = [0, now, scope]
            self._report(broker, key, refused, scope, peer)
        else:
            entry[0] += 1
            entry[2] = scope

    def note_accept_failure(self, exc):
        """accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...): one warning per interval."""
        self.accept_failures += 1
        entry = self._accept_pending
        now = time.monotonic()
        entry[2] = exc
        if entry[1] and now - entry[1] < LIMIT_REPORT_INTERVAL:
            entry[0] += 1
            return
        self._log_accept_failures(entry[0] + 1, exc)
        entry[0], entry[1] = 0, now

    def report_due(self, broker):
        """From the idle sweep: summaries of windows that ended with unreported counts."""
        now = time.monotonic()
        for key, entry in list(self.pending.items()):
            if now - entry[1] < LIMIT_REPORT_INTERVAL:
                continue
            if entry[0]:
                self._report(broker, key, entry[0], entry[2], (None, None))
                entry[0], entry[1] = 0, now
            else:
                del self.pending[key]
        entry = self._accept_pending
        if entry[0] and now - entry[1] >= LIMIT_REPORT_INTERVAL:
            self._log_accept_failures(entry[0], entry[2])
            entry[0], entry[1] = 0, now

    @staticmethod
    def _report(broker, key, refused, scope, peer):
        log("warning", "%s: refused %d connection(s) over the %s connection limit"
            % ("project %s" % key if key is not None else "admin socket", refused, scope))
        broker.audit.emit(audit_event("connect", key, E_TOO_MANY_CONNECTIONS, DECISION_DENY, None, peer, 0,
                                      {"refused": refused, "scope": scope}))

    @staticmethod
    def _log_accept_failures(count, exc):
        name = os.strerror(exc.errno) if getattr(exc, "errno", None) else type(exc).__name__
        log("warning", "cannot accept connections (%s): %d failure(s); retrying every second" % (name, count))

    def status(self, projects):
        budget = self.project_budget(len(projects))
        return {"open": self.admin_open + self.project_open, "admin_open": self.admin_open,
                "project_open": self.project_open, "descriptor_limit": self.nofile, "project_budget": budget,
                "max_project": min(self.max_project, budget), "max_peer": self.max_peer,
                "max_admin": MAX_ADMIN_CONNECTIONS, "refused": self.refused, "accept_failures": self.accept_failures}
