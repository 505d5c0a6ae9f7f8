# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Memory that holds values: zeroing it before it is freed, and keeping it out of swap.

* ``zero(bytearray)``: the store keeps every value only in bytearrays (secret_store.py)
  and zeroes them when a clear or a replacing push drops them.
* ``wipe(obj)``: the request line (bytes), its decoded text and the strings ``json.loads``
  made of the values are immutable objects.  CPython frees them without clearing, so
  their bytes stay in the heap until reused.  ``wipe`` overwrites the character data of
  such an object in place (ctypes ``memset``) just before the daemon drops its last
  reference.  It is only done where it is safe: the object layout was checked at start
  on probe objects, and the object must be exact ``bytes``/``str``, at least 2 long
  (CPython shares 0- and 1-length objects), not interned, compact, and referenced only
  by the caller.  Otherwise the object is left alone (``wipe`` returns False).
* ``lock_memory()``: ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`` so no page of
  the serving process reaches swap.

What none of this reaches is in docs/daemon.md ("Secret memory").
"""

from __future__ import annotations

import os
import sys

# A str header's state bitfield (CPython 3.11-3.13): interned:2, kind:3, compact:1, ascii:1.
_STATE_OFFSET = 32
_MAX_REFS = 6       # more references than the caller's few: shared somewhere, never wipe


class _Layout:
    """Offsets of the character data in bytes and str objects, verified on probes (or None)."""

    def __init__(self):
        self.ok = False
        self.error = None
        try:
            import ctypes
            self.memset = ctypes.memset
            self.string_at = ctypes.string_at
            self.u8 = ctypes.c_uint8
            self.u16 = ctypes.c_uint16
            self.u32 = ctypes.c_uint32
            self.bytes_offset = bytes.__basicsize__ - 1
            self.ascii_offset = sys.getsizeof("") - 1
            self.compact_offset = sys.getsizeof("\xe9") - 2
            self._verify()
            self.ok = True
        except Exception as exc:  # pylint: disable=broad-except
            self.error = "%s: %s" % (type(exc).__name__, exc)

    def _verify(self):
        """Refuse to wipe anything unless the offsets find known probe contents."""
        tag = "remo-probe-%d-" % os.getpid()
        probe_b = (tag + "b").encode("ascii")
        if self.string_at(id(probe_b) + self.bytes_offset, len(probe_b) + 1) != probe_b + b"\0":
            raise RuntimeError("bytes layout not recognised")
        for text, encoding, kind, ascii_ in ((tag + "a", "ascii", 1, 1), (tag + "\xe9", "latin-1", 1, 0),
                                             (tag + "\u0100", "utf-16-le", 2, 0), (tag + "\U00010000", "utf-32-le", 4, 0)):
            state = self.state(text)
            if state != (0, kind, 1, ascii_):
                raise RuntimeError("str state not recognised")
            if self.string_at(self._str_data(text, kind, ascii_), len(text) * kind) != text.encode(encoding):
                raise RuntimeError("str layout not recognised")
        interned = sys.intern(tag + "interned")
        if self.state(interned)[0] == 0:
            raise RuntimeError("str interned flag not recognised")

    def state(self, text):
        bits = self.u32.from_address(id(text) + _STATE_OFFSET).value
        return bits & 3, (bits >> 2) & 7, (bits >> 5) & 1, (bits >> 6) & 1

    def _str_data(self, text, kind, ascii_):
        return id(text) + (self.ascii_offset if ascii_ else self.compact_offset)

    def wipe_bytes(self, data):
        n = len(data)
        addr = id(data) + self.bytes_offset
        if self.u8.from_address(addr + n).value != 0 or self.u8.from_address(addr).value != data[0]:
            return False
        self.memset(addr, 0, n)
        return True

    def wipe_str(self, text):
        interned, kind, compact, ascii_ = self.state(text)
        if interned or not compact or kind not in (1, 2, 4):
            return False
        n = len(text)
        addr = self._str_data(text, kind, ascii_)
        cell = {1: self.u8, 2: self.u16, 4: self.u32}[kind]
        if cell.from_address(addr + n * kind).value != 0 or cell.from_address(addr).value != ord(text[0]):
            return False
        self.memset(addr, 0, n * kind)
        return True


_LAYOUT = []


def _layout():
    if not _LAYOUT:
        _LAYOUT.append(_Layout())
    return _LAYOUT[0]


def wipe_available():
    """(True, None) when immutable objects can be wiped here, else (False, the reason)."""
    layout = _layout()
    return layout.ok, layout.error


def ascii_view(text):
    """A buffer over an ASCII str's own bytes (no copy), or None where that is not possible."""
    layout = _layout()
    if not layout.ok or type(text) is not str or not text.isascii() or len(text) < 2:
        return None
    _interned, kind, compact, ascii_ = layout.state(text)
    if not (compact and ascii_ and kind == 1):
        return None
    import ctypes
    return (ctypes.c_char * len(text)).from_address(id(text) + layout.ascii_offset)


def zero(buf):
    """Overwrite a bytearray with zeros (its length stays)."""
    n = len(buf)
    if n:
        buf[:] = bytes(n)


def wipe(obj, refs=0):
    """Overwrite the data of ``obj`` (bytes, str, bytearray) in place; True when done.

    ``refs``: references the caller holds besides the argument itself (a local name,
    a dict entry); an object referenced more widely is not touched.
    """
    kind = type(obj)
    if kind is bytearray:
        zero(obj)
        return True
    if kind is not bytes and kind is not str:
        return False
    if len(obj) < 2:
        return False        # CPython shares empty and one-character objects
    layout = _layout()
    if not layout.ok or sys.getrefcount(obj) > 2 + refs + _MAX_REFS:
        return False
    if kind is bytes:
        return layout.wipe_bytes(obj)
    return layout.wipe_str(obj)


def send_wiped(transport, parts):
    """Write several replies as one buffer, zeroed at once when the kernel took all of it.

    When the transport kept some (the peer is not reading), it holds its own copy or a
    view of ours, so ours is left alone (docs/daemon.md "Secret memory").
    """
    payload = bytearray().join(parts)
    transport.write(payload)
    if not transport.get_write_buffer_size():
        zero(payload)


def wipe_values(tree):
    """Wipe every str inside a parsed request's ``secrets`` (values and nested field values)."""
    if not isinstance(tree, dict):
        return
    for value in tree.values():
        if isinstance(value, dict):
            wipe_values(value)
        else:
            wipe(value, refs=1)


# mlockall(2) flags (linux/mman.h)
MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4


def harden_memory():
    """mlockall the serving process; the ``status.hardening`` fields of this file.

    ``memory_locked``/``memory_lock_error`` report the lock, ``value_wipe`` whether
    immutable copies can be overwritten on this interpreter.

    MCL_ONFAULT (Linux 4.4+) locks pages as they are touched instead of faulting in the
    whole address space (the libraries' untouched pages stay out of RSS); without it the
    call is retried with MCL_CURRENT | MCL_FUTURE.  Fails with ENOMEM/EPERM when
    RLIMIT_MEMLOCK (the unit's LimitMEMLOCK) is below the address space and the process
    lacks CAP_IPC_LOCK.
    """
    result = {"value_wipe": wipe_available()[0]}
    result.update(_lock_memory())
    return result


def _lock_memory():
    import errno
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        error = 0
        for flags in (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT, MCL_CURRENT | MCL_FUTURE):
            if libc.mlockall(flags) == 0:
                return {"memory_locked": True, "memory_lock_error": None}
            error = ctypes.get_errno()
            if error != errno.EINVAL:
                break
        return {"memory_locked": False, "memory_lock_error": "mlockall: %s (%s); RLIMIT_MEMLOCK is %s"
                % (errno.errorcode.get(error, str(error)), os.strerror(error), _memlock_limit())}
    except (OSError, AttributeError) as exc:
        return {"memory_locked": False, "memory_lock_error": "mlockall unavailable: %s" % type(exc).__name__}


def _memlock_limit():
    import resource
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    return "unlimited" if soft == resource.RLIM_INFINITY else "%d bytes" % soft
