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
    """The whole address space as one writable memoryview, and where bytes and str keep
    their data, verified on probe objects at start."""

    def __init__(self):
        import ctypes
        # A slice assignment on this view is a memcpy, several times cheaper than a
        # ctypes.memset call, and the copy into a reply needs no intermediate object.
        self.memory = memoryview((ctypes.c_char * _SPAN).from_address(0)).cast("B")
        self.bytes_offset = bytes.__basicsize__ - 1
        self.ascii_offset = sys.getsizeof("") - 1
        # Two characters, made at run time: CPython 3.12+ keeps the one-character latin-1
        # strings as static singletons whose cached UTF-8 copy getsizeof counts too.
        self.compact_offset = sys.getsizeof(chr(0xe9) * 2) - 3
        self._verify()

    def _verify(self):
        """Refuse to wipe anything unless the offsets find known probe contents."""
        tag = "remo-probe-%d-" % os.getpid()
        probe = (tag + "b").encode("ascii")
        if self.read(id(probe) + self.bytes_offset, len(probe) + 1) != probe + b"\0":
            raise RuntimeError("bytes layout not recognised")
        for text, encoding, kind, ascii_ in ((tag + "a", "ascii", 1, 1), (tag + "\xe9", "latin-1", 1, 0),
                                             (tag + "\u0100", "utf-16-le", 2, 0), (tag + "\U00010000", "utf-32-le", 4, 0)):
            if self.state(text) != (0, kind, 1, ascii_):
                raise RuntimeError("str state not recognised")
            offset = self.ascii_offset if ascii_ else self.compact_offset
            if self.read(id(text) + offset, (len(text) + 1) * kind) != (text + "\0").encode(encoding):
                raise RuntimeError("str layout not recognised")
        if self.state(sys.intern(tag + "interned"))[0] == 0:
            raise RuntimeError("str interned flag not recognised")

    def read(self, addr, n):
        return self.memory[addr:addr + n].tobytes()

    def state(self, text):
        """(interned, kind, compact, ascii) from a str's header."""
        bits = self.memory[id(text) + _STATE_OFFSET]
        return bits & 3, (bits >> 2) & 7, (bits >> 5) & 1, (bits >> 6) & 1

    def clear(self, addr, n):
        memory = self.memory
        while n > 0:
            step = min(n, _ZERO_SIZE)
            memory[addr:addr + step] = _ZEROS[:step]
            addr += step
            n -= step

    def wipe_bytes(self, data):
        n = len(data)
        addr = id(data) + self.bytes_offset
        memory = self.memory
        if memory[addr + n] != 0 or memory[addr] != data[0]:
            return False
        self.clear(addr, n)
        return True

    def wipe_str(self, text):
        interned, kind, compact, ascii_ = self.state(text)
        if interned or not compact or kind not in (1, 2, 4):
            return False
        n = len(text)
        addr = id(text) + (self.ascii_offset if ascii_ else self.compact_offset)
        memory = self.memory
        if any(memory[addr + n * kind + i] for i in range(kind)) or \
                int.from_bytes(memory[addr:addr + kind], sys.byteorder) != ord(text[0]):
            return False
        self.clear(addr, n * kind)
        return True


PLAIN_MASK = 0x63            # a str header's interned (2 bits), compact and ascii bits
PLAIN_ASCII = 0x60           # not interned, compact, ascii
_SPAN = 1 << 62             # past every user-space address
_ZERO_SIZE = 1 << 16
_ZEROS = memoryview(bytes(_ZERO_SIZE))
ZEROS = _ZEROS              # for the store's inline wipes (secret_store.py)
FRESH_REFS = 4 + _MAX_REFS  # the references of an object just made by the caller or by json.loads, at most


def _probe():
    try:
        return _Layout(), None
    except Exception as exc:  # pylint: disable=broad-except
        return None, "%s: %s" % (type(exc).__name__, exc)


_LAYOUT, _LAYOUT_ERROR = _probe()


def wipe_available():
    """(True, None) when immutable objects can be wiped here, else (False, the reason)."""
    return _LAYOUT is not None, _LAYOUT_ERROR


def zero(buf):
    """Overwrite a bytearray with zeros (its length stays)."""
    n = len(buf)
    if n <= _ZERO_SIZE:
        buf[:] = _ZEROS[:n]
        return
    pos = 0
    while pos < n:
        step = min(n - pos, _ZERO_SIZE)
        buf[pos:pos + step] = _ZEROS[:step]
        pos += step


def wipe(obj, refs=0):
    """Overwrite the data of ``obj`` (bytes, str, bytearray) in place; True when done.

    ``refs``: references the caller holds besides the argument itself (a local name,
    a dict entry); an object referenced more widely is not touched.
    """
    kind = type(obj)
    if kind is bytearray:
        zero(obj)
        return True
    if (kind is not bytes and kind is not str) or len(obj) < 2 or _LAYOUT is None:
        return False        # CPython shares empty and one-character objects
    if sys.getrefcount(obj) > 2 + refs + _MAX_REFS:
        return False
    if kind is bytes:
        return _LAYOUT.wipe_bytes(obj)
    return _LAYOUT.wipe_str(obj)


def wipe_fresh(obj):
    """``wipe`` for an object just made by the caller or by json.loads (the hot path).

    An ASCII str needs one header byte read: compact, ASCII and not interned.
    """
    kind = type(obj)
    n = len(obj)
    if _LAYOUT is None or n < 2 or sys.getrefcount(obj) > FRESH_REFS:
        return False
    if kind is bytes:
        addr = id(obj) + _LAYOUT.bytes_offset
    elif kind is str and obj.isascii() and _LAYOUT.memory[id(obj) + _STATE_OFFSET] & PLAIN_MASK == PLAIN_ASCII:
        addr = id(obj) + _LAYOUT.ascii_offset
    else:
        return wipe(obj)
    if n <= _ZERO_SIZE:
        _LAYOUT.memory[addr:addr + n] = _ZEROS[:n]
    else:
        _LAYOUT.clear(addr, n)
    return True


def ascii_reader():
    """(memory, state offset, data offset) to view a compact ASCII str's characters in
    place (secret_store.py builds replies from them without an intermediate copy), or None."""
    if _LAYOUT is None:
        return None
    return _LAYOUT.memory, _STATE_OFFSET, _LAYOUT.ascii_offset


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
    if not isinstance(tree, dict) or _LAYOUT is None:
        return
    memory, offset, refcount = _LAYOUT.memory, _LAYOUT.ascii_offset, sys.getrefcount
    for value in tree.values():
        if type(value) is str:  # pylint: disable=unidiomatic-typecheck
            n = len(value)
            if 1 < n <= _ZERO_SIZE and value.isascii() and refcount(value) <= FRESH_REFS \
                    and memory[id(value) + _STATE_OFFSET] & PLAIN_MASK == PLAIN_ASCII:
                addr = id(value) + offset
                memory[addr:addr + n] = _ZEROS[:n]      # inline wipe_fresh: one per pushed value
            else:
                wipe_fresh(value)
        elif isinstance(value, dict):
            wipe_values(value)


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
