# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Requests on the admin socket: status, register, reload, unregister, push/diff/clear creds."""

from __future__ import annotations

import json
import os
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import close_or_abort
from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import (
    CONTAINER_ID_RE,
    AttestationError,
    attestation_record,
)
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import iso_now, log
from ansible_collections.remo.broker.plugins.module_utils._daemon.registry import Project, default_manifest_path
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import AdminFail, CloseAfter, err, ok
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import wipe, wipe_values
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_store import prepare, source_arg, wipe_entries
from ansible_collections.remo.broker.plugins.module_utils._manifest import ManifestError
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DAEMON_VERSION,
    DECISION_ALLOW,
    DECISION_DENY,
    E_CONFLICT,
    E_INTERNAL_ERROR,
    E_INVALID_PAYLOAD,
    E_MANIFEST_INVALID,
    E_MANIFEST_NOT_FOUND,
    E_NOT_REGISTERED,
    E_PROTOCOL_ERROR,
    OP_ATTEST,
    OP_CLEAR_CREDS,
    OP_DIFF_CREDS,
    OP_PING,
    OP_PUSH_CREDS,
    OP_REGISTER,
    OP_RELOAD,
    OP_STATUS,
    OP_UNREGISTER,
    PROJECT_NAME_PATTERN,
    PROTOCOL_VERSION,
    RESERVED_PROJECT_NAMES,
    is_valid_project_name,
)


def _manifest_fail(exc, name):
    details = {"file": exc.file, "line": exc.line, "column": exc.column, "key": exc.key}
    reason = exc.reason or ""
    code = E_MANIFEST_NOT_FOUND if reason.startswith("not found") else E_MANIFEST_INVALID
    return AdminFail(code, str(exc), details, project=name)


def _absolute_path(req, key, name, required=True):
    """``req[key]`` normalised, or None when absent and not ``required``; AdminFail otherwise."""
    path = req.get(key)
    if path is None and not required:
        return None
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        raise AdminFail(E_INVALID_PAYLOAD, "'%s' must be an absolute path" % key, project=name)
    try:
        os.fsencode(path)
    except UnicodeEncodeError:    # a lone surrogate from JSON: no file system name
        raise AdminFail(E_INVALID_PAYLOAD, "'%s' is not a valid file name" % key, project=name) from None
    return os.path.normpath(path)


def _register_reply(project, changed):
    return {
        "name": project.name,
        "socket_path": project.socket_path,
        "socket_dir": project.socket_dir,
        "manifest_path": project.manifest_path,
        "manifest_sha256": project.manifest_sha256,
        "allowlist": list(project.allowlist_list),
        "expected_uid": project.expected_uid,
        "changed": changed,
    }


class AdminRequests:
    """The admin-socket request handler and its ops (mixed into server.Broker)."""

    def handle_admin(self, conn, line):
        """The reply to one admin request line; raises CloseAfter on a protocol error."""
        t0 = time.perf_counter()
        text = None
        try:
            text = line.decode("utf-8")
            req = json.loads(text)
        except UnicodeDecodeError:
            raise self._admin_protocol_error(conn, "request is not valid UTF-8", t0) from None
        except RecursionError:
            raise self._admin_protocol_error(conn, "request is nested too deeply", t0) from None
        except ValueError:
            if not line.strip():
                return b""
            raise self._admin_protocol_error(conn, "request is not valid JSON", t0) from None
        finally:
            wipe(text, refs=1)     # admin lines carry values (secret_memory.py)
            wipe(line, refs=2)
        if not isinstance(req, dict):
            raise self._admin_protocol_error(conn, "request is not a JSON object", t0)
        conn.last = time.monotonic()
        try:
            return self._admin_op(conn, req, t0)
        finally:
            wipe_values(req.get("secrets"))

    def _admin_op(self, conn, req, t0):
        op = req.get("op")
        handler = self._admin_ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise self._admin_protocol_error(
                conn, "unknown op for the admin socket" if isinstance(op, str) else "request has no string 'op'", t0)
        try:
            project, reply, extra = handler(self, req)
            outcome = "ok"
            body = ok(reply)
        except AdminFail as fail:
            project = fail.project
            outcome = fail.code
            extra = None
            body = err(fail.code, fail.message, fail.details)
        self.audit.emit(audit_event(op, project, outcome, DECISION_ALLOW if outcome == "ok" else DECISION_DENY,
                                    None, conn.peer, t0, extra))
        return body

    def _admin_protocol_error(self, conn, message, t0):
        """Audit a protocol error; returns the CloseAfter for the caller to raise."""
        self.audit.emit_repeatable("protocol", None, E_PROTOCOL_ERROR, DECISION_DENY, conn.peer, t0)
        return CloseAfter(err(E_PROTOCOL_ERROR, message))

    # -- ops: each returns (project or None, reply fields, audit extra or None) ----
    def op_ping(self, req):
        return None, {"protocol_version": PROTOCOL_VERSION, "daemon_version": DAEMON_VERSION, "project": None}, None

    def op_status(self, req):
        return None, {
            "protocol_version": PROTOCOL_VERSION,
            "daemon_version": DAEMON_VERSION,
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            **self.store.describe(),
            "projects": [p.describe() for p in self.projects.values()],
            "audit": self.audit.status(),
            "rate_limit": {"rps": self.rate, "burst": self.burst},
            "connections": dict(self.limits.status(self.projects), turn_waits=self.turns.deferred),
            "hardening": self.hardening,
        }, None

    @staticmethod
    def _register_args(req, need_path):
        name = req.get("name")
        if not is_valid_project_name(name):
            raise AdminFail(E_INVALID_PAYLOAD, "'name' must match %s and not be reserved (%s)"
                            % (PROJECT_NAME_PATTERN, ", ".join(sorted(RESERVED_PROJECT_NAMES))))
        if not need_path:
            return name, None, None, None
        path = _absolute_path(req, "project_path", name)
        manifest_path = _absolute_path(req, "manifest_path", name, required=False) or default_manifest_path(path)
        uid = req.get("expected_uid")
        if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0 or uid > 0xFFFFFFFE):
            raise AdminFail(E_INVALID_PAYLOAD, "'expected_uid' must be a non-negative integer", project=name)
        return name, path, manifest_path, uid

    def op_register(self, req):
        name, path, manifest_path, uid = self._register_args(req, True)
        existing = self.projects.get(name)
        if existing is not None and existing.project_path != path:
            raise AdminFail(E_CONFLICT, "project %s is already registered with another project_path" % name,
                            {"registered_path": existing.project_path}, project=name)
        # The directory matters only for its owner, the default uid: a workspace under a
        # home directory the daemon's account cannot enter is fine with an expected_uid.
        if uid is None and not os.path.isdir(path):
            raise AdminFail(E_MANIFEST_NOT_FOUND, "project_path %s is not a directory the daemon can see (its owner "
                            "is the default expected_uid; give expected_uid otherwise)" % path,
                            {"file": manifest_path}, project=name)
        try:
            manifest = self.load_project_manifest(name, manifest_path)
        except ManifestError as exc:
            raise _manifest_fail(exc, name) from None
        if uid is None:
            uid = os.stat(path).st_uid
        if existing is not None:
            changed = (existing.manifest_sha256 != manifest.sha256 or existing.expected_uid != uid
                       or existing.manifest_path != manifest_path or existing.manifest_error is not None)
            if existing.expected_uid != uid:
                self.set_expected_uid(existing, uid)
            existing.apply_manifest(manifest)
            if changed:
                self.save_registrations()
            return name, _register_reply(existing, changed), {"allowlist_size": len(existing.allowlist_list)}
        project = Project(name, path, uid, self.run_dir, manifest_path)
        project.apply_manifest(manifest)
        try:
            self.start_project_server(project)
        except OSError as exc:
            raise AdminFail(E_INTERNAL_ERROR, "cannot create the project socket: %s" % (exc.strerror or exc),
                            project=name) from None
        self.projects[name] = project
        self.save_registrations()
        log("info", "registered project %s (%d allowed names)" % (name, len(project.allowlist_list)))
        return name, _register_reply(project, True), {"allowlist_size": len(project.allowlist_list)}

    def op_reload(self, req):
        name, _path, _manifest_path, _uid = self._register_args(req, False)
        project = self.projects.get(name)
        if project is None:
            raise AdminFail(E_NOT_REGISTERED, "project %s is not registered" % name, project=name)
        try:
            manifest = self.load_project_manifest(name, project.manifest_path)
        except ManifestError as exc:
            raise _manifest_fail(exc, name) from None
        changed = project.manifest_sha256 != manifest.sha256 or project.manifest_error is not None
        project.apply_manifest(manifest)
        return name, _register_reply(project, changed), {"allowlist_size": len(project.allowlist_list)}

    def op_unregister(self, req):
        name, _path, _manifest_path, _uid = self._register_args(req, False)
        project = self.projects.pop(name, None)
        if project is None:
            return name, {"name": name, "changed": False}, None
        self.stop_project_server(project, remove_dir=True)
        self.save_registrations()
        log("info", "unregistered project %s" % name)
        return name, {"name": name, "changed": True}, None

    def op_attest(self, req):
        """Bind the project socket to one container (docs/protocol.md, peer_attestation.py)."""
        name, _path, _manifest_path, _uid = self._register_args(req, False)
        project = self.projects.get(name)
        if project is None:
            raise AdminFail(E_NOT_REGISTERED, "project %s is not registered" % name, project=name)
        cid = req.get("container_id")
        if cid is None:
            record = None
        else:
            pid = req.get("pid")
            if not isinstance(cid, str) or CONTAINER_ID_RE.fullmatch(cid) is None:
                raise AdminFail(E_INVALID_PAYLOAD, "'container_id' must be a full container id (64 hex digits) or null",
                                project=name)
            if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
                raise AdminFail(E_INVALID_PAYLOAD, "'pid' must be the pid of a process of the container", project=name)
            try:
                record = attestation_record(cid, pid)
            except AttestationError as exc:
                raise AdminFail(E_INVALID_PAYLOAD, str(exc), {"container_id": cid, "pid": pid}, project=name) from None
        changed = record != project.attestation
        if changed:
            project.attestation = record
            self.save_registrations()
            for conn in list(project.conns):    # admitted under the previous attestation
                close_or_abort(conn)
            log("info", "project %s: %s" % (name, "attested container %s" % cid if record else "attestation removed"))
        return name, {"name": name, "attestation": dict(record) if record else None, "changed": changed}, \
            {"container_id": cid}

    def op_diff_creds(self, req):
        source = source_arg(req)
        entries = prepare(req.get("secrets"))
        try:
            added, removed, changed = self.store.diff(source, entries)
        finally:
            wipe_entries(entries.values())
        unchanged = len(entries) - len(added) - len(changed)
        return None, {"source": source, "added": added, "removed": removed, "changed": changed,
                      "unchanged_count": unchanged}, \
            {"source": source, "added": len(added), "removed": len(removed), "changed": len(changed)}

    def op_push_creds(self, req):
        source = source_arg(req)
        entries = prepare(req.get("secrets"))
        try:
            self.store.check_room(source, entries)
        except AdminFail:
            wipe_entries(entries.values())
            raise
        now = iso_now()
        added, removed, changed, touched = self.store.replace(source, entries, now)
        self._notify_watchers(touched)
        count = self.store.count(source)
        counts = {"source": source, "secret_count": count, "added": len(added), "removed": len(removed),
                  "changed": len(changed)}
        return None, {"source": source, "secret_count": count, "served_count": len(self.store),
                      "loaded_at": now, "added": added, "removed": removed, "changed": changed,
                      "conflicts": [c["name"] for c in self.store.conflicts(source)]}, counts

    def op_clear_creds(self, req):
        source = None if req.get("source") is None else source_arg(req)
        cleared, touched = self.store.clear(source)
        self._notify_watchers(touched)
        return None, {"source": source, "secret_count": len(self.store), "cleared": cleared}, \
            {"source": source, "cleared": cleared}

    def _notify_watchers(self, names):
        if not names:
            return
        at = None
        for project in self.projects.values():
            if not project.watchers:
                continue
            hit = sorted(names & project.allowlist)
            if not hit:
                continue
            if at is None:
                at = iso_now()
            line = json.dumps({"event": "changed", "names": hit, "at": at}, separators=(",", ":")).encode("utf-8") + b"\n"
            for conn in list(project.watchers):
                if conn.transport is None or conn.transport.is_closing():
                    project.watchers.discard(conn)
                    continue
                conn.send_event(line)

    _admin_ops = {
        OP_PING: op_ping,
        OP_STATUS: op_status,
        OP_REGISTER: op_register,
        OP_UNREGISTER: op_unregister,
        OP_ATTEST: op_attest,
        OP_RELOAD: op_reload,
        OP_PUSH_CREDS: op_push_creds,
        OP_DIFF_CREDS: op_diff_creds,
        OP_CLEAR_CREDS: op_clear_creds,
    }
