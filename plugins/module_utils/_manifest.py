# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is not a public API: it can change at
# any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
# module, in the generated daemon roles/broker_install/files/remo_broker.py, so it
# imports only the stdlib and the two collection modules below (both embedded too).

"""The project manifest ``.remo/manifest.toml``: the ONE place for its rules.

Parses, validates and renders the three manifest formats the broker accepts:

* ``remo.v2`` -- ``schema_version = 2``, ``project = "..."``, ``[secrets.NAME]`` tables;
* ``remo-broker.v1`` -- remo-broker v0.1: ``schema_version = 1``, ``[project] name``,
  ``[allowlist] secrets = [...]``, optional ``[cache]``;
* ``remo-sidecar.v1`` -- remo's sidecar design: ``schema_version = 1``, top-level
  ``project``, ``[secrets.name]`` tables, optional ``[cache]`` with ``default_*`` keys.

Every semantic error is a :class:`ManifestError` naming FILE:LINE:COLUMN: KEY: REASON.
One linear scan (:class:`_Locator`) runs before ``tomllib``: it refuses text beyond
the MAX_MANIFEST_* limits (tomllib is quadratic in dotted-key parts) and maps each
key path to the line and column of the key or value, which ``tomllib`` does not give
for semantic errors.  See docs/manifest.md for the reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib

from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_NAME_RE, SECRET_NAME_RE
from ansible_collections.remo.broker.plugins.module_utils._trusted_path import (
    UntrustedPathError,
    read_trusted_file,
    trusted_uids_for,
)

# ---------------------------------------------------------------------------
# Manifest constants
# ---------------------------------------------------------------------------
MAX_MANIFEST_BYTES = 65536
# Structural limits, checked by one linear scan before tomllib sees the text (see
# _Locator): they bound every parse to a few milliseconds.  docs/manifest.md#limits.
MAX_MANIFEST_LINES = 4096
MAX_MANIFEST_ITEMS = 1024          # keys, table headers and array elements, together
MAX_MANIFEST_DEPTH = 8             # key path parts: table header + dotted key + arrays + inline tables
MAX_MANIFEST_KEY_CHARS = 256       # one part of a key, as written
MAX_MANIFEST_BACKSLASHES = 4096    # tomllib decodes each string escape in Python
MAX_MANIFEST_SECRETS = 128
MANIFEST_RELATIVE_PATH = ".remo/manifest.toml"
DEFAULT_FILE_ROOTS = ("/run/secrets", "/dev/shm", "~")
DEFAULT_FILE_MODE = 0o400
SUPPORTED_SCHEMA_VERSIONS = (1, 2)

FETCH_AS_ENV = "env"
FETCH_AS_FILE = "file"
FETCH_AS_VALUES = (FETCH_AS_ENV, FETCH_AS_FILE)

FORMAT_V2 = "remo.v2"
FORMAT_BROKER_V1 = "remo-broker.v1"
FORMAT_SIDECAR_V1 = "remo-sidecar.v1"
SOURCE_FORMATS = (FORMAT_V2, FORMAT_BROKER_V1, FORMAT_SIDECAR_V1)

# Allowed keys per table, per format.
V2_TOP_KEYS = ("schema_version", "project", "secrets", "cache")
V2_CACHE_KEYS = ("ttl_seconds", "max_entries")
SECRET_KEYS = ("fetch_as", "env_var", "file_path", "file_mode", "template")
ENV_ONLY_KEYS = ("env_var",)
FILE_ONLY_KEYS = ("file_path", "file_mode", "template")
BROKER_V1_TOP_KEYS = ("schema_version", "project", "allowlist", "cache")
BROKER_V1_PROJECT_KEYS = ("name", "description")
BROKER_V1_ALLOWLIST_KEYS = ("secrets",)
BROKER_V1_CACHE_KEYS = ("ttl_seconds", "max_entries")
SIDECAR_V1_TOP_KEYS = ("schema_version", "project", "secrets", "cache")
SIDECAR_V1_CACHE_KEYS = ("default_ttl_seconds", "default_max_entries")

CACHE_TTL_RANGE = (1, 86400)
CACHE_MAX_ENTRIES_RANGE = (1, 1024)
DESCRIPTION_MAX_CHARS = 256
ENV_VAR_MAX_CHARS = 128
FILE_PATH_MAX_CHARS = 4096

ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A file_mode string: 3 or 4 octal digits ("0400", "600").
FILE_MODE_PATTERN = r"^[0-7]{3,4}$"
# Exactly the modes the rules allow (owner r, optional owner w, optional group/other r).
FILE_MODE_SCHEMA_PATTERN = r"^0?[46][04][04]$"
# A template is text in which every "{{" starts a {{field}} placeholder.
TEMPLATE_FIELD_PATTERN = r"\{\{[ \t]*([A-Za-z0-9_]+)[ \t]*\}\}"
TEMPLATE_SCHEMA_PATTERN = r"^(?:[^{]|\{(?!\{)|\{\{[ \t]*[A-Za-z0-9_]+[ \t]*\}\})*$"

# Environment variables a secret may never set, with the reason.
_LOADER = "changes how the dynamic loader or libc loads code"
_SHELL = "makes shells run code"
_LOOKUP = "changes which programs or files the container uses"
_INTERP = "makes an interpreter load or run code"
_GIT = "makes git or ssh run a program"
DANGEROUS_ENV_VARS = {
    "PATH": _LOOKUP, "HOME": _LOOKUP, "SHELL": _LOOKUP, "TMPDIR": _LOOKUP,
    "GCONV_PATH": _LOADER, "GLIBC_TUNABLES": _LOADER, "HOSTALIASES": _LOADER,
    "LOCPATH": _LOADER, "NLSPATH": _LOADER,
    "ENV": _SHELL, "BASH_ENV": _SHELL, "SHELLOPTS": _SHELL, "BASHOPTS": _SHELL,
    "PS4": _SHELL, "PROMPT_COMMAND": _SHELL, "IFS": _SHELL,
    "PYTHONPATH": _INTERP, "PYTHONHOME": _INTERP, "PYTHONSTARTUP": _INTERP,
    "NODE_OPTIONS": _INTERP, "NODE_PATH": _INTERP, "PERL5LIB": _INTERP,
    "PERL5OPT": _INTERP, "PERLLIB": _INTERP, "RUBYOPT": _INTERP, "RUBYLIB": _INTERP,
    "JAVA_TOOL_OPTIONS": _INTERP, "_JAVA_OPTIONS": _INTERP, "JDK_JAVA_OPTIONS": _INTERP,
    "GIT_SSH": _GIT, "GIT_SSH_COMMAND": _GIT, "GIT_EXEC_PATH": _GIT,
    "GIT_ASKPASS": _GIT, "SSH_ASKPASS": _GIT,
}
DANGEROUS_ENV_PREFIXES = (
    ("LD_", _LOADER),
    ("DYLD_", _LOADER),
    ("BASH_FUNC_", _SHELL),
    ("REMO_", "is reserved for the broker and its in-container helpers"),
)

_PROJECT_RE = re.compile(getattr(PROJECT_NAME_RE, "pattern", PROJECT_NAME_RE))
_SECRET_RE = re.compile(getattr(SECRET_NAME_RE, "pattern", SECRET_NAME_RE))
_ENV_RE = re.compile(ENV_VAR_PATTERN)
_MODE_RE = re.compile(FILE_MODE_PATTERN)
_FIELD_RE = re.compile(TEMPLATE_FIELD_PATTERN)
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END_RE = re.compile(r"\s*\(at end of document\)\s*$")

KEY_SYNTAX = "<toml>"
KEY_FILE = "<file>"
KEY_JSON = "<json>"


class ManifestError(ValueError):
    """A manifest problem, located: ``str(e) == "FILE:LINE:COL: KEY: REASON"``.

    ``line``/``column`` are 1-based, 0 when unknown.  Messages name keys and
    positions, never secret values.
    """

    def __init__(self, file, line, column, key, reason):
        self.file = str(file)
        self.line = int(line)
        self.column = int(column)
        self.key = str(key)
        self.reason = str(reason)
        super().__init__(self.__str__())

    def __str__(self):
        return "%s:%d:%d: %s: %s" % (self.file, self.line, self.column, self.key, self.reason)

    def to_dict(self):
        """The error as the ``details`` object of a ``manifest_invalid`` reply."""
        return {"file": self.file, "line": self.line, "column": self.column, "key": self.key, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class SecretSpec:
    """One allowed secret and how the in-container helper delivers it."""

    name: str
    fetch_as: str = FETCH_AS_ENV
    env_var: str | None = None
    file_path: str | None = None
    file_mode: int | None = None
    template: str | None = None

    @property
    def template_fields(self):
        """Field names used by ``template`` (unique, in order of appearance)."""
        return _template_fields(self.template) if self.template is not None else ()

    def to_public_dict(self):
        return {
            "name": self.name,
            "fetch_as": self.fetch_as,
            "env_var": self.env_var,
            "file_path": self.file_path,
            "file_mode": format_file_mode(self.file_mode) if self.file_mode is not None else None,
            "template_fields": list(self.template_fields),
        }


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated manifest, normalised from any of the three source formats."""

    project: str
    schema_version: int
    source_format: str
    secrets: dict
    cache: dict
    path: str
    sha256: str

    @property
    def allowlist(self):
        return tuple(self.secrets)

    def to_public_dict(self):
        return {
            "project": self.project,
            "schema_version": self.schema_version,
            "source_format": self.source_format,
            "path": self.path,
            "sha256": self.sha256,
            "secrets": [spec.to_public_dict() for spec in self.secrets.values()],
        }


def format_file_mode(mode):
    """``0o400`` -> ``"0400"``."""
    return "0%03o" % mode


# ---------------------------------------------------------------------------
# Structure scan: limits, and key path -> (line, column) in the TOML source
# ---------------------------------------------------------------------------
_WS_RE = re.compile(r"[ \t]*")
# No possessive quantifiers or atomic groups: Python 3.11.0-3.11.4 (Debian 12 ships
# 3.11.2) mis-matches them inside repeated groups.  Each loop below is "unrolled" (its
# alternatives cannot match the same character), so plain greedy matching stays linear.
_BLANK_RE = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_BARE_RE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC_RE = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_LITERAL_RE = re.compile(r"'[^'\n]*'")
# The first unescaped """ (or ''') ends the string; up to two more quotes belong to it.
_ML_BASIC_RE = re.compile(r'"""[^"\\]*(?:(?:\\[\s\S]|"(?!""))[^"\\]*)*""""{0,2}')
_ML_LITERAL_RE = re.compile(r"'''[^']*(?:'(?!'')[^']*)*''''{0,2}")
# Numbers, booleans and dates; a date-time may have a space before its time.
_SCALAR_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.+\-Zz]+|[A-Za-z0-9_+\-.:]+")
# The usual header, ``[table]`` or ``[table.name]``, in one match.
_SIMPLE_HEADER_RE = re.compile(r"\[[ \t]*([A-Za-z0-9_-]+)(?:[ \t]*\.[ \t]*([A-Za-z0-9_-]+))?[ \t]*\]")
# The usual line, ``bare_key = "string" / 'string' / scalar``, in one match.
_SIMPLE_KEYVAL_RE = re.compile(r"([A-Za-z0-9_-]+)[ \t]*=[ \t]*(?!\"\"\"|''')(%s|%s|%s)" % (
    _BASIC_RE.pattern, _LITERAL_RE.pattern, _SCALAR_RE.pattern))


class _Stop(Exception):
    """Ends a scan: ``(offset, key, reason)`` of the first problem found."""


class _Locator:
    """One linear scan of the TOML source: structural limits, then key positions.

    tomllib is quadratic in the parts of a dotted key and spends microseconds per
    key, so ``parse_manifest`` runs this scan first and hands tomllib only text
    within the limits above.  The scan follows TOML's structure (tables, keys,
    strings, arrays, inline tables) with one regular expression per token, so
    its time is linear in the text; it checks neither escapes, numbers nor
    duplicate keys (tomllib does).  ``problem`` is ``None`` or the first
    ``(offset, key, reason)``: a limit passed or a structure error; the scan
    stops there, so it never raises.

    ``keys`` holds the offset of each key component, ``values`` the offset of
    each value (for ``[tables]``, the ``[`` of the header; array elements use
    the index as the last path component).
    """

    def __init__(self, text):
        self.text = text
        self.keys = {}
        self.values = {}
        self.problem = None
        self._aot = {}
        self._items = 0
        try:
            self._check_document()
            self._scan()
        except _Stop as stop:
            self.problem = stop.args

    # -- positions ---------------------------------------------------------
    def position(self, offset):
        """1-based (line, column) of ``offset``: counted on demand, once per error."""
        line_start = self.text.rfind("\n", 0, offset) + 1
        return self.text.count("\n", 0, offset) + 1, offset - line_start + 1

    def locate(self, path, kind="key"):
        """(line, column) of ``path``'s key (``kind="key"``) or value (``"value"``).

        Falls back to the nearest enclosing table that has a position, and to
        (1, 1) -- the root table -- when nothing does.
        """
        path = tuple(path)
        while path:
            first, second = (self.keys, self.values) if kind == "key" else (self.values, self.keys)
            for table in (first, second):
                if path in table:
                    return self.position(table[path])
            path = path[:-1]
            kind = "value"
        return 1, 1

    # -- limits --------------------------------------------------------------
    def _check_document(self):
        text = self.text
        if text.count("\n") >= MAX_MANIFEST_LINES:
            offset = -1
            for dummy in range(MAX_MANIFEST_LINES):
                offset = text.index("\n", offset + 1)
            if offset + 1 < len(text):     # something after the last allowed line's newline
                raise _Stop(offset + 1, KEY_SYNTAX, "more than %d lines (manifest limit)" % MAX_MANIFEST_LINES)
        if text.count("\\") > MAX_MANIFEST_BACKSLASHES:
            offset = -1
            for dummy in range(MAX_MANIFEST_BACKSLASHES + 1):
                offset = text.index("\\", offset + 1)
            raise _Stop(offset, KEY_SYNTAX, "more than %d backslashes (manifest limit on string escapes)" % MAX_MANIFEST_BACKSLASHES)

    def _item(self, offset, path):
        """Count one key, table header or array element; check its depth."""
        self._items += 1
        if self._items > MAX_MANIFEST_ITEMS:
            raise _Stop(offset, _key_text(path), "more than %d keys, tables and array elements (manifest limit)" % MAX_MANIFEST_ITEMS)
        self._depth(offset, path)

    @staticmethod
    def _depth(offset, path):
        if len(path) > MAX_MANIFEST_DEPTH:
            raise _Stop(offset, _key_text(path[:MAX_MANIFEST_DEPTH + 1]),
                        "nested deeper than %d levels (manifest limit; table header, dotted key, arrays and "
                        "inline tables count together)" % MAX_MANIFEST_DEPTH)

    @staticmethod
    def _syntax(offset, reason):
        return _Stop(offset, KEY_SYNTAX, "TOML syntax error: " + reason)

    def _unterminated(self, start):
        """A string that does not end: at its opening quotes if multi-line, else at its line's end."""
        if self.text.startswith(self.text[start] * 3, start):
            return self._syntax(start, "unterminated multi-line string")
        end = self.text.find("\n", start)
        return self._syntax(len(self.text) if end < 0 else end, "unterminated string (a string ends on the line it starts)")

    # -- scanner -----------------------------------------------------------
    def _skip_ws(self, i):
        return _WS_RE.match(self.text, i).end()

    def _skip_blank(self, i):
        """Skip whitespace, newlines and comments."""
        return _BLANK_RE.match(self.text, i).end()

    def _scan(self):
        text = self.text
        current = ()
        i = 0
        while True:
            i = self._skip_blank(i)
            if i >= len(text):
                return
            if text[i] == "[":
                current, i = self._header(i)
            else:
                i = self._keyval(i, current)

    def _header(self, start):
        text = self.text
        is_array = text.startswith("[[", start)
        simple = None if is_array else _SIMPLE_HEADER_RE.match(text, start)
        if simple is not None and max(len(part or "") for part in simple.groups()) <= MAX_MANIFEST_KEY_CHARS:
            parts = [(simple.group(n), simple.start(n)) for n in (1, 2) if simple.group(n) is not None]
            i = simple.end() - 1
        else:
            parts, i = self._key(start + (2 if is_array else 1), ())
        resolved = ()
        for index, (name, offset) in enumerate(parts):
            resolved = resolved + (name,)
            self.keys.setdefault(resolved, offset)
            last = index == len(parts) - 1
            if last and is_array:
                count = self._aot.get(resolved, -1) + 1
                self._aot[resolved] = count
                self.values.setdefault(resolved, start)
                resolved = resolved + (count,)
                self.keys.setdefault(resolved, start)
            elif resolved in self._aot:
                resolved = resolved + (self._aot[resolved],)
        self._item(start, resolved)
        self.values.setdefault(resolved, start)
        i = self._skip_ws(i)
        close = "]]" if is_array else "]"
        if not text.startswith(close, i):
            raise self._syntax(i, "expected '%s' to close the table header" % close)
        return resolved, i + len(close)

    def _keyval(self, start, table):
        simple = _SIMPLE_KEYVAL_RE.match(self.text, start)
        if simple is not None and simple.end(1) - start <= MAX_MANIFEST_KEY_CHARS:
            path = table + (simple.group(1),)
            self.keys.setdefault(path, start)
            self._item(start, path)
            self.values.setdefault(path, simple.start(2))
            return simple.end()
        parts, i = self._key(start, table)
        path = table
        for name, offset in parts:
            path = path + (name,)
            self.keys.setdefault(path, offset)
        self._item(start, path)
        if self.text[i:i + 1] != "=":
            raise self._syntax(i, "expected '=' after a key")
        i = self._skip_ws(i + 1)
        self.values.setdefault(path, i)
        return self._value(i, path)

    def _key(self, i, table):
        """The parts of a (dotted) key at ``i`` in ``table``: ``[(name, offset), ...]`` and the offset after it."""
        text = self.text
        parts = []
        path = table
        skip_ws = _WS_RE.match
        while True:
            i = skip_ws(text, i).end()
            char = text[i:i + 1]
            quoted = char in ("'", '"')
            match = (_BASIC_RE if char == '"' else _LITERAL_RE if quoted else _BARE_RE).match(text, i)
            if match is None:
                raise self._unterminated(i) if quoted else self._syntax(i, "expected a key")
            end = match.end()
            body = (i + 1, end - 1) if quoted else (i, end)
            if body[1] - body[0] > MAX_MANIFEST_KEY_CHARS:
                raise _Stop(i, _key_text(path + (text[body[0]:body[0] + 81],)),
                            "key longer than %d characters (manifest limit)" % MAX_MANIFEST_KEY_CHARS)
            if char == '"':
                try:
                    name = _unescape(text[body[0]:body[1]])
                except (ValueError, IndexError):
                    raise self._syntax(i, "bad escape in a quoted key") from None
            else:
                name = text[body[0]:body[1]]
            parts.append((name, i))
            path = path + (name,)
            self._depth(i, path)
            i = skip_ws(text, end).end()
            if text[i:i + 1] != ".":
                return parts, i
            i += 1

    def _value(self, i, path):
        text = self.text
        char = text[i:i + 1]
        if char == '"' or char == "'":
            regex = (_ML_BASIC_RE if char == '"' else _ML_LITERAL_RE) if text.startswith(char * 3, i) else (
                _BASIC_RE if char == '"' else _LITERAL_RE)
            match = regex.match(text, i)
            if match is None:
                raise self._unterminated(i)
            return match.end()
        if char == "[":
            return self._array(i + 1, path)
        if char == "{":
            return self._inline_table(i + 1, path)
        match = _SCALAR_RE.match(text, i)
        if match is None:
            raise self._syntax(i, "expected a value")
        return match.end()

    def _array(self, i, path):
        text = self.text
        index = 0
        while True:
            i = self._skip_blank(i)
            if text[i:i + 1] == "]":
                return i + 1
            element = path + (index,)
            self._item(i, element)
            self.values.setdefault(element, i)
            self.keys.setdefault(element, i)
            i = self._skip_blank(self._value(i, element))
            char = text[i:i + 1]
            if char == ",":
                i += 1
                index += 1
            elif char == "]":
                return i + 1
            else:
                raise self._syntax(i, "expected ',' or ']' in an array")

    def _inline_table(self, i, path):
        text = self.text
        while True:
            i = self._skip_blank(i)
            if text[i:i + 1] == "}":
                return i + 1
            i = self._skip_blank(self._keyval(i, path))
            char = text[i:i + 1]
            if char == ",":
                i += 1
            elif char == "}":
                return i + 1
            else:
                raise self._syntax(i, "expected ',' or '}' in an inline table")


_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(body):
    """Decode the escapes of a TOML basic string body (as tomllib does for keys)."""
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1:i + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in ("u", "U"):
            width = 4 if code == "u" else 8
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:
            raise ValueError("bad escape")
    return "".join(out)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _key_text(path):
    """``("secrets", "GH", "fetch_as")`` -> ``secrets.GH.fetch_as``; indices as ``[n]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
            continue
        text = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part)
        if len(text) > 80:
            text = text[:77] + "..."
        out += ("." if out else "") + text
    return out or "<root>"


def _short(value, limit=60):
    """A value quoted for a message, cut short (never used for secret values)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 4] + '..."'


def _type_name(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "date/time"


def _template_fields(template):
    """Placeholder names of a template, unique, in order; ValueError on a bad ``{{``."""
    fields = {}     # a dict keeps the order and checks "seen" in constant time
    i = 0
    while True:
        start = template.find("{{", i)
        if start < 0:
            return tuple(fields)
        match = _FIELD_RE.match(template, start)
        if match is None:
            raise ValueError(start)
        fields.setdefault(match.group(1))
        i = match.end()


def _env_var_problem(name):
    """None when ``name`` is a usable, safe environment variable, else the reason."""
    if not _ENV_RE.fullmatch(name) or len(name) > ENV_VAR_MAX_CHARS:
        return "not a valid environment variable name (must match %s, at most %d characters)" % (ENV_VAR_PATTERN, ENV_VAR_MAX_CHARS)
    if name in DANGEROUS_ENV_VARS:
        return "environment variable %s is not allowed: it %s" % (name, DANGEROUS_ENV_VARS[name])
    for prefix, why in DANGEROUS_ENV_PREFIXES:
        if name.startswith(prefix):
            return "environment variable %s is not allowed: the %s* family %s" % (name, prefix, why)
    return None


def _normalise_path(path):
    """Lexically normalise an absolute or ``~/`` path; ValueError with the reason."""
    if path.startswith("~/") or path == "~":
        base, rest = "~", path[1:]
    elif path.startswith("/"):
        base, rest = "", path
    elif path.startswith("~"):
        raise ValueError("only ~/ (the container user's home) is allowed, not ~user")
    else:
        raise ValueError("must be absolute or start with ~/")
    parts = []
    for part in rest.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError("'..' climbs out of %s" % (base or "/"))
            parts.pop()
            continue
        parts.append(part)
    return base + "/" + "/".join(parts) if parts else (base or "/")


def _normalise_roots(file_roots):
    roots = []
    for root in DEFAULT_FILE_ROOTS if file_roots is None else file_roots:
        if not isinstance(root, str) or not (root.startswith("/") or root == "~" or root.startswith("~/")):
            raise ManifestError("<file_roots>", 0, 0, "file_roots", "each root must be an absolute path, ~ or ~/...")
        roots.append(_normalise_path(root))
    return tuple(roots)


def _under_root(path, roots):
    for root in roots:
        prefix = root if root.endswith("/") else root + "/"
        if path.startswith(prefix) and len(path) > len(prefix):
            return True
    return False


def _parse_mode(value):
    """``"0400"``/``0o400`` -> 256; ValueError with the reason."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be an octal string such as \"0400\" or an integer, not a %s" % _type_name(value))
    if isinstance(value, str):
        if not _MODE_RE.fullmatch(value):
            raise ValueError("must be an octal string such as \"0400\" (3 or 4 octal digits)")
        mode = int(value, 8)
    else:
        mode = value
    if mode < 0 or mode > 0o777:
        raise ValueError("must be between 0000 and 0777 (no setuid, setgid or sticky bits)")
    if mode & 0o111:
        raise ValueError("%s grants execute permission; secret files are never executable" % format_file_mode(mode))
    if mode & 0o022:
        raise ValueError("%s lets group or others write the file" % format_file_mode(mode))
    if not mode & 0o400:
        raise ValueError("%s does not let the owner read the file" % format_file_mode(mode))
    return mode


class _Context:
    """Validation state for one document: raises located ManifestErrors."""

    def __init__(self, path, locator):
        self.path = path
        self._locator = locator

    def locate(self, key_path, kind):
        return self._locator.locate(key_path, kind)

    def fail(self, key_path, reason, kind="key"):
        line, column = self.locate(key_path, kind)
        raise ManifestError(self.path, line, column, _key_text(key_path), reason)

    def table(self, doc, key_path, required):
        """``doc[key_path[-1]]`` as a dict (``{}`` if absent and optional)."""
        if key_path[-1] not in doc:
            if required:
                self.fail(key_path, "missing required table", "value")
            return {}
        value = doc[key_path[-1]]
        if not isinstance(value, dict):
            self.fail(key_path, "must be a table, not a %s" % _type_name(value), "value")
        return value

    def only_keys(self, table, key_path, allowed, label):
        for key in table:
            if key not in allowed:
                self.fail(key_path + (key,), "unknown key in %s (allowed: %s)" % (label, ", ".join(allowed)))

    def string(self, table, key_path, required=False):
        if key_path[-1] not in table:
            if required:
                self.fail(key_path, "missing required key", "value")
            return None
        value = table[key_path[-1]]
        if not isinstance(value, str):
            self.fail(key_path, "must be a string, not a %s" % _type_name(value), "value")
        return value

    def integer(self, table, key_path, bounds):
        if key_path[-1] not in table:
            return None
        value = table[key_path[-1]]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key_path, "must be an integer, not a %s" % _type_name(value), "value")
        if not bounds[0] <= value <= bounds[1]:
            self.fail(key_path, "must be between %d and %d, got %d" % (bounds[0], bounds[1], value), "value")
        return value

    def project_name(self, name, key_path, expected_project):
        if not _PROJECT_RE.fullmatch(name):
            self.fail(key_path, "invalid project name %s: must match %s" % (_short(name), _PROJECT_RE.pattern), "value")
        if expected_project is not None and name != expected_project:
            self.fail(key_path, "project %s does not match the registered project %s" % (_short(name), _short(expected_project)), "value")


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------
def _decode(data, path):
    if isinstance(data, str):
        text = data
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ManifestError(path, 0, 0, KEY_SYNTAX, "text is not valid Unicode (lone surrogate at character %d)" % exc.start) from None
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        text = None
    else:
        raise ManifestError(path, 0, 0, KEY_FILE, "manifest data must be bytes or str, not %s" % type(data).__name__)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(path, 0, 0, KEY_FILE, "manifest is larger than %d bytes" % MAX_MANIFEST_BYTES)
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[:exc.start]
            line = before.count(b"\n") + 1
            column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
            raise ManifestError(path, line, column, KEY_SYNTAX, "not valid UTF-8") from None
    return raw, text


def parse_manifest(data, path="<manifest>", expected_project=None, file_roots=None):
    """Parse and validate manifest bytes or text; return a :class:`Manifest`.

    Raises :class:`ManifestError` (and nothing else) for any problem in ``data``.
    """
    path = str(path)
    roots = _normalise_roots(file_roots)
    raw, text = _decode(data, path)
    # Limits first, in linear time: tomllib only ever sees text within them.
    locator = _Locator(text)
    if locator.problem:
        offset, key, reason = locator.problem
        line, column = locator.position(offset)
        raise ManifestError(path, line, column, key, reason)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POS_RE.search(message)
        line, column = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        reason = message[:match.start()] if match else message
        end = _TOML_END_RE.search(reason) if not match else None
        if end:
            reason = reason[:end.start()]
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
        raise ManifestError(path, line, column, KEY_SYNTAX, "TOML syntax error: %s" % (reason or "invalid TOML")) from None
    ctx = _Context(path, locator)
    if "schema_version" not in doc:
        ctx.fail(("schema_version",), "missing required key (supported schema versions: 1, 2)", "value")
    version = doc["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        ctx.fail(("schema_version",), "must be an integer, not a %s" % _type_name(version), "value")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        ctx.fail(("schema_version",), "unsupported schema_version %d (supported: 1, 2)" % version, "value")
    if version == 2:
        project, secrets, cache, fmt = _parse_v2(ctx, doc, expected_project, roots)
    elif isinstance(doc.get("project"), dict) or ("allowlist" in doc and "project" not in doc):
        project, secrets, cache, fmt = _parse_broker_v1(ctx, doc, expected_project)
    else:
        project, secrets, cache, fmt = _parse_sidecar_v1(ctx, doc, expected_project, roots)
    return Manifest(project=project, schema_version=version, source_format=fmt, secrets=secrets, cache=cache,
                    path=path, sha256=hashlib.sha256(raw).hexdigest())


def _parse_v2(ctx, doc, expected_project, roots):
    ctx.only_keys(doc, (), V2_TOP_KEYS, "a schema_version 2 manifest")
    project = ctx.string(doc, ("project",), required=True)
    ctx.project_name(project, ("project",), expected_project)
    secrets = _secret_tables(ctx, ctx.table(doc, ("secrets",), False), roots, upper_default=False)
    table = ctx.table(doc, ("cache",), False)
    ctx.only_keys(table, ("cache",), V2_CACHE_KEYS, "[cache]")
    cache = _cache(ctx, table, ("cache", "ttl_seconds"), ("cache", "max_entries"))
    return project, secrets, cache, FORMAT_V2


def _parse_sidecar_v1(ctx, doc, expected_project, roots):
    ctx.only_keys(doc, (), SIDECAR_V1_TOP_KEYS, "a remo sidecar manifest (schema_version 1 with top-level project)")
    project = ctx.string(doc, ("project",), required=True)
    ctx.project_name(project, ("project",), expected_project)
    secrets = _secret_tables(ctx, ctx.table(doc, ("secrets",), False), roots, upper_default=True)
    table = ctx.table(doc, ("cache",), False)
    ctx.only_keys(table, ("cache",), SIDECAR_V1_CACHE_KEYS, "[cache]")
    cache = _cache(ctx, table, ("cache", "default_ttl_seconds"), ("cache", "default_max_entries"))
    return project, secrets, cache, FORMAT_SIDECAR_V1


def _parse_broker_v1(ctx, doc, expected_project):
    ctx.only_keys(doc, (), BROKER_V1_TOP_KEYS, "a remo-broker v0.1 manifest (schema_version 1 with [project] and [allowlist])")
    table = ctx.table(doc, ("project",), True)
    ctx.only_keys(table, ("project",), BROKER_V1_PROJECT_KEYS, "[project]")
    project = ctx.string(table, ("project", "name"), required=True)
    ctx.project_name(project, ("project", "name"), expected_project)
    description = ctx.string(table, ("project", "description"))
    if description is not None and len(description) > DESCRIPTION_MAX_CHARS:
        ctx.fail(("project", "description"), "longer than %d characters" % DESCRIPTION_MAX_CHARS, "value")
    table = ctx.table(doc, ("allowlist",), True)
    ctx.only_keys(table, ("allowlist",), BROKER_V1_ALLOWLIST_KEYS, "[allowlist]")
    if "secrets" not in table:
        ctx.fail(("allowlist", "secrets"), "missing required key (use secrets = [] for none)", "value")
    names = table["secrets"]
    if not isinstance(names, list):
        ctx.fail(("allowlist", "secrets"), "must be an array of secret names, not a %s" % _type_name(names), "value")
    _count_secrets(ctx, names, ("allowlist", "secrets"))
    secrets = {}
    for index, name in enumerate(names):
        key_path = ("allowlist", "secrets", index)
        if not isinstance(name, str):
            ctx.fail(key_path, "must be a string, not a %s" % _type_name(name), "value")
        if not _SECRET_RE.fullmatch(name):
            ctx.fail(key_path, "invalid secret name %s: must match %s" % (_short(name), _SECRET_RE.pattern), "value")
        if name in secrets:
            ctx.fail(key_path, "duplicate secret name %s" % name, "value")
        problem = _env_var_problem(name)
        if problem:
            ctx.fail(key_path, "secret %s is delivered as the environment variable %s: %s" % (name, name, problem), "value")
        secrets[name] = SecretSpec(name=name, fetch_as=FETCH_AS_ENV, env_var=name)
    table = ctx.table(doc, ("cache",), False)
    ctx.only_keys(table, ("cache",), BROKER_V1_CACHE_KEYS, "[cache]")
    cache = _cache(ctx, table, ("cache", "ttl_seconds"), ("cache", "max_entries"))
    return project, secrets, cache, FORMAT_BROKER_V1


def _count_secrets(ctx, secrets, key_path):
    if len(secrets) > MAX_MANIFEST_SECRETS:
        ctx.fail(key_path, "%d secrets, more than the manifest limit of %d" % (len(secrets), MAX_MANIFEST_SECRETS))


def _cache(ctx, table, ttl_path, entries_path):
    cache = {}
    ttl = ctx.integer(table, ttl_path, CACHE_TTL_RANGE)
    if ttl is not None:
        cache["ttl_seconds"] = ttl
    entries = ctx.integer(table, entries_path, CACHE_MAX_ENTRIES_RANGE)
    if entries is not None:
        cache["max_entries"] = entries
    return cache


def _secret_tables(ctx, tables, roots, upper_default):
    _count_secrets(ctx, tables, ("secrets",))
    secrets = {}
    env_owner = {}
    file_owner = {}
    for name, spec in tables.items():
        base = ("secrets", name)
        if not _SECRET_RE.fullmatch(name):
            ctx.fail(base, "invalid secret name: must match %s" % _SECRET_RE.pattern)
        if not isinstance(spec, dict):
            ctx.fail(base, "must be a table, not a %s" % _type_name(spec), "value")
        ctx.only_keys(spec, base, SECRET_KEYS, "[secrets.%s]" % name)
        fetch_as = ctx.string(spec, base + ("fetch_as",))
        if fetch_as is None:
            fetch_as = FETCH_AS_ENV
        elif fetch_as not in FETCH_AS_VALUES:
            ctx.fail(base + ("fetch_as",), "must be \"env\" or \"file\", not %s" % _short(fetch_as), "value")
        if fetch_as == FETCH_AS_ENV:
            secrets[name] = _env_secret(ctx, name, spec, base, env_owner, upper_default)
        else:
            secrets[name] = _file_secret(ctx, name, spec, base, file_owner, roots)
    return secrets


def _env_secret(ctx, name, spec, base, env_owner, upper_default):
    for key in spec:
        if key in FILE_ONLY_KEYS:
            ctx.fail(base + (key,), "%s is only allowed when fetch_as = \"file\"" % key)
    env_var = ctx.string(spec, base + ("env_var",))
    where = base + ("env_var",)
    if env_var is None:
        env_var = name.upper() if upper_default else name
        where = base
    problem = _env_var_problem(env_var)
    if problem:
        if where == base:
            problem = "the default env_var %s: %s; set env_var" % (env_var, problem)
        ctx.fail(where, problem, "value" if where != base else "key")
    if env_var in env_owner:
        ctx.fail(where, "environment variable %s is already set by secret %s" % (env_var, env_owner[env_var]), "value" if where != base else "key")
    env_owner[env_var] = name
    return SecretSpec(name=name, fetch_as=FETCH_AS_ENV, env_var=env_var)


def _file_secret(ctx, name, spec, base, file_owner, roots):
    for key in spec:
        if key in ENV_ONLY_KEYS:
            ctx.fail(base + (key,), "%s is only allowed when fetch_as = \"env\"" % key)
    where = base + ("file_path",)
    raw_path = ctx.string(spec, where)
    if raw_path is None:
        ctx.fail(base, "fetch_as = \"file\" requires file_path", "value")
    if not raw_path or len(raw_path) > FILE_PATH_MAX_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in raw_path):
        ctx.fail(where, "must be a non-empty path of at most %d characters without control characters" % FILE_PATH_MAX_CHARS, "value")
    try:
        file_path = _normalise_path(raw_path)
    except ValueError as exc:
        ctx.fail(where, "file_path %s" % exc, "value")
    if not _under_root(file_path, roots):
        ctx.fail(where, "file_path %s is not below an allowed root (%s)" % (_short(file_path), ", ".join(roots)), "value")
    if file_path in file_owner:
        ctx.fail(where, "file_path %s is already used by secret %s" % (_short(file_path), file_owner[file_path]), "value")
    file_owner[file_path] = name
    file_mode = DEFAULT_FILE_MODE
    if "file_mode" in spec:
        try:
            file_mode = _parse_mode(spec["file_mode"])
        except ValueError as exc:
            ctx.fail(base + ("file_mode",), str(exc), "value")
    template = ctx.string(spec, base + ("template",))
    if template is not None:
        if not template:
            ctx.fail(base + ("template",), "must not be empty (omit template to write the raw value)", "value")
        try:
            _template_fields(template)
        except ValueError as exc:
            offset = exc.args[0]
            ctx.fail(base + ("template",), "bad placeholder at character %d: every {{ must start a {{field}} with a name of A-Z, a-z, 0-9, _" % (
                offset + 1), "value")
    return SecretSpec(name=name, fetch_as=FETCH_AS_FILE, file_path=file_path, file_mode=file_mode, template=template)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
def load_manifest(path, expected_project=None, file_roots=None, trusted_uids=()):
    """Read the manifest at ``path`` the way the broker trusts it (:func:`read_manifest_bytes`), then parse it."""
    path = os.fspath(path)
    data = read_manifest_bytes(path, trusted_uids)
    return parse_manifest(data, path=path, expected_project=expected_project, file_roots=file_roots)


def read_manifest_bytes(path, trusted_uids=()):
    """The bytes of the manifest at ``path``, read through :func:`read_trusted_file`.

    No symlink is followed at any component; the file and every directory above it must
    be owned by root, this process's account or one of ``trusted_uids`` and writable by
    nobody else; at most ``MAX_MANIFEST_BYTES``.  Any failure is a :class:`ManifestError`
    whose reason names the failing component and the fix.
    """
    path = os.fspath(path)
    try:
        return read_trusted_file(path, MAX_MANIFEST_BYTES, trusted_uids_for(*trusted_uids))
    except UntrustedPathError as exc:
        raise ManifestError(path, 0, 0, KEY_FILE, _untrusted_reason(path, exc)) from None
    except PermissionError:
        raise ManifestError(path, 0, 0, KEY_FILE, "permission denied: the broker cannot read this file") from None
    except OSError as exc:
        raise ManifestError(path, 0, 0, KEY_FILE, "cannot read: %s" % (exc.strerror or exc)) from None
    except ValueError:    # a NUL byte or a lone surrogate: no file has this name
        raise ManifestError(path, 0, 0, KEY_FILE, "not found: not a valid file name") from None


def _untrusted_reason(path, exc):
    """The ManifestError reason for a refused read: what failed, where, and the fix."""
    reason = exc.reason
    if reason in ("not found", "does not exist"):
        reason = "not found"    # callers tell a missing manifest from a bad one by this prefix
    elif reason.startswith("larger than"):
        reason = "manifest is %s" % reason
    if exc.path != path:
        reason += " (%s)" % exc.path
    if exc.fix:
        reason += "; fix: %s" % exc.fix
    return reason


def discover_manifest(project_path):
    """Return ``PROJECT/.remo/manifest.toml``; ManifestError if it is not a file."""
    project_path = os.fspath(project_path)
    candidate = os.path.join(project_path, MANIFEST_RELATIVE_PATH)
    if os.path.isfile(candidate):
        return candidate
    if not os.path.isdir(project_path):
        raise ManifestError(candidate, 0, 0, KEY_FILE, "not found: project directory %s does not exist" % project_path)
    reason = "not found: every project needs %s" % MANIFEST_RELATIVE_PATH
    for legacy in (".devcontainer/remo-broker.toml", ".remo/broker.toml"):
        if os.path.isfile(os.path.join(project_path, legacy)):
            reason += " (found the remo-broker v0.1 file %s: move it to %s, it loads unchanged)" % (legacy, MANIFEST_RELATIVE_PATH)
            break
    raise ManifestError(candidate, 0, 0, KEY_FILE, reason)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
_TOML_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _toml_escape(value, keep_newlines=False):
    """``value`` with TOML basic-string escapes; raw newlines kept when asked (multi-line strings)."""
    out = []
    for char in value:
        if keep_newlines and char == "\n":
            out.append("\n")
        elif char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    return "".join(out)


def _toml_string(value):
    """A TOML basic string for ``value`` (single line; every control character escaped)."""
    return '"' + _toml_escape(value) + '"'


def _toml_multiline(value):
    """A TOML multi-line basic string; newlines kept, everything else escaped as needed."""
    return '"""\n' + _toml_escape(value, keep_newlines=True) + '"""'


def _toml_key(key):
    return key if _BARE_KEY_RE.fullmatch(key) else _toml_string(key)


_RENDER_KEYS = ("name",) + SECRET_KEYS


def render_manifest(project, secrets, file_roots=None):
    """Deterministic schema_version 2 TOML for ``project`` and a list of secret specs.

    Each spec is a dict with ``name`` and optionally ``fetch_as``, ``env_var``,
    ``file_path``, ``file_mode`` (int or "0400"-style string) and ``template``;
    ``None`` values count as absent.  The text is validated by parsing it back.
    """
    where = "<render>"
    if not isinstance(project, str):
        raise ManifestError(where, 0, 0, "project", "must be a string")
    if not isinstance(secrets, (list, tuple)):
        raise ManifestError(where, 0, 0, "secrets", "must be a list of secret specs")
    lines = ["# remo.broker project manifest: which secrets this project may read.",
             "schema_version = 2", "project = %s" % _toml_string(project)]
    seen = set()
    for index, spec in enumerate(secrets):
        label = "secrets[%d]" % index
        if isinstance(spec, SecretSpec):
            spec = dataclasses.asdict(spec)
        if not isinstance(spec, dict):
            raise ManifestError(where, 0, 0, label, "must be a dict")
        for key in spec:
            if key not in _RENDER_KEYS:
                raise ManifestError(where, 0, 0, "%s.%s" % (label, key), "unknown key (allowed: %s)" % ", ".join(_RENDER_KEYS))
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(where, 0, 0, label + ".name", "must be a non-empty string")
        if name in seen:
            raise ManifestError(where, 0, 0, label + ".name", "duplicate secret name %s" % _short(name))
        seen.add(name)
        lines.append("")
        lines.append("[secrets.%s]" % _toml_key(name))
        fetch_as = spec.get("fetch_as")
        fetch_as = FETCH_AS_ENV if fetch_as is None else fetch_as
        if not isinstance(fetch_as, str):
            raise ManifestError(where, 0, 0, label + ".fetch_as", "must be a string")
        lines.append("fetch_as = %s" % _toml_string(fetch_as))
        for key in ("env_var", "file_path", "file_mode", "template"):
            value = spec.get(key)
            if key == "file_mode" and value is None and fetch_as == FETCH_AS_FILE:
                value = DEFAULT_FILE_MODE
            if value is None or (key == "env_var" and value == name):
                continue
            if key == "file_mode" and isinstance(value, int) and not isinstance(value, bool):
                value = format_file_mode(value) if 0 <= value <= 0o7777 else str(value)
            if not isinstance(value, str):
                raise ManifestError(where, 0, 0, "%s.%s" % (label, key), "must be a string")
            text = _toml_multiline(value) if key == "template" and "\n" in value else _toml_string(value)
            lines.append("%s = %s" % (key, text))
    text = "\n".join(lines) + "\n"
    parse_manifest(text, path="<rendered manifest>", expected_project=project, file_roots=file_roots)
    return text


# ---------------------------------------------------------------------------
# devcontainer.json
# ---------------------------------------------------------------------------
def _strip_jsonc(text):
    """Blank out comments and trailing commas, string-aware, keeping every offset."""
    out = list(text)
    i = 0
    n = len(text)
    last_comma = -1
    while i < n:
        char = text[i]
        if char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            last_comma = -1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            for k in range(i, end):
                out[k] = " "
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k in range(i, end):
                if out[k] != "\n":
                    out[k] = " "
            i = end
            continue
        if char == ",":
            last_comma = i
        elif char in "]}" and last_comma >= 0:
            out[last_comma] = " "
            last_comma = -1
        elif char not in " \t\r\n":
            last_comma = -1
        i += 1
    return "".join(out)


class _JsonObject(dict):
    """A JSON object that remembers keys it saw more than once."""

    def __init__(self):
        super().__init__()
        self.duplicates = []


def _json_position(text, offset):
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def secrets_from_devcontainer(text, path="devcontainer.json"):
    """Env secret specs from the top-level ``secrets`` object of a devcontainer.json.

    The text may be JSONC (comments, trailing commas).  Returns
    ``[{"name": N, "fetch_as": "env", "env_var": N}, ...]`` in document order.
    """
    path = str(path)
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(path, 0, 0, KEY_JSON, "not valid UTF-8") from None
    if not isinstance(text, str):
        raise ManifestError(path, 0, 0, KEY_JSON, "devcontainer.json text must be str")
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    clean = _strip_jsonc(text)

    def pairs(items):
        obj = _JsonObject()
        for key, value in items:
            if key in obj:
                obj.duplicates.append(key)
            obj[key] = value
        return obj

    try:
        doc = json.loads(clean, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, exc.lineno, exc.colno, KEY_JSON, "invalid JSON: %s" % exc.msg) from None
    except RecursionError:
        raise ManifestError(path, 0, 0, KEY_JSON, "invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestError(path, 1, 1, KEY_JSON, "the top level must be an object")
    if "secrets" not in doc:
        return []
    anchor = clean.find('"secrets"')
    line, column = _json_position(clean, max(anchor, 0))
    secrets = doc["secrets"]
    if not isinstance(secrets, dict):
        raise ManifestError(path, line, column, "secrets", "must be an object of secret names")
    specs = []
    for name in secrets:
        found = clean.find(json.dumps(name), max(anchor, 0) + 9)
        nline, ncolumn = _json_position(clean, found) if found >= 0 else (line, column)
        key = "secrets." + (name if _BARE_KEY_RE.fullmatch(name) else json.dumps(name))
        if not _SECRET_RE.fullmatch(name):
            raise ManifestError(path, nline, ncolumn, key, "invalid secret name: must match %s" % _SECRET_RE.pattern)
        problem = _env_var_problem(name)
        if problem:
            raise ManifestError(path, nline, ncolumn, key, problem)
        specs.append({"name": name, "fetch_as": FETCH_AS_ENV, "env_var": name})
    for name in getattr(secrets, "duplicates", ()):
        raise ManifestError(path, line, column, "secrets", "secret %s is listed twice" % _short(name))
    return specs


# ---------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------
def manifest_json_schema():
    """JSON Schema (draft 2020-12) of all three formats, for editors and tools.

    The parser is stricter than a schema can be (normalised ``..`` in paths,
    duplicate env_var/file_path, defaulted env_var names, configured roots,
    the expected project name): the parser is authoritative.
    """
    project = {"type": "string", "pattern": _PROJECT_RE.pattern, "description": "Project name; equals the registered name."}
    secret_name = {"type": "string", "pattern": _SECRET_RE.pattern}
    safe_env = {
        "type": "string", "pattern": ENV_VAR_PATTERN, "maxLength": ENV_VAR_MAX_CHARS,
        "not": {"anyOf": [{"enum": sorted(DANGEROUS_ENV_VARS)},
                          {"pattern": "^(%s)" % "|".join(entry[0] for entry in DANGEROUS_ENV_PREFIXES)}]},
    }
    root_alternatives = "|".join("".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in root) + "/" for root in DEFAULT_FILE_ROOTS)
    secret = {
        "type": "object",
        "description": "How the in-container helper delivers one allowed secret.",
        "additionalProperties": False,
        "properties": {
            "fetch_as": {"enum": list(FETCH_AS_VALUES), "default": FETCH_AS_ENV},
            "env_var": dict(safe_env, description="Environment variable to set (fetch_as = \"env\")."),
            "file_path": {"type": "string", "minLength": 1, "maxLength": FILE_PATH_MAX_CHARS,
                          "pattern": "^(%s)[^\\u0000-\\u001f\\u007f]+$" % root_alternatives,
                          "description": "File to write (fetch_as = \"file\"): absolute or ~/, below an allowed root."},
            "file_mode": {"oneOf": [{"type": "string", "pattern": FILE_MODE_SCHEMA_PATTERN},
                                    {"type": "integer", "enum": [m for m in range(0o1000) if _mode_ok(m)]}],
                          "default": format_file_mode(DEFAULT_FILE_MODE),
                          "description": "Octal mode: owner read required; never group/other write or any execute."},
            "template": {"type": "string", "minLength": 1, "pattern": TEMPLATE_SCHEMA_PATTERN,
                         "description": "File contents with {{field}} placeholders filled from a structured secret."},
        },
        "if": {"properties": {"fetch_as": {"const": FETCH_AS_FILE}}, "required": ["fetch_as"]},
        "then": {"required": ["file_path"], "properties": {"env_var": False}},
        "else": {"properties": {"file_path": False, "file_mode": False, "template": False}},
    }

    def cache(ttl_key, entries_key):
        return {"type": "object", "additionalProperties": False, "properties": {
            ttl_key: {"type": "integer", "minimum": CACHE_TTL_RANGE[0], "maximum": CACHE_TTL_RANGE[1]},
            entries_key: {"type": "integer", "minimum": CACHE_MAX_ENTRIES_RANGE[0], "maximum": CACHE_MAX_ENTRIES_RANGE[1]}}}

    secrets_table = {"type": "object", "maxProperties": MAX_MANIFEST_SECRETS, "propertyNames": secret_name,
                     "additionalProperties": {"$ref": "#/$defs/secret"}}
    v2 = {
        "type": "object", "title": "schema_version 2", "additionalProperties": False, "required": ["schema_version", "project"],
        "properties": {"schema_version": {"const": 2}, "project": {"$ref": "#/$defs/project_name"},
                       "secrets": secrets_table, "cache": cache("ttl_seconds", "max_entries")},
    }
    broker_v1 = {
        "type": "object", "title": "remo-broker v0.1 (schema_version 1)", "additionalProperties": False,
        "required": ["schema_version", "project", "allowlist"],
        "properties": {
            "schema_version": {"const": 1},
            "project": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
                "name": {"$ref": "#/$defs/project_name"}, "description": {"type": "string", "maxLength": DESCRIPTION_MAX_CHARS}}},
            "allowlist": {"type": "object", "additionalProperties": False, "required": ["secrets"], "properties": {
                "secrets": {"type": "array", "uniqueItems": True, "maxItems": MAX_MANIFEST_SECRETS,
                            "items": {"allOf": [secret_name, safe_env]}}}},
            "cache": cache("ttl_seconds", "max_entries"),
        },
    }
    sidecar_v1 = {
        "type": "object", "title": "remo sidecar (schema_version 1)", "additionalProperties": False,
        "required": ["schema_version", "project"],
        "properties": {"schema_version": {"const": 1}, "project": {"$ref": "#/$defs/project_name"},
                       "secrets": secrets_table, "cache": cache("default_ttl_seconds", "default_max_entries")},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/remo-broker/remo.broker/blob/main/docs/schema/remo-manifest.schema.json",
        "title": "remo.broker project manifest (.remo/manifest.toml)",
        "description": "Which secrets a project's devcontainer may read, and how they are delivered. Generated from "
                       "plugins/module_utils/_manifest.py; the broker's parser is authoritative and stricter "
                       "(see docs/manifest.md).",
        "type": "object",
        "required": ["schema_version"],
        "properties": {"schema_version": {"type": "integer", "enum": list(SUPPORTED_SCHEMA_VERSIONS)}},
        "if": {"properties": {"schema_version": {"const": 2}}},
        "then": {"$ref": "#/$defs/v2"},
        "else": {
            "if": {"anyOf": [{"properties": {"project": {"type": "object"}}, "required": ["project"]},
                             {"required": ["allowlist"], "not": {"required": ["project"]}}]},
            "then": {"$ref": "#/$defs/broker_v1"},
            "else": {"$ref": "#/$defs/sidecar_v1"},
        },
        "$defs": {"project_name": project, "secret": secret, "v2": v2, "broker_v1": broker_v1, "sidecar_v1": sidecar_v1},
    }


def _mode_ok(mode):
    try:
        _parse_mode(mode)
    except ValueError:
        return False
    return True
