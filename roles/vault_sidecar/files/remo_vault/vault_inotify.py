# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Linux inotify through ctypes (the stdlib has no binding; no pip in the image)."""

import ctypes
import ctypes.util
import os
import struct

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")
# One read is bounded: events are only counted, never accumulated.
READ_BYTES = 64 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Inotify:
    def __init__(self):
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, "inotify_init1: %s" % os.strerror(err))
        self.fd = fd

    def add_watch(self, path, mask):
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, "inotify_add_watch %s: %s" % (path, os.strerror(err)))
        return wd

    def read_names(self):
        """The file names of pending events (a set, so a burst stays small)."""
        names = set()
        try:
            buf = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return names
        pos = 0
        while pos + _EVENT.size <= len(buf):
            _wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
            pos += _EVENT.size
            name = buf[pos:pos + length].rstrip(b"\0").decode("utf-8", "replace")
            pos += length
            names.add("*overflow*" if mask & IN_Q_OVERFLOW else name)
        return names

    def close(self):
        os.close(self.fd)
