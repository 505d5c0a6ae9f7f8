# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The audit writer PROCESS: formats, hash-chains and appends the events it reads from a pipe.

The serving process (audit_queue.py) starts it as a fresh interpreter that imports the
daemon file (its install-time bytecode) and runs ``main`` with ``WRITER_BOOT``, so it
shares nothing of the serving heap and never holds a secret: of the daemon's modules it
keeps this one and _protocol.py only.
Its counters go to a shared memfd page (seqlock) that ``read_counters`` decodes.
"""

from __future__ import annotations

import json
import marshal
import os
import stat
import struct
import sys
import time

from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    AUDIT_FLUSH_INTERVAL,
    AUDIT_LOG_MODE,
    AUDIT_MAX_BUFFERED,
)

# python3 -s -I -S -c WRITER_BOOT DAEMON_DIR DAEMON_MODULE PIPE_FD PAGE_FD LOCK_FD PREV PATH
WRITER_BOOT = "\n".join((
    "import sys",
    "sys.path.insert(0, sys.argv[1])",
    "daemon = __import__(sys.argv[2])",
    "from ansible_collections.remo.broker.plugins.module_utils._daemon import audit_writer",
    "if daemon.FINDER is not None:",
    "    daemon.FINDER.forget_unloaded()",
    "sys.exit(audit_writer.main(sys.argv[3:]))",
))
# The shared page: seq, consumed, lines_written, write_errors, dropped, pending, healthy,
# then at ERR_OFFSET a u16 length + the utf-8 text of the last error.
COUNTERS = struct.Struct("<QQQQQQQ")
ERR_OFFSET = 64
PAGE_SIZE = 4096
# A batch on the pipe: u32 length + marshal of a list of events, each a tuple of the
# AuditEvent fields in order (audit_event.py).
FRAME = struct.Struct("<I")


def read_counters(page):
    """(consumed, lines_written, write_errors, dropped, pending, healthy, last_error) from the page."""
    while True:
        vals = COUNTERS.unpack_from(page, 0)
        (elen,) = struct.unpack_from("<H", page, ERR_OFFSET)
        error = bytes(page[ERR_OFFSET + 2:ERR_OFFSET + 2 + elen])
        if vals[0] % 2 == 0 and COUNTERS.unpack_from(page, 0)[0] == vals[0]:
            return vals[1:] + (error.decode("utf-8", "replace") or None,)
        time.sleep(0.0001)


def consumed(page):
    return COUNTERS.unpack_from(page, 0)[1]


def _openssl_sha256():
    """OpenSSL's sha256 (3x faster on short lines than the builtin one) when available."""
    try:
        import _hashlib  # pylint: disable=import-outside-toplevel
        sha = _hashlib.openssl_sha256
        sha(b"")
        return sha
    except (ImportError, AttributeError, ValueError):
        import hashlib  # pylint: disable=import-outside-toplevel
        return hashlib.sha256


class AuditFileWriter:
    """Writer-process state: the open file, the chain head, the lines not yet written."""

    def __init__(self, path, fd, prev, page):
        self.path = path
        self.fd = fd                # the flocked audit file (or None: opened on first write)
        self.prev = prev
        self.page = page
        self.write_errors = 0
        self.last_error = None
        self.healthy = True
        self.dropped = 0
        self.lines_written = 0
        self.consumed = 0
        self.pending = []
        self._mid = {}
        self._sha = _openssl_sha256()
        self._sec = -1
        self._sec_prefix = ""

    def run(self, rfd):
        """Read batches until the pipe closes; write each read's lines with one write."""
        import select
        self.publish()
        buf = b""
        hsize = FRAME.size
        while True:
            if self.pending:
                ready, _w, _x = select.select([rfd], [], [], AUDIT_FLUSH_INTERVAL)
                if not ready:
                    self.write()
                    self.publish()
                    continue
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                break
            buf = buf + chunk if buf else chunk
            pos = 0
            end = len(buf)
            while end - pos >= hsize:
                (size,) = FRAME.unpack_from(buf, pos)
                if end - pos - hsize < size:
                    break
                self.format_batch(marshal.loads(buf[pos + hsize:pos + hsize + size]))
                pos += hsize + size
            buf = buf[pos:] if pos else buf
            self.write()
            self.publish()
        self.write()
        self.publish()

    def publish(self):
        page = self.page
        seq = COUNTERS.unpack_from(page, 0)[0] + 1
        struct.pack_into("<Q", page, 0, seq)
        error = (self.last_error or "").encode("utf-8", "replace")[:1000]
        COUNTERS.pack_into(page, 0, seq, self.consumed, self.lines_written, self.write_errors, self.dropped,
                           len(self.pending), 1 if self.healthy else 0)
        struct.pack_into("<H", page, ERR_OFFSET, len(error))
        page[ERR_OFFSET + 2:ERR_OFFSET + 2 + len(error)] = error
        struct.pack_into("<Q", page, 0, seq + 1)

    def _middle(self, key):
        event, project, name, decision, outcome, pid, uid = key
        mid = '"event":"%s","project":%s,"name":%s,"decision":%s,"outcome":"%s","peer_pid":%s,"peer_uid":%s' % (
            event,
            "null" if project is None else '"%s"' % project,
            "null" if name is None else '"%s"' % name,
            "null" if decision is None else '"%s"' % decision,
            outcome,
            "null" if pid is None else int(pid),
            "null" if uid is None else int(uid),
        )
        if len(self._mid) >= 4096:
            self._mid.clear()
        self._mid[key] = mid
        return mid

    def format_batch(self, events):
        """Format and chain ``events`` into ``self.pending`` (lines without newline)."""
        out = self.pending
        prev = self.prev
        sha = self._sha
        mids = self._mid
        sec_now = self._sec
        prefix = self._sec_prefix
        for ts, event, project, name, decision, outcome, pid, uid, latency_us, extra in events:   # AuditEvent order
            key = (event, project, name, decision, outcome, pid, uid)
            mid = mids.get(key)
            if mid is None:
                mid = self._middle(key)
            sec = int(ts)
            if sec != sec_now:
                sec_now = sec
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            if extra:
                line = ('{"ts":"%s.%06dZ",%s,"latency_us":%d,%s,"prev":"%s"}' % (
                    prefix, int((ts - sec) * 1e6), mid, latency_us, json.dumps(extra, separators=(",", ":"))[1:-1],
                    prev)).encode("utf-8")
            else:
                line = ('{"ts":"%s.%06dZ",%s,"latency_us":%d,"prev":"%s"}' % (
                    prefix, int((ts - sec) * 1e6), mid, latency_us, prev)).encode("utf-8")
            prev = sha(line).hexdigest()
            out.append(line)
        self._sec = sec_now
        self._sec_prefix = prefix
        self.prev = prev
        self.consumed += len(events)
        if len(out) > AUDIT_MAX_BUFFERED:
            drop = len(out) - AUDIT_MAX_BUFFERED
            self.dropped += drop
            del out[:drop]

    def write(self):
        out = self.pending
        if not out or not self.open():
            return
        view = memoryview(b"\n".join(out) + b"\n")
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._record_error(exc)
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
            # Keep only what was not written (whole lines were appended in order; the first
            # kept item may be the tail of a line, which the next write completes).
            self.pending = bytes(view).split(b"\n")[:-1]
            return
        self.lines_written += len(out)
        self.pending = []
        self.healthy = True

    def open(self):
        if self.fd is not None:
            return True
        try:
            self.fd = open_audit_file(self.path)
            return True
        except OSError as exc:
            self._record_error(exc)
            return False

    def _record_error(self, exc):
        self.write_errors += 1
        self.last_error = "%s: %s" % (type(exc).__name__, exc.strerror or "") if isinstance(exc, OSError) else type(exc).__name__
        self.healthy = False


def open_audit_file(path):
    """Open (create) the audit log for appending, mode AUDIT_LOG_MODE; raises OSError."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o750, exist_ok=True)
        os.chmod(parent, 0o750)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, AUDIT_LOG_MODE)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, AUDIT_LOG_MODE)
    return fd


def main(argv):
    """``PIPE_FD PAGE_FD LOCK_FD PREV PATH`` (LOCK_FD -1: none); see WRITER_BOOT."""
    import mmap
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)   # exit on pipe EOF only, after the last batch
    pipe_fd, page_fd, lock_fd = (int(v) for v in argv[:3])
    prev, path = argv[3], argv[4]
    page = mmap.mmap(page_fd, PAGE_SIZE)
    os.close(page_fd)
    import gc
    gc.collect()    # the daemon file's top-level code and the forgotten modules
    writer = AuditFileWriter(path, lock_fd if lock_fd >= 0 else None, prev, page)
    try:
        writer.run(pipe_fd)
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write("remo-broker audit writer: %s\n" % type(exc).__name__)
        return 1
    return 0
