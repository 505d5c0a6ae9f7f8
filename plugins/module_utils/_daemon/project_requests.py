# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Requests on a project socket: rate limit, get, ping, info, watch (docs/protocol.md)."""

from __future__ import annotations

import json
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err, ok
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DECISION_ALLOW,
    DECISION_DENY,
    E_AUDIT_UNAVAILABLE,
    E_DENIED,
    E_NOT_FOUND,
    E_PROTOCOL_ERROR,
    E_RATE_LIMITED,
    SECRET_NAME_RE,
)

REQ_CACHE_ENTRIES = 1024    # parsed project request lines kept (flat, string-valued requests only)
REQ_CACHE_LINE_BYTES = 512


def _safe_name(name):
    """The requested name when it is a well-formed secret name, else None (never echo junk)."""
    if isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None:
        return name
    return None


class ProjectRequests:
    """The project-socket request handler (mixed into server.Broker)."""

    def handle_project(self, conn, line):
        """The reply to one request line (b"" for a blank line); raises CloseAfter to close."""
        t0 = time.perf_counter()
        project = conn.project
        now = time.monotonic()
        if self.rate > 0:
            tokens = project.tokens
            if tokens is None:
                tokens = self.burst
            else:
                tokens = min(self.burst, tokens + (now - project.tokens_ts) * self.rate)
            project.tokens_ts = now
            if tokens < 1.0:
                project.tokens = tokens
                project.counters["rate_limited"] += 1
                retry = round((1.0 - tokens) / self.rate, 3) or 0.001
                self.audit.emit_repeatable("request", project.name, E_RATE_LIMITED, DECISION_DENY, conn.peer, t0)
                return self._rate_limited_reply(project.name, retry)
            project.tokens = tokens - 1.0
        req = self.req_cache.get(line)
        if req is None:
            req = self._parse_project(conn, line, t0)
            if req is None:
                return b""
        conn.last = now     # a request past the rate limit: the client is not idle
        op = req.get("op")
        if op == "get":
            name = req.get("name")
            if not isinstance(name, str):
                raise self._project_protocol_error(conn, "get needs a string 'name'", t0, "get")
            if name not in project.allowlist:
                project.counters["denied"] += 1
                safe = _safe_name(name)
                self.audit.emit(audit_event("get", project.name, E_DENIED, DECISION_DENY, safe, conn.peer, t0))
                if safe is None:
                    return err(E_DENIED, "requested name is not a valid secret name")
                return err(E_DENIED, "secret %s is not in the allowlist of project %s" % (name, project.name))
            field = req.get("field")
            reply = self.store.replies.get(name) if field is None else self.store.field_reply(name, field)
            if reply is None:
                project.counters["not_found"] += 1
                self.audit.emit(audit_event("get", project.name, E_NOT_FOUND, DECISION_ALLOW, name, conn.peer, t0))
                if field is None:
                    return err(E_NOT_FOUND, "secret %s has not been pushed to the broker" % name)
                return err(E_NOT_FOUND, "secret %s has no such field" % name)
            if self.audit.refusing is not None:
                # Fail closed: a value is never served without its audit line.
                project.counters["audit_unavailable"] += 1
                self.audit.emit_repeatable("get", project.name, E_AUDIT_UNAVAILABLE, DECISION_DENY, conn.peer, t0)
                return err(E_AUDIT_UNAVAILABLE, "secrets are not served while the audit log cannot be written: %s"
                           % self.audit.refusing)
            project.counters["allowed"] += 1
            self.audit.emit(audit_event("get", project.name, "ok", DECISION_ALLOW, name, conn.peer, t0))
            return reply
        if op == "ping":
            self.audit.emit(audit_event("ping", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
            return project.ping_reply
        if op == "info":
            self.audit.emit(audit_event("info", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
            return project.info_reply
        if op == "watch":
            conn.watching = True
            project.watchers.add(conn)
            self.audit.emit(audit_event("watch", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
            return ok({"watching": project.allowlist_list})
        if not isinstance(op, str):
            raise self._project_protocol_error(conn, "request has no string 'op'", t0)
        raise self._project_protocol_error(conn, "unknown op for a project socket", t0)

    def _rate_limited_reply(self, name, retry):
        """The ``rate_limited`` reply: a flood gets one per request, so only the number is formatted."""
        head = self.rate_limited_heads.get(name)
        if head is None:
            if len(self.rate_limited_heads) >= REQ_CACHE_ENTRIES:
                self.rate_limited_heads.clear()
            whole = err(E_RATE_LIMITED, "rate limit of %g requests/s exceeded for project %s" % (self.rate, name),
                        extra={"retry_after_seconds": 0.0})
            head = self.rate_limited_heads[name] = whole[:whole.rindex(b":") + 1]
        return b"%s%s}\n" % (head, repr(retry).encode("ascii"))

    def _parse_project(self, conn, line, t0):
        """Parse a project request line (None for a blank line); cache flat string-valued ones."""
        try:
            req = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._project_protocol_error(conn, "request is not valid UTF-8", t0) from None
        except RecursionError:
            raise self._project_protocol_error(conn, "request is nested too deeply", t0) from None
        except ValueError:
            if not line.strip():
                return None
            raise self._project_protocol_error(conn, "request is not valid JSON", t0) from None
        if not isinstance(req, dict):
            raise self._project_protocol_error(conn, "request is not a JSON object", t0)
        if len(line) <= REQ_CACHE_LINE_BYTES and len(req) <= 4:
            for value in req.values():
                if type(value) is not str:  # pylint: disable=unidiomatic-typecheck
                    break
            else:
                cache = self.req_cache
                if len(cache) >= REQ_CACHE_ENTRIES:
                    cache.clear()
                cache[line] = req
        return req

    def _project_protocol_error(self, conn, message, t0, event="protocol"):
        """Count and audit a protocol error; returns the CloseAfter for the caller to raise."""
        project = conn.project
        project.counters["protocol_error"] += 1
        self.audit.emit_repeatable(event, project.name, E_PROTOCOL_ERROR, DECISION_DENY, conn.peer, t0)
        return CloseAfter(err(E_PROTOCOL_ERROR, message))
