# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The credential store: values per push source, the union the broker serves, zeroing.

A value is held only as its encoded ``get`` reply (and, for a structured secret, one
reply per field), each in a ``bytearray`` that is zeroed when a clear or a replacing
push drops it (secret_memory.py).  No parsed ``str`` of a value is kept: ``diff-creds``
compares the encoded replies in constant time.

Sources (docs/protocol.md "Push sources"): each push replaces only its source's names;
the broker serves the union.  A name held by several sources is served from the one
that ranks first: the default source, then the others in name order.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
import sys

from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import AdminFail
from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import (
    FRESH_REFS,
    PLAIN_ASCII,
    PLAIN_MASK,
    ZEROS,
    ascii_reader,
    wipe_fresh,
    zero,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DEFAULT_SOURCE,
    E_INVALID_PAYLOAD,
    E_PAYLOAD_TOO_LARGE,
    MAX_PROJECT_MESSAGE_BYTES,
    MAX_SECRETS,
    MAX_SOURCES,
    SECRET_NAME_PATTERN,
    SECRET_NAME_RE,
    SOURCE_NAME_PATTERN,
    SOURCE_NAME_RE,
)

try:
    from json.encoder import c_encode_basestring_ascii as _ascii_literal
except ImportError:   # pragma: no cover - CPython always has the C encoder
    from json.encoder import py_encode_basestring_ascii as _ascii_literal

_JOIN = bytearray().join
_READER = ascii_reader()
# The address space and where a str keeps its state byte and its ASCII characters (None: no wipe here).
_MEMORY, _STATE_AT, _DATA_AT = _READER if _READER is not None else (None, 0, 0)
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE_ONLY = re.compile("[\ud800-\udc7f\udd00-\udfff]")   # surrogateescape produces U+DC80..U+DCFF only
_OPEN = b'{"ok":true,"name":"'
_AS_IS = {"value": b'","value":"', "value_b64": b'","value_b64":"'}      # + the characters + _AS_IS_END
_AS_IS_END = b'"}\n'
_LITERAL = {"value": b'","value":', "value_b64": b'","value_b64":'}    # + a JSON string literal + _LITERAL_END
_LITERAL_END = b"}\n"
_compare = hmac.compare_digest
# Every name of a push at once, one per line: one regex run instead of one per name.
_NAME_CHARS = SECRET_NAME_PATTERN.lstrip("^").rstrip("$")
_NAME_LINES = re.compile("%s(?:\n%s)*" % (_NAME_CHARS, _NAME_CHARS))
_ZERO_SIZE = len(ZEROS)
_refcount = sys.getrefcount


def _reply(name, value, key="value"):
    """A ``get`` reply line in one exact-size bytearray, ``value`` copied in as its JSON
    string literal straight from the str's memory: no intermediate copy is left unwiped.

    ``value`` itself is overwritten once copied (where secret_memory.py can do it
    safely): the caller must not use it afterwards.
    """
    memory = _MEMORY
    if memory is not None and value.isascii() and value.isprintable() and '"' not in value \
            and "\\" not in value and memory[id(value) + _STATE_AT] & PLAIN_MASK == PLAIN_ASCII:
        # Most values: json.dumps would write them unchanged, between quotes.
        n = len(value)
        addr = id(value) + _DATA_AT
        out = _JOIN((_OPEN, name.encode("ascii"), _AS_IS[key], memory[addr:addr + n], _AS_IS_END))
        if 1 < n <= _ZERO_SIZE and _refcount(value) <= FRESH_REFS:
            memory[addr:addr + n] = ZEROS[:n]       # wipe_fresh inlined: once per pushed value
        else:
            wipe_fresh(value)       # it checks again: longer, shared or too widely referenced
        return out
    return _escaped_reply(name, value, key)


def _escaped_reply(name, value, key):
    """``_reply`` of a value that needs JSON escapes (or of any value where no layout is known)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        literal, text, mid, end = None, value, _AS_IS[key], _AS_IS_END
    else:
        literal = text = _ascii_literal(value)
        mid, end = _LITERAL[key], _LITERAL_END
    try:
        if _MEMORY is not None and _MEMORY[id(text) + _STATE_AT] & PLAIN_MASK == PLAIN_ASCII:
            addr = id(text) + _DATA_AT
            return _JOIN((_OPEN, name.encode("ascii"), mid, _MEMORY[addr:addr + len(text)], end))
        raw = text.encode("ascii")
        try:
            return _JOIN((_OPEN, name.encode("ascii"), mid, raw, end))
        finally:
            wipe_fresh(raw)
    finally:
        if literal is not None:
            wipe_fresh(literal)
        wipe_fresh(value)


def encode_value(name, value):
    """The ``get`` reply of a string value: ``value``, or ``value_b64`` when not valid UTF-8."""
    if value.isascii() or _SURROGATE.search(value) is None:
        return _reply(name, value)
    raw = value.encode("utf-8", "surrogateescape" if _ESCAPE_ONLY.search(value) is None else "surrogatepass")
    try:
        encoded = binascii.b2a_base64(raw, newline=False).decode("ascii")
    finally:
        wipe_fresh(raw)
        wipe_fresh(value)
    try:
        return _reply(name, encoded, "value_b64")
    finally:
        wipe_fresh(encoded)


class Entry:
    """A pushed structured secret: its encoded ``get`` reply and one per field.

    A string secret is held as its reply ``bytearray`` alone (no object around it: a
    push makes up to MAX_SECRETS of them); ``reply_of``, ``same`` and ``wipe_entries``
    take either.
    """

    __slots__ = ("reply", "fields")

    def __init__(self, reply, fields):
        self.reply = reply
        self.fields = fields

    def wipe(self):
        zero(self.reply)
        for reply in self.fields.values():
            zero(reply)


def reply_of(held):
    """The ``get`` reply of a held secret (a string's bytearray, or an Entry)."""
    return held if held.__class__ is bytearray else held.reply


def same(held, other):
    """Constant-time: the same value (a string never equals a structured secret)."""
    return held.__class__ is other.__class__ and _compare(reply_of(held), reply_of(other))


def wipe_entries(entries):
    """Zero every held secret's buffers."""
    zeros = ZEROS
    for held in entries:
        if held.__class__ is bytearray and len(held) <= _ZERO_SIZE:
            held[:] = zeros[:len(held)]     # zero() inlined: a push drops up to MAX_SECRETS
        elif held.__class__ is bytearray:
            zero(held)
        else:
            held.wipe()


def _structured(name, value):
    """The Entry of a structured secret: the object's JSON text (keys sorted) and each field."""
    fields = {}
    for field in sorted(value):
        fields[field] = _reply(name, value[field])
    # The object's JSON text is each field's literal, already inside its reply.
    parts = [b"{"]
    for field, reply in fields.items():
        if len(parts) > 1:
            parts.append(b",")
        start = reply.index(b'"value":') + 8
        parts += [json.dumps(field).encode("ascii"), b":", memoryview(reply)[start:-2]]
    parts.append(b"}")
    inner = _JOIN(parts)
    del parts
    # The whole object is served as a JSON string of its JSON text: escape \ and ".
    escaped = inner.replace(b"\\", b"\\\\")
    zero(inner)
    quoted = escaped.replace(b'"', b'\\"')
    zero(escaped)
    try:
        return Entry(_JOIN((('{"ok":true,"name":"%s","value":"' % name).encode("ascii"), quoted, b'"}\n')), fields)
    finally:
        zero(quoted)


def source_rank(source):
    """Precedence: the default source first, then the other sources by name."""
    return (source != DEFAULT_SOURCE, source)


def source_arg(req):
    """The request's ``source`` (absent or null: the default source)."""
    source = req.get("source")
    if source is None:
        return DEFAULT_SOURCE
    if not isinstance(source, str) or SOURCE_NAME_RE.fullmatch(source) is None:
        raise AdminFail(E_INVALID_PAYLOAD, "'source' must match %s" % SOURCE_NAME_PATTERN)
    return source


def _names_valid(secrets):
    """True when every key of ``secrets`` matches SECRET_NAME_PATTERN (False: check each to name the bad one)."""
    lines = "\n".join(secrets)
    # A name holding a newline would pass as two: the count of separators tells.
    return _NAME_LINES.fullmatch(lines) is not None and lines.count("\n") == len(secrets) - 1


def prepare(secrets):
    """Validate a push's ``secrets`` and encode each value; {name: bytearray | Entry} (wiped on failure).

    Consumes ``secrets``: each value is overwritten as soon as its reply holds it, and
    on success the dict is emptied (what is left after a failure, the caller wipes).
    """
    if not isinstance(secrets, dict):
        raise AdminFail(E_INVALID_PAYLOAD, "'secrets' must be an object of NAME: string | {field: string}")
    if len(secrets) > MAX_SECRETS:
        raise AdminFail(E_PAYLOAD_TOO_LARGE, "at most %d secrets can be pushed" % MAX_SECRETS)
    entries = {}
    fullmatch = None if not secrets or _names_valid(secrets) else SECRET_NAME_RE.fullmatch
    try:
        for name, value in secrets.items():
            if fullmatch is not None and fullmatch(name) is None:
                raise AdminFail(E_INVALID_PAYLOAD, "a secret name does not match %s" % SECRET_NAME_PATTERN)
            if isinstance(value, str):
                entries[name] = entry = _reply(name, value) if value.isascii() else encode_value(name, value)
                size = len(entry)
            elif isinstance(value, dict):
                for field, fval in value.items():
                    if not field or not isinstance(fval, str):
                        raise AdminFail(E_INVALID_PAYLOAD,
                                        "secret %s: a structured secret needs non-empty field names and string values" % name)
                entries[name] = entry = _structured(name, value)
                size = len(entry.reply)
            else:
                raise AdminFail(E_INVALID_PAYLOAD, "secret %s: value must be a string or an object of strings" % name)
            if size > MAX_PROJECT_MESSAGE_BYTES:
                raise AdminFail(E_PAYLOAD_TOO_LARGE, "secret %s: its get reply would exceed %d bytes"
                                % (name, MAX_PROJECT_MESSAGE_BYTES))
    except BaseException:
        wipe_entries(entries.values())
        raise
    secrets.clear()
    return entries


class SecretStore:
    """Every source's entries, and the served union (``replies``/``fields`` by name)."""

    def __init__(self):
        self.sources = {}       # source -> {name: bytearray | Entry}
        self.loaded_at = {}     # source -> ISO time of its last push
        self.served = {}        # name -> bytearray | Entry: the union, by precedence
        self.replies = {}       # name -> the served get reply (the hot path reads only this)

    def __len__(self):
        return len(self.served)

    def get_reply(self, name):
        return self.replies.get(name)

    def field_reply(self, name, field):
        held = self.served.get(name)
        if held is None or held.__class__ is bytearray or not isinstance(field, str):
            return None
        return held.fields.get(field)

    def diff(self, source, entries):
        """(added, removed, changed) names of ``source`` if it held ``entries``."""
        old = self.sources.get(source, {})
        added = sorted(n for n in entries if n not in old)
        removed = sorted(n for n in old if n not in entries)
        changed = sorted(n for n in entries if n in old and not same(old[n], entries[n]))
        return added, removed, changed

    def check_room(self, source, entries):
        if entries and source not in self.sources and len(self.sources) >= MAX_SOURCES:
            raise AdminFail(E_PAYLOAD_TOO_LARGE, "at most %d push sources can hold secrets" % MAX_SOURCES)

    def replace(self, source, entries, now):
        """Make ``source`` hold exactly ``entries``; (added, removed, changed, served names that changed).

        An unchanged value keeps its existing entry and the new copy is zeroed; every
        dropped or replaced entry is zeroed once the union no longer serves it.
        """
        old = self.sources.get(source, {})
        added, changed, dropped, unchanged = [], [], [], []
        new = {}
        for name, entry in entries.items():
            held = old.get(name)
            if held is None:
                added.append(name)
                new[name] = entry
            elif held.__class__ is bytearray and entry.__class__ is bytearray and _compare(held, entry) \
                    or held.__class__ is Entry and same(held, entry):
                unchanged.append(entry)
                new[name] = held
            else:
                changed.append(name)
                new[name] = entry
                dropped.append(held)
        removed = [name for name in old if name not in entries]
        dropped += [old[name] for name in removed]
        if new:
            self.sources[source] = new
            self.loaded_at[source] = now
        else:
            self.sources.pop(source, None)
            self.loaded_at.pop(source, None)
        if self.sources.keys() <= {source}:
            touched = self._reserve_only(new, added, removed, changed)
        else:
            touched = self._reserve(added + removed + changed)
        wipe_entries(unchanged)
        wipe_entries(dropped)
        added.sort()
        removed.sort()
        changed.sort()
        return added, removed, changed, touched

    def clear(self, source=None):
        """Drop one source (or every source, ``None``); (entries dropped, served names that changed)."""
        sources = list(self.sources) if source is None else [source] if source in self.sources else []
        dropped = []
        names = set()
        for src in sources:
            held = self.sources.pop(src)
            self.loaded_at.pop(src, None)
            dropped += held.values()
            names.update(held)
        touched = self._reserve(names)
        wipe_entries(dropped)
        return len(dropped), touched

    def _reserve_only(self, held, added, removed, changed):
        """``_reserve`` when no source but the one that holds ``held`` is left: no precedence to look up."""
        served, replies = self.served, self.replies
        for names in (added, changed):
            for name in names:
                served[name] = entry = held[name]
                replies[name] = entry if entry.__class__ is bytearray else entry.reply
        for name in removed:
            served.pop(name, None)
            replies.pop(name, None)
        touched = set(added)
        touched.update(removed)
        touched.update(changed)
        return touched

    def _reserve(self, names):
        """Recompute the served entry of ``names``; the names whose served value changed."""
        touched = set()
        served, replies = self.served, self.replies
        order = [self.sources[src] for src in sorted(self.sources, key=source_rank)]
        for name in names:
            before = served.get(name)
            for held in order:
                after = held.get(name)
                if after is not None:
                    served[name] = after
                    replies[name] = reply_of(after)
                    break
            else:
                after = None
                served.pop(name, None)
                replies.pop(name, None)
            if before is not after:
                touched.add(name)
        return touched

    def count(self, source):
        return len(self.sources.get(source, ()))

    def conflicts(self, source=None):
        """Names held by more than one source (only ``source``'s names when given), with who serves."""
        if len(self.sources) < 2:
            return []
        order = sorted(self.sources, key=source_rank)
        candidates = self.sources.get(source, {}) if source is not None else self.served
        out = []
        for name in sorted(candidates):
            holders = [src for src in order if name in self.sources[src]]
            if len(holders) > 1:
                out.append({"name": name, "served_from": holders[0], "also_in": holders[1:]})
        return out

    def last_loaded(self):
        return max(self.loaded_at.values()) if self.loaded_at else None

    def describe(self):
        """``status`` fields: the union's size, every source in precedence order, the conflicts."""
        return {
            "secret_count": len(self.served),
            "secrets_loaded_at": self.last_loaded(),
            "sources": [{"name": src, "secret_count": len(self.sources[src]), "loaded_at": self.loaded_at.get(src)}
                        for src in sorted(self.sources, key=source_rank)],
            "conflicts": self.conflicts(),
        }
