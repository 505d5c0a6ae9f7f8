# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Registered projects: their state, their sockets, and the registrations file."""

from __future__ import annotations

import json
import os
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon import sockets
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.listener import Listener
from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import REFUSE_ALL, restored_record
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log, sd_notify
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import ok
from ansible_collections.remo.broker.plugins.module_utils._manifest import (
    MANIFEST_RELATIVE_PATH,
    ManifestError,
    format_file_mode,
    load_manifest,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    COUNTER_NAMES,
    DAEMON_VERSION,
    E_MANIFEST_INVALID,
    PROJECT_SOCKET_MODE,
    PROTOCOL_VERSION,
    REGISTRATIONS_FILE_NAME,
    STATE_FILE_MODE,
    is_valid_project_name,
    project_dir_socket_path,
    project_socket_dir,
    project_socket_path,
)


def default_manifest_path(project_path):
    """The manifest of a registration that names none (older clients and registrations files)."""
    return os.path.join(project_path, MANIFEST_RELATIVE_PATH)


class Project:
    """One registered project: its manifest, allowlist, socket and counters."""

    __slots__ = ("name", "project_path", "expected_uid", "manifest", "manifest_path", "manifest_sha256",
                 "allowlist", "allowlist_list", "socket_path", "socket_dir", "link_path", "server", "counters",
                 "tokens", "tokens_ts", "watchers", "ping_reply", "info_reply", "conns", "manifest_error",
                 "attestation")

    def __init__(self, name, project_path, expected_uid, run_dir, manifest_path=None):
        self.name = name
        self.project_path = project_path
        self.expected_uid = expected_uid
        self.manifest = None
        # The approved copy the allowlist comes from; every load checks it (_trusted_path).
        self.manifest_path = manifest_path or default_manifest_path(project_path)
        self.manifest_sha256 = None
        self.allowlist = frozenset()
        self.allowlist_list = []
        self.socket_dir = project_socket_dir(run_dir, name)
        self.socket_path = project_dir_socket_path(run_dir, name)
        self.link_path = project_socket_path(run_dir, name)
        self.server = None      # its Listener while its socket is served
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.tokens = None
        self.tokens_ts = 0.0
        self.watchers = set()
        self.conns = set()
        self.ping_reply = b""
        self.info_reply = b""
        self.manifest_error = None
        # None: any peer with expected_uid; else only processes of this container (peer_attestation.py)
        self.attestation = None
        self._build_replies()

    def apply_manifest(self, manifest):
        self.manifest = manifest
        self.manifest_path = manifest.path
        self.manifest_sha256 = manifest.sha256
        self.allowlist_list = list(manifest.allowlist)
        self.allowlist = frozenset(self.allowlist_list)
        self.manifest_error = None
        self._build_replies()

    def _build_replies(self):
        self.ping_reply = ok({"protocol_version": PROTOCOL_VERSION, "daemon_version": DAEMON_VERSION, "project": self.name})
        specs = []
        if self.manifest is not None:
            for name, spec in self.manifest.secrets.items():
                item = {"name": name, "fetch_as": spec.fetch_as}
                if spec.env_var is not None:
                    item["env_var"] = spec.env_var
                if spec.file_path is not None:
                    item["file_path"] = spec.file_path
                if spec.file_mode is not None:
                    item["file_mode"] = format_file_mode(spec.file_mode)
                if spec.template is not None:
                    item["template"] = spec.template
                specs.append(item)
        self.info_reply = ok({"project": self.name, "allowlist": self.allowlist_list, "secrets": specs})

    def describe(self):
        return {
            "name": self.name,
            "project_path": self.project_path,
            "manifest_path": self.manifest_path,
            "manifest_sha256": self.manifest_sha256,
            "socket_path": self.socket_path,
            "socket_dir": self.socket_dir,
            "expected_uid": self.expected_uid,
            "allowlist": list(self.allowlist_list),
            "allowlist_size": len(self.allowlist_list),
            "counters": dict(self.counters),
            "manifest_error": self.manifest_error,
            "attestation": dict(self.attestation) if self.attestation is not None else None,
        }


def _after_ready_io(loop):
    """A future done once the loop has handled the I/O that is ready at its next poll.

    A zero-delay timer runs after that poll's I/O callbacks (``asyncio.sleep(0)`` would
    resume before them, so a request waiting meanwhile would wait for one more parse).
    """
    done = loop.create_future()
    loop.call_later(0, lambda: done.done() or done.set_result(None))
    return done


class Registry:
    """The Broker's registered projects (mixed into server.Broker)."""

    _reload_task = None         # the SIGHUP reload in progress
    _reload_again = False       # a SIGHUP arrived during it: one more pass when it ends

    # -- project sockets ----------------------------------------------------
    def start_project_server(self, project):
        """Bind the project's socket in its (reused) directory and serve it on the loop."""
        from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import Connection
        sockets.open_project_dir(self.run_dir, project.socket_dir)
        sock = sockets.bind_unix(project.socket_path, PROJECT_SOCKET_MODE, uid=project.expected_uid)
        sockets.link_socket(project.link_path, os.path.relpath(project.socket_path, self.run_dir))
        project.server = Listener(self, sock, project, lambda: Connection(self, project)).start()

    def stop_project_server(self, project, remove_dir=False):
        if project.server is not None:
            project.server.close()
            project.server = None
        from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import close_or_abort
        for conn in list(project.conns):
            conn.closed = True
            if conn.transport is not None:
                close_or_abort(conn)    # a client that reads nothing must not keep its descriptor
        sockets.remove(project.socket_path)
        if remove_dir:
            sockets.remove(project.link_path)
            try:
                os.rmdir(project.socket_dir)
            except OSError as exc:
                log("warning", "cannot remove %s: %s" % (project.socket_dir, exc.strerror or type(exc).__name__))

    def set_expected_uid(self, project, uid):
        project.expected_uid = uid
        sockets.grant_connect(project.socket_path, uid, PROJECT_SOCKET_MODE)
        from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import close_or_abort
        for conn in list(project.conns):
            conn.closed = True
            close_or_abort(conn)

    # -- registrations file --------------------------------------------------
    def _registrations_path(self):
        return os.path.join(self.state_dir, REGISTRATIONS_FILE_NAME)

    def save_registrations(self):
        data = {"version": 1, "projects": [
            dict({"name": p.name, "project_path": p.project_path, "manifest_path": p.manifest_path,
                  "expected_uid": p.expected_uid},
                 **({"attestation": p.attestation} if p.attestation is not None else {}))
            for p in self.projects.values()
        ]}
        path = self._registrations_path()
        tmp = path + ".tmp.%d" % os.getpid()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, STATE_FILE_MODE)
        try:
            os.fchmod(fd, STATE_FILE_MODE)
            os.write(fd, json.dumps(data, indent=2, sort_keys=True).encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        try:
            dfd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def restore_registrations(self):
        path = self._registrations_path()
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log("error", "cannot read %s (%s); starting without registrations" % (path, type(exc).__name__))
            return
        entries = data.get("projects") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            log("error", "%s has no projects list; starting without registrations" % path)
            return
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            ppath = entry.get("project_path")
            uid = entry.get("expected_uid")
            mpath = entry.get("manifest_path")
            if not is_valid_project_name(name) or not isinstance(ppath, str) or not os.path.isabs(ppath) \
                    or (mpath is not None and (not isinstance(mpath, str) or not os.path.isabs(mpath))):
                log("error", "skipping a malformed registration in %s" % path)
                continue
            if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0):
                uid = None
            project = Project(name, ppath, uid, self.run_dir, mpath)
            project.attestation = restored_record(entry.get("attestation"))
            if project.attestation is REFUSE_ALL:
                log("error", "project %s: damaged attestation in %s; refusing every peer until the next attest"
                    % (name, path))
            try:
                project.apply_manifest(self.load_project_manifest(name, project.manifest_path))
            except ManifestError as exc:
                project.manifest_error = str(exc)
                log("error", "project %s: manifest not loaded, allowlist empty: %s" % (name, exc))
            try:
                self.start_project_server(project)
            except OSError as exc:
                log("error", "project %s: cannot create socket: %s" % (name, exc.strerror or exc))
                continue
            self.projects[name] = project
        if self.projects:
            log("info", "restored %d project registration(s)" % len(self.projects))

    # -- SIGHUP ----------------------------------------------------------------
    def reload_all(self):
        """SIGHUP: reload every manifest, one project per pass of the event loop.

        One manifest's parse is bounded (docs/daemon.md "Bounded parsing"); the loop
        serves the other projects and the admin socket between two of them, so the whole
        reload never holds it.  Each project keeps its previous allowlist until its new
        manifest is validated, then switches in one assignment.
        """
        if self._reload_task is not None:
            self._reload_again = True       # the files may have changed after they were read
            return
        self._reload_task = self.loop.create_task(self._reload_projects())

    async def _reload_projects(self):
        try:
            while True:
                self._reload_again = False
                await self._reload_pass()
                if not self._reload_again or self.draining:
                    break
        finally:
            self._reload_task = None

    async def _reload_pass(self):
        sd_notify("RELOADING=1\nMONOTONIC_USEC=%d" % int(time.monotonic() * 1e6))
        good = bad = 0
        for project in list(self.projects.values()):
            if self.draining:
                break
            if self.projects.get(project.name) is not project:
                continue        # unregistered (or registered anew) while the reload waited
            try:
                project.apply_manifest(self.load_project_manifest(project.name, project.manifest_path))
                good += 1
                outcome = "ok"
            except ManifestError as exc:
                bad += 1
                project.manifest_error = str(exc)
                outcome = E_MANIFEST_INVALID
                log("error", "project %s: reload failed, previous allowlist kept: %s" % (project.name, exc))
            self.audit.emit(audit_event("reload", project.name, outcome, None, None, (os.getpid(), os.getuid()), 0))
            await _after_ready_io(self.loop)
        log("info", "SIGHUP: %d manifest(s) reloaded, %d kept previous allowlist" % (good, bad))
        sd_notify("READY=1\nSTATUS=%s" % self._status_line())

    @staticmethod
    def load_project_manifest(name, manifest_path):
        """The manifest at ``manifest_path``, read only if no other account can have written it."""
        return load_manifest(manifest_path, expected_project=name)
