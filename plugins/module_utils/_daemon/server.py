# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The server loop: the Broker's state, start-up, signals, idle sweep, drain; ``serve``."""

from __future__ import annotations

import os
import sys
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.admin_connection import AdminConnection
from ansible_collections.remo.broker.plugins.module_utils._daemon.admin_requests import AdminRequests
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_checkpoint import open_store
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue import AuditQueue
from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import close_or_abort
from ansible_collections.remo.broker.plugins.module_utils._daemon.connection_limits import ConnectionLimits
from ansible_collections.remo.broker.plugins.module_utils._daemon.listener import Listener
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import (
    harden_process,
    log,
    release_startup_memory,
    sd_notify,
    set_log_level,
)
from ansible_collections.remo.broker.plugins.module_utils._daemon.project_requests import ProjectRequests
from ansible_collections.remo.broker.plugins.module_utils._daemon.project_turns import ProjectTurns
from ansible_collections.remo.broker.plugins.module_utils._daemon.registry import Registry
from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import err
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import harden_memory
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_store import SecretStore
from ansible_collections.remo.broker.plugins.module_utils._daemon.sockets import bind_unix, remove
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    ADMIN_SOCKET_MODE,
    AUDIT_DIR_MODE,
    DEFAULT_MAX_PEER_CONNECTIONS,
    DEFAULT_MAX_PROJECT_CONNECTIONS,
    DRAIN_TIMEOUT,
    E_INTERNAL_ERROR,
    E_PEER_UNEXPECTED,
    E_PROTOCOL_ERROR,
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_USAGE,
    RUN_DIR_MODE,
    STATE_DIR_MODE,
    admin_socket_path,
)
from ansible_collections.remo.broker.plugins.module_utils._trusted_path import UntrustedPathError, check_private_directory


class Broker(Registry, ProjectRequests, AdminRequests):
    """The daemon state; the request handlers come from the mixins."""

    def __init__(self, args, program):
        self.args = args
        self.run_dir = os.path.abspath(args.run_dir)
        self.state_dir = os.path.abspath(args.state_dir)
        self.audit_path = os.path.abspath(args.audit_log)
        self.client_timeout = float(args.client_timeout)
        self.rate = float(args.rate_limit)
        self.burst = float(args.rate_burst) if args.rate_burst else max(1.0, self.rate)
        self.admin_group = args.admin_group
        self.store = SecretStore()
        self.projects = {}
        self.conns = set()
        self.draining = False
        self.loop = None
        self.admin_server = None
        self.started = None
        self.audit = AuditQueue(self.audit_path, program, args.audit_checkpoint, args.audit_fail_open,
                                float(args.audit_stall_timeout))
        self.peer_unexpected_reply = err(E_PEER_UNEXPECTED, "peer uid is not the expected uid of this project socket")
        self.internal_error_reply = err(E_INTERNAL_ERROR, "internal error (logged by type only)")
        self.hardening = {}
        self.limits = ConnectionLimits(getattr(args, "max_project_connections", DEFAULT_MAX_PROJECT_CONNECTIONS),
                                       getattr(args, "max_peer_connections", DEFAULT_MAX_PEER_CONNECTIONS))
        self._stop_future = None
        # raw project request line -> parsed request, for flat objects of short strings only
        # (project lines carry names, never values; admin lines are never cached)
        self.req_cache = {}
        self.rate_limited_heads = {}    # project name -> its rate_limited reply up to the retry_after number
        self.turns = ProjectTurns()

    def _audit_pressure(self, name, paused):
        """Project ``name`` is over its share of the audit backlog: stop reading its connections."""
        project = self.projects.get(name)
        for conn in project.conns if project is not None else ():
            if not conn.closed and conn.transport is not None:
                if paused:
                    conn.transport.pause_reading()
                else:
                    conn.resume()    # unless its own unsent replies or its turn keep it paused

    def _audit_health(self):
        sd_notify("STATUS=%s" % self._status_line())

    def _admin_gid(self):
        if not self.admin_group:
            return None
        import grp
        try:
            return grp.getgrnam(self.admin_group).gr_gid
        except KeyError:
            if self.admin_group.isdigit():
                return int(self.admin_group)
            raise SystemExit("remo-broker: admin group %r does not exist" % self.admin_group) from None

    async def serve(self):
        import asyncio
        import signal
        self.loop = loop = asyncio.get_running_loop()
        self.turns.loop = loop
        loop.set_exception_handler(_loop_exception_handler)
        self.started = time.monotonic()
        self.audit.attach(loop, self._audit_pressure, self.projects)
        self.audit.on_health = self._audit_health
        admin_sock = bind_unix(admin_socket_path(self.run_dir), ADMIN_SOCKET_MODE, gid=self._admin_gid(), refuse_live=True)
        self.admin_server = Listener(self, admin_sock, None, lambda: AdminConnection(self)).start()
        self.restore_registrations()
        self._stop_future = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, self._request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.reload_all)
        loop.call_later(min(1.0, max(0.05, self.client_timeout / 4)), self._sweep)
        start_extra = {"projects": len(self.projects)}
        if self.audit.fail_open:
            start_extra["audit_fail_open"] = 1
            log("warning", "--audit-fail-open: secrets are served even when the audit log cannot be written")
        if self.audit.truncated_bytes:
            start_extra["audit_truncated_bytes"] = self.audit.truncated_bytes
            log("warning", "audit log ended in an incomplete line; %d byte(s) removed" % self.audit.truncated_bytes)
        self.audit.emit(audit_event("start", None, "ok", None, None, (os.getpid(), os.getuid()), 0, start_extra))
        release_startup_memory()
        sd_notify("READY=1\nSTATUS=%s\nMAINPID=%d" % (self._status_line(), os.getpid()))
        self.audit.spawn_writer()
        log("info", "ready: admin socket %s, %d project(s)" % (admin_socket_path(self.run_dir), len(self.projects)))
        await self._stop_future
        await self._drain()

    def _status_line(self):
        line = "serving %d project(s), %d secret(s)" % (len(self.projects), len(self.store))
        if self.audit.unavailable:
            line += "; %s: %s" % ("audit failing, serving anyway" if self.audit.fail_open else "refusing get",
                                  self.audit.unavailable)
        return line

    def _sweep(self):
        """Close connections without a complete request within the client timeout."""
        now = time.monotonic()
        timeout = self.client_timeout
        for conn in list(self.conns):
            if conn.closed or conn.watching:
                continue
            if conn.project is not None and conn.project.name in self.audit.paused_projects:
                conn.last = now   # not reading it (audit backpressure) is no client timeout
                continue
            if now - conn.last > timeout:
                conn.closed = True
                try:
                    conn.transport.write(err(E_PROTOCOL_ERROR, "no complete request within %gs" % timeout,
                                             {"reason": "timeout"}))
                    close_or_abort(conn)
                except (OSError, RuntimeError, AttributeError):
                    pass
        self.limits.report_due(self)
        if not self.draining:
            self.loop.call_later(min(1.0, max(0.05, timeout / 4)), self._sweep)

    def _request_stop(self, signame):
        if self._stop_future is not None and not self._stop_future.done():
            log("info", "%s: draining" % signame)
            self._stop_future.set_result(signame)

    async def _drain(self):
        """Stop accepting, let in-flight requests finish (DRAIN_TIMEOUT), remove the sockets."""
        import asyncio
        sd_notify("STOPPING=1\nSTATUS=draining")
        self.draining = True
        self.admin_server.close()
        for project in self.projects.values():
            if project.server is not None:
                project.server.close()
        for conn in list(self.conns):
            if conn.watching or not (conn.buf or conn.pending):
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.close()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self.conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()
        for project in self.projects.values():
            remove(project.socket_path)    # the directory and the symlink stay for the next start
        remove(admin_socket_path(self.run_dir))
        self.audit.coalescer.flush()
        self.audit.emit(audit_event("stop", None, "ok", None, None, (os.getpid(), os.getuid()), 0))
        log("info", "stopped")


def _loop_exception_handler(loop, context):
    exc = context.get("exception")
    # Only the type: exception text or context may quote request data.
    log("error", "event loop error: %s" % (type(exc).__name__ if exc is not None else "unknown"))


def _excepthook(exc_type, exc, tb):
    log("error", "fatal: %s" % exc_type.__name__)


def untrusted_directory(broker):
    """Why the run, state or audit directory cannot be trusted, or None.

    Another account that can write one of them could replace the registrations, the
    sockets or the audit log, so each must be this process's own and writable by it alone.
    The audit log's parents may be root-owned and group-writable: Ubuntu's rsyslog makes
    ``/var/log`` ``0775 root:syslog`` (docs/threat-model.md).
    """
    uid = os.geteuid()
    for path, label, root_group_parents in (
            (broker.run_dir, "run directory", False), (broker.state_dir, "state directory", False),
            (os.path.dirname(broker.audit_path), "audit log directory", True)):
        try:
            check_private_directory(path, uid, label, root_group_parents)
        except UntrustedPathError as exc:
            return str(exc)
    return None


def serve(args, program):
    """``remo_broker.py serve``: run the daemon in the foreground until SIGTERM/SIGINT."""
    set_log_level(args.log_level)
    sys.excepthook = _excepthook
    os.umask(0o077)
    try:
        store = open_store(args.audit_checkpoint)
    except ValueError as exc:
        log("error", str(exc))
        return EXIT_USAGE
    args.audit_checkpoint = store.name if store is not None else "none"     # "auto" resolved once, here
    if store is None:
        log("warning", "audit chain checkpoints are off (--audit-checkpoint none, or auto without a journal): "
                       "audit verify cannot detect a rewritten log")
    broker = Broker(args, program)
    broker.hardening = harden_process()
    broker.hardening.update(harden_memory())
    if not broker.hardening["memory_locked"]:
        if args.require_memory_lock:
            log("error", "%s: refusing to start (--require-memory-lock); raise LimitMEMLOCK or grant CAP_IPC_LOCK"
                % broker.hardening["memory_lock_error"])
            return EXIT_USAGE
        log("warning", "%s: serving without a memory lock, pages may be swapped (docs/daemon.md)"
            % broker.hardening["memory_lock_error"])
    for path, mode in ((broker.run_dir, RUN_DIR_MODE), (broker.state_dir, STATE_DIR_MODE),
                       (os.path.dirname(broker.audit_path), AUDIT_DIR_MODE)):
        if not os.path.isdir(path):
            os.makedirs(path, mode, exist_ok=True)
            os.chmod(path, mode)
    problem = untrusted_directory(broker)
    if problem is not None:
        log("error", "refusing to start: %s" % problem)
        return EXIT_USAGE
    if not os.access(broker.run_dir, os.W_OK):
        log("error", "run dir %s is not writable" % broker.run_dir)
        return EXIT_USAGE
    broker.audit.start()
    import asyncio
    try:
        asyncio.run(broker.serve())
    except OSError as exc:
        log("error", "cannot serve: %s" % (exc.strerror or exc))
        broker.audit.stop()
        return EXIT_CONNECT
    broker.audit.stop()
    return EXIT_OK
