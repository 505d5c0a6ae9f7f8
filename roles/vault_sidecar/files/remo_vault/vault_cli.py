# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo-vault and remo's helper commands, run inside the sidecar.

Values arrive on stdin only (never argv, which every process on the host can read in
/proc) and are never printed.  ``--json`` replies carry names and booleans only.
"""

import argparse
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile

import vault_broker
import vault_store

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3
GH_COMMAND = os.environ.get("REMO_VAULT_GH", "gh")


def _reply(args, text, **fields):
    if getattr(args, "json", False):
        print(json.dumps(fields, sort_keys=True))
    else:
        print(text)


def _read_value(args):
    data = sys.stdin.buffer.read(vault_store.MAX_VALUE_BYTES + 2)
    if not args.raw and data.endswith(b"\n"):
        data = data[:-1]
    if len(data) > vault_store.MAX_VALUE_BYTES:
        raise vault_store.VaultError("the value is larger than %d bytes" % vault_store.MAX_VALUE_BYTES)
    if not data:
        raise vault_store.VaultError("no value on stdin (values are read from stdin, never from arguments)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise vault_store.VaultError("the value is not UTF-8 text") from None
    return data


def store_value(name, value, check=False, store=None):
    """Set ``name``; returns (changed, existed).  The comparison happens here, in the
    sidecar, against the decrypted old value: nothing about either value leaves."""
    store = store or vault_store.Store()
    fd = store.lock()
    try:
        store.load()
        existed = name in store.values
        if existed and hmac.compare_digest(store.decrypt_one(name), value):
            return False, existed
        if not check:
            recipient = store.current_recipient()
            store.values[name] = vault_store.encrypt(value, recipient)
            store.recipients = [recipient]
            store.save()
        return True, existed
    finally:
        os.close(fd)


def cmd_set(args):
    name = vault_store.check_name(args.name)
    changed, existed = store_value(name, _read_value(args), check=args.check)
    state = ("would be set" if args.check else "set") if changed else "unchanged"
    _reply(args, "%s: %s" % (name, state), name=name, changed=changed, existed=existed, check=args.check)
    return EXIT_OK


def cmd_rm(args):
    name = vault_store.check_name(args.name)
    store = vault_store.Store()
    fd = store.lock()
    try:
        changed = name in store.load().values
        if changed and not args.check:
            del store.values[name]
            store.save()
    finally:
        os.close(fd)
    state = ("would be removed" if args.check else "removed") if changed else "absent"
    _reply(args, "%s: %s" % (name, state), name=name, changed=changed, existed=changed, check=args.check)
    return EXIT_OK


def cmd_list(args):
    names = sorted(vault_store.Store().load().values)
    if args.json:
        print(json.dumps({"names": names}))
    else:
        for name in names:
            print(name)
    return EXIT_OK


def cmd_rekey(args):
    """Re-encrypt every value to the identity in ``--to`` (the key rotation's middle step)."""
    store = vault_store.Store()
    recipient = vault_store.recipient_of(args.to)
    fd = store.lock()
    try:
        store.load()
        plain = store.decrypt_all()
        # Already done (a re-run after an interrupted rotation): every value opens with
        # the new identity alone and the store names only its recipient.
        done = store.recipients == [recipient] and all(
            hmac.compare_digest(vault_store.decrypt(store.values[n], [args.to]).decode("utf-8"), v)
            for n, v in plain.items()) if plain else store.recipients == [recipient]
        if not done:
            store.values = {n: vault_store.encrypt(v.encode("utf-8"), recipient) for n, v in plain.items()}
            store.recipients = [recipient]
            store.save()
    finally:
        os.close(fd)
    _reply(args, "re-encrypted %d secret(s)" % len(plain) if not done else "already encrypted to that key",
           changed=not done, count=len(plain))
    return EXIT_OK


def _scrub(directory):
    """Overwrite and remove everything gh wrote (it lives on the container's tmpfs)."""
    for root, _dirs, files in os.walk(directory):
        for fname in files:
            path = os.path.join(root, fname)
            try:
                size = os.path.getsize(path)
                with open(path, "r+b") as fh:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    shutil.rmtree(directory, ignore_errors=True)


def cmd_login(args):
    """``gh auth login`` against a throwaway config dir, then keep only the token, in the store."""
    name = vault_store.check_name(args.name)
    gh = args.gh or GH_COMMAND
    if shutil.which(gh) is None:
        raise vault_store.VaultError("%s not found (set REMO_VAULT_GH or --gh)" % gh)
    config_dir = tempfile.mkdtemp(prefix="remo-gh-", dir=os.environ.get("TMPDIR", "/tmp"))
    env = dict(os.environ, GH_CONFIG_DIR=config_dir)
    env.pop("GH_TOKEN", None)
    env.pop("GITHUB_TOKEN", None)
    try:
        rc = subprocess.call([gh, "auth", "login", "--hostname", args.hostname] + args.gh_args, env=env)
        if rc != 0:
            raise vault_store.VaultError("%s auth login exited with %d; nothing stored" % (gh, rc))
        proc = subprocess.run([gh, "auth", "token", "--hostname", args.hostname], env=env,
                              capture_output=True, timeout=30, check=False)
        token = proc.stdout.strip()
        if proc.returncode != 0 or not token:
            raise vault_store.VaultError("%s auth token returned no token; nothing stored" % gh)
        changed, _existed = store_value(name, token)
        del token
    finally:
        _scrub(config_dir)
    print("%s: %s (gh's config was discarded; run gh with GH_TOKEN from the broker)"
          % (name, "stored" if changed else "unchanged"))
    return EXIT_OK


# --- remo's helper names ------------------------------------------------------
def cmd_list_creds(args):
    """remo-list-creds: the store's names, and whether the broker holds as many."""
    names = sorted(vault_store.Store().load().values)
    try:
        held = vault_broker.status().get("secret_count")
    except (vault_broker.BrokerUnavailable, vault_broker.BrokerRefused) as exc:
        held = "unknown (%s)" % exc
    for name in names:
        print(name)
    print("# %d in the vault; the broker holds %s" % (len(names), held), file=sys.stderr)
    return EXIT_OK


def cmd_reload(args):
    """remo-reload: push the store to the broker now (the watcher does this on change)."""
    secrets = vault_store.Store().load().decrypt_all()
    reply = vault_broker.push(secrets)
    print("pushed %d secret(s) at %s" % (reply.get("secret_count", len(secrets)), reply.get("loaded_at")))
    return EXIT_OK


def cmd_vend_status(args):
    """remo-vend-status: what the broker is serving, names and counts only."""
    st = vault_broker.status()
    if args.json:
        keep = ("protocol_version", "daemon_version", "pid", "uptime_seconds", "secret_count", "secrets_loaded_at")
        print(json.dumps({k: st.get(k) for k in keep} | {"projects": [
            {k: p.get(k) for k in ("name", "allowlist", "counters", "manifest_error")} for p in st.get("projects", [])]}))
        return EXIT_OK
    print("broker pid %s, up %.0fs, protocol %s, %s secret(s) loaded at %s" % (
        st.get("pid"), st.get("uptime_seconds") or 0, st.get("protocol_version"), st.get("secret_count"),
        st.get("secrets_loaded_at")))
    for project in st.get("projects", []):
        counters = project.get("counters") or {}
        print("  %s: %d name(s) allowed; served %s, denied %s%s" % (
            project.get("name"), len(project.get("allowlist") or []), counters.get("allowed", 0),
            counters.get("denied", 0), "; MANIFEST ERROR: %s" % project["manifest_error"] if project.get("manifest_error") else ""))
    return EXIT_OK


def cmd_test_project(args):
    """remo-test-project NAME: does the vault hold every name the project's manifest allows?"""
    st = vault_broker.status()
    project = next((p for p in st.get("projects", []) if p.get("name") == args.project), None)
    if project is None:
        raise vault_store.VaultError("project %r is not registered with the broker" % args.project)
    held = set(vault_store.Store().load().values)
    missing = 0
    for name in project.get("allowlist") or []:
        ok = name in held
        missing += not ok
        print("%-8s %s" % ("ok" if ok else "MISSING", name))
    return EXIT_MISSING if missing else EXIT_OK


def _parser(prog):
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--json", action="store_true", help="answer with one JSON object (names only)")
    if prog != "remo-vault":
        return parser
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("set", help="set NAME to the value on stdin")
    p.add_argument("name")
    p.add_argument("--check", action="store_true", help="only say whether it would change")
    p.add_argument("--raw", action="store_true", help="keep a trailing newline")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_set)
    p = sub.add_parser("rm", help="remove NAME")
    p.add_argument("name")
    p.add_argument("--check", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rm)
    p = sub.add_parser("list", help="the names in the store")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("rekey", help="re-encrypt the store to another identity file")
    p.add_argument("--to", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rekey)
    p = sub.add_parser("login", help="log in with a CLI and keep its token in the store")
    p.add_argument("tool", choices=["gh"])
    p.add_argument("--name", default="GH_TOKEN")
    p.add_argument("--hostname", default="github.com")
    p.add_argument("--gh", help="the gh binary (default: $REMO_VAULT_GH or gh)")
    p.add_argument("gh_args", nargs=argparse.REMAINDER, help="more arguments for gh auth login")
    p.set_defaults(func=cmd_login)
    return parser


HELPERS = {
    "remo-list-creds": cmd_list_creds,
    "remo-reload": cmd_reload,
    "remo-vend-status": cmd_vend_status,
    "remo-test-project": cmd_test_project,
}


def main(prog, argv):
    parser = _parser(prog)
    if prog == "remo-test-project":
        parser.add_argument("project")
    args = parser.parse_args(argv)
    func = HELPERS.get(prog) or args.func
    try:
        return func(args)
    except (vault_store.VaultError, vault_broker.BrokerUnavailable, vault_broker.BrokerRefused) as exc:
        print("%s: error: %s" % (prog, exc), file=sys.stderr)
        return EXIT_ERROR
