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
keeps this one, audit_checkpoint.py and _protocol.py only.
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

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_checkpoint import open_store
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    AUDIT_CHECKPOINT_INTERVAL,
    AUDIT_FLUSH_INTERVAL,
    AUDIT_LOG_MODE,
    AUDIT_MAX_BUFFERED,
    E_AUDIT_UNAVAILABLE,
)

# python3 -s -I -S -c WRITER_BOOT DAEMON_DIR DAEMON_MODULE PIPE_FD PAGE_FD LOCK_FD PREV PATH SEQ STORE
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
# At CHECKPOINT_OFFSET: last checkpointed seq, failed checkpoints, u16 length + last checkpoint error.
CHECKPOINT = struct.Struct("<QQH")
CHECKPOINT_OFFSET = 1088
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


def read_checkpoint_counters(page):
    """(checkpoint_seq, checkpoint_errors, last checkpoint error) from the page."""
    while True:
        seq0 = COUNTERS.unpack_from(page, 0)[0]
        cp_seq, cp_errors, elen = CHECKPOINT.unpack_from(page, CHECKPOINT_OFFSET)
        start = CHECKPOINT_OFFSET + CHECKPOINT.size
        error = bytes(page[start:start + elen])
        if seq0 % 2 == 0 and COUNTERS.unpack_from(page, 0)[0] == seq0:
            return cp_seq, cp_errors, error.decode("utf-8", "replace") or None
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

    def __init__(self, path, fd, prev, page, seq=0, store=None):
        self.path = path
        self.fd = fd                # the flocked audit file (or None: opened on first write)
        self.prev = prev
        self.seq = seq              # seq of the last formatted line (the file's last line at start)
        self.page = page
        self.store = store          # audit_checkpoint store, or None
        self.checkpoint_seq = 0     # seq of the last checkpoint recorded
        self.checkpoint_errors = 0
        self.checkpoint_error = None
        self._written = (seq, prev)  # (seq, head) of the last line written to the file
        self._checkpoint_at = 0.0   # monotonic time of the last checkpoint (0: none yet: the first write anchors)
        self.write_errors = 0
        self.last_error = None
        self.healthy = True
        self.dropped = 0
        self.unrecorded_drops = 0   # dropped events no line records yet
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
            wait = self._wait()
            if wait is not None:
                ready, _w, _x = select.select([rfd], [], [], wait)
                if not ready:
                    self.write()
                    self.checkpoint()
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
            self.checkpoint()
            self.publish()
        self.write()
        self.checkpoint(final=True)
        self.publish()

    def _wait(self):
        """Seconds to wait for the pipe before retrying a write or recording a checkpoint; None: block."""
        if self.pending:
            return AUDIT_FLUSH_INTERVAL
        if self.store is not None and self._written[0] != self.checkpoint_seq:
            return max(0.0, self._checkpoint_at + AUDIT_CHECKPOINT_INTERVAL - time.monotonic())
        return None

    def checkpoint(self, final=False):
        """Record (seq, head) of the last written line when it is due (first write, interval, exit)."""
        seq, head = self._written
        if self.store is None or seq == self.checkpoint_seq or seq == 0:
            return
        now = time.monotonic()
        if not final and self._checkpoint_at and now - self._checkpoint_at < AUDIT_CHECKPOINT_INTERVAL:
            return
        self._checkpoint_at = now
        try:
            self.store.record(self.path, seq, head)
        except OSError as exc:
            self.checkpoint_errors += 1
            self.checkpoint_error = "%s: %s" % (type(exc).__name__, exc.strerror or exc)
            return
        self.checkpoint_seq = seq
        self.checkpoint_error = None

    def publish(self):
        page = self.page
        seq = COUNTERS.unpack_from(page, 0)[0] + 1
        struct.pack_into("<Q", page, 0, seq)
        error = (self.last_error or "").encode("utf-8", "replace")[:1000]
        COUNTERS.pack_into(page, 0, seq, self.consumed, self.lines_written, self.write_errors, self.dropped,
                           len(self.pending), 1 if self.healthy else 0)
        struct.pack_into("<H", page, ERR_OFFSET, len(error))
        page[ERR_OFFSET + 2:ERR_OFFSET + 2 + len(error)] = error
        cp_error = (self.checkpoint_error or "").encode("utf-8", "replace")[:500]
        CHECKPOINT.pack_into(page, CHECKPOINT_OFFSET, self.checkpoint_seq, self.checkpoint_errors, len(cp_error))
        start = CHECKPOINT_OFFSET + CHECKPOINT.size
        page[start:start + len(cp_error)] = cp_error
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
        """Format and chain ``events`` into ``self.pending`` (lines without newline).

        With AUDIT_MAX_BUFFERED lines already waiting (the file cannot be written), the
        newest events are dropped before they are chained, and the next successful write
        records how many (``_record_drops``): the chain stays whole, the loss is logged.
        """
        out = self.pending
        self.consumed += len(events)
        room = AUDIT_MAX_BUFFERED - len(out)
        if room < len(events):
            lost = len(events) - max(0, room)
            self.dropped += lost
            self.unrecorded_drops += lost
            events = events[:max(0, room)]
        prev = self.prev
        sha = self._sha
        mids = self._mid
        sec_now = self._sec
        prefix = self._sec_prefix
        seq = self.seq
        for ts, event, project, name, decision, outcome, pid, uid, latency_us, extra in events:   # AuditEvent order
            key = (event, project, name, decision, outcome, pid, uid)
            mid = mids.get(key)
            if mid is None:
                mid = self._middle(key)
            sec = int(ts)
            if sec != sec_now:
                sec_now = sec
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            seq += 1
            if extra:
                line = ('{"ts":"%s.%06dZ","seq":%d,%s,"latency_us":%d,%s,"prev":"%s"}' % (
                    prefix, int((ts - sec) * 1e6), seq, mid, latency_us, json.dumps(extra, separators=(",", ":"))[1:-1],
                    prev)).encode("utf-8")
            else:
                line = ('{"ts":"%s.%06dZ","seq":%d,%s,"latency_us":%d,"prev":"%s"}' % (
                    prefix, int((ts - sec) * 1e6), seq, mid, latency_us, prev)).encode("utf-8")
            prev = sha(line).hexdigest()
            out.append(line)
        self._sec = sec_now
        self._sec_prefix = prefix
        self.seq = seq
        self.prev = prev

    def _record_drops(self):
        """Chain one line saying how many events were dropped (after the lines kept before them)."""
        lost, self.unrecorded_drops = self.unrecorded_drops, 0
        room, self.pending = self.pending, []
        self.format_batch([(time.time(), "audit", None, None, None, E_AUDIT_UNAVAILABLE, os.getpid(), os.getuid(), 0,
                            {"dropped": lost})])
        self.consumed -= 1      # not an event the serving process sent
        self.pending = room + self.pending

    def write(self):
        out = self.pending
        if not out or not self.open():
            return
        if self.unrecorded_drops:
            self._record_drops()
            out = self.pending
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
        self._written = (self.seq, self.prev)

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
    """``PIPE_FD PAGE_FD LOCK_FD PREV PATH SEQ STORE`` (LOCK_FD -1: none); see WRITER_BOOT."""
    import mmap
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)   # exit on pipe EOF only, after the last batch
    pipe_fd, page_fd, lock_fd = (int(v) for v in argv[:3])
    prev, path, seq, store_spec = argv[3], argv[4], int(argv[5]), argv[6]
    page = mmap.mmap(page_fd, PAGE_SIZE)
    os.close(page_fd)
    import gc
    gc.collect()    # the daemon file's top-level code and the forgotten modules
    writer = AuditFileWriter(path, lock_fd if lock_fd >= 0 else None, prev, page, seq, open_store(store_spec))
    try:
        writer.run(pipe_fd)
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write("remo-broker audit writer: %s\n" % type(exc).__name__)
        return 1
    return 0
