# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The serving side of the audit log: queue events, send batches to the writer process.

``emit`` is a deque append of an event's fields (audit_event.py); ``emit_repeatable``
coalesces the outcomes a client can repeat at will (audit_coalesce.py).  The event loop
marshals the queue in batches (every ``AUDIT_FLUSH_INTERVAL`` or every ``AUDIT_BATCH``
events) into a pipe read by the writer process (audit_writer.py), which ``start``
spawns as a fresh interpreter before the event loop, any thread or any secret exists.

Backpressure is per project: each batch's events are counted by project, and a project
with more than its share of the events sent but not yet consumed by the writer
(``AUDIT_HIGH_WATER`` split between the registered projects, at least
``AUDIT_MIN_SHARE``) has ``on_pressure(name, True)`` called (the broker stops reading
that project's connections) until it is below a quarter of its share.  Other projects
and the admin socket keep being served.

Fail closed: ``refusing`` is the reason the audit cannot be written (writer dead, write
errors, writer stalled) or None; the broker answers ``get`` with ``audit_unavailable``
while it is set, unless ``fail_open``.

At stop, the remaining events are sent, the pipe is closed, and the writer drains,
writes and exits; ``stop`` waits for it.  If the daemon is SIGKILLed, the writer still
drains the pipe; an flock on the audit file makes the next daemon wait for it.
"""

from __future__ import annotations

import collections
import json
import marshal
import operator
import os
import sys
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon import audit_writer
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_coalesce import Coalescer
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_file import (
    line_hash,
    read_last_line,
    truncate_torn_tail,
)
from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    AUDIT_COALESCE_INTERVAL,
    AUDIT_FLUSH_INTERVAL,
    AUDIT_GENESIS,
    AUDIT_STALL_SECONDS,
    E_AUDIT_UNAVAILABLE,
)

AUDIT_HIGH_WATER = 10000    # events not yet written, split between the projects: over its share, a project stops reading
AUDIT_MIN_SHARE = 256       # ... a project's share is never smaller than this
AUDIT_BATCH = 1024          # queued events that trigger a send to the writer without waiting for the timer
AUDIT_LOCK_WAIT = 5.0       # seconds to wait at start for a previous writer process to finish


class AuditQueue:
    """Serving-process end of the audit pipe (see the module docstring)."""

    def __init__(self, path, program, checkpoint_store="none", fail_open=False, stall_seconds=AUDIT_STALL_SECONDS):
        self.path = path
        self.stall_seconds = stall_seconds
        self.program = program      # the daemon file the writer process runs
        self.checkpoint_store = checkpoint_store
        self.fail_open = fail_open
        self.queue = collections.deque()
        self.emit = self.queue.append   # the serving path: audit_event() fields in, one C call
        self.coalescer = Coalescer(self.emit)
        self.emit_repeatable = self.coalescer.emit
        self._next_coalesce = 0.0
        self.truncated_bytes = 0
        self.paused_projects = set()
        self.backlog_by_project = {}    # project name (None: admin, lifecycle) -> events sent, not consumed
        self._batches = collections.deque()     # (self.sent after the batch, {project: events in it})
        self._projects = ()         # the broker's registered projects (their number sets each share)
        self.on_pressure = None
        self.on_health = None       # called after each change of ``unavailable``
        self.unavailable = None     # why the audit cannot be written, or None
        self.refusing = None        # = unavailable unless fail_open: the broker refuses get while set
        self._progress = (0, 0.0)   # (consumed, monotonic time it last changed)
        self.pid = None
        self.sent = 0
        self._loop = None
        self._wfd = None
        self._out = None            # bytes not yet accepted by the pipe (non-blocking writes)
        self._page = None
        self._dead = False
        self._lost = 0              # events that could not be handed to the writer
        self._timer = None
        self._poll = None
        self._spawn = None          # (fds to pass, argv) of the writer until spawn_writer runs

    # -- start / stop ---------------------------------------------------------
    def start(self):
        """Lock the file, cut a torn tail, find the chain head, make the pipe and the page.

        ``spawn_writer`` then starts the writer process; events sent before that wait in
        the pipe.
        """
        import mmap
        lock_fd = self._lock()
        self.truncated_bytes = truncate_torn_tail(self.path)
        last = read_last_line(self.path)
        prev = line_hash(last) if last is not None else AUDIT_GENESIS
        seq = _last_seq(self.path, last)
        page_fd = os.memfd_create("remo-broker-audit-counters", os.MFD_CLOEXEC)
        os.ftruncate(page_fd, audit_writer.PAGE_SIZE)
        self._page = mmap.mmap(page_fd, audit_writer.PAGE_SIZE)
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            import fcntl
            fcntl.fcntl(wfd, 1031, 1 << 20)    # F_SETPIPE_SZ: 1 MiB of batches in flight
        except (OSError, ImportError):
            pass
        audit_writer.COUNTERS.pack_into(self._page, 0, 0, 0, 0, 0, 0, 0, 1)   # healthy until it says otherwise
        directory, module = os.path.split(os.path.splitext(self.program)[0])
        self._spawn = ([rfd, page_fd] + ([lock_fd] if lock_fd is not None else []),
                       [sys.executable, "-s", "-I", "-S"] + (["-B"] if sys.dont_write_bytecode else []) + [
                           "-c", audit_writer.WRITER_BOOT, directory, module,
                           str(rfd), str(page_fd), str(lock_fd if lock_fd is not None else -1), prev, self.path,
                           str(seq), self.checkpoint_store])
        self._wfd = wfd

    def spawn_writer(self):
        """Start the writer: a fresh interpreter, not a fork, so it does not inherit the
        serving heap (docs/daemon.md).  Called once the daemon is READY, so the writer's
        start-up does not delay serving."""
        if self._spawn is None:
            return
        passed, argv = self._spawn
        self._spawn = None
        sys.stderr.flush()
        try:
            for fd in passed:
                os.set_inheritable(fd, True)
            # The daemon is not a module: AnsibleModule.run_command does not exist here, and
            # the writer must be a child that shares nothing but the passed pipes.
            self.pid = os.posix_spawn(  # pylint: disable=ansible-bad-function
                sys.executable, argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except OSError as exc:
            log("error", "cannot start the audit writer: %s" % (exc.strerror or type(exc).__name__))
            self._writer_died()
        finally:
            for fd in passed:
                os.close(fd)    # the writer holds the lock and the read end now

    def _lock(self):
        """Open the audit file and flock it, waiting for a previous writer to finish."""
        import fcntl
        try:
            fd = audit_writer.open_audit_file(self.path)
        except OSError as exc:
            log("warning", "cannot open audit log %s: %s" % (self.path, exc.strerror or type(exc).__name__))
            return None
        deadline = time.monotonic() + AUDIT_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log("warning", "audit log %s is still locked by another writer; continuing" % self.path)
                    return fd
                time.sleep(0.01)
            except OSError:
                return fd

    def attach(self, loop, on_pressure=None, projects=()):
        """Start the periodic send on ``loop``; the pipe becomes non-blocking.

        ``on_pressure(project_name, paused)``; ``projects``: the registered projects (a
        live container, read for its size).
        """
        self._loop = loop
        self.on_pressure = on_pressure
        self._projects = projects
        self._progress = (0, time.monotonic())
        if self._wfd is not None:
            os.set_blocking(self._wfd, False)
        self._timer = loop.call_later(AUDIT_FLUSH_INTERVAL, self._tick)

    def stop(self):
        """Send what is left, close the pipe, wait for the writer to write it and exit."""
        self.spawn_writer()         # a daemon that stops before READY still writes its events
        self.coalescer.flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None and self._out and self._wfd is not None:
            try:
                self._loop.remove_writer(self._wfd)
            except (RuntimeError, ValueError, OSError):
                pass
        self._loop = None
        if self._wfd is not None:
            os.set_blocking(self._wfd, True)
            self._drain_out()
            self.pump()
            self._drain_out()
            try:
                os.close(self._wfd)
            except OSError:
                pass
            self._wfd = None
        if self.pid is not None:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    done, _status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    log("error", "audit writer did not finish in time")
                    break
                time.sleep(0.005)

    # -- sending --------------------------------------------------------------
    def _tick(self):
        now = time.monotonic()
        if now >= self._next_coalesce:
            self._next_coalesce = now + AUDIT_COALESCE_INTERVAL
            self.coalescer.flush()
        self.pump()
        self._check_health(now)
        if self._loop is not None and not self._loop.is_closed():
            self._timer = self._loop.call_later(AUDIT_FLUSH_INTERVAL, self._tick)

    def pump(self):
        """Send the queued events to the writer (one marshal + one write); apply backpressure."""
        q = self.queue
        if q:
            events = list(q)
            q.clear()
            if self._wfd is None or self._dead:
                self._lost += len(events)
            else:
                payload = marshal.dumps(events)
                self.sent += len(events)
                counts = collections.Counter(map(_PROJECT_OF, events))
                self._batches.append((self.sent, counts))
                backlog = self.backlog_by_project
                for project, n in counts.items():
                    backlog[project] = backlog.get(project, 0) + n
                self._send(audit_writer.FRAME.pack(len(payload)) + payload)
        if self._page is not None and self._batches:
            self._release()
            share = self.share()
            for project, n in self.backlog_by_project.items():
                if n > share and project is not None and project not in self.paused_projects:
                    self._set_paused(project, True)

    def share(self):
        """Events one project may have waiting for the writer before it stops being read."""
        return max(AUDIT_MIN_SHARE, AUDIT_HIGH_WATER // max(1, len(self._projects)))

    def _release(self):
        """Subtract the batches the writer has consumed from the per-project backlog."""
        consumed = self._consumed()
        batches = self._batches
        backlog = self.backlog_by_project
        while batches and batches[0][0] <= consumed:
            for project, n in batches.popleft()[1].items():
                left = backlog.get(project, 0) - n
                if left > 0:
                    backlog[project] = left
                else:
                    backlog.pop(project, None)

    @property
    def paused(self):
        return bool(self.paused_projects)

    def _consumed(self):
        return audit_writer.consumed(self._page)

    def backlog(self):
        return self.sent - self._consumed() if self._page is not None else 0

    def _send(self, data):
        if self._out:
            self._out += data
            return
        try:
            n = os.write(self._wfd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._writer_died()
            return
        if n < len(data):
            self._out = bytearray(data[n:])
            if self._loop is not None and os.get_blocking(self._wfd) is False:
                self._loop.add_writer(self._wfd, self._writable)
            else:
                self._drain_out()

    def _writable(self):
        try:
            n = os.write(self._wfd, self._out)
        except BlockingIOError:
            return
        except OSError:
            self._loop.remove_writer(self._wfd)
            self._writer_died()
            return
        del self._out[:n]
        if not self._out:
            self._out = None
            self._loop.remove_writer(self._wfd)

    def _drain_out(self):
        """Blocking write of everything not yet in the pipe (stop path)."""
        if not self._out or self._wfd is None:
            self._out = None
            return
        os.set_blocking(self._wfd, True)
        view = memoryview(bytes(self._out))
        self._out = None
        try:
            while view:
                view = view[os.write(self._wfd, view):]
        except OSError:
            self._writer_died()

    def _writer_died(self):
        if not self._dead:
            self._dead = True
            log("error", "audit writer process exited; audit events are being dropped")
        self._lost += self.sent - self._consumed()
        self.sent = self._consumed()
        self._out = None
        self._batches.clear()
        self.backlog_by_project.clear()
        for project in list(self.paused_projects):
            self._set_paused(project, False)
        self._check_health(time.monotonic())

    # -- backpressure -----------------------------------------------------------
    def _set_paused(self, project, paused):
        if paused:
            self.paused_projects.add(project)
        else:
            self.paused_projects.discard(project)
        if self.on_pressure is not None:
            self.on_pressure(project, paused)
        if paused and self._poll is None and self._loop is not None:
            self._poll = self._loop.call_later(0.002, self._check_resume)

    def _check_resume(self):
        self._poll = None
        if not self.paused_projects:
            return
        self._release()
        self._check_health(time.monotonic())    # progress clears a stall before reading resumes
        low = self.share() // 4
        backlog = self.backlog_by_project
        for project in list(self.paused_projects):
            if self._dead or backlog.get(project, 0) < low:
                self._set_paused(project, False)
        if self.paused_projects and self._loop is not None and not self._loop.is_closed():
            self._poll = self._loop.call_later(0.002, self._check_resume)

    # -- fail closed --------------------------------------------------------------
    def _check_health(self, now):
        """Set ``unavailable``/``refusing`` from the writer's state; log and audit each change."""
        reason = None
        if self._dead:
            reason = "audit writer process exited"
        elif self._page is not None and self.pid is not None:
            consumed, _w, _e, _d, _p, healthy, last_error = audit_writer.read_counters(self._page)
            if not healthy:
                reason = "cannot write the audit log %s: %s" % (self.path, last_error or "write failed")
            else:
                if consumed != self._progress[0] or self.sent == consumed:
                    self._progress = (consumed, now)
                elif now - self._progress[1] > self.stall_seconds:
                    reason = "audit writer has consumed nothing for %d s with %d event(s) waiting" % (
                        now - self._progress[1], self.sent - consumed)
        if reason == self.unavailable:
            return
        was = self.unavailable
        self.unavailable = reason
        self.refusing = None if self.fail_open else reason
        if reason is not None:
            log("error", "%s; %s" % (reason, "serving secrets anyway (--audit-fail-open)" if self.fail_open
                                     else "get is refused with %s until it can be written" % E_AUDIT_UNAVAILABLE))
            self.emit(audit_event("audit", None, E_AUDIT_UNAVAILABLE, None, None, (os.getpid(), os.getuid()), 0))
        elif was is not None:
            log("info", "audit log can be written again; serving secrets")
            self.emit(audit_event("audit", None, "ok", None, None, (os.getpid(), os.getuid()), 0))
        if self.on_health is not None:
            self.on_health()

    # -- status -----------------------------------------------------------------
    def status(self):
        common = {"available": self.unavailable is None, "unavailable_reason": self.unavailable,
                  "fail_open": self.fail_open, "backpressure": self.paused,
                  "paused_projects": sorted(self.paused_projects), "checkpoint_store": self.checkpoint_store}
        if self._page is None:     # not started (a Broker used in-process)
            common.update({"path": self.path, "healthy": False, "write_errors": 0, "last_error": "audit writer not started",
                           "buffered": len(self.queue), "dropped": self._lost, "lines_written": 0, "writer_pid": None,
                           "checkpoint_seq": None, "checkpoint_errors": 0, "checkpoint_error": None})
            return common
        consumed, written, errors, dropped, pending, healthy, last_error = audit_writer.read_counters(self._page)
        cp_seq, cp_errors, cp_error = audit_writer.read_checkpoint_counters(self._page)
        if self._dead:
            healthy = 0
            errors += 1
            last_error = "audit writer process exited"
        common.update({
            "path": self.path,
            "healthy": bool(healthy),
            "write_errors": errors,
            "last_error": last_error,
            "buffered": len(self.queue) + (self.sent - consumed) + pending,
            "dropped": dropped + self._lost,
            "lines_written": written,
            "writer_pid": self.pid,
            "checkpoint_seq": cp_seq or None,
            "checkpoint_errors": cp_errors,
            "checkpoint_error": cp_error,
        })
        return common


_PROJECT_OF = operator.itemgetter(2)     # the project field of an audit_event() tuple


def _last_seq(path, last):
    """The ``seq`` of the file's last line (0: empty file; lines without one are counted)."""
    if last is None:
        return 0
    try:
        seq = json.loads(last).get("seq")
    except (ValueError, AttributeError):
        seq = None
    if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
        return seq
    with open(path, "rb") as fh:    # a log written before lines carried seq: count them once
        return sum(1 for _line in fh)
