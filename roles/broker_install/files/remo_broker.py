# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# remo-broker: the in-memory credential broker daemon and its command-line client.
# ONE stdlib-only file (Python 3.11+), GENERATED IN FULL by scripts/bundle_daemon.py
# from plugins/module_utils/_daemon/*.py and plugins/module_utils/{_protocol,_manifest,
# _broker_client,_trusted_path}.py: edit those files and re-run the script, never this file.
# See docs/daemon.md and docs/protocol.md.
#
# pylint reads the embedded module bodies below as class bodies and cannot resolve their
# names; each source is linted as itself (plugins/module_utils/...), so these checks are
# off for this file only:
# pylint: disable=undefined-variable,no-self-argument,no-method-argument,self-cls-assignment,using-constant-test
"""remo-broker: in-memory credential broker daemon (protocol 2) and its CLI client."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Keep idle RSS low: the daemon needs neither TLS nor OpenSSL's hashes, and without
    # them asyncio skips its ssl support and hashlib uses its builtin sha256.  (The audit
    # writer process imports this file as a module, so it keeps OpenSSL's fast sha256.)
    sys.modules.setdefault("ssl", None)
    sys.modules.setdefault("_ssl", None)
    sys.modules.setdefault("_hashlib", None)


def relocate(code, filename, shift, prefix):
    """``code`` and its nested code objects renamed to ``filename``, ``shift`` lines up, ``prefix`` off qualnames."""
    new_consts = []
    for const in code.co_consts:
        if isinstance(const, type(code)):
            const = relocate(const, filename, shift, prefix)
        elif const == code.co_qualname and not code.co_flags & 1:
            const = const[len(prefix):]    # a class body stores its own __qualname__ (CO_OPTIMIZED unset)
        new_consts.append(const)
    qualname = code.co_qualname
    if qualname.startswith(prefix):
        qualname = qualname[len(prefix):]
    return code.replace(co_filename=filename, co_firstlineno=code.co_firstlineno - shift, co_qualname=qualname,
                        co_consts=tuple(new_consts))


class EmbeddedModules:
    """A sys.meta_path finder and loader of the modules embedded in the daemon file."""

    def __init__(self, program, modules, top_code):
        # modules: (module name, source path, wrapper class name, first line of its body in the file, line count)
        bodies = {c.co_name: c for c in top_code.co_consts if isinstance(c, type(top_code))}
        self.program = program
        self.modules = {}
        self.packages = set()
        for name, path, wrapper, first_line, count in modules:
            self.modules[name] = (path, bodies[wrapper], wrapper, first_line, count)
            parts = name.split(".")
            self.packages.update(".".join(parts[:i]) for i in range(1, len(parts)))

    def find_spec(self, name, path=None, target=None):
        if name not in self.modules and name not in self.packages:
            return None
        from importlib.machinery import ModuleSpec  # pylint: disable=import-outside-toplevel
        origin = self.modules[name][0] if name in self.modules else None
        return ModuleSpec(name, self, origin=origin, is_package=name in self.packages)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        if name in self.packages:
            module.__path__ = []
            return
        path, body, wrapper, first_line, count = self.modules[name]
        if body is None:
            raise ImportError("%s was already loaded once or forgotten" % name, name=name)
        self.modules[name] = (path, None, wrapper, first_line, count)   # the module's code is its own now
        namespace = module.__dict__
        exec(relocate(body, path, first_line - 1, wrapper + "."), namespace)  # pylint: disable=exec-used
        namespace.pop("__qualname__", None)
        namespace.pop("__module__", None)

    def forget_unloaded(self):
        """Drop the code of every module not loaded yet (the audit writer needs two of them)."""
        for name, (path, _body, wrapper, first_line, count) in list(self.modules.items()):
            self.modules[name] = (path, None, wrapper, first_line, count)

    def get_source(self, name):
        """The source lines as embedded (indented), for tracebacks through linecache."""
        if name not in self.modules:
            return None
        first_line, count = self.modules[name][3:]
        with open(self.program, encoding="utf-8") as handle:
            lines = handle.read().split("\n")[first_line - 1:first_line - 1 + count]
        return "\n".join(lines) + "\n"


def install(program, modules, top_code):
    """Serve the embedded modules, unless the collection's own sources are importable here."""
    import sys  # pylint: disable=import-outside-toplevel
    if "ansible_collections" in sys.modules:
        return None    # imported inside a process that already loads the collection's sources
    finder = EmbeddedModules(program, modules, top_code)
    sys.meta_path.insert(0, finder)
    return finder


if __name__ == "<embedded modules>":  # never true: install() runs each body as a module
    # ------------------------------------------------------------------------
    class _m00:  # plugins/module_utils/_protocol.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is not a public API: it can change at
        # any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
        # module, in the generated daemon roles/broker_install/files/remo_broker.py.

        """Every constant of the remo-broker wire protocol (protocol_version 2).

The single source of truth for the daemon, the socket client, the modules and the
manifest code (see docs/CONTRACTS.md and docs/protocol.md).  Stdlib only, no
module-level side effects.
"""
        #
        #

        import re

        PROTOCOL_VERSION = 2
        # Must equal the `version` in galaxy.yml (a unit test compares them).
        DAEMON_VERSION = "0.1.0"

        # ---------------------------------------------------------------------------
        # Default paths
        # ---------------------------------------------------------------------------
        DEFAULT_RUN_DIR = "/run/remo-broker"
        DEFAULT_STATE_DIR = "/var/lib/remo-broker"
        DEFAULT_AUDIT_LOG = "/var/log/remo-broker/audit.jsonl"
        ADMIN_SOCKET_NAME = "admin.sock"
        PROJECT_SOCKET_SUFFIX = ".sock"
        # Per-project socket directories: RUN_DIR/projects/NAME/NAME.sock (docs/protocol.md).
        PROJECTS_DIR_NAME = "projects"
        REGISTRATIONS_FILE_NAME = "registrations.json"
        DEFAULT_ADMIN_SOCKET = DEFAULT_RUN_DIR + "/" + ADMIN_SOCKET_NAME
        # Environment variable the client CLI and the modules read for the socket path.
        SOCKET_ENV_VAR = "REMO_BROKER_SOCKET"

        # Socket / file modes
        ADMIN_SOCKET_MODE = 0o660
        PROJECT_SOCKET_MODE = 0o660
        AUDIT_LOG_MODE = 0o640
        STATE_FILE_MODE = 0o600
        RUN_DIR_MODE = 0o755
        PROJECTS_DIR_MODE = 0o755
        # Owned by the daemon (it must replace the socket after a restart); others may only
        # traverse it: the socket's own owner and mode decide who connects.
        PROJECT_DIR_MODE = 0o755
        STATE_DIR_MODE = 0o700
        # The audit log's directory when the daemon creates it (the admin group may read the log).
        AUDIT_DIR_MODE = 0o750

        # ---------------------------------------------------------------------------
        # Limits and timeouts
        # ---------------------------------------------------------------------------
        MAX_PROJECT_MESSAGE_BYTES = 65536
        MAX_ADMIN_MESSAGE_BYTES = 1048576
        # Largest reply a client accepts (a status of many projects can exceed a request cap).
        MAX_REPLY_BYTES = 8 * 1048576
        MAX_SECRETS = 10000

        DEFAULT_CLIENT_TIMEOUT = 5.0          # client side: connect + reply
        DEFAULT_SERVER_CLIENT_TIMEOUT = 10.0  # daemon side: max wait for a complete request line
        DRAIN_TIMEOUT = 5.0                   # SIGTERM: time to finish in-flight requests
        DEFAULT_RATE_LIMIT = 100.0            # requests/second per project; 0 disables
        DEFAULT_RATE_BURST = 200
        AUDIT_FLUSH_INTERVAL = 0.05           # seconds between audit batches
        AUDIT_MAX_BUFFERED = 100000           # events kept in memory while the audit file fails
        AUDIT_COALESCE_INTERVAL = 1.0         # seconds per summary line of one peer's repeated flood outcomes
        AUDIT_CHECKPOINT_INTERVAL = 1.0       # seconds between chain checkpoints (seq, head) while lines are written
        AUDIT_STALL_SECONDS = 10.0            # a writer that consumes nothing this long with events waiting is stalled
        # Where `serve` anchors the chain and `audit verify` reads the anchors (docs/daemon.md#audit-log).
        AUDIT_CHECKPOINT_STORES = ("auto", "journal", "none", "file:PATH")
        JOURNAL_SOCKET = "/run/systemd/journal/socket"
        JOURNAL_IDENTIFIER = "remo-broker-audit"

        # Connection limits and per-connection memory (docs/daemon.md#resource-limits).
        DEFAULT_MAX_PROJECT_CONNECTIONS = 256  # open connections per project socket
        DEFAULT_MAX_PEER_CONNECTIONS = 64      # open connections per client process (SO_PEERCRED pid)
        MAX_ADMIN_CONNECTIONS = 32             # open admin connections; their descriptors are always kept free
        PROJECT_CONNECTION_FLOOR = 8           # connections each project can open whatever the others hold
        FD_RESERVE_INTERNAL = 64               # stdio, epoll, audit file and pipe, state and manifest files
        ACCEPT_BATCH = 64                      # connections one socket accepts per event-loop pass
        LISTEN_BACKLOG = 1024                  # kernel queue of not yet accepted connections
        # Descriptors the daemon never gives to project connections: internal use, the admin
        # connections, and connections accepted in a burst before they are counted and refused.
        FD_RESERVE = FD_RESERVE_INTERNAL + MAX_ADMIN_CONNECTIONS + 4 * ACCEPT_BATCH
        LIMIT_REPORT_INTERVAL = 10.0           # seconds between refusal / accept-failure summaries
        OUTPUT_HIGH_WATER = 65536              # unsent reply bytes that stop reading from a connection
        OUTPUT_LOW_WATER = 16384               # ...and that resume it
        REPLY_BATCH_BYTES = 262144             # replies to one read sent in one write; past it the output is checked
        PROJECT_OUTPUT_HARD_LIMIT = 524288     # unsent bytes that close a project connection
        # Unsent bytes that close an admin connection: room for the largest reply a client takes.
        ADMIN_OUTPUT_HARD_LIMIT = MAX_REPLY_BYTES + OUTPUT_HIGH_WATER + REPLY_BATCH_BYTES
        READ_CHUNK_BYTES = 262144              # asyncio's largest single read
        PROJECT_TURN_REQUESTS = 32             # requests one project has answered per event-loop pass (project_turns.py)
        RATE_LIMITED_TURN_COST = 4             # share a request costs while its project is out of rate-limit tokens

        # ---------------------------------------------------------------------------
        # Names
        # ---------------------------------------------------------------------------
        PROJECT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
        SECRET_NAME_PATTERN = r"^[A-Za-z0-9_]{1,128}$"
        PROJECT_NAME_RE = re.compile(PROJECT_NAME_PATTERN)
        SECRET_NAME_RE = re.compile(SECRET_NAME_PATTERN)
        # Project names that would collide with daemon files in RUN_DIR.
        RESERVED_PROJECT_NAMES = frozenset(("admin",))
        # Push sources (docs/protocol.md "Push sources"): a push without one goes to DEFAULT_SOURCE.
        SOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
        SOURCE_NAME_RE = re.compile(SOURCE_NAME_PATTERN)
        DEFAULT_SOURCE = "default"
        MAX_SOURCES = 16

        # ---------------------------------------------------------------------------
        # Operations
        # ---------------------------------------------------------------------------
        OP_STATUS = "status"
        OP_REGISTER = "register"
        OP_UNREGISTER = "unregister"
        OP_RELOAD = "reload"
        OP_ATTEST = "attest"
        OP_PUSH_CREDS = "push-creds"
        OP_DIFF_CREDS = "diff-creds"
        OP_CLEAR_CREDS = "clear-creds"
        OP_GET = "get"
        OP_PING = "ping"
        OP_INFO = "info"
        OP_WATCH = "watch"

        ADMIN_OPS = frozenset((OP_STATUS, OP_REGISTER, OP_UNREGISTER, OP_RELOAD, OP_ATTEST, OP_PUSH_CREDS,
                               OP_DIFF_CREDS, OP_CLEAR_CREDS, OP_PING))
        PROJECT_OPS = frozenset((OP_GET, OP_PING, OP_INFO, OP_WATCH))

        # ---------------------------------------------------------------------------
        # Error codes
        # ---------------------------------------------------------------------------
        E_PROTOCOL_ERROR = "protocol_error"
        E_INVALID_PAYLOAD = "invalid_payload"
        E_PAYLOAD_TOO_LARGE = "payload_too_large"
        E_MANIFEST_INVALID = "manifest_invalid"
        E_MANIFEST_NOT_FOUND = "manifest_not_found"
        E_NOT_REGISTERED = "not_registered"
        E_CONFLICT = "conflict"
        E_INTERNAL_ERROR = "internal_error"
        E_DENIED = "denied"
        E_NOT_FOUND = "not_found"
        E_RATE_LIMITED = "rate_limited"
        E_PEER_UNEXPECTED = "peer_unexpected"
        E_TOO_MANY_CONNECTIONS = "too_many_connections"
        E_AUDIT_UNAVAILABLE = "audit_unavailable"
        # Client side only: never sent by the daemon.
        E_CONNECTION_ERROR = "connection_error"

        ADMIN_ERROR_CODES = frozenset((E_PROTOCOL_ERROR, E_INVALID_PAYLOAD, E_PAYLOAD_TOO_LARGE,
                                       E_MANIFEST_INVALID, E_MANIFEST_NOT_FOUND, E_NOT_REGISTERED,
                                       E_CONFLICT, E_INTERNAL_ERROR, E_TOO_MANY_CONNECTIONS))
        PROJECT_ERROR_CODES = frozenset((E_DENIED, E_NOT_FOUND, E_RATE_LIMITED, E_PROTOCOL_ERROR,
                                         E_INTERNAL_ERROR, E_PEER_UNEXPECTED, E_TOO_MANY_CONNECTIONS,
                                         E_AUDIT_UNAVAILABLE))
        ERROR_CODES = ADMIN_ERROR_CODES | PROJECT_ERROR_CODES

        # Audit decisions / outcomes
        DECISION_ALLOW = "allow"
        DECISION_DENY = "deny"
        AUDIT_GENESIS = "0" * 64
        # Per-project counters reported by `status`.
        COUNTER_NAMES = ("allowed", "denied", "not_found", "rate_limited", "peer_unexpected", "protocol_error",
                         "connections_refused", "audit_unavailable")

        # ---------------------------------------------------------------------------
        # CLI exit codes (remo_broker.py client commands)
        # ---------------------------------------------------------------------------
        EXIT_OK = 0
        EXIT_BROKER_ERROR = 1
        EXIT_USAGE = 2
        EXIT_CONNECT = 3
        EXIT_MANIFEST_INVALID = 4
        EXIT_AUDIT_VERIFY_FAILED = 5
        #

        def is_valid_project_name(name):
            """True when ``name`` is a usable project name (regex and not reserved)."""
            return isinstance(name, str) and PROJECT_NAME_RE.fullmatch(name) is not None and name not in RESERVED_PROJECT_NAMES
        #

        def is_valid_secret_name(name):
            """True when ``name`` matches SECRET_NAME_RE."""
            return isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None
        #

        def project_socket_path(run_dir, project):
            """Host-side path of the project socket of ``project`` (a symlink into its directory)."""
            return run_dir.rstrip("/") + "/" + project + PROJECT_SOCKET_SUFFIX
        #

        def project_socket_dir(run_dir, project):
            """The directory holding ``project``'s socket; it survives daemon restarts."""
            return run_dir.rstrip("/") + "/" + PROJECTS_DIR_NAME + "/" + project
        #

        def project_dir_socket_path(run_dir, project):
            """The socket itself, inside :func:`project_socket_dir`."""
            return project_socket_dir(run_dir, project) + "/" + project + PROJECT_SOCKET_SUFFIX
        #

        def admin_socket_path(run_dir):
            """Path of the admin socket in ``run_dir``."""
            return run_dir.rstrip("/") + "/" + ADMIN_SOCKET_NAME

    # ------------------------------------------------------------------------
    class _m01:  # plugins/module_utils/_manifest.py
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
        #
        #

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
        #

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
        #

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
        #

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
        #

        def format_file_mode(mode):
            """``0o400`` -> ``"0400"``."""
            return "0%03o" % mode
        #

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
        #

        class _Stop(Exception):
            """Ends a scan: ``(offset, key, reason)`` of the first problem found."""
        #

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
        #

        _ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
        #

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
        #

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
        #

        def _short(value, limit=60):
            """A value quoted for a message, cut short (never used for secret values)."""
            text = json.dumps(value, default=str)
            return text if len(text) <= limit else text[:limit - 4] + '..."'
        #

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
        #

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
        #

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
        #

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
        #

        def _normalise_roots(file_roots):
            roots = []
            for root in DEFAULT_FILE_ROOTS if file_roots is None else file_roots:
                if not isinstance(root, str) or not (root.startswith("/") or root == "~" or root.startswith("~/")):
                    raise ManifestError("<file_roots>", 0, 0, "file_roots", "each root must be an absolute path, ~ or ~/...")
                roots.append(_normalise_path(root))
            return tuple(roots)
        #

        def _under_root(path, roots):
            for root in roots:
                prefix = root if root.endswith("/") else root + "/"
                if path.startswith(prefix) and len(path) > len(prefix):
                    return True
            return False
        #

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
        #

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
        #

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
        #

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
        #

        def _parse_v2(ctx, doc, expected_project, roots):
            ctx.only_keys(doc, (), V2_TOP_KEYS, "a schema_version 2 manifest")
            project = ctx.string(doc, ("project",), required=True)
            ctx.project_name(project, ("project",), expected_project)
            secrets = _secret_tables(ctx, ctx.table(doc, ("secrets",), False), roots, upper_default=False)
            table = ctx.table(doc, ("cache",), False)
            ctx.only_keys(table, ("cache",), V2_CACHE_KEYS, "[cache]")
            cache = _cache(ctx, table, ("cache", "ttl_seconds"), ("cache", "max_entries"))
            return project, secrets, cache, FORMAT_V2
        #

        def _parse_sidecar_v1(ctx, doc, expected_project, roots):
            ctx.only_keys(doc, (), SIDECAR_V1_TOP_KEYS, "a remo sidecar manifest (schema_version 1 with top-level project)")
            project = ctx.string(doc, ("project",), required=True)
            ctx.project_name(project, ("project",), expected_project)
            secrets = _secret_tables(ctx, ctx.table(doc, ("secrets",), False), roots, upper_default=True)
            table = ctx.table(doc, ("cache",), False)
            ctx.only_keys(table, ("cache",), SIDECAR_V1_CACHE_KEYS, "[cache]")
            cache = _cache(ctx, table, ("cache", "default_ttl_seconds"), ("cache", "default_max_entries"))
            return project, secrets, cache, FORMAT_SIDECAR_V1
        #

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
        #

        def _count_secrets(ctx, secrets, key_path):
            if len(secrets) > MAX_MANIFEST_SECRETS:
                ctx.fail(key_path, "%d secrets, more than the manifest limit of %d" % (len(secrets), MAX_MANIFEST_SECRETS))
        #

        def _cache(ctx, table, ttl_path, entries_path):
            cache = {}
            ttl = ctx.integer(table, ttl_path, CACHE_TTL_RANGE)
            if ttl is not None:
                cache["ttl_seconds"] = ttl
            entries = ctx.integer(table, entries_path, CACHE_MAX_ENTRIES_RANGE)
            if entries is not None:
                cache["max_entries"] = entries
            return cache
        #

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
        #

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
        #

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
        #

        # ---------------------------------------------------------------------------
        # Files
        # ---------------------------------------------------------------------------
        def load_manifest(path, expected_project=None, file_roots=None, trusted_uids=()):
            """Read the manifest at ``path`` the way the broker trusts it (:func:`read_manifest_bytes`), then parse it."""
            path = os.fspath(path)
            data = read_manifest_bytes(path, trusted_uids)
            return parse_manifest(data, path=path, expected_project=expected_project, file_roots=file_roots)
        #

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
        #

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
        #

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
        #

        # ---------------------------------------------------------------------------
        # Rendering
        # ---------------------------------------------------------------------------
        _TOML_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
        #

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
        #

        def _toml_string(value):
            """A TOML basic string for ``value`` (single line; every control character escaped)."""
            return '"' + _toml_escape(value) + '"'
        #

        def _toml_multiline(value):
            """A TOML multi-line basic string; newlines kept, everything else escaped as needed."""
            return '"""\n' + _toml_escape(value, keep_newlines=True) + '"""'
        #

        def _toml_key(key):
            return key if _BARE_KEY_RE.fullmatch(key) else _toml_string(key)
        #

        _RENDER_KEYS = ("name",) + SECRET_KEYS
        #

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
        #

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
        #

        class _JsonObject(dict):
            """A JSON object that remembers keys it saw more than once."""

            def __init__(self):
                super().__init__()
                self.duplicates = []
        #

        def _json_position(text, offset):
            line = text.count("\n", 0, offset) + 1
            return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
        #

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
        #

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
        #

        def _mode_ok(mode):
            try:
                _parse_mode(mode)
            except ValueError:
                return False
            return True

    # ------------------------------------------------------------------------
    class _m02:  # plugins/module_utils/_broker_client.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is not a public API: it can change at
        # any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
        # module, in the generated daemon roles/broker_install/files/remo_broker.py.

        """Stdlib NDJSON client for the remo-broker Unix sockets.

Modelled on community.docker's ``unixconn`` transport: one AF_UNIX stream socket, a
timeout on connect and on every read, one JSON object per line.  Error messages never
contain request contents (a request may carry secrets) and never contain reply
values.
"""
        #
        #

        import errno
        import json
        import socket
        import time

        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            DEFAULT_CLIENT_TIMEOUT,
            E_CONNECTION_ERROR,
            E_PROTOCOL_ERROR,
            MAX_REPLY_BYTES,
        )
        #

        class BrokerError(Exception):
            """A failed broker request: ``code``, ``message`` and optional ``details``."""

            def __init__(self, code, message, details=None):
                super().__init__(message)
                self.code = code
                self.message = message
                self.details = details or {}

            def __str__(self):
                return "%s: %s" % (self.code, self.message)

            def to_dict(self):
                """The failure as a JSON-able dict (code, message, details)."""
                return {"code": self.code, "message": self.message, "details": dict(self.details)}
        #

        class BrokerConnectionError(BrokerError):
            """The socket could not be reached, or the connection failed mid-request."""

            def __init__(self, message, details=None):
                super().__init__(E_CONNECTION_ERROR, message, details)
        #

        def _connect_error(socket_path, exc):
            """Turn a connect-time OSError into an actionable BrokerConnectionError."""
            err = getattr(exc, "errno", None)
            if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
                hint = "timed out connecting; is remo-broker overloaded or stopped?"
            elif err in (errno.ENOENT, errno.ENOTDIR):
                hint = "socket not found; is remo-broker running and is the socket path right?"
            elif err == errno.ECONNREFUSED:
                hint = "connection refused; is remo-broker running and is the socket path right?"
            elif err in (errno.EACCES, errno.EPERM):
                hint = ("permission denied; is this user in the broker's admin group? "
                        "(for a project socket: does this uid match the project's expected_uid?)")
            else:
                hint = "%s" % (exc.strerror or type(exc).__name__)
            return BrokerConnectionError(
                "Error connecting to remo-broker at %s: %s" % (socket_path, hint),
                {"socket_path": socket_path, "errno": err},
            )
        #

        class BrokerClient:
            """One request per call over a fresh Unix stream connection.

    ``BrokerClient(path).request("status")`` returns the reply dict when it carries
    ``"ok": true``; otherwise raises :class:`BrokerError` with the daemon's code.
    """

            def __init__(self, socket_path, timeout=DEFAULT_CLIENT_TIMEOUT, max_reply_bytes=MAX_REPLY_BYTES):
                self.socket_path = socket_path
                self.timeout = timeout
                self.max_reply_bytes = max_reply_bytes

            def connect(self):
                """Open and return a connected socket (raises BrokerConnectionError)."""
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self.socket_path)
                except OSError as exc:
                    sock.close()
                    raise _connect_error(self.socket_path, exc) from None
                return sock

            @staticmethod
            def encode(op, fields):
                """The request line for ``op`` with ``fields`` (bytes, newline-terminated)."""
                req = {"op": op}
                req.update(fields)
                return json.dumps(req, separators=(",", ":")).encode("utf-8") + b"\n"

            def request(self, op, **fields):
                """Send one request and return the decoded ``ok`` reply."""
                try:
                    line = self.encode(op, fields)
                except (TypeError, ValueError):
                    # Never echo the request: it may hold secrets.
                    raise BrokerError(E_PROTOCOL_ERROR, "request for op %r is not JSON-serializable" % (op,)) from None
                sock = self.connect()
                try:
                    return self._exchange(sock, line)
                finally:
                    sock.close()

            def _exchange(self, sock, line):
                try:
                    sock.sendall(line)
                except OSError as exc:
                    raise BrokerConnectionError(
                        "Error sending to remo-broker at %s: %s" % (self.socket_path, exc.strerror or type(exc).__name__),
                        {"socket_path": self.socket_path},
                    ) from None
                reader = LineReader(sock, self.socket_path, self.max_reply_bytes)
                return decode_reply(reader.read_line())

            def stream(self, op, **fields):
                """Send one request and yield every reply line (for ``watch``).

        The first yielded item is the decoded first reply (raising BrokerError when
        it is an error); later items are event dicts.  The socket timeout applies to
        each read; pass ``timeout=None`` to the client to wait forever.
        """
                line = self.encode(op, fields)
                sock = self.connect()
                try:
                    sock.sendall(line)
                    reader = LineReader(sock, self.socket_path, self.max_reply_bytes)
                    yield decode_reply(reader.read_line())
                    while True:
                        yield decode_reply(reader.read_line(), events_ok=True)
                finally:
                    sock.close()
        #

        class LineReader:
            """Read newline-terminated lines from a socket under a size cap."""

            def __init__(self, sock, socket_path, max_bytes):
                self.sock = sock
                self.socket_path = socket_path
                self.max_bytes = max_bytes
                self.buf = b""

            def read_line(self):
                """Return the next line without its newline (bytes)."""
                start = time.monotonic()
                while True:
                    idx = self.buf.find(b"\n")
                    if idx >= 0:
                        line, self.buf = self.buf[:idx], self.buf[idx + 1:]
                        return line
                    if len(self.buf) > self.max_bytes:
                        raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker exceeds %d bytes" % self.max_bytes)
                    try:
                        chunk = self.sock.recv(262144)
                    except (socket.timeout, TimeoutError):
                        raise BrokerConnectionError(
                            "timed out after %.1fs waiting for a reply from remo-broker at %s"
                            % (time.monotonic() - start, self.socket_path),
                            {"socket_path": self.socket_path},
                        ) from None
                    except OSError as exc:
                        raise BrokerConnectionError(
                            "Error reading from remo-broker at %s: %s" % (self.socket_path, exc.strerror or type(exc).__name__),
                            {"socket_path": self.socket_path},
                        ) from None
                    if not chunk:
                        raise BrokerConnectionError(
                            "remo-broker at %s closed the connection without a complete reply" % self.socket_path,
                            {"socket_path": self.socket_path},
                        )
                    self.buf += chunk
        #

        def decode_reply(line, events_ok=False):
            """Decode one reply line; return it when ok, raise BrokerError otherwise."""
            try:
                reply = json.loads(line)
            except ValueError:
                raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker is not valid JSON") from None
            if not isinstance(reply, dict):
                raise BrokerError(E_PROTOCOL_ERROR, "reply from remo-broker is not a JSON object")
            if events_ok and "event" in reply:
                return reply
            if reply.get("ok") is True:
                return reply
            code = reply.get("code")
            message = reply.get("message")
            details = reply.get("details")
            if "retry_after_seconds" in reply:
                details = dict(details or {})
                details["retry_after_seconds"] = reply["retry_after_seconds"]
            raise BrokerError(
                code if isinstance(code, str) else E_PROTOCOL_ERROR,
                message if isinstance(message, str) else "remo-broker returned an error without a message",
                details if isinstance(details, dict) else None,
            )

    # ------------------------------------------------------------------------
    class _m03:  # plugins/module_utils/_trusted_path.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is not a public API: it can change at
        # any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
        # module, in the generated daemon roles/broker_install/files/remo_broker.py.

        """Open files and use directories only when no untrusted account can have swapped them.

A project's workspace is writable from inside its container, so anything under it can
be renamed, replaced or symlinked away from under a read-only mount.  The broker must
therefore read its allowlists, and keep its own state, only where every directory on
the way is owned by a trusted account and writable by nobody else.

The walk opens one component at a time, relative to the directory already opened
(``dir_fd``) and with ``O_NOFOLLOW``, so a symlink or a rename anywhere on the path
cannot redirect it between the check and the read.  Stdlib only, no side effects.
"""
        #
        #

        import os
        import stat

        # A directory others may write is still safe when it is sticky and root-owned (/tmp):
        # nobody but its owner can rename or delete an entry in it.
        _WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
        _O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
        _O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
        _O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
        _O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
        #

        class UntrustedPathError(ValueError):
            """``path`` cannot be trusted; ``reason`` says why and ``fix`` how to repair it.

    Never carries file contents.
    """

            def __init__(self, path, reason, fix=None):
                self.path = path
                self.reason = reason
                self.fix = fix
                text = "%s: %s" % (path, reason)
                if fix:
                    text += " (fix: %s)" % fix
                super().__init__(text)
        #

        def _owner_name(uid):
            try:
                import pwd  # pylint: disable=import-outside-toplevel
                return "%s (uid %s)" % (pwd.getpwuid(uid).pw_name, uid)
            except (ImportError, KeyError):
                return "uid %d" % uid
        #

        def _check_directory(path, info, trusted_uids, root_group_ok=False):
            """Raise unless the opened directory ``info`` is safe to resolve names in.

    ``root_group_ok``: a root-owned directory its group may write (not others) is accepted
    too, for parents such as Ubuntu's ``/var/log`` (``0775 root:syslog``).
    """
            if info.st_uid not in trusted_uids:
                raise UntrustedPathError(path, "directory is owned by %s, not by root or the broker's account"
                                         % _owner_name(info.st_uid), "chown root %s" % path)
            if info.st_mode & _WRITABLE_BY_OTHERS:
                if info.st_uid == 0 and (info.st_mode & stat.S_ISVTX or (root_group_ok and not info.st_mode & stat.S_IWOTH)):
                    return
                raise UntrustedPathError(path, "directory is writable by group or others (mode %04o)"
                                         % stat.S_IMODE(info.st_mode), "chmod go-w %s" % path)
        #

        def _split(path):
            path = os.fspath(path)
            if not os.path.isabs(path):
                raise UntrustedPathError(path, "not an absolute path")
            parts = [part for part in path.split("/") if part not in ("", ".")]
            if ".." in parts:
                raise UntrustedPathError(path, "'..' is not allowed in a trusted path")
            return path, parts
        #

        def _open_parent(path, parts, trusted_uids, root_group_ok=False):
            """A dir fd for the parent of ``path`` after checking every directory from ``/``."""
            fd = os.open("/", _O_PATH | _O_DIRECTORY | _O_CLOEXEC)
            walked = "/"
            try:
                _check_directory(walked, os.fstat(fd), trusted_uids, root_group_ok)
                for part in parts[:-1]:
                    walked = os.path.join(walked, part)
                    try:
                        child = os.open(part, _O_PATH | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                    except FileNotFoundError:
                        raise UntrustedPathError(walked, "does not exist") from None
                    except OSError as exc:
                        raise _link_or_error(fd, part, walked, exc) from None
                    os.close(fd)
                    fd = child
                    _check_directory(walked, os.fstat(fd), trusted_uids, root_group_ok)
            except BaseException:
                os.close(fd)
                raise
            return fd
        #

        def _link_or_error(dir_fd, name, path, exc):
            """The error for a component that ``O_NOFOLLOW``/``O_DIRECTORY`` refused to open."""
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                info = None
            if info is not None and stat.S_ISLNK(info.st_mode):
                return UntrustedPathError(path, "is a symbolic link; trusted paths never follow links",
                                          "replace the link with the real directory or file")
            if info is not None and not stat.S_ISDIR(info.st_mode):
                return UntrustedPathError(path, "is not a directory")
            if isinstance(exc, PermissionError):
                return UntrustedPathError(path, "permission denied: the broker cannot search this directory")
            return UntrustedPathError(path, "cannot open: %s" % (exc.strerror or exc))
        #

        def trusted_uids_for(*extra):
            """Root plus this process's effective uid plus ``extra`` (a frozenset)."""
            return frozenset((0, os.geteuid()) + tuple(uid for uid in extra if uid is not None))
        #

        def read_trusted_file(path, max_bytes, trusted_uids=None):
            """The bytes of ``path`` when it and every directory above it are trusted.

    Trusted means: reached without following a symlink; every directory owned by an
    account in ``trusted_uids`` (default: root and this process's account) and not
    writable by group or others (a root-owned sticky directory such as /tmp is fine);
    the file itself regular, owned by a trusted account, not writable by group or
    others, and at most ``max_bytes`` long.  Raises :class:`UntrustedPathError` with
    the failing path, the reason and the fix.
    """
            trusted_uids = trusted_uids_for() if trusted_uids is None else frozenset(trusted_uids)
            path, parts = _split(path)
            if not parts:
                raise UntrustedPathError(path, "is a directory, not a file")
            parent = _open_parent(path, parts, trusted_uids)
            try:
                try:
                    fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=parent)
                except FileNotFoundError:
                    raise UntrustedPathError(path, "not found") from None
                except PermissionError:
                    raise UntrustedPathError(path, "permission denied: the broker cannot read this file") from None
                except OSError as exc:
                    raise _link_or_error(parent, parts[-1], path, exc) from None
            finally:
                os.close(parent)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise UntrustedPathError(path, "is a directory, not a file" if stat.S_ISDIR(info.st_mode)
                                             else "not a regular file")
                if info.st_uid not in trusted_uids:
                    raise UntrustedPathError(path, "file is owned by %s, not by root or the broker's account"
                                             % _owner_name(info.st_uid), "install an approved copy owned by root")
                if info.st_mode & _WRITABLE_BY_OTHERS:
                    raise UntrustedPathError(path, "file is writable by group or others (mode %04o)"
                                             % stat.S_IMODE(info.st_mode), "chmod go-w %s" % path)
                if info.st_size > max_bytes:
                    raise UntrustedPathError(path, "larger than %d bytes" % max_bytes)
                chunks, size = [], 0
                while size <= max_bytes:
                    chunk = os.read(fd, max_bytes + 1 - size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size > max_bytes:
                    raise UntrustedPathError(path, "larger than %d bytes" % max_bytes)
                return b"".join(chunks)
            finally:
                os.close(fd)
        #

        def check_private_directory(path, owner_uid, label="directory", root_group_parents=False):
            """Raise unless ``path`` is a real directory owned by ``owner_uid`` that nobody else can write.

    Every directory above it must be owned by root or ``owner_uid`` and not writable by
    others (a root-owned sticky directory such as /tmp is fine; with ``root_group_parents``
    also a root-owned one only its group may write).  ``label`` names the directory's role
    in the message ("state directory", ...).
    """
            path, parts = _split(path)
            trusted = frozenset((0, owner_uid))
            try:
                parent = _open_parent(path, parts, trusted, root_group_parents) if parts else None
            except UntrustedPathError as exc:
                raise UntrustedPathError(exc.path, "%s %s: %s" % (label, path, exc.reason), exc.fix) from None
            try:
                if parent is None:
                    info = os.lstat("/")
                else:
                    try:
                        info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                    except FileNotFoundError:
                        raise UntrustedPathError(path, "%s does not exist" % label) from None
            finally:
                if parent is not None:
                    os.close(parent)
            if stat.S_ISLNK(info.st_mode):
                raise UntrustedPathError(path, "%s is a symbolic link" % label, "replace it with a real directory")
            if not stat.S_ISDIR(info.st_mode):
                raise UntrustedPathError(path, "%s is not a directory" % label)
            if info.st_uid != owner_uid:
                raise UntrustedPathError(path, "%s is owned by %s, expected %s" % (
                    label, _owner_name(info.st_uid), _owner_name(owner_uid)), "chown %d %s" % (owner_uid, path))
            if info.st_mode & _WRITABLE_BY_OTHERS:
                raise UntrustedPathError(path, "%s is writable by group or others (mode %04o)" % (
                    label, stat.S_IMODE(info.st_mode)), "chmod go-w %s" % path)

    # ------------------------------------------------------------------------
    class _m04:  # plugins/module_utils/_daemon/admin_connection.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The admin socket's connection: its reads carry values, so each is wiped once handled."""
        #
        #

        from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import Connection
        from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import wipe
        #

        class AdminConnection(Connection):
            """A ``Connection`` (project None) that overwrites every read and partial line it drops.

    ``handle_admin`` wipes each complete line and its decoded text; this wipes what the
    transport handed in (``data``), the concatenation of a line that spanned reads, and
    a partial line left at close (secret_memory.py).
    """

            __slots__ = ()

            def __init__(self, broker):
                super().__init__(broker, None)

            def data_received(self, data):
                old = self.buf
                if old:
                    self.buf = b""
                    joined = old + data
                    wipe(old)
                else:
                    joined = data
                try:
                    Connection.data_received(self, joined)
                finally:
                    if self.buf is not joined:
                        wipe(joined, refs=1)
                    if joined is not data:
                        wipe(data, refs=1)

            def connection_lost(self, exc):
                Connection.connection_lost(self, exc)
                wipe(self.buf, refs=1)
                self.buf = b""

    # ------------------------------------------------------------------------
    class _m05:  # plugins/module_utils/_daemon/admin_requests.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Requests on the admin socket: status, register, reload, unregister, push/diff/clear creds."""
        #
        #

        import json
        import os
        import time

        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
        from ansible_collections.remo.broker.plugins.module_utils._daemon.connection import close_or_abort
        from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import (
            CONTAINER_ID_RE,
            AttestationError,
            attestation_record,
        )
        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import iso_now, log
        from ansible_collections.remo.broker.plugins.module_utils._daemon.registry import Project, default_manifest_path
        from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import AdminFail, CloseAfter, err, ok
        from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import wipe, wipe_values
        from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_store import prepare, source_arg, wipe_entries
        from ansible_collections.remo.broker.plugins.module_utils._manifest import ManifestError
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            DAEMON_VERSION,
            DECISION_ALLOW,
            DECISION_DENY,
            E_CONFLICT,
            E_INTERNAL_ERROR,
            E_INVALID_PAYLOAD,
            E_MANIFEST_INVALID,
            E_MANIFEST_NOT_FOUND,
            E_NOT_REGISTERED,
            E_PROTOCOL_ERROR,
            OP_ATTEST,
            OP_CLEAR_CREDS,
            OP_DIFF_CREDS,
            OP_PING,
            OP_PUSH_CREDS,
            OP_REGISTER,
            OP_RELOAD,
            OP_STATUS,
            OP_UNREGISTER,
            PROJECT_NAME_PATTERN,
            PROTOCOL_VERSION,
            RESERVED_PROJECT_NAMES,
            is_valid_project_name,
        )
        #

        def _manifest_fail(exc, name):
            details = {"file": exc.file, "line": exc.line, "column": exc.column, "key": exc.key}
            reason = exc.reason or ""
            code = E_MANIFEST_NOT_FOUND if reason.startswith("not found") else E_MANIFEST_INVALID
            return AdminFail(code, str(exc), details, project=name)
        #

        def _absolute_path(req, key, name, required=True):
            """``req[key]`` normalised, or None when absent and not ``required``; AdminFail otherwise."""
            path = req.get(key)
            if path is None and not required:
                return None
            if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
                raise AdminFail(E_INVALID_PAYLOAD, "'%s' must be an absolute path" % key, project=name)
            try:
                os.fsencode(path)
            except UnicodeEncodeError:    # a lone surrogate from JSON: no file system name
                raise AdminFail(E_INVALID_PAYLOAD, "'%s' is not a valid file name" % key, project=name) from None
            return os.path.normpath(path)
        #

        def _register_reply(project, changed):
            return {
                "name": project.name,
                "socket_path": project.socket_path,
                "socket_dir": project.socket_dir,
                "manifest_path": project.manifest_path,
                "manifest_sha256": project.manifest_sha256,
                "allowlist": list(project.allowlist_list),
                "expected_uid": project.expected_uid,
                "changed": changed,
            }
        #

        class AdminRequests:
            """The admin-socket request handler and its ops (mixed into server.Broker)."""

            def handle_admin(self, conn, line):
                """The reply to one admin request line; raises CloseAfter on a protocol error."""
                t0 = time.perf_counter()
                text = None
                try:
                    text = line.decode("utf-8")
                    req = json.loads(text)
                except UnicodeDecodeError:
                    raise self._admin_protocol_error(conn, "request is not valid UTF-8", t0) from None
                except RecursionError:
                    raise self._admin_protocol_error(conn, "request is nested too deeply", t0) from None
                except ValueError:
                    if not line.strip():
                        return b""
                    raise self._admin_protocol_error(conn, "request is not valid JSON", t0) from None
                finally:
                    wipe(text, refs=1)     # admin lines carry values (secret_memory.py)
                    wipe(line, refs=2)
                if not isinstance(req, dict):
                    raise self._admin_protocol_error(conn, "request is not a JSON object", t0)
                conn.last = time.monotonic()
                try:
                    return self._admin_op(conn, req, t0)
                finally:
                    wipe_values(req.get("secrets"))

            def _admin_op(self, conn, req, t0):
                op = req.get("op")
                handler = self._admin_ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    raise self._admin_protocol_error(
                        conn, "unknown op for the admin socket" if isinstance(op, str) else "request has no string 'op'", t0)
                try:
                    project, reply, extra = handler(self, req)
                    outcome = "ok"
                    body = ok(reply)
                except AdminFail as fail:
                    project = fail.project
                    outcome = fail.code
                    extra = None
                    body = err(fail.code, fail.message, fail.details)
                self.audit.emit(audit_event(op, project, outcome, DECISION_ALLOW if outcome == "ok" else DECISION_DENY,
                                            None, conn.peer, t0, extra))
                return body

            def _admin_protocol_error(self, conn, message, t0):
                """Audit a protocol error; returns the CloseAfter for the caller to raise."""
                self.audit.emit_repeatable("protocol", None, E_PROTOCOL_ERROR, DECISION_DENY, conn.peer, t0)
                return CloseAfter(err(E_PROTOCOL_ERROR, message))

            # -- ops: each returns (project or None, reply fields, audit extra or None) ----
            def op_ping(self, req):
                return None, {"protocol_version": PROTOCOL_VERSION, "daemon_version": DAEMON_VERSION, "project": None}, None

            def op_status(self, req):
                return None, {
                    "protocol_version": PROTOCOL_VERSION,
                    "daemon_version": DAEMON_VERSION,
                    "pid": os.getpid(),
                    "uptime_seconds": round(time.monotonic() - self.started, 3),
                    **self.store.describe(),
                    "projects": [p.describe() for p in self.projects.values()],
                    "audit": self.audit.status(),
                    "rate_limit": {"rps": self.rate, "burst": self.burst},
                    "connections": dict(self.limits.status(self.projects), turn_waits=self.turns.deferred),
                    "hardening": self.hardening,
                }, None

            @staticmethod
            def _register_args(req, need_path):
                name = req.get("name")
                if not is_valid_project_name(name):
                    raise AdminFail(E_INVALID_PAYLOAD, "'name' must match %s and not be reserved (%s)"
                                    % (PROJECT_NAME_PATTERN, ", ".join(sorted(RESERVED_PROJECT_NAMES))))
                if not need_path:
                    return name, None, None, None
                path = _absolute_path(req, "project_path", name)
                manifest_path = _absolute_path(req, "manifest_path", name, required=False) or default_manifest_path(path)
                uid = req.get("expected_uid")
                if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0 or uid > 0xFFFFFFFE):
                    raise AdminFail(E_INVALID_PAYLOAD, "'expected_uid' must be a non-negative integer", project=name)
                return name, path, manifest_path, uid

            def op_register(self, req):
                name, path, manifest_path, uid = self._register_args(req, True)
                existing = self.projects.get(name)
                if existing is not None and existing.project_path != path:
                    raise AdminFail(E_CONFLICT, "project %s is already registered with another project_path" % name,
                                    {"registered_path": existing.project_path}, project=name)
                # The directory matters only for its owner, the default uid: a workspace under a
                # home directory the daemon's account cannot enter is fine with an expected_uid.
                if uid is None and not os.path.isdir(path):
                    raise AdminFail(E_MANIFEST_NOT_FOUND, "project_path %s is not a directory the daemon can see (its owner "
                                    "is the default expected_uid; give expected_uid otherwise)" % path,
                                    {"file": manifest_path}, project=name)
                try:
                    manifest = self.load_project_manifest(name, manifest_path)
                except ManifestError as exc:
                    raise _manifest_fail(exc, name) from None
                if uid is None:
                    uid = os.stat(path).st_uid
                if existing is not None:
                    changed = (existing.manifest_sha256 != manifest.sha256 or existing.expected_uid != uid
                               or existing.manifest_path != manifest_path or existing.manifest_error is not None)
                    if existing.expected_uid != uid:
                        self.set_expected_uid(existing, uid)
                    existing.apply_manifest(manifest)
                    if changed:
                        self.save_registrations()
                    return name, _register_reply(existing, changed), {"allowlist_size": len(existing.allowlist_list)}
                project = Project(name, path, uid, self.run_dir, manifest_path)
                project.apply_manifest(manifest)
                try:
                    self.start_project_server(project)
                except OSError as exc:
                    raise AdminFail(E_INTERNAL_ERROR, "cannot create the project socket: %s" % (exc.strerror or exc),
                                    project=name) from None
                self.projects[name] = project
                self.save_registrations()
                log("info", "registered project %s (%d allowed names)" % (name, len(project.allowlist_list)))
                return name, _register_reply(project, True), {"allowlist_size": len(project.allowlist_list)}

            def op_reload(self, req):
                name, _path, _manifest_path, _uid = self._register_args(req, False)
                project = self.projects.get(name)
                if project is None:
                    raise AdminFail(E_NOT_REGISTERED, "project %s is not registered" % name, project=name)
                try:
                    manifest = self.load_project_manifest(name, project.manifest_path)
                except ManifestError as exc:
                    raise _manifest_fail(exc, name) from None
                changed = project.manifest_sha256 != manifest.sha256 or project.manifest_error is not None
                project.apply_manifest(manifest)
                return name, _register_reply(project, changed), {"allowlist_size": len(project.allowlist_list)}

            def op_unregister(self, req):
                name, _path, _manifest_path, _uid = self._register_args(req, False)
                project = self.projects.pop(name, None)
                if project is None:
                    return name, {"name": name, "changed": False}, None
                self.stop_project_server(project, remove_dir=True)
                self.save_registrations()
                log("info", "unregistered project %s" % name)
                return name, {"name": name, "changed": True}, None

            def op_attest(self, req):
                """Bind the project socket to one container (docs/protocol.md, peer_attestation.py)."""
                name, _path, _manifest_path, _uid = self._register_args(req, False)
                project = self.projects.get(name)
                if project is None:
                    raise AdminFail(E_NOT_REGISTERED, "project %s is not registered" % name, project=name)
                cid = req.get("container_id")
                if cid is None:
                    record = None
                else:
                    pid = req.get("pid")
                    if not isinstance(cid, str) or CONTAINER_ID_RE.fullmatch(cid) is None:
                        raise AdminFail(E_INVALID_PAYLOAD, "'container_id' must be a full container id (64 hex digits) or null",
                                        project=name)
                    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
                        raise AdminFail(E_INVALID_PAYLOAD, "'pid' must be the pid of a process of the container", project=name)
                    try:
                        record = attestation_record(cid, pid)
                    except AttestationError as exc:
                        raise AdminFail(E_INVALID_PAYLOAD, str(exc), {"container_id": cid, "pid": pid}, project=name) from None
                changed = record != project.attestation
                if changed:
                    project.attestation = record
                    self.save_registrations()
                    for conn in list(project.conns):    # admitted under the previous attestation
                        close_or_abort(conn)
                    log("info", "project %s: %s" % (name, "attested container %s" % cid if record else "attestation removed"))
                return name, {"name": name, "attestation": dict(record) if record else None, "changed": changed}, \
                    {"container_id": cid}

            def op_diff_creds(self, req):
                source = source_arg(req)
                entries = prepare(req.get("secrets"))
                try:
                    added, removed, changed = self.store.diff(source, entries)
                finally:
                    wipe_entries(entries.values())
                unchanged = len(entries) - len(added) - len(changed)
                return None, {"source": source, "added": added, "removed": removed, "changed": changed,
                              "unchanged_count": unchanged}, \
                    {"source": source, "added": len(added), "removed": len(removed), "changed": len(changed)}

            def op_push_creds(self, req):
                source = source_arg(req)
                entries = prepare(req.get("secrets"))
                try:
                    self.store.check_room(source, entries)
                except AdminFail:
                    wipe_entries(entries.values())
                    raise
                now = iso_now()
                added, removed, changed, touched = self.store.replace(source, entries, now)
                self._notify_watchers(touched)
                count = self.store.count(source)
                counts = {"source": source, "secret_count": count, "added": len(added), "removed": len(removed),
                          "changed": len(changed)}
                return None, {"source": source, "secret_count": count, "served_count": len(self.store),
                              "loaded_at": now, "added": added, "removed": removed, "changed": changed,
                              "conflicts": [c["name"] for c in self.store.conflicts(source)]}, counts

            def op_clear_creds(self, req):
                source = None if req.get("source") is None else source_arg(req)
                cleared, touched = self.store.clear(source)
                self._notify_watchers(touched)
                return None, {"source": source, "secret_count": len(self.store), "cleared": cleared}, \
                    {"source": source, "cleared": cleared}

            def _notify_watchers(self, names):
                if not names:
                    return
                at = None
                for project in self.projects.values():
                    if not project.watchers:
                        continue
                    hit = sorted(names & project.allowlist)
                    if not hit:
                        continue
                    if at is None:
                        at = iso_now()
                    line = json.dumps({"event": "changed", "names": hit, "at": at}, separators=(",", ":")).encode("utf-8") + b"\n"
                    for conn in list(project.watchers):
                        if conn.transport is None or conn.transport.is_closing():
                            project.watchers.discard(conn)
                            continue
                        conn.send_event(line)

            _admin_ops = {
                OP_PING: op_ping,
                OP_STATUS: op_status,
                OP_REGISTER: op_register,
                OP_UNREGISTER: op_unregister,
                OP_ATTEST: op_attest,
                OP_RELOAD: op_reload,
                OP_PUSH_CREDS: op_push_creds,
                OP_DIFF_CREDS: op_diff_creds,
                OP_CLEAR_CREDS: op_clear_creds,
            }

    # ------------------------------------------------------------------------
    class _m06:  # plugins/module_utils/_daemon/audit_checkpoint.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Checkpoints of the audit chain, (seq, head hash), kept OUTSIDE the audit log.

The writer process records one after its first write, then at most every
``AUDIT_CHECKPOINT_INTERVAL`` while lines are written, and at exit; ``audit verify``
compares the log with them (docs/daemon.md#audit-log says what that detects).

Stores (``--audit-checkpoint``):

* ``journal``: one entry per checkpoint sent to journald over its native datagram
  socket (fields REMO_AUDIT_LOG, REMO_AUDIT_SEQ, REMO_AUDIT_HEAD).  journald owns the
  journal files and stamps each entry with the sender's uid (``_UID``), so the daemon's
  account can add entries but not rewrite or remove old ones; verify trusts only
  entries sent by root or by the owner of the log (or its directory).
* ``file:PATH``: JSON lines appended to PATH.  Only as strong as the file's
  protection: whoever can write PATH can rewrite the anchors too (e.g. the daemon's
  account, unless root made the file append-only with ``chattr +a``).
* ``none``; ``auto`` is ``journal`` when the journal socket exists, else ``none``.
"""
        #
        #

        import json
        import os

        from ansible_collections.remo.broker.plugins.module_utils._protocol import JOURNAL_IDENTIFIER, JOURNAL_SOCKET
        #

        def open_store(spec, journal_socket=JOURNAL_SOCKET):
            """The store named by ``spec`` (see the module docstring), or None; ValueError if bad."""
            if spec == "auto":
                spec = "journal" if os.path.exists(journal_socket) else "none"
            if spec == "none":
                return None
            if spec == "journal":
                return JournalStore(journal_socket)
            if spec.startswith("file:") and os.path.isabs(spec[5:]) and "\0" not in spec:
                return FileStore(spec[5:])
            raise ValueError("audit checkpoint store must be auto, journal, none or file:/ABSOLUTE/PATH, not %r" % spec)
        #

        class JournalStore:
            """Checkpoints as journald entries (native protocol, stdlib socket; read with journalctl)."""

            name = "journal"

            def __init__(self, socket_path=JOURNAL_SOCKET):
                self.socket_path = socket_path
                self._sock = None

            def record(self, log_path, seq, head):
                """Send one checkpoint entry; raises OSError."""
                import socket
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                fields = (("MESSAGE", "audit checkpoint seq=%d head=%s log=%s" % (seq, head, log_path)),
                          ("SYSLOG_IDENTIFIER", JOURNAL_IDENTIFIER), ("PRIORITY", "6"), ("REMO_AUDIT_LOG", log_path),
                          ("REMO_AUDIT_SEQ", str(seq)), ("REMO_AUDIT_HEAD", head))
                self._sock.sendto("".join("%s=%s\n" % field for field in fields).encode("utf-8", "surrogateescape"),
                                  self.socket_path)

            def read(self, log_path):
                """[(seq, head, where)] of the trusted entries for ``log_path``; raises OSError."""
                import subprocess
                argv = ["journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=" + JOURNAL_IDENTIFIER,
                        "REMO_AUDIT_LOG=" + log_path] + ["_UID=%d" % uid for uid in sorted(_trusted_uids(log_path))]
                # The daemon's CLI (audit verify), not an Ansible module: no AnsibleModule.run_command here.
                res = subprocess.run(argv, capture_output=True, check=False, timeout=120)  # pylint: disable=ansible-bad-function
                if res.returncode != 0:
                    raise OSError("journalctl failed (%d): %s" % (res.returncode, res.stderr.decode("utf-8", "replace").strip()))
                out = []
                for raw in res.stdout.splitlines():
                    try:
                        entry = json.loads(raw)
                        out.append((int(entry["REMO_AUDIT_SEQ"]), str(entry["REMO_AUDIT_HEAD"]),
                                    "journal entry at %s" % entry.get("__REALTIME_TIMESTAMP", "?")))
                    except (ValueError, KeyError, TypeError):
                        continue
                return out
        #

        class FileStore:
            """Checkpoints appended as JSON lines to a file (weaker than the journal: see above)."""

            def __init__(self, path):
                self.path = path
                self.name = "file:" + path
                self._fd = None

            def record(self, log_path, seq, head):
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                os.write(self._fd, json.dumps({"log": log_path, "seq": seq, "head": head}, separators=(",", ":")).encode() + b"\n")

            def read(self, log_path):
                out = []
                try:
                    fh = open(self.path, "rb")
                except FileNotFoundError:
                    return out
                with fh:
                    for n, raw in enumerate(fh, 1):
                        try:
                            entry = json.loads(raw)
                            if entry.get("log") == log_path:
                                out.append((int(entry["seq"]), str(entry["head"]), "%s line %d" % (self.path, n)))
                        except (ValueError, KeyError, TypeError, AttributeError):
                            continue
                return out
        #

        def _trusted_uids(log_path):
            """Root and the accounts owning the log or its directory (the daemon's)."""
            uids = {0}
            for path in (log_path, os.path.dirname(log_path)):
                try:
                    uids.add(os.stat(path).st_uid)
                except OSError:
                    pass
            return uids

    # ------------------------------------------------------------------------
    class _m07:  # plugins/module_utils/_daemon/audit_coalesce.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Coalescing of the outcomes a client can repeat at will (rate limited, protocol errors, ...).

A flood of them would otherwise write one audit line each.  The first outcome of a peer
is logged as usual; the repeats of the same (event, project, outcome, peer) are counted
and written as ONE summary event per ``AUDIT_COALESCE_INTERVAL`` carrying
``{"repeats": N}``.  A key without repeats in an interval is forgotten, so its next
outcome is logged in full again.  The table holds at most ``COALESCE_ENTRIES`` peers;
beyond that, new peers' repeats are counted under their (event, project, outcome) with
a null peer, so the table stays bounded however many processes a project starts.
"""
        #
        #

        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event

        COALESCE_ENTRIES = 1024     # peers tracked one by one; more fold into one entry per (event, project, outcome)
        #

        class Coalescer:
            """Counts repeats per peer between ``flush`` calls (the audit queue's interval timer)."""

            __slots__ = ("_emit", "table")

            def __init__(self, emit):
                self._emit = emit
                self.table = {}     # (event, project, outcome, extra items, pid, uid) -> [repeats since the last line, decision]

            def emit(self, event, project, outcome, decision, peer, t0, extra=None):
                """Audit one repeatable outcome: logged when new for this peer, else counted.

        ``extra`` (small, constant per call site, e.g. a refusal reason) is part of the key
        and repeated in the summary."""
                table = self.table
                tag = tuple(sorted(extra.items())) if extra else ()
                key = (event, project, outcome, tag, peer[0], peer[1])
                entry = table.get(key)
                if entry is None and len(table) >= COALESCE_ENTRIES:
                    key = (event, project, outcome, tag, None, None)
                    entry = table.get(key)
                if entry is not None:
                    entry[0] += 1
                    return
                table[key] = [0, decision]
                self._emit(audit_event(event, project, outcome, decision, None, peer, t0, extra))

            def flush(self):
                """One summary event per key repeated since the last flush; forget the quiet keys."""
                table = self.table
                for key, entry in list(table.items()):
                    repeats = entry[0]
                    if not repeats:
                        del table[key]
                        continue
                    event, project, outcome, tag, pid, uid = key
                    entry[0] = 0
                    self._emit(audit_event(event, project, outcome, entry[1], None, (pid, uid), 0, dict(tag, repeats=repeats)))

    # ------------------------------------------------------------------------
    class _m08:  # plugins/module_utils/_daemon/audit_event.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The audit event: one named type, built by one helper (docs/daemon.md lists the fields)."""
        #
        #

        import collections
        import time

        AuditEvent = collections.namedtuple(
            "AuditEvent", ("ts", "event", "project", "name", "decision", "outcome", "peer_pid", "peer_uid", "latency_us", "extra"))
        AuditEvent.__doc__ = """One audit record.  Never a value.

ts          epoch seconds (float)
event       get, ping, info, watch, connect, protocol, an admin op, reload, start, stop
project     project name or None
name        None or a validated secret name
decision    "allow", "deny" or None (lifecycle events)
outcome     "ok" or an error code
peer_pid    SO_PEERCRED pid or None
peer_uid    SO_PEERCRED uid or None
latency_us  microseconds spent on the request
extra       None or a dict of counts (e.g. {"added": 2})
"""

        _clock = time.time
        _perf = time.perf_counter
        #

        def audit_event(event, project, outcome, decision, name, peer, t0, extra=None):
            """The fields of one AuditEvent, now, as the plain tuple the audit pipe carries.

    Positional arguments only: this runs once per request.  ``peer`` is the
    connection's (pid, uid); ``t0`` its time.perf_counter() start, or 0 for events that
    are no request (start, stop, reload).  A plain tuple, not an AuditEvent instance:
    marshal only takes exact tuples, and building the namedtuple would cost more than
    the rest of a ``get``.  ``AuditEvent(*fields)`` names them wherever they are read.
    """
            return (_clock(), event, project, name, decision, outcome, peer[0], peer[1],
                    int((_perf() - t0) * 1e6) if t0 else 0, extra)

    # ------------------------------------------------------------------------
    class _m09:  # plugins/module_utils/_daemon/audit_file.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The audit log file: its hash chain, the torn-tail repair at start, `audit verify`."""
        #
        #

        import hashlib
        import json
        import os
        import stat

        from ansible_collections.remo.broker.plugins.module_utils._protocol import AUDIT_GENESIS
        #

        def line_hash(line):
            """The chain link of one line (bytes without the newline)."""
            return hashlib.sha256(line).hexdigest()
        #

        def read_last_line(path):
            """Last complete line of ``path`` (bytes without newline) or None."""
            try:
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                        return None
                    data = b""
                    pos = st.st_size
                    while pos > 0:
                        step = min(65536, pos)
                        pos -= step
                        fh.seek(pos)
                        data = fh.read(step) + data
                        if b"\n" in data.rstrip(b"\n") or pos == 0:
                            break
                    stripped = data.rstrip(b"\n")
                    if not stripped:
                        return None
                    return stripped.rsplit(b"\n", 1)[-1]
            except OSError:
                return None
        #

        def truncate_torn_tail(path):
            """Cut an incomplete last line (a crash mid-write) so the chain resumes cleanly.

    Returns the number of bytes removed (0 when the file ends with a newline, is empty,
    missing or not a regular file).
    """
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return 0
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                    return 0
                size = st.st_size
                if os.pread(fd, 1, size - 1) == b"\n":
                    return 0
                pos = size
                keep = 0
                while pos > 0:
                    step = min(65536, pos)
                    pos -= step
                    chunk = os.pread(fd, step, pos)
                    idx = chunk.rfind(b"\n")
                    if idx >= 0:
                        keep = pos + idx + 1
                        break
                os.ftruncate(fd, keep)
                return size - keep
            except OSError:
                return 0
            finally:
                os.close(fd)
        #

        def audit_verify(paths, checkpoints=None):
            """Check the chain of ``paths`` (oldest first, one chain) against ``checkpoints``.

    ``checkpoints``: [(seq, head, where)] from the checkpoint store (audit_checkpoint.py),
    or None when there is none.  Returns (ok, lines_checked, message).

    The chain: line 1 of the first file is seq 1 with the genesis ``prev``; every later
    line has the next seq and ``prev`` = sha256 of the line before.  A checkpoint (S, H)
    says line S hashed to H when it was written: the line at seq S must still hash to H,
    and the log must reach seq S.
    """
            anchors = {}
            for seq, head, where in checkpoints or ():
                if seq in anchors and anchors[seq][0] != head:
                    return False, 0, "checkpoints disagree about seq %d (%s, %s): the checkpoint store was written by " \
                                     "someone else too" % (seq, anchors[seq][1], where)
                anchors[seq] = (head, where)
            prev = AUDIT_GENESIS
            last_seq = 0
            n = 0
            for path in paths:
                try:
                    fh = open(path, "rb")
                except FileNotFoundError:
                    if anchors:
                        continue        # the checkpoints below then say what is missing
                    return False, 0, "cannot read %s: file not found" % path
                except OSError as exc:
                    return False, n, "cannot read %s: %s" % (path, exc.strerror)
                with fh:
                    for lineno, raw in enumerate(fh, 1):
                        n += 1
                        where = "%s line %d" % (path, lineno)
                        line = raw.rstrip(b"\n")
                        try:
                            ev = json.loads(line)
                        except ValueError:
                            return False, n, "%s is not valid JSON" % where
                        if not isinstance(ev, dict):
                            return False, n, "%s is not a JSON object" % where
                        seq = ev.get("seq")
                        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                            return False, n, "%s has no sequence number (seq)" % where
                        if seq != last_seq + 1:
                            if last_seq == 0:
                                return False, n, ("%s starts the chain at seq %d: lines 1..%d are not there (deleted, or "
                                                  "rotated into an older file: give it first with another --audit-log)"
                                                  % (where, seq, seq - 1))
                            return False, n, "%s has seq %d after seq %d: lines were removed or inserted" % (where, seq, last_seq)
                        if ev.get("prev") != prev:
                            return False, n, ("%s: hash chain broken (prev does not match the line before); "
                                              "a line was removed, inserted or edited just before it" % where)
                        prev = line_hash(line)
                        last_seq = seq
                        anchor = anchors.get(seq)
                        if anchor is not None and anchor[0] != prev:
                            return False, n, ("%s (seq %d) does not match the checkpoint in %s: the log was rewritten at or "
                                              "before this line and the chain recomputed" % (where, seq, anchor[1]))
            beyond = [seq for seq in anchors if seq > last_seq]
            if beyond:
                top = max(beyond)
                return False, n, ("the log ends at seq %d but %s checkpointed seq %d: lines %d..%d were cut from the end"
                                  % (last_seq, anchors[top][1], top, last_seq + 1, top))
            if checkpoints is None:
                return True, n, "%d lines verified (chain only: no checkpoint store)" % n
            return True, n, "%d lines verified, %d checkpoint(s) matched" % (n, len(anchors))

    # ------------------------------------------------------------------------
    class _m10:  # plugins/module_utils/_daemon/audit_queue.py
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
        #
        #

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
        #

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
        #

        _PROJECT_OF = operator.itemgetter(2)     # the project field of an audit_event() tuple
        #

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

    # ------------------------------------------------------------------------
    class _m11:  # plugins/module_utils/_daemon/audit_writer.py
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
        #
        #

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
        #

        def read_counters(page):
            """(consumed, lines_written, write_errors, dropped, pending, healthy, last_error) from the page."""
            while True:
                vals = COUNTERS.unpack_from(page, 0)
                (elen,) = struct.unpack_from("<H", page, ERR_OFFSET)
                error = bytes(page[ERR_OFFSET + 2:ERR_OFFSET + 2 + elen])
                if vals[0] % 2 == 0 and COUNTERS.unpack_from(page, 0)[0] == vals[0]:
                    return vals[1:] + (error.decode("utf-8", "replace") or None,)
                time.sleep(0.0001)
        #

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
        #

        def consumed(page):
            return COUNTERS.unpack_from(page, 0)[1]
        #

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
        #

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
        #

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
        #

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

    # ------------------------------------------------------------------------
    class _m12:  # plugins/module_utils/_daemon/cli.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The command-line client (``remo_broker.py status|push|get|...``) and ``serve``'s arguments."""
        #
        #

        import argparse
        import json
        import os
        import re
        import sys

        from ansible_collections.remo.broker.plugins.module_utils._broker_client import (
            BrokerClient,
            BrokerConnectionError,
            BrokerError,
        )
        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_checkpoint import open_store
        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_file import audit_verify
        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import LOG_LEVELS
        from ansible_collections.remo.broker.plugins.module_utils._manifest import ManifestError, discover_manifest, load_manifest
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            DAEMON_VERSION,
            AUDIT_CHECKPOINT_STORES,
            AUDIT_STALL_SECONDS,
            DEFAULT_AUDIT_LOG,
            DEFAULT_CLIENT_TIMEOUT,
            DEFAULT_RATE_BURST,
            DEFAULT_RATE_LIMIT,
            DEFAULT_MAX_PEER_CONNECTIONS,
            DEFAULT_MAX_PROJECT_CONNECTIONS,
            DEFAULT_RUN_DIR,
            DEFAULT_SERVER_CLIENT_TIMEOUT,
            DEFAULT_STATE_DIR,
            E_MANIFEST_INVALID,
            E_MANIFEST_NOT_FOUND,
            EXIT_AUDIT_VERIFY_FAILED,
            EXIT_BROKER_ERROR,
            EXIT_CONNECT,
            EXIT_MANIFEST_INVALID,
            EXIT_OK,
            EXIT_USAGE,
            OP_ATTEST,
            OP_CLEAR_CREDS,
            OP_DIFF_CREDS,
            OP_GET,
            OP_INFO,
            OP_PING,
            OP_PUSH_CREDS,
            OP_REGISTER,
            OP_RELOAD,
            OP_STATUS,
            OP_UNREGISTER,
            OP_WATCH,
            PROTOCOL_VERSION,
            SOCKET_ENV_VAR,
            admin_socket_path,
            project_socket_path,
        )

        _EPILOG = """exit codes:
  0  success
  1  the broker answered with an error (code and message on stderr)
  2  usage error
  3  cannot connect to the broker (socket missing, permission denied, timeout)
  4  invalid manifest (validate-manifest, register/reload rejected the manifest)
  5  audit verification failed (audit verify)
"""
        #

        def _client(args, socket_path=None):
            path = socket_path or args.socket or os.environ.get(SOCKET_ENV_VAR) or admin_socket_path(args.run_dir)
            return BrokerClient(path, timeout=args.timeout)
        #

        def _print_json(obj):
            sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        #

        def _report_error(exc):
            sys.stderr.write("remo-broker: %s: %s\n" % (exc.code, exc.message))
            if exc.details and exc.code in (E_MANIFEST_INVALID, E_MANIFEST_NOT_FOUND):
                for key in ("file", "line", "column", "key"):
                    if exc.details.get(key) is not None:
                        sys.stderr.write("  %s: %s\n" % (key, exc.details[key]))
            if isinstance(exc, BrokerConnectionError):
                return EXIT_CONNECT
            if exc.code in (E_MANIFEST_INVALID, E_MANIFEST_NOT_FOUND):
                return EXIT_MANIFEST_INVALID
            return EXIT_BROKER_ERROR
        #

        def _print_reply(client, op, **fields):
            """Send one request and print the reply (minus ``ok``) as JSON."""
            try:
                reply = client.request(op, **fields)
            except BrokerError as exc:
                return _report_error(exc)
            reply.pop("ok", None)
            _print_json(reply)
            return EXIT_OK
        #

        def _admin_call(args, op, **fields):
            return _print_reply(_client(args), op, **fields)
        #

        def cmd_status(args):
            return _admin_call(args, OP_STATUS)
        #

        def cmd_push(args):
            try:
                secrets = json.loads(sys.stdin.buffer.read())
            except ValueError:
                sys.stderr.write("remo-broker: stdin is not a JSON object of secrets\n")
                return EXIT_USAGE
            if not isinstance(secrets, dict):
                sys.stderr.write("remo-broker: stdin is not a JSON object of secrets\n")
                return EXIT_USAGE
            fields = {"secrets": secrets}
            if args.source is not None:
                fields["source"] = args.source
            return _admin_call(args, OP_DIFF_CREDS if args.check else OP_PUSH_CREDS, **fields)
        #

        def cmd_clear(args):
            return _admin_call(args, OP_CLEAR_CREDS, **({"source": args.source} if args.source is not None else {}))
        #

        def cmd_register(args):
            fields = {"name": args.name, "project_path": os.path.abspath(args.path)}
            if args.manifest is not None:
                fields["manifest_path"] = os.path.abspath(args.manifest)
            if args.expected_uid is not None:
                fields["expected_uid"] = args.expected_uid
            return _admin_call(args, OP_REGISTER, **fields)
        #

        def cmd_unregister(args):
            return _admin_call(args, OP_UNREGISTER, name=args.name)
        #

        def cmd_reload(args):
            return _admin_call(args, OP_RELOAD, name=args.name)
        #

        def cmd_attest(args):
            if args.clear:
                return _admin_call(args, OP_ATTEST, name=args.name, container_id=None)
            if not args.container or args.pid is None:
                sys.stderr.write("remo-broker: attest needs --container ID and --pid PID, or --clear\n")
                return EXIT_USAGE
            return _admin_call(args, OP_ATTEST, name=args.name, container_id=args.container, pid=args.pid)
        #

        def _project_client(args):
            if args.socket:
                return BrokerClient(args.socket, timeout=args.timeout)
            if args.project:
                return BrokerClient(project_socket_path(args.run_dir, args.project), timeout=args.timeout)
            env = os.environ.get(SOCKET_ENV_VAR)
            if env:
                return BrokerClient(env, timeout=args.timeout)
            return None
        #

        def cmd_get(args):
            import base64
            client = _project_client(args)
            if client is None:
                sys.stderr.write("remo-broker: get needs --socket or --project\n")
                return EXIT_USAGE
            fields = {"name": args.name}
            if args.field:
                fields["field"] = args.field
            try:
                reply = client.request(OP_GET, **fields)
            except BrokerError as exc:
                return _report_error(exc)
            if "value_b64" in reply:
                sys.stdout.flush()
                sys.stdout.buffer.write(base64.b64decode(reply["value_b64"]))
                sys.stdout.buffer.flush()
            else:
                sys.stdout.write(reply.get("value", ""))
            return EXIT_OK
        #

        def cmd_ping(args):
            return _print_reply(_project_client(args) or _client(args), OP_PING)
        #

        def cmd_info(args):
            client = _project_client(args)
            if client is None:
                sys.stderr.write("remo-broker: info needs --socket or --project\n")
                return EXIT_USAGE
            return _print_reply(client, OP_INFO)
        #

        def cmd_watch(args):
            client = _project_client(args)
            if client is None:
                sys.stderr.write("remo-broker: watch needs --socket or --project\n")
                return EXIT_USAGE
            client.timeout = None
            try:
                for item in client.stream(OP_WATCH):
                    item.pop("ok", None)
                    sys.stdout.write(json.dumps(item, sort_keys=True) + "\n")
                    sys.stdout.flush()
            except BrokerError as exc:
                return _report_error(exc)
            except KeyboardInterrupt:
                pass
            return EXIT_OK
        #

        def cmd_validate_manifest(args):
            path = args.path
            try:
                # A proposal may belong to the project's account; its other rules still apply.
                owner = (os.lstat(path).st_uid,) if os.path.lexists(path) else ()
                if os.path.isdir(path):
                    path = discover_manifest(path)
                manifest = load_manifest(os.path.abspath(path), expected_project=args.project, trusted_uids=owner)
            except ManifestError as exc:
                sys.stderr.write("remo-broker: invalid manifest: %s\n" % exc)
                return EXIT_MANIFEST_INVALID
            _print_json({"path": manifest.path, "project": manifest.project, "schema_version": manifest.schema_version,
                         "source_format": manifest.source_format, "sha256": manifest.sha256,
                         "allowlist": list(manifest.allowlist)})
            return EXIT_OK
        #

        def _positive_int(text):
            value = int(text)
            if value < 1:
                raise ValueError(text)
            return value
        #

        def _parse_since(text):
            import datetime
            m = re.fullmatch(r"(\d+)([smhd])", text)
            now = datetime.datetime.now(datetime.timezone.utc)
            if m:
                mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
                return now - datetime.timedelta(seconds=int(m.group(1)) * mult)
            value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value
        #

        def _audit_verify(args):
            """``audit verify``: the chain of the files, then the checkpoints of the last one's path."""
            paths = [os.path.abspath(path) for path in args.audit_log]
            try:
                store = open_store(args.audit_checkpoint or "auto")
            except ValueError as exc:
                sys.stderr.write("remo-broker: %s\n" % exc)
                return EXIT_USAGE
            checkpoints = None
            if store is None:
                sys.stderr.write("remo-broker: warning: no checkpoint store (--audit-checkpoint): only the chain is checked; "
                                 "a rewritten, re-chained or cut log is not detected\n")
            else:
                try:
                    checkpoints = store.read(paths[-1])
                except OSError as exc:
                    sys.stderr.write("remo-broker: cannot read the checkpoints (%s): %s\n" % (store.name, exc))
                    return EXIT_AUDIT_VERIFY_FAILED
                if not checkpoints:
                    sys.stderr.write("remo-broker: warning: %s holds no checkpoint for %s\n" % (store.name, paths[-1]))
            ok, _n, message = audit_verify(paths, checkpoints)
            if ok:
                sys.stdout.write("OK: %s\n" % message)
                return EXIT_OK
            sys.stderr.write("remo-broker: audit verification failed: %s\n" % message)
            return EXIT_AUDIT_VERIFY_FAILED
        #

        def cmd_audit(args):
            import collections
            import datetime
            args.audit_log = args.audit_log or [DEFAULT_AUDIT_LOG]
            if args.action == "verify":
                return _audit_verify(args)
            if args.audit_checkpoint is not None:
                sys.stderr.write("remo-broker: --audit-checkpoint is an option of `audit verify`\n")
                return EXIT_USAGE
            if len(args.audit_log) > 1:
                sys.stderr.write("remo-broker: several --audit-log files are read by `audit verify` only\n")
                return EXIT_USAGE
            args.audit_log = args.audit_log[0]
            since = None
            if args.since:
                try:
                    since = _parse_since(args.since)
                except ValueError:
                    sys.stderr.write("remo-broker: --since takes an ISO-8601 time or a duration like 15m, 2h, 1d\n")
                    return EXIT_USAGE
            keep = collections.deque(maxlen=args.tail) if args.tail else []
            try:
                fh = open(args.audit_log, "rb")
            except OSError as exc:
                sys.stderr.write("remo-broker: cannot read %s: %s\n" % (args.audit_log, exc.strerror))
                return EXIT_BROKER_ERROR
            with fh:
                for raw in fh:
                    try:
                        ev = json.loads(raw)
                    except ValueError:
                        continue
                    if not isinstance(ev, dict):
                        continue
                    if args.project and ev.get("project") != args.project:
                        continue
                    if since is not None:
                        try:
                            ts = datetime.datetime.fromisoformat(str(ev.get("ts", "")).replace("Z", "+00:00"))
                        except ValueError:
                            continue
                        if ts < since:
                            continue
                    keep.append(ev)
            for ev in keep:
                if args.json:
                    sys.stdout.write(json.dumps(ev, sort_keys=True) + "\n")
                else:
                    sys.stdout.write("%s %-10s %-16s %-24s %-5s %-16s uid=%s pid=%s %sus\n" % (
                        ev.get("ts"), ev.get("event"), ev.get("project") or "-", ev.get("name") or "-",
                        ev.get("decision") or "-", ev.get("outcome"), ev.get("peer_uid"), ev.get("peer_pid"),
                        ev.get("latency_us")))
            return EXIT_OK
        #

        def build_parser():
            common = argparse.ArgumentParser(add_help=False)
            common.add_argument("--socket", default=argparse.SUPPRESS,
                                help="socket to talk to (default: $%s or RUN_DIR/admin.sock)" % SOCKET_ENV_VAR)
            common.add_argument("--run-dir", default=argparse.SUPPRESS, help="broker run directory (default: %s)" % DEFAULT_RUN_DIR)
            common.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                                help="seconds to wait for the broker (default: %g)" % DEFAULT_CLIENT_TIMEOUT)
            proj = argparse.ArgumentParser(add_help=False)
            proj.add_argument("--project", help="use the project socket RUN_DIR/PROJECT.sock")

            fmt = argparse.RawDescriptionHelpFormatter
            parser = argparse.ArgumentParser(
                prog="remo-broker", formatter_class=fmt, epilog=_EPILOG,
                description="In-memory credential broker (protocol %d, version %s): daemon and client." % (PROTOCOL_VERSION, DAEMON_VERSION))
            parser.add_argument("--version", action="version", version="remo-broker %s (protocol %d)" % (DAEMON_VERSION, PROTOCOL_VERSION))
            parser.add_argument("--socket", default=None, help="socket to talk to (default: $%s or RUN_DIR/admin.sock)" % SOCKET_ENV_VAR)
            parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="broker run directory (default: %s)" % DEFAULT_RUN_DIR)
            parser.add_argument("--timeout", type=float, default=DEFAULT_CLIENT_TIMEOUT,
                                help="seconds to wait for the broker (default: %g)" % DEFAULT_CLIENT_TIMEOUT)
            sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

            def add(name, func, help_text, parents=(common,)):
                p = sub.add_parser(name, help=help_text, description=help_text, parents=list(parents), formatter_class=fmt, epilog=_EPILOG)
                p.set_defaults(func=func)
                return p

            p = add("serve", cmd_serve, "run the daemon in the foreground (systemd Type=notify)", parents=())
            p.add_argument("--run-dir", default=argparse.SUPPRESS, help="sockets directory (default: %s)" % DEFAULT_RUN_DIR)
            p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="registrations directory (default: %s)" % DEFAULT_STATE_DIR)
            p.add_argument("--audit-log", default=DEFAULT_AUDIT_LOG, help="audit JSONL file (default: %s)" % DEFAULT_AUDIT_LOG)
            p.add_argument("--admin-group", default=None, help="group owning the admin socket (default: the daemon's group)")
            p.add_argument("--rate-limit", type=float, default=DEFAULT_RATE_LIMIT,
                           help="requests/second per project socket; 0 disables (default: %g)" % DEFAULT_RATE_LIMIT)
            p.add_argument("--rate-burst", type=int, default=DEFAULT_RATE_BURST, help="token bucket size (default: %d)" % DEFAULT_RATE_BURST)
            p.add_argument("--client-timeout", type=float, default=DEFAULT_SERVER_CLIENT_TIMEOUT,
                           help="close clients without a complete request line after this many seconds (default: %g)"
                           % DEFAULT_SERVER_CLIENT_TIMEOUT)
            p.add_argument("--max-project-connections", type=_positive_int, default=DEFAULT_MAX_PROJECT_CONNECTIONS,
                           help="open connections per project socket (default: %d)" % DEFAULT_MAX_PROJECT_CONNECTIONS)
            p.add_argument("--max-peer-connections", type=_positive_int, default=DEFAULT_MAX_PEER_CONNECTIONS,
                           help="open connections per client process (default: %d)" % DEFAULT_MAX_PEER_CONNECTIONS)
            p.add_argument("--log-level", choices=sorted(LOG_LEVELS, key=LOG_LEVELS.get), default="info", help="stderr log level")
            p.add_argument("--audit-checkpoint", default="auto", metavar="STORE",
                           help="where the audit chain's checkpoints go: %s (default: auto = journal when journald runs)"
                           % ", ".join(AUDIT_CHECKPOINT_STORES))
            p.add_argument("--audit-stall-timeout", type=float, default=AUDIT_STALL_SECONDS, metavar="SECONDS",
                           help="a writer that consumes nothing this long while events wait counts as failed (default: %g)"
                           % AUDIT_STALL_SECONDS)
            p.add_argument("--audit-fail-open", action="store_true",
                           help="serve secrets even when the audit log cannot be written (default: refuse get with "
                                "audit_unavailable)")
            p.add_argument("--require-memory-lock", action="store_true",
                           help="refuse to start when mlockall fails (raise LimitMEMLOCK / RLIMIT_MEMLOCK)")

            add("status", cmd_status, "show daemon status (never values)")
            p = add("push", cmd_push, "replace one source's secrets with the JSON object read from stdin")
            p.add_argument("--check", action="store_true", help="only report what would change (diff-creds)")
            p.add_argument("--source", default=None, help="push source whose names the push replaces (default: the default source)")
            p = add("clear", cmd_clear, "remove every secret from memory, or one source's")
            p.add_argument("--source", default=None, help="clear only this push source (default: every source)")
            p = add("register", cmd_register, "register a project with its approved manifest (docs/manifest.md)")
            p.add_argument("name")
            p.add_argument("path", help="the project's directory (its owner is the default --expected-uid)")
            p.add_argument("--manifest", default=None, metavar="FILE",
                           help="the approved manifest, in directories only root or the broker can write "
                                "(default: PATH/.remo/manifest.toml)")
            p.add_argument("--expected-uid", type=int, default=None, help="uid allowed on the project socket (default: owner of PATH)")
            p = add("unregister", cmd_unregister, "unregister a project and remove its socket")
            p.add_argument("name")
            p = add("reload", cmd_reload, "reload a project's manifest")
            p.add_argument("name")
            p = add("attest", cmd_attest, "serve a project's socket only to processes of one container")
            p.add_argument("name")
            p.add_argument("--container", default=None, metavar="ID", help="the full container id (docker inspect .Id)")
            p.add_argument("--pid", type=int, default=None, help="a process of that container (docker inspect .State.Pid)")
            p.add_argument("--clear", action="store_true", help="remove the attestation: any process with the expected uid")
            p = add("get", cmd_get, "print one secret value (project socket)", parents=(common, proj))
            p.add_argument("name")
            p.add_argument("--field", default=None, help="field of a structured secret")
            add("ping", cmd_ping, "check the broker answers (project socket with --project, else admin)", parents=(common, proj))
            add("info", cmd_info, "show a project's allowlist and fetch specs", parents=(common, proj))
            add("watch", cmd_watch, "print change events for a project's secrets", parents=(common, proj))
            p = add("validate-manifest", cmd_validate_manifest, "validate a manifest file or project directory (no daemon needed)",
                    parents=())
            p.add_argument("path")
            p.add_argument("--project", default=None, help="require this project name")
            p = add("audit", cmd_audit, "show audit events, or `audit verify` the hash chain", parents=())
            p.add_argument("action", nargs="?", choices=["verify"], help="verify the hash chain")
            p.add_argument("--audit-log", action="append", default=None,
                           help="audit JSONL file (default: %s); verify takes it more than once for rotated files, "
                                "oldest first" % DEFAULT_AUDIT_LOG)
            p.add_argument("--audit-checkpoint", default=None, metavar="STORE",
                           help="verify: the checkpoint store the daemon used: %s (default: auto)"
                           % ", ".join(AUDIT_CHECKPOINT_STORES))
            p.add_argument("--project", default=None, help="only this project")
            p.add_argument("--since", default=None, help="ISO-8601 time or a duration (15m, 2h, 1d)")
            p.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N events")
            p.add_argument("--json", action="store_true", help="print raw JSON lines")
            return parser
        #

        def cmd_serve(args):
            from ansible_collections.remo.broker.plugins.module_utils._daemon.server import serve
            return serve(args, args.program)
        #

        def main(argv=None, program=None):
            """Run one command; ``program`` is the daemon file (the audit writer process imports it)."""
            parser = build_parser()
            args = parser.parse_args(argv)
            args.program = os.path.abspath(program or sys.argv[0])
            return args.func(args)

    # ------------------------------------------------------------------------
    class _m13:  # plugins/module_utils/_daemon/connection.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """One client connection (admin or project): line framing, size limits, output backpressure."""
        #
        #

        import time

        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue import AUDIT_BATCH
        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
        from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err
        from ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory import send_wiped
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            ADMIN_OUTPUT_HARD_LIMIT,
            DECISION_DENY,
            E_PROTOCOL_ERROR,
            MAX_ADMIN_MESSAGE_BYTES,
            MAX_PROJECT_MESSAGE_BYTES,
            OUTPUT_HIGH_WATER,
            OUTPUT_LOW_WATER,
            PROJECT_OUTPUT_HARD_LIMIT,
            PROJECT_TURN_REQUESTS,
            RATE_LIMITED_TURN_COST,
            READ_CHUNK_BYTES,
            REPLY_BATCH_BYTES,
        )
        #

        class Connection:
            """asyncio.Protocol for one client connection (admin when ``project`` is None).

    The complete lines of a read are handled in order and the replies go out in one
    ``transport.write`` per REPLY_BATCH_BYTES.  A project answers about one share of
    PROJECT_TURN_REQUESTS requests per loop pass (project_turns.py): past that the
    connection keeps its unanswered lines in ``pending``, stops reading and waits for
    its project's next turn.  Output backpressure (docs/daemon.md#per-connection-memory):
    past OUTPUT_HIGH_WATER unsent bytes the connection stops reading and keeps its
    unanswered lines until the client reads; past the hard limit it is closed.
    """

            __slots__ = ("broker", "project", "transport", "buf", "limit", "pid", "uid", "peer", "last", "watching", "closed",
                         "admitted", "held", "output_paused", "hard_limit", "pending", "turn_waiting")

            def __init__(self, broker, project):
                self.broker = broker
                self.project = project
                self.transport = None
                self.buf = b""
                self.limit = MAX_PROJECT_MESSAGE_BYTES if project is not None else MAX_ADMIN_MESSAGE_BYTES
                self.hard_limit = PROJECT_OUTPUT_HARD_LIMIT if project is not None else ADMIN_OUTPUT_HARD_LIMIT
                self.pid = None
                self.uid = None
                self.peer = (None, None)
                self.last = 0.0
                self.watching = False
                self.closed = False
                self.admitted = False
                self.held = False           # buf holds complete lines read while ``pending`` or output waited
                self.output_paused = False
                self.pending = None         # (lines, index): lines of a read not answered yet
                self.turn_waiting = False   # in its project's queue for the next turn

            def admit(self):
                """Count it as open (listener.py admitted its peer); its transport comes next pass."""
                broker = self.broker
                self.admitted = True
                self.last = time.monotonic()
                broker.conns.add(self)
                broker.limits.opened(self)
                if self.project is not None:
                    self.project.conns.add(self)

            # asyncio.Protocol interface (duck-typed: asyncio only calls these methods)
            def connection_made(self, transport):
                self.transport = transport
                broker = self.broker
                project = self.project
                transport.set_write_buffer_limits(OUTPUT_HIGH_WATER, OUTPUT_LOW_WATER)
                if self.closed or broker.draining or (project is not None and broker.projects.get(project.name) is not project):
                    # Closed before it had a transport: draining, its project unregistered, its attestation changed.
                    self.closed = True
                    transport.abort()
                    return
                if project is not None and project.name in broker.audit.paused_projects:
                    transport.pause_reading()

            def connection_lost(self, exc):
                self.closed = True
                self.broker.conns.discard(self)
                if self.admitted:
                    self.admitted = False
                    self.broker.limits.closed(self)
                project = self.project
                if project is not None:
                    project.conns.discard(self)
                    project.watchers.discard(self)

            def pause_writing(self):
                """More than OUTPUT_HIGH_WATER unsent: read nothing more until the client reads."""
                self.output_paused = True
                if not self.closed:
                    self.transport.pause_reading()

            def resume_writing(self):
                self.output_paused = False
                self.resume()

            def resume_turn(self):
                """Its project's next turn (project_turns.py)."""
                self.turn_waiting = False
                self.resume()

            def reading_blocked(self):
                """Why nothing more is read or answered now: output room, a turn, audit backpressure."""
                return self.closed or self.output_paused or self.turn_waiting or (
                    self.project is not None and self.project.name in self.broker.audit.paused_projects)

            def resume(self):
                """Answer the lines kept while reading was paused, then read again, unless still blocked."""
                if self.reading_blocked():
                    return
                if self.pending is not None:
                    lines, index = self.pending
                    self.pending = None
                    self._answer(lines, index)
                    if self.reading_blocked() or self.pending is not None:
                        return
                if self.held:
                    held, self.buf, self.held = self.buf, b"", False
                    self.data_received(held)
                    if self.reading_blocked() or self.pending is not None:
                        return
                self.transport.resume_reading()

            def eof_received(self):
                return False

            def data_received(self, data):
                if self.closed:
                    return
                if self.pending is not None or self.output_paused:
                    # Reading was paused after this read was under way: keep it for resume().
                    self.buf += data
                    self.held = self.held or b"\n" in data
                    self.transport.pause_reading()
                    if len(self.buf) > self.limit + 2 * READ_CHUNK_BYTES:
                        self._fail_close(b"", "client sends without reading replies", "output_backlog")
                    return
                buf = self.buf + data if self.buf else data
                if b"\n" not in data:
                    if len(buf) > self.limit:
                        self._fail_close(b"", "message exceeds %d bytes" % self.limit, "message_too_large")
                        return
                    self.buf = buf
                    return
                if self.project is not None and b"\n\n" in buf:
                    # Runs of bare newlines are no requests: drop them at C speed, not one loop turn each
                    # (project lines carry names only; an admin read is never copied: it is wiped).
                    while b"\n\n\n\n" in buf:
                        buf = buf.replace(b"\n\n\n\n", b"\n")
                    buf = buf.replace(b"\n\n", b"\n")
                lines = buf.split(b"\n")
                self.buf = lines.pop()
                self._answer(lines, 0)

            def _answer(self, lines, index):
                """Handle ``lines[index:]``: all of them, or up to this project's share of the pass."""
                out = []
                size = 0
                project = self.project
                handler = self.broker.handle_project if project is not None else self.broker.handle_admin
                limit = self.limit
                if project is not None:
                    turns = self.broker.turns
                    left = allowed = turns.left(project)
                else:
                    turns = None
                    left = allowed = len(lines)
                count = len(lines)
                while index < count:
                    line = lines[index]
                    if not line:
                        index += 1
                        continue    # a bare newline is no request: no reply, no token, no idle reset
                    if left <= 0:
                        turns.charge(project, allowed - left)
                        left = allowed = turns.left(project)
                    if left <= 0:
                        # This project's share of the pass is used: the rest waits for its next turn.
                        self.pending = (lines, index)
                        self.turn_waiting = True
                        turns.wait(self)
                        if count - index > PROJECT_TURN_REQUESTS:
                            self.transport.pause_reading()
                        # else reading goes on: a client that pipelines a few requests sends more only
                        # once it has replies, and a read that comes meanwhile is kept and pauses
                        # reading (data_received); pausing here cost it a loop pass per turn.
                        if out:
                            self._write(out)
                        if len(self.broker.audit.queue) >= AUDIT_BATCH:
                            self.broker.audit.pump()
                        return
                    index += 1
                    left -= 1
                    if len(line) > limit:
                        self._fail_close(b"".join(out), "message exceeds %d bytes" % limit, "message_too_large")
                        return
                    try:
                        reply = handler(self, line)
                    except CloseAfter as close:
                        out.append(close.reply)
                        self.closed = True
                        self.transport.write(b"".join(out))
                        self.transport.close()
                        return
                    except Exception as exc:  # pylint: disable=broad-except
                        # Never log the exception text: it may quote the request.
                        log("error", "request handler crashed: %s" % type(exc).__name__)
                        reply = self.broker.internal_error_reply
                    if turns is not None and project.tokens is not None and project.tokens < 1.0:
                        # Out of rate-limit tokens: every request of it is a rate_limited reply now,
                        # and such a project answers a smaller share per pass than one within its rate.
                        left -= RATE_LIMITED_TURN_COST - 1
                    if reply:
                        out.append(reply)
                        size += len(reply)
                        if size >= REPLY_BATCH_BYTES:
                            if not self._write(out) or self.output_paused:
                                if turns is not None:
                                    turns.charge(project, allowed - left)
                                if not self.closed and index < count:
                                    # Keep the unanswered lines (at most one read) until the client reads.
                                    self.pending = (lines, index)
                                    self.transport.pause_reading()
                                return
                            out = []
                            size = 0
                if turns is not None:
                    turns.charge(project, allowed - left)
                if not self.held and len(self.buf) > limit:
                    self._fail_close(b"".join(out), "message exceeds %d bytes" % limit, "message_too_large")
                    return
                if out:
                    self._write(out)
                audit = self.broker.audit
                if len(audit.queue) >= AUDIT_BATCH:
                    audit.pump()
                if self.broker.draining and not self.watching and not self.buf:
                    self.closed = True
                    self.transport.close()

            def _write(self, out):
                """Send ``out`` (reply lines); False when that passed the hard limit and closed."""
                if len(out) == 1:
                    self.transport.write(out[0])
                else:
                    send_wiped(self.transport, out)    # a joined copy of replies that may carry values
                if self.output_paused and self.transport.get_write_buffer_size() > self.hard_limit:
                    self._close_backlogged()
                    return False
                return True

            def send_event(self, line):
                """A pushed line (watch event): the same hard limit as replies."""
                self.transport.write(line)
                if self.output_paused and self.transport.get_write_buffer_size() > self.hard_limit:
                    self._close_backlogged()

            def _close_backlogged(self):
                project = self.project
                if project is not None:
                    project.counters["protocol_error"] += 1
                self.broker.audit.emit_repeatable("protocol", project.name if project is not None else None, E_PROTOCOL_ERROR,
                                                  DECISION_DENY, self.peer, 0, {"reason": "output_backlog"})
                self.closed = True
                self.buf = b""
                self.held = False
                self.transport.abort()   # the client reads nothing: dropping its backlog is the point

            def _fail_close(self, prefix, message, reason):
                project = self.project
                if project is not None:
                    project.counters["protocol_error"] += 1
                self.broker.audit.emit_repeatable("protocol", project.name if project is not None else None, E_PROTOCOL_ERROR,
                                                  DECISION_DENY, self.peer, 0)
                self.closed = True
                self.buf = b""
                self.held = False
                self.transport.write(prefix + err(E_PROTOCOL_ERROR, message, {"reason": reason}))
                close_or_abort(self)
        #

        def close_or_abort(conn):
            """Close after the pending output, or at once when the client is not reading it."""
            conn.closed = True
            if conn.transport is None:
                return      # admitted, no transport yet: connection_made aborts it
            if conn.output_paused:
                conn.transport.abort()
            else:
                conn.transport.close()

    # ------------------------------------------------------------------------
    class _m14:  # plugins/module_utils/_daemon/connection_limits.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Who may open one more connection, and bounded reports of who may not (docs/daemon.md).

Descriptors come from RLIMIT_NOFILE. ``FD_RESERVE`` of them never go to project
connections, so the admin socket always answers; every project keeps
``PROJECT_CONNECTION_FLOOR`` connections the others cannot take; a project and a client
process each have their own cap. A refused connection gets one ``too_many_connections``
line and is closed; refusals and accept failures are logged and audited as one summary
per ``LIMIT_REPORT_INTERVAL``, not once each.
"""
        #
        #

        import os
        import time

        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
        from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import err
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            DECISION_DENY,
            E_TOO_MANY_CONNECTIONS,
            FD_RESERVE,
            LIMIT_REPORT_INTERVAL,
            MAX_ADMIN_CONNECTIONS,
            PROJECT_CONNECTION_FLOOR,
        )

        _REPLY_CACHE_SIZE = 256
        #

        def descriptor_limit():
            """The soft RLIMIT_NOFILE, raised to the hard limit when allowed (the unit sets both)."""
            import resource
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if hard != resource.RLIM_INFINITY and soft < hard:
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                    soft = hard
                except (OSError, ValueError):
                    pass    # the unit's syscall filter refuses setrlimit; LimitNOFILE set both
            return soft if soft != resource.RLIM_INFINITY else 1 << 20
        #

        class ConnectionLimits:
            """Open-connection accounting for one Broker."""

            def __init__(self, max_project, max_peer, nofile=None):
                self.nofile = descriptor_limit() if nofile is None else nofile
                self.max_project = max_project
                self.max_peer = max_peer
                self.by_pid = {}
                self.project_open = 0
                self.admin_open = 0
                self.refused = 0
                self.pending = {}          # project name (None: admin) -> [refusals not yet reported, window start, reason]
                self.accept_failures = 0
                self._accept_pending = [0, 0.0, None]
                self._replies = {}

            def project_budget(self, nprojects):
                """Descriptors project connections may hold (one more per project for its listener)."""
                return max(0, self.nofile - FD_RESERVE - nprojects)

            def check(self, pid, project, projects):
                """None when one more connection of ``pid`` to ``project`` (None: admin) may open,
        else (scope, limit) of the limit it would pass."""
                if pid is not None and self.by_pid.get(pid, 0) >= self.max_peer:
                    return "peer", self.max_peer
                if project is None:
                    if self.admin_open >= MAX_ADMIN_CONNECTIONS:
                        return "admin", MAX_ADMIN_CONNECTIONS
                    return None
                held = len(project.conns)
                budget = self.project_budget(len(projects))
                cap = min(self.max_project, budget)
                if held >= cap:
                    return "project", cap
                if held >= PROJECT_CONNECTION_FLOOR:
                    # Above its floor a project may only use what the others' floors leave free.
                    unused_floors = 0
                    for other in projects.values():
                        if len(other.conns) < PROJECT_CONNECTION_FLOOR:
                            unused_floors += PROJECT_CONNECTION_FLOOR - len(other.conns)
                    if self.project_open + unused_floors >= budget:
                        return "daemon", budget
                return None

            def opened(self, conn):
                if conn.pid is not None:
                    self.by_pid[conn.pid] = self.by_pid.get(conn.pid, 0) + 1
                if conn.project is None:
                    self.admin_open += 1
                else:
                    self.project_open += 1

            def closed(self, conn):
                pid = conn.pid
                if pid is not None:
                    left = self.by_pid.get(pid, 1) - 1
                    if left > 0:
                        self.by_pid[pid] = left
                    else:
                        self.by_pid.pop(pid, None)
                if conn.project is None:
                    self.admin_open -= 1
                else:
                    self.project_open -= 1

            def refusal_reply(self, pid, project, scope, limit):
                """The ``too_many_connections`` line, built once per (scope, who, limit): a flood repeats it."""
                self.refused += 1
                who = pid if scope == "peer" else project.name if scope == "project" else None
                key = (scope, who, limit)
                reply = self._replies.get(key)
                if reply is None:
                    what = {"peer": "process %s" % pid, "admin": "the admin socket", "daemon": "all projects together"}
                    where = what.get(scope, "project %s" % who)
                    reply = err(E_TOO_MANY_CONNECTIONS, "%s already has %d open connection(s), the limit; close one and retry"
                                % (where, limit), {"scope": scope, "limit": limit})
                    if len(self._replies) >= _REPLY_CACHE_SIZE:
                        self._replies.clear()   # many refused pids: bounded, rebuilt on demand
                    self._replies[key] = reply
                return reply

            def note_refusal(self, broker, project, scope, peer):
                """Count a refusal; log and audit it now only when its window has no report yet."""
                key = project.name if project is not None else None
                now = time.monotonic()
                entry = self.pending.get(key)
                if entry is None or now - entry[1] >= LIMIT_REPORT_INTERVAL:
                    refused = 1 + (entry[0] if entry is not None else 0)
                    self.pending[key] = [0, now, scope]
                    self._report(broker, key, refused, scope, peer)
                else:
                    entry[0] += 1
                    entry[2] = scope

            def note_accept_failure(self, exc):
                """accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...): one warning per interval."""
                self.accept_failures += 1
                entry = self._accept_pending
                now = time.monotonic()
                entry[2] = exc
                if entry[1] and now - entry[1] < LIMIT_REPORT_INTERVAL:
                    entry[0] += 1
                    return
                self._log_accept_failures(entry[0] + 1, exc)
                entry[0], entry[1] = 0, now

            def report_due(self, broker):
                """From the idle sweep: summaries of windows that ended with unreported counts."""
                now = time.monotonic()
                for key, entry in list(self.pending.items()):
                    if now - entry[1] < LIMIT_REPORT_INTERVAL:
                        continue
                    if entry[0]:
                        self._report(broker, key, entry[0], entry[2], (None, None))
                        entry[0], entry[1] = 0, now
                    else:
                        del self.pending[key]
                entry = self._accept_pending
                if entry[0] and now - entry[1] >= LIMIT_REPORT_INTERVAL:
                    self._log_accept_failures(entry[0], entry[2])
                    entry[0], entry[1] = 0, now

            @staticmethod
            def _report(broker, key, refused, scope, peer):
                log("warning", "%s: refused %d connection(s) over the %s connection limit"
                    % ("project %s" % key if key is not None else "admin socket", refused, scope))
                broker.audit.emit(audit_event("connect", key, E_TOO_MANY_CONNECTIONS, DECISION_DENY, None, peer, 0,
                                              {"refused": refused, "scope": scope}))

            @staticmethod
            def _log_accept_failures(count, exc):
                name = os.strerror(exc.errno) if getattr(exc, "errno", None) else type(exc).__name__
                log("warning", "cannot accept connections (%s): %d failure(s); retrying every second" % (name, count))

            def status(self, projects):
                budget = self.project_budget(len(projects))
                return {"open": self.admin_open + self.project_open, "admin_open": self.admin_open,
                        "project_open": self.project_open, "descriptor_limit": self.nofile, "project_budget": budget,
                        "max_project": min(self.max_project, budget), "max_peer": self.max_peer,
                        "max_admin": MAX_ADMIN_CONNECTIONS, "refused": self.refused, "accept_failures": self.accept_failures}

    # ------------------------------------------------------------------------
    class _m15:  # plugins/module_utils/_daemon/listener.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Accepting connections: each is admitted or refused on its raw socket, before asyncio sees it.

asyncio's own accept loop builds a task, a transport and a protocol for every socket it
accepts, which costs far more than refusing one: a project that queues thousands of
connections past its limit would make every other project wait behind that work.  Here
a readable listening socket accepts at most ``ACCEPT_BATCH`` sockets per loop pass; each
one's peer is checked (uid, attested container, connection limits) and a refused one
gets its one-line reply and is closed on the spot.  Only an admitted connection gets a
transport (``loop.connect_accepted_socket``).
"""
        #
        #

        import errno
        import socket
        import struct

        from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import NOT_IN_CONTAINER_REPLY, peer_in_container
        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            ACCEPT_BATCH,
            DECISION_DENY,
            E_PEER_UNEXPECTED,
            LISTEN_BACKLOG,
        )

        ACCEPT_RETRY_DELAY = 1.0    # seconds a socket rests after accept() failed for want of resources (as asyncio)
        _SKIP = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN))
        _PEERCRED = struct.Struct("3i")
        #

        class Listener:
            """One listening Unix socket (a project's, or the admin socket when ``project`` is None)."""

            __slots__ = ("broker", "sock", "project", "factory", "loop", "fd", "closed", "_retry")

            def __init__(self, broker, sock, project, factory):
                self.broker = broker
                self.sock = sock
                self.project = project
                self.factory = factory      # () -> Connection
                self.loop = broker.loop
                self.fd = sock.fileno()
                self.closed = False
                self._retry = None

            def start(self):
                self.sock.setblocking(False)
                self.sock.listen(LISTEN_BACKLOG)
                self.loop.add_reader(self.fd, self._accept_ready)
                return self

            def close(self):
                if self.closed:
                    return
                self.closed = True
                if self._retry is not None:
                    self._retry.cancel()
                    self._retry = None
                else:
                    self.loop.remove_reader(self.fd)
                self.sock.close()

            def _resume(self):
                self._retry = None
                if not self.closed:
                    self.loop.add_reader(self.fd, self._accept_ready)

            def _accept_ready(self):
                # socket.accept() would look up the listener's family and type as enums for every
                # socket; the raw accept and the known constants cost a third less per refusal.
                accept = self.sock._accept     # pylint: disable=protected-access
                for _attempt in range(ACCEPT_BATCH):
                    try:
                        conn_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, accept()[0])
                    except BlockingIOError:
                        return
                    except OSError as exc:
                        if exc.errno in _SKIP:
                            continue
                        # Out of descriptors or memory (or anything unforeseen): count it, warn once
                        # per interval, and rest this socket instead of spinning on the error.
                        self.broker.limits.note_accept_failure(exc)
                        self.loop.remove_reader(self.fd)
                        self._retry = self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                        return
                    conn_sock.setblocking(False)    # an accepted socket starts blocking; the loop must never wait on one
                    try:
                        self._admit(conn_sock)
                    except Exception as exc:  # pylint: disable=broad-except
                        # An admission check that cannot run refuses the connection (by type only:
                        # no peer data in the log).
                        log("error", "cannot admit a connection: %s" % type(exc).__name__)
                        conn_sock.close()

            def _admit(self, sock):
                broker = self.broker
                project = self.project
                try:
                    pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
                except (OSError, struct.error):
                    pid = uid = None
                peer = (pid, uid)
                if project is not None:
                    reply = None
                    extra = None
                    if project.expected_uid is not None and uid != project.expected_uid:
                        reply = broker.peer_unexpected_reply
                    elif project.attestation is not None and not peer_in_container(sock, pid, project.attestation):
                        reply, extra = NOT_IN_CONTAINER_REPLY, {"reason": "not_in_container"}
                    if reply is not None:
                        project.counters["peer_unexpected"] += 1
                        broker.audit.emit_repeatable("connect", project.name, E_PEER_UNEXPECTED, DECISION_DENY, peer, 0, extra)
                        _refuse(sock, reply)
                        return
                limits = broker.limits
                refused = limits.check(pid, project, broker.projects)
                if refused is not None:
                    if project is not None:
                        project.counters["connections_refused"] += 1
                    limits.note_refusal(broker, project, refused[0], peer)
                    _refuse(sock, limits.refusal_reply(pid, project, *refused))
                    return
                conn = self.factory()
                conn.pid, conn.uid, conn.peer = pid, uid, peer
                conn.admit()
                task = self.loop.create_task(self.loop.connect_accepted_socket(lambda: conn, sock))
                task.add_done_callback(lambda done: _transport_failed(done, conn, sock))
        #

        def _refuse(sock, reply):
            """Send a refusal's one line (it fits a fresh socket's buffer) and close."""
            try:
                sock.send(reply)
            except OSError:
                pass
            sock.close()
        #

        def _transport_failed(task, conn, sock):
            if task.cancelled() or task.exception() is not None:
                if conn.transport is None:
                    log("warning", "cannot serve an accepted connection: %s"
                        % (type(task.exception()).__name__ if not task.cancelled() else "cancelled"))
                    conn.connection_lost(None)
                    sock.close()

    # ------------------------------------------------------------------------
    class _m16:  # plugins/module_utils/_daemon/peer_attestation.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Container attestation: is a project-socket peer a process of the project's container?

Every devcontainer on an instance runs as the same uid, so ``SO_PEERCRED`` cannot tell
one project's container from another's or from the user's own shell.  After
``devcontainer up`` the launcher sends ``attest`` with the container's id and its main
pid; the broker reads that pid's ``/proc/PID/cgroup`` and keeps the container's cgroup
(the path up to the component that names the id: ``/docker/ID`` with Docker's cgroupfs
driver, ``.../docker-ID.scope`` with its systemd driver; cgroup v1 or v2).  A peer is in
the container when its cgroup, in the same hierarchy, is that path or below it.
Paths are read in the broker's own cgroup namespace, so a peer cannot rename them.

Pid reuse: the peer's pid comes from ``SO_PEERCRED`` (the process that called
``connect``).  The broker takes a pidfd of that process (``SO_PEERPIDFD``, Linux 6.5;
``pidfd_open`` of the pid before) BEFORE it reads the cgroup, and checks the pidfd's
process is still alive AFTER: a live process keeps its pid, so the cgroup read was its
own.  See docs/devcontainer.md for what this does and does not stop.
"""
        #
        #

        import errno
        import os
        import re
        import signal
        import socket

        from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import err
        from ansible_collections.remo.broker.plugins.module_utils._protocol import E_PEER_UNEXPECTED

        # asm-generic value (x86, arm, riscv, ...); Python defines the name only from 3.13.
        SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
        CONTAINER_ID_RE = re.compile(r"[0-9a-f]{64}")
        # Hierarchies in order of preference: the cgroup v2 tree, then systemd's v1 tree.
        _PREFERRED_KEYS = ("", "name=systemd")
        NOT_IN_CONTAINER_REPLY = err(E_PEER_UNEXPECTED, "peer is not a process of the container attested for this project socket")
        #

        class AttestationError(Exception):
            """The attest request names a pid that is not in the container it claims."""
        #

        def read_cgroups(pid):
            """{controllers: path} of ``pid`` from /proc/PID/cgroup ("" is the cgroup v2 tree)."""
            with open("/proc/%d/cgroup" % pid, "rb") as handle:
                data = handle.read(65536).decode("utf-8", "surrogateescape")
            paths = {}
            for line in data.splitlines():
                parts = line.split(":", 2)
                if len(parts) == 3:
                    paths[parts[1]] = parts[2]
            return paths
        #

        def _container_prefix(path, container_id):
            """The part of ``path`` up to the component that names the container, or None."""
            components = path.split("/")
            for i, part in enumerate(components):
                if part in (container_id, "docker-%s.scope" % container_id):
                    return "/".join(components[:i + 1])
            return None
        #

        def container_cgroup(pid, container_id):
            """(hierarchy, cgroup path) of the container ``container_id`` whose process ``pid`` is."""
            try:
                paths = read_cgroups(pid)
            except OSError as exc:
                raise AttestationError("cannot read the cgroup of pid %s: %s" % (pid, exc.strerror or type(exc).__name__)) from None
            keys = [k for k in _PREFERRED_KEYS if k in paths] + sorted(k for k in paths if k not in _PREFERRED_KEYS)
            for key in keys:
                prefix = _container_prefix(paths[key], container_id)
                if prefix is not None:
                    return key, prefix
            raise AttestationError("pid %s is not a process of container %s (its cgroup names another container or none)"
                                   % (pid, container_id))
        #

        def _peer_pidfd(sock, pid):
            """A pidfd of the connecting process, or None when the kernel cannot give one."""
            try:
                return sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
            except OSError as exc:
                if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
                    return None      # ESRCH: the peer is gone, and its pid may name another process already
            try:
                return os.pidfd_open(pid)
            except (OSError, AttributeError):
                return None
        #

        def _alive(pidfd):
            try:
                signal.pidfd_send_signal(pidfd, 0)
            except PermissionError:
                return True      # another user's live process
            except OSError as exc:
                return exc.errno != errno.ESRCH
            return True
        #

        def peer_in_container(sock, pid, attestation):
            """True when the peer ``pid`` on ``sock`` is a process of the attested container."""
            if not pid or pid < 0:
                return False
            pidfd = _peer_pidfd(sock, pid)
            if pidfd is None:
                return False
            try:
                try:
                    path = read_cgroups(pid).get(attestation["hierarchy"])
                except OSError:
                    return False     # gone, or hidden from the broker (ProtectProc=invisible)
                if not _alive(pidfd):
                    return False     # exited: the pid may already name another process
            finally:
                os.close(pidfd)
            prefix = attestation["cgroup"]
            return path is not None and (path == prefix or path.startswith(prefix + "/"))
        #

        def attestation_record(container_id, pid):
            """The attestation stored for a project (and in the registrations file)."""
            hierarchy, cgroup = container_cgroup(pid, container_id)
            return {"container_id": container_id, "hierarchy": hierarchy, "cgroup": cgroup}
        #

        # Matches no peer (a cgroup path never holds a NUL byte): a damaged record fails closed.
        REFUSE_ALL = {"container_id": None, "hierarchy": "", "cgroup": "\0"}
        #

        def restored_record(entry):
            """The attestation of a registrations-file entry: None when it has none, REFUSE_ALL when damaged."""
            if entry is None:
                return None
            if not isinstance(entry, dict):
                return REFUSE_ALL
            cid, hierarchy, cgroup = entry.get("container_id"), entry.get("hierarchy"), entry.get("cgroup")
            if not (isinstance(cid, str) and CONTAINER_ID_RE.fullmatch(cid) and isinstance(hierarchy, str)
                    and isinstance(cgroup, str) and _container_prefix(cgroup, cid) == cgroup):
                return REFUSE_ALL
            return {"container_id": cid, "hierarchy": hierarchy, "cgroup": cgroup}

    # ------------------------------------------------------------------------
    class _m17:  # plugins/module_utils/_daemon/process.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Process plumbing of the daemon: the stderr log, sd_notify, hardening, heap trim."""
        #
        #

        import os
        import socket
        import sys
        import time

        LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
        _threshold = [LOG_LEVELS["info"]]
        #

        def set_log_level(level):
            _threshold[0] = LOG_LEVELS[level]
        #

        def log(level, msg):
            """Lifecycle logging to stderr (journald under systemd).  Never pass values."""
            if LOG_LEVELS[level] >= _threshold[0]:
                try:
                    sys.stderr.write("remo-broker[%d]: %s: %s\n" % (os.getpid(), level, msg))
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
        #

        def iso_now():
            t = time.time()
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)
        #

        def sd_notify(message, env=None):
            """Send ``message`` to $NOTIFY_SOCKET (systemd Type=notify); False when unset/failed."""
            env = os.environ if env is None else env
            addr = env.get("NOTIFY_SOCKET")
            if not addr:
                return False
            if addr[0] == "@":
                addr = "\0" + addr[1:]
            elif addr[0] != "/":
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(addr)
                sock.sendall(message.encode("utf-8"))
                return True
            except OSError:
                return False
            finally:
                sock.close()
        #

        def harden_process():
            """No core dumps, no ptrace attach (PR_SET_DUMPABLE=0), RLIMIT_CORE=0."""
            result = {"dumpable": None, "rlimit_core": None}
            try:
                import resource
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                result["rlimit_core"] = 0
            except (ImportError, OSError, ValueError):
                pass
            try:
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                pr_set_dumpable = 4
                if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) == 0:
                    result["dumpable"] = 0
            except (OSError, AttributeError):
                pass
            return result
        #

        def release_startup_memory():
            """Give the heap left over from starting up back to the OS (glibc only)."""
            import gc
            gc.collect()
            try:
                import ctypes
                ctypes.CDLL(None).malloc_trim(0)
            except (OSError, AttributeError):
                pass

    # ------------------------------------------------------------------------
    class _m18:  # plugins/module_utils/_daemon/project_requests.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Requests on a project socket: rate limit, get, ping, info, watch (docs/protocol.md)."""
        #
        #

        import json
        import time

        from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import audit_event
        from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import CloseAfter, err, ok
        from ansible_collections.remo.broker.plugins.module_utils._protocol import (
            DECISION_ALLOW,
            DECISION_DENY,
            E_AUDIT_UNAVAILABLE,
            E_DENIED,
            E_NOT_FOUND,
            E_PROTOCOL_ERROR,
            E_RATE_LIMITED,
            SECRET_NAME_RE,
        )

        REQ_CACHE_ENTRIES = 1024    # parsed project request lines kept (flat, string-valued requests only)
        REQ_CACHE_LINE_BYTES = 512
        #

        def _safe_name(name):
            """The requested name when it is a well-formed secret name, else None (never echo junk)."""
            if isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None:
                return name
            return None
        #

        class ProjectRequests:
            """The project-socket request handler (mixed into server.Broker)."""

            def handle_project(self, conn, line):
                """The reply to one request line (b"" for a blank line); raises CloseAfter to close."""
                t0 = time.perf_counter()
                project = conn.project
                now = time.monotonic()
                if self.rate > 0:
                    tokens = project.tokens
                    if tokens is None:
                        tokens = self.burst
                    else:
                        tokens = min(self.burst, tokens + (now - project.tokens_ts) * self.rate)
                    project.tokens_ts = now
                    if tokens < 1.0:
                        project.tokens = tokens
                        project.counters["rate_limited"] += 1
                        retry = round((1.0 - tokens) / self.rate, 3) or 0.001
                        self.audit.emit_repeatable("request", project.name, E_RATE_LIMITED, DECISION_DENY, conn.peer, t0)
                        return self._rate_limited_reply(project.name, retry)
                    project.tokens = tokens - 1.0
                req = self.req_cache.get(line)
                if req is None:
                    req = self._parse_project(conn, line, t0)
                    if req is None:
                        return b""
                conn.last = now     # a request past the rate limit: the client is not idle
                op = req.get("op")
                if op == "get":
                    name = req.get("name")
                    if not isinstance(name, str):
                        raise self._project_protocol_error(conn, "get needs a string 'name'", t0, "get")
                    if name not in project.allowlist:
                        project.counters["denied"] += 1
                        safe = _safe_name(name)
                        self.audit.emit(audit_event("get", project.name, E_DENIED, DECISION_DENY, safe, conn.peer, t0))
                        if safe is None:
                            return err(E_DENIED, "requested name is not a valid secret name")
                        return err(E_DENIED, "secret %s is not in the allowlist of project %s" % (name, project.name))
                    field = req.get("field")
                    reply = self.store.replies.get(name) if field is None else self.store.field_reply(name, field)
                    if reply is None:
                        project.counters["not_found"] += 1
                        self.audit.emit(audit_event("get", project.name, E_NOT_FOUND, DECISION_ALLOW, name, conn.peer, t0))
                        if field is None:
                            return err(E_NOT_FOUND, "secret %s has not been pushed to the broker" % name)
                        return err(E_NOT_FOUND, "secret %s has no such field" % name)
                    if self.audit.refusing is not None:
                        # Fail closed: a value is never served without its audit line.
                        project.counters["audit_unavailable"] += 1
                        self.audit.emit_repeatable("get", project.name, E_AUDIT_UNAVAILABLE, DECISION_DENY, conn.peer, t0)
                        return err(E_AUDIT_UNAVAILABLE, "secrets are not served while the audit log cannot be written: %s"
                                   % self.audit.refusing)
                    project.counters["allowed"] += 1
                    self.audit.emit(audit_event("get", project.name, "ok", DECISION_ALLOW, name, conn.peer, t0))
                    return reply
                if op == "ping":
                    self.audit.emit(audit_event("ping", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
                    return project.ping_reply
                if op == "info":
                    self.audit.emit(audit_event("info", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
                    return project.info_reply
                if op == "watch":
                    conn.watching = True
                    project.watchers.add(conn)
                    self.audit.emit(audit_event("watch", project.name, "ok", DECISION_ALLOW, None, conn.peer, t0))
                    return ok({"watching": project.allowlist_list})
                if not isinstance(op, str):
                    raise self._project_protocol_error(conn, "request has no string 'op'", t0)
                raise self._project_protocol_error(conn, "unknown op for a project socket", t0)

            def _rate_limited_reply(self, name, retry):
                """The ``rate_limited`` reply: a flood gets one per request, so only the number is formatted."""
                head = self.rate_limited_heads.get(name)
                if head is None:
                    if len(self.rate_limited_heads) >= REQ_CACHE_ENTRIES:
                        self.rate_limited_heads.clear()
                    whole = err(E_RATE_LIMITED, "rate limit of %g requests/s exceeded for project %s" % (self.rate, name),
                                extra={"retry_after_seconds": 0.0})
                    head = self.rate_limited_heads[name] = whole[:whole.rindex(b":") + 1]
                return b"%s%s}\n" % (head, repr(retry).encode("ascii"))

            def _parse_project(self, conn, line, t0):
                """Parse a project request line (None for a blank line); cache flat string-valued ones."""
                try:
                    req = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    raise self._project_protocol_error(conn, "request is not valid UTF-8", t0) from None
                except RecursionError:
                    raise self._project_protocol_error(conn, "request is nested too deeply", t0) from None
                except ValueError:
                    if not line.strip():
                        return None
                    raise self._project_protocol_error(conn, "request is not valid JSON", t0) from None
                if not isinstance(req, dict):
                    raise self._project_protocol_error(conn, "request is not a JSON object", t0)
                if len(line) <= REQ_CACHE_LINE_BYTES and len(req) <= 4:
                    for value in req.values():
                        if type(value) is not str:  # pylint: disable=unidiomatic-typecheck
                            break
                    else:
                        cache = self.req_cache
                        if len(cache) >= REQ_CACHE_ENTRIES:
                            cache.clear()
                        cache[line] = req
                return req

            def _project_protocol_error(self, conn, message, t0, event="protocol"):
                """Count and audit a protocol error; returns the CloseAfter for the caller to raise."""
                project = conn.project
                project.counters["protocol_error"] += 1
                self.audit.emit_repeatable(event, project.name, E_PROTOCOL_ERROR, DECISION_DENY, conn.peer, t0)
                return CloseAfter(err(E_PROTOCOL_ERROR, message))

    # ------------------------------------------------------------------------
    class _m19:  # plugins/module_utils/_daemon/project_turns.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Fair turns between projects: a project answers at most one share of requests per loop pass.

One read can carry thousands of pipelined requests, and every connection of a project
can have one.  Answering them all in the pass that read them made a neighbour's single
request wait behind all of them (docs/daemon.md#fair-turns).  So the requests each
project answers are counted; once a project has answered PROJECT_TURN_REQUESTS, a turn
starts: the counts are cleared and ``_next_turn`` is queued with ``call_soon``, so it
runs at the start of the next pass, before that pass's reads.  Until then a project
that uses its share again keeps its unanswered lines on that connection, stops reading
it, and waits in its project's queue; ``_next_turn`` clears the counts again and
resumes the waiting connections of each project in arrival order, round-robin, until
its share is used.  A pass thus answers fewer than two shares of one project (what it
answered before the turn started, then one share), and exactly one share in every pass
while a connection waits.  Counting without a turn costs nothing per pass: a client
that sends one request at a time queues a turn once per share, not once per request.
"""
        #
        #

        import collections

        from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_TURN_REQUESTS
        #

        class ProjectTurns:
            """The per-pass request counts of the projects, and the connections waiting for a turn."""

            __slots__ = ("loop", "spent", "waiting", "scheduled", "deferred")

            def __init__(self):
                self.loop = None
                self.spent = {}         # project -> requests answered in this pass
                self.waiting = {}       # project -> deque of connections with unanswered lines, in arrival order
                self.scheduled = False  # _next_turn is queued: ``spent`` belongs to this pass
                self.deferred = 0       # times a connection waited for a turn (status)

            def left(self, project):
                """Requests ``project`` may still answer in this pass (a turn starts when its share is used)."""
                spent = self.spent.get(project, 0)
                if spent >= PROJECT_TURN_REQUESTS and not self.scheduled:
                    # Its count may span many passes: start a turn, counted from now.
                    self._start_turn()
                    spent = 0
                return PROJECT_TURN_REQUESTS - spent

            def charge(self, project, answered):
                """``project`` answered ``answered`` requests of what ``left`` allowed it."""
                self.spent[project] = self.spent.get(project, 0) + answered

            def wait(self, conn):
                """``conn`` used its project's share with lines left: resume it in a later pass."""
                self.deferred += 1
                queue = self.waiting.get(conn.project)
                if queue is None:
                    queue = self.waiting[conn.project] = collections.deque()
                queue.append(conn)

            def _start_turn(self):
                self.spent.clear()
                self.scheduled = True
                self.loop.call_soon(self._next_turn)

            def _next_turn(self):
                waiting, self.waiting = self.waiting, {}
                if waiting:
                    self._start_turn()      # this pass's counts; the next turn resumes what waits again
                else:
                    self.spent.clear()
                    self.scheduled = False
                for project, queue in waiting.items():
                    while queue:
                        if self.spent.get(project, 0) >= PROJECT_TURN_REQUESTS:
                            # Its share of this pass is used: the rest keep their place for the next.
                            queue.extend(self.waiting.get(project) or ())
                            self.waiting[project] = queue
                            break
                        queue.popleft().resume_turn()

    # ------------------------------------------------------------------------
    class _m20:  # plugins/module_utils/_daemon/registry.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Registered projects: their state, their sockets, and the registrations file."""
        #
        #

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
        #

        def default_manifest_path(project_path):
            """The manifest of a registration that names none (older clients and registrations files)."""
            return os.path.join(project_path, MANIFEST_RELATIVE_PATH)
        #

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
        #

        def _after_ready_io(loop):
            """A future done once the loop has handled the I/O that is ready at its next poll.

    A zero-delay timer runs after that poll's I/O callbacks (``asyncio.sleep(0)`` would
    resume before them, so a request waiting meanwhile would wait for one more parse).
    """
            done = loop.create_future()
            loop.call_later(0, lambda: done.done() or done.set_result(None))
            return done
        #

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

    # ------------------------------------------------------------------------
    class _m21:  # plugins/module_utils/_daemon/replies.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """Encoded reply lines, and the exceptions that end a request with one."""
        #
        #

        import json
        #

        def err(code, message, details=None, extra=None):
            reply = {"ok": False, "code": code, "message": message}
            if details:
                reply["details"] = details
            if extra:
                reply.update(extra)
            return json.dumps(reply, separators=(",", ":")).encode("utf-8") + b"\n"
        #

        def ok(fields):
            reply = {"ok": True}
            reply.update(fields)
            return json.dumps(reply, separators=(",", ":")).encode("utf-8") + b"\n"
        #

        class CloseAfter(Exception):
            """Ends a request: the connection writes ``reply`` (after earlier replies) and closes."""

            def __init__(self, reply):
                super().__init__("close")
                self.reply = reply
        #

        class AdminFail(Exception):
            """Ends an admin request with an error reply; the connection stays open."""

            def __init__(self, code, message, details=None, project=None):
                super().__init__(code)
                self.code = code
                self.message = message
                self.details = details
                self.project = project

    # ------------------------------------------------------------------------
    class _m22:  # plugins/module_utils/_daemon/secret_memory.py
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
        #
        #

        import os
        import sys

        # A str header's state bitfield (CPython 3.11-3.13): interned:2, kind:3, compact:1, ascii:1.
        _STATE_OFFSET = 32
        _MAX_REFS = 6       # more references than the caller's few: shared somewhere, never wipe
        #

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
        #

        PLAIN_MASK = 0x63            # a str header's interned (2 bits), compact and ascii bits
        PLAIN_ASCII = 0x60           # not interned, compact, ascii
        _SPAN = 1 << 62             # past every user-space address
        _ZERO_SIZE = 1 << 16
        _ZEROS = memoryview(bytes(_ZERO_SIZE))
        ZEROS = _ZEROS              # for the store's inline wipes (secret_store.py)
        FRESH_REFS = 4 + _MAX_REFS  # the references of an object just made by the caller or by json.loads, at most
        #

        def _probe():
            try:
                return _Layout(), None
            except Exception as exc:  # pylint: disable=broad-except
                return None, "%s: %s" % (type(exc).__name__, exc)
        #

        _LAYOUT, _LAYOUT_ERROR = _probe()
        #

        def wipe_available():
            """(True, None) when immutable objects can be wiped here, else (False, the reason)."""
            return _LAYOUT is not None, _LAYOUT_ERROR
        #

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
        #

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
        #

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
        #

        def ascii_reader():
            """(memory, state offset, data offset) to view a compact ASCII str's characters in
    place (secret_store.py builds replies from them without an intermediate copy), or None."""
            if _LAYOUT is None:
                return None
            return _LAYOUT.memory, _STATE_OFFSET, _LAYOUT.ascii_offset
        #

        def send_wiped(transport, parts):
            """Write several replies as one buffer, zeroed at once when the kernel took all of it.

    When the transport kept some (the peer is not reading), it holds its own copy or a
    view of ours, so ours is left alone (docs/daemon.md "Secret memory").
    """
            payload = bytearray().join(parts)
            transport.write(payload)
            if not transport.get_write_buffer_size():
                zero(payload)
        #

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
        #

        # mlockall(2) flags (linux/mman.h)
        MCL_CURRENT = 1
        MCL_FUTURE = 2
        MCL_ONFAULT = 4
        #

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
        #

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
        #

        def _memlock_limit():
            import resource
            soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
            return "unlimited" if soft == resource.RLIM_INFINITY else "%d bytes" % soft

    # ------------------------------------------------------------------------
    class _m23:  # plugins/module_utils/_daemon/secret_store.py
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
        #
        #

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
        #

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
        #

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
        #

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
        #

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
        #

        def reply_of(held):
            """The ``get`` reply of a held secret (a string's bytearray, or an Entry)."""
            return held if held.__class__ is bytearray else held.reply
        #

        def same(held, other):
            """Constant-time: the same value (a string never equals a structured secret)."""
            return held.__class__ is other.__class__ and _compare(reply_of(held), reply_of(other))
        #

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
        #

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
        #

        def source_rank(source):
            """Precedence: the default source first, then the other sources by name."""
            return (source != DEFAULT_SOURCE, source)
        #

        def source_arg(req):
            """The request's ``source`` (absent or null: the default source)."""
            source = req.get("source")
            if source is None:
                return DEFAULT_SOURCE
            if not isinstance(source, str) or SOURCE_NAME_RE.fullmatch(source) is None:
                raise AdminFail(E_INVALID_PAYLOAD, "'source' must match %s" % SOURCE_NAME_PATTERN)
            return source
        #

        def _names_valid(secrets):
            """True when every key of ``secrets`` matches SECRET_NAME_PATTERN (False: check each to name the bad one)."""
            lines = "\n".join(secrets)
            # A name holding a newline would pass as two: the count of separators tells.
            return _NAME_LINES.fullmatch(lines) is not None and lines.count("\n") == len(secrets) - 1
        #

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
        #

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

    # ------------------------------------------------------------------------
    class _m24:  # plugins/module_utils/_daemon/server.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The server loop: the Broker's state, start-up, signals, idle sweep, drain; ``serve``."""
        #
        #

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
        #

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
        #

        def _loop_exception_handler(loop, context):
            exc = context.get("exception")
            # Only the type: exception text or context may quote request data.
            log("error", "event loop error: %s" % (type(exc).__name__ if exc is not None else "unknown"))
        #

        def _excepthook(exc_type, exc, tb):
            log("error", "fatal: %s" % exc_type.__name__)
        #

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
        #

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

    # ------------------------------------------------------------------------
    class _m25:  # plugins/module_utils/_daemon/sockets.py
        # -*- coding: utf-8 -*-
        # Copyright (c) remo.broker contributors
        # GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
        #
        # This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
        # generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

        """The daemon's Unix sockets and the per-project socket directories (docs/protocol.md).

A project's socket lives in ``RUN_DIR/projects/NAME/NAME.sock``; the directory keeps
its identity across daemon restarts (it is reused, never recreated), so a container
that bind-mounts it sees the new socket after a restart.  ``RUN_DIR/NAME.sock`` is a
symlink to the socket for host-side tools.
"""
        #
        #

        import errno
        import os
        import socket
        import stat
        import struct

        from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
        from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_DIR_MODE, PROJECTS_DIR_MODE
        #

        def bind_unix(path, mode, uid=None, gid=None, refuse_live=False):
            """A listening, non-blocking AF_UNIX socket at ``path`` (a stale socket is replaced).

    ``uid``: the one other account allowed to connect (:func:`grant_connect`).
    ``refuse_live``: raise OSError when another process still answers on ``path``.
    """
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISSOCK(st.st_mode):
                    raise OSError("refusing to replace non-socket %s" % path)
                if refuse_live and _answers(path):
                    raise OSError("another remo-broker is serving %s" % path)
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
                os.chmod(path, mode)
                chown(path, None, gid)
                grant_connect(path, uid, mode)
                sock.listen(1024)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock
        #

        def _answers(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(0.5)
            try:
                probe.connect(path)
                return True
            except OSError:
                return False
            finally:
                probe.close()
        #

        # POSIX ACL xattr (linux/posix_acl_xattr.h): version 2, then (tag u16, perm u16, id u32).
        _ACL_VERSION = 2
        _ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
        _ACL_UNDEFINED_ID = 0xFFFFFFFF
        #

        def grant_connect(path, uid, mode):
            """Let ``uid`` connect to the socket at ``path`` without handing it the file.

    A POSIX ACL entry ``user:UID:rw`` needs no capability (the daemon owns the
    socket), so the unit keeps no CAP_CHOWN. Where the file system has no ACLs the
    socket is chowned to ``uid`` instead (root or CAP_CHOWN). The daemon still
    checks SO_PEERCRED on every connection.
    """
            if uid is None or uid == os.geteuid():
                try:
                    os.removexattr(path, "system.posix_acl_access", follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
                return
            rw = 6
            acl = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in (
                (_ACL_USER_OBJ, (mode >> 6) & 7, _ACL_UNDEFINED_ID),
                (_ACL_USER, rw, uid),
                (_ACL_GROUP_OBJ, (mode >> 3) & 7, _ACL_UNDEFINED_ID),
                (_ACL_MASK, rw | ((mode >> 3) & 7), _ACL_UNDEFINED_ID),
                (_ACL_OTHER, mode & 7, _ACL_UNDEFINED_ID)))
            try:
                os.setxattr(path, "system.posix_acl_access", acl, follow_symlinks=False)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
            chown(path, uid)
        #

        def chown(path, uid=None, gid=None):
            """chown when it changes something; a daemon without CAP_CHOWN logs and goes on."""
            if (uid is None or uid == os.geteuid()) and gid is None:
                return
            st = os.lstat(path)
            if (uid is None or uid == st.st_uid) and (gid is None or gid == st.st_gid):
                return
            try:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
            except PermissionError:
                log("warning", "cannot chown %s (needs root or CAP_CHOWN)" % path)
        #

        def ensure_dir(path, mode):
            """Create ``path`` or reuse it (same inode), owned by the daemon with ``mode``.

    Refuses anything but a real directory.  A directory someone else created is taken
    over (chown needs root or CAP_CHOWN): the daemon must be able to replace the socket
    in it after every restart.
    """
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                pass
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise OSError("refusing to use %s: not a directory" % path)
            if st.st_uid != os.geteuid():
                os.chown(path, os.geteuid(), -1, follow_symlinks=False)
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
        #

        def open_project_dir(run_dir, project_dir):
            """RUN_DIR/projects/ and the project's own directory, both reused when present."""
            ensure_dir(os.path.dirname(project_dir), PROJECTS_DIR_MODE)
            ensure_dir(project_dir, PROJECT_DIR_MODE)
        #

        def link_socket(link, target):
            """Point the host-side path ``link`` at ``target`` (replaces a stale socket or link)."""
            try:
                st = os.lstat(link)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISLNK(st.st_mode) and os.readlink(link) == target:
                    return
                if not (stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
                    raise OSError("refusing to replace %s: not a socket or symlink" % link)
                os.unlink(link)
            os.symlink(target, link)
        #

        def remove(path):
            try:
                os.unlink(path)
            except OSError:
                pass


_MODULES = (
    ('ansible_collections.remo.broker.plugins.module_utils._protocol', 'plugins/module_utils/_protocol.py', '_m00', 112, 208),
    ('ansible_collections.remo.broker.plugins.module_utils._manifest', 'plugins/module_utils/_manifest.py', '_m01', 323, 1304),
    ('ansible_collections.remo.broker.plugins.module_utils._broker_client', 'plugins/module_utils/_broker_client.py', '_m02', 1630, 211),
    ('ansible_collections.remo.broker.plugins.module_utils._trusted_path', 'plugins/module_utils/_trusted_path.py', '_m03', 1844, 216),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.admin_connection', 'plugins/module_utils/_daemon/admin_connection.py', '_m04', 2063, 48),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.admin_requests', 'plugins/module_utils/_daemon/admin_requests.py', '_m05', 2114, 334),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_checkpoint', 'plugins/module_utils/_daemon/audit_checkpoint.py', '_m06', 2451, 126),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_coalesce', 'plugins/module_utils/_daemon/audit_coalesce.py', '_m07', 2580, 63),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event', 'plugins/module_utils/_daemon/audit_event.py', '_m08', 2646, 45),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_file', 'plugins/module_utils/_daemon/audit_file.py', '_m09', 2694, 149),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_queue', 'plugins/module_utils/_daemon/audit_queue.py', '_m10', 2846, 450),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.audit_writer', 'plugins/module_utils/_daemon/audit_writer.py', '_m11', 3299, 345),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.cli', 'plugins/module_utils/_daemon/cli.py', '_m12', 3647, 456),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.connection', 'plugins/module_utils/_daemon/connection.py', '_m13', 4106, 306),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.connection_limits', 'plugins/module_utils/_daemon/connection_limits.py', '_m14', 4415, 190),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.listener', 'plugins/module_utils/_daemon/listener.py', '_m15', 4608, 153),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation', 'plugins/module_utils/_daemon/peer_attestation.py', '_m16', 4764, 148),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.process', 'plugins/module_utils/_daemon/process.py', '_m17', 4915, 89),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.project_requests', 'plugins/module_utils/_daemon/project_requests.py', '_m18', 5007, 152),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.project_turns', 'plugins/module_utils/_daemon/project_turns.py', '_m19', 5162, 84),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.registry', 'plugins/module_utils/_daemon/registry.py', '_m20', 5249, 301),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.replies', 'plugins/module_utils/_daemon/replies.py', '_m21', 5553, 46),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.secret_memory', 'plugins/module_utils/_daemon/secret_memory.py', '_m22', 5602, 267),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.secret_store', 'plugins/module_utils/_daemon/secret_store.py', '_m23', 5872, 414),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.server', 'plugins/module_utils/_daemon/server.py', '_m24', 6289, 282),
    ('ansible_collections.remo.broker.plugins.module_utils._daemon.sockets', 'plugins/module_utils/_daemon/sockets.py', '_m25', 6574, 165),
)

FINDER = install(__file__, _MODULES, sys._getframe().f_code)  # pylint: disable=protected-access

if __name__ == "__main__":
    from ansible_collections.remo.broker.plugins.module_utils._daemon.cli import main
    sys.exit(main(sys.argv[1:], __file__))
