# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The command-line client (``remo_broker.py status|push|get|...``) and ``serve``'s arguments."""

from __future__ import annotations

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


def _client(args, socket_path=None):
    path = socket_path or args.socket or os.environ.get(SOCKET_ENV_VAR) or admin_socket_path(args.run_dir)
    return BrokerClient(path, timeout=args.timeout)


def _print_json(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


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


def _print_reply(client, op, **fields):
    """Send one request and print the reply (minus ``ok``) as JSON."""
    try:
        reply = client.request(op, **fields)
    except BrokerError as exc:
        return _report_error(exc)
    reply.pop("ok", None)
    _print_json(reply)
    return EXIT_OK


def _admin_call(args, op, **fields):
    return _print_reply(_client(args), op, **fields)


def cmd_status(args):
    return _admin_call(args, OP_STATUS)


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


def cmd_clear(args):
    return _admin_call(args, OP_CLEAR_CREDS, **({"source": args.source} if args.source is not None else {}))


def cmd_register(args):
    fields = {"name": args.name, "project_path": os.path.abspath(args.path)}
    if args.manifest is not None:
        fields["manifest_path"] = os.path.abspath(args.manifest)
    if args.expected_uid is not None:
        fields["expected_uid"] = args.expected_uid
    return _admin_call(args, OP_REGISTER, **fields)


def cmd_unregister(args):
    return _admin_call(args, OP_UNREGISTER, name=args.name)


def cmd_reload(args):
    return _admin_call(args, OP_RELOAD, name=args.name)


def cmd_attest(args):
    if args.clear:
        return _admin_call(args, OP_ATTEST, name=args.name, container_id=None)
    if not args.container or args.pid is None:
        sys.stderr.write("remo-broker: attest needs --container ID and --pid PID, or --clear\n")
        return EXIT_USAGE
    return _admin_call(args, OP_ATTEST, name=args.name, container_id=args.container, pid=args.pid)


def _project_client(args):
    if args.socket:
        return BrokerClient(args.socket, timeout=args.timeout)
    if args.project:
        return BrokerClient(project_socket_path(args.run_dir, args.project), timeout=args.timeout)
    env = os.environ.get(SOCKET_ENV_VAR)
    if env:
        return BrokerClient(env, timeout=args.timeout)
    return None


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


def cmd_ping(args):
    return _print_reply(_project_client(args) or _client(args), OP_PING)


def cmd_info(args):
    client = _project_client(args)
    if client is None:
        sys.stderr.write("remo-broker: info needs --socket or --project\n")
        return EXIT_USAGE
    return _print_reply(client, OP_INFO)


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


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


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


def cmd_serve(args):
    from ansible_collections.remo.broker.plugins.module_utils._daemon.server import serve
    return serve(args, args.program)


def main(argv=None, program=None):
    """Run one command; ``program`` is the daemon file (the audit writer process imports it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.program = os.path.abspath(program or sys.argv[0])
    return args.func(args)
