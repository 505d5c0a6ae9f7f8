# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manifest provenance and start-up checks, attacked as a project's container would.

A real daemon (the generated file, through the harness) runs as root.  Project A's
"container" is a mount namespace (``unshare -m``) with A's workspace bind-mounted
read-write and the approved manifest bind-mounted read-only on top, and the attacker's
code runs in it as A's unprivileged uid (``setpriv``).  Other local users are real uids
too.  Each test asserts that the attack fails: A's allowlist never widens, B's secret is
never served to A, and the daemon refuses to start on directories others can write.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import CANARIES, write_manifest

# The attacker's processes (uid 1000 in the emulated container) run stdlib-only code on
# the host's Python: a pyenv interpreter under /root is unreadable to them.
CHILD_PYTHON = "/usr/bin/python3"

A_UID = 1000        # project A's container user
B_UID = 1001        # project B's container user
OTHER_UID = 1002    # another local account on the instance
A_VALUE = CANARIES[0]
B_VALUE = CANARIES[3]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "setpriv", "mount")),
    reason="needs root, unshare(1), setpriv(1) and mount(8)")

# Runs as the project's uid: one request on a project socket, the reply printed.
_PROJECT_REQUEST = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(json.dumps({"op": "get", "name": sys.argv[2]}).encode() + b"\n")
print(s.makefile("rb").readline().decode().strip())
"""

# Runs as root in a new mount namespace: the container's mounts, then the attacker.
_CONTAINER = r"""
import subprocess, sys
workspace, approved, root, uid, attack = sys.argv[1:6]
def run(*argv):
    subprocess.run(argv, check=True)
run("mount", "--make-rprivate", "/")
run("mount", "--bind", workspace, root)
run("mount", "--bind", approved, root + "/.remo/manifest.toml")
run("mount", "-o", "remount,bind,ro", root + "/.remo/manifest.toml")
sys.exit(subprocess.run(["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--",
                         sys.executable, "-c", attack, root] + sys.argv[6:]).returncode)
"""

# Runs as the project's uid inside the container: what a malicious dependency can do.
_ATTACK = r"""
import json, os, sys
root, variant, target, round_ = sys.argv[1:5]
remo = os.path.join(root, ".remo")
manifest = os.path.join(remo, "manifest.toml")
result = {"uid": os.getuid()}
try:
    open(manifest, "a").close()
    result["mount_writable"] = True
except OSError as exc:
    result["mount_writable"] = exc.errno
os.rename(remo, remo + ".moved-" + round_)     # the read-only mount moves with it
result["renamed"] = True
if variant == "link-dir":
    os.symlink(target, remo)
else:
    os.mkdir(remo)
    if variant == "wider":
        with open(manifest, "w") as handle:
            handle.write('schema_version = 2\nproject = "a"\n[secrets.A_TOKEN]\n[secrets.B_SECRET]\n[secrets.UNLISTED]\n')
    else:
        os.symlink(target, manifest)
print(json.dumps(result))
"""

WIDER = ("A_TOKEN", "B_SECRET", "UNLISTED")


def _as_uid(uid, code, *args):
    argv = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", "--", CHILD_PYTHON, "-c", code]
    return subprocess.run(argv + [str(arg) for arg in args], capture_output=True, text=True, timeout=120, check=False)


def _get_as(broker, project, uid, name):
    """``get NAME`` on PROJECT's socket as ``uid`` (the only uid the socket serves)."""
    res = _as_uid(uid, _PROJECT_REQUEST, broker.project_socket(project), name)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _chown_tree(path, uid):
    for dirpath, _dirs, files in os.walk(path):
        os.chown(dirpath, uid, uid)
        for fname in files:
            os.chown(os.path.join(dirpath, fname), uid, uid)


def _manifest_of(project_dir):
    return os.path.join(project_dir, ".remo", "manifest.toml")


def _project_status(broker, name):
    return next(p for p in broker.status()["projects"] if p["name"] == name)


def _assert_confined(broker):
    """A's allowlist is the approved one, A gets its own secret and nothing else."""
    status = _project_status(broker, "a")
    assert status["allowlist"] == ["A_TOKEN"], status
    assert status["manifest_path"] == broker.approved["a"]
    for name in ("B_SECRET", "UNLISTED"):
        reply = _get_as(broker, "a", A_UID, name)
        assert reply["ok"] is False and reply["code"] == "denied", reply
    assert _get_as(broker, "a", A_UID, "A_TOKEN")["value"] == A_VALUE


@pytest.fixture
def instance(broker_factory):
    """A daemon with projects A and B, each registered with its approved manifest.

    BASE/approved/NAME/.remo/manifest.toml is root-owned (what the project_manifest role
    installs); BASE/ws/NAME is the project's workspace, owned by its uid, with the
    proposal in it.
    """
    broker = broker_factory(start=False)
    os.chmod(broker.base, 0o755)       # the project uids reach their sockets through it
    broker.start()
    broker.approved = {}
    broker.workspaces = {}
    for name, uid, secrets in (("a", A_UID, ("A_TOKEN",)), ("b", B_UID, ("B_SECRET",))):
        approved = write_manifest(os.path.join(broker.base, "approved", name), name, secrets)
        os.chmod(os.path.join(broker.base, "approved"), 0o755)
        workspace = write_manifest(os.path.join(broker.base, "ws", name), name, secrets)
        os.chmod(os.path.join(broker.base, "ws"), 0o755)
        _chown_tree(workspace, uid)
        broker.approved[name] = _manifest_of(approved)
        broker.workspaces[name] = workspace
        broker.admin_ok("register", name=name, project_path=workspace, manifest_path=_manifest_of(approved),
                        expected_uid=uid)
    broker.admin_ok("push-creds", secrets={"A_TOKEN": A_VALUE, "B_SECRET": B_VALUE, "UNLISTED": "unlisted"})
    return broker


def _restart(broker, factory):
    assert broker.stop() == 0
    again = factory(start=False, base=broker.base)
    again.approved, again.workspaces = broker.approved, broker.workspaces
    again.start()
    again.admin_ok("push-creds", secrets={"A_TOKEN": A_VALUE, "B_SECRET": B_VALUE, "UNLISTED": "unlisted"})
    return again


def _sighup(broker):
    """SIGHUP, and wait until both projects' reload events are written."""
    before = sum(1 for e in broker.audit_events() if e.get("event") == "reload")
    broker.send_signal(signal.SIGHUP)
    broker.audit_events(until=lambda events: sum(1 for e in events if e.get("event") == "reload") >= before + 2)


# ---------------------------------------------------------------------------
# (a) the container rename attack
# ---------------------------------------------------------------------------
def test_container_rename_attack_cannot_widen_the_allowlist(instance, broker_factory, tmp_path):
    broker = instance
    other = write_manifest(str(tmp_path / "other"), "a", WIDER)     # root-owned, valid for A, wider
    os.chmod(tmp_path, 0o755)
    targets = {"wider": "-", "link-b": broker.approved["b"], "link-any": _manifest_of(other),
               "link-dir": os.path.join(other, ".remo")}
    workspace = broker.workspaces["a"]
    ctr_root = os.path.join(broker.base, "ctr-workspace")     # where A's uid can reach it
    os.mkdir(ctr_root, 0o755)
    for round_, (variant, target) in enumerate(targets.items()):
        res = subprocess.run(["unshare", "-m", CHILD_PYTHON, "-c", _CONTAINER, workspace, broker.approved["a"],
                              ctr_root, str(A_UID), _ATTACK, variant, target, str(round_)],
                             capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr
        done = json.loads(res.stdout)
        # The attack really happened: as A's uid, the read-only mount could not be written,
        # yet the rename went through and the host's workspace now holds the attacker's file.
        assert done["uid"] == A_UID and done["renamed"] is True, done
        assert done["mount_writable"] in (errno.EACCES, errno.EROFS), done
        planted = os.path.join(workspace, ".remo", "manifest.toml")
        if variant == "wider":
            assert os.stat(planted).st_uid == A_UID and "B_SECRET" in open(planted, encoding="utf-8").read()
        elif variant == "link-dir":
            assert os.path.islink(os.path.join(workspace, ".remo"))
        else:
            assert os.readlink(planted) == target
        _sighup(broker)
        _assert_confined(broker)
        reply = broker.admin_ok("reload", name="a")
        assert reply["allowlist"] == ["A_TOKEN"] and reply["changed"] is False
        _assert_confined(broker)
    broker = _restart(broker, broker_factory)
    _assert_confined(broker)


def test_registration_that_points_into_a_workspace_is_refused_on_start(instance, broker_factory):
    """A registrations file from before approved copies names only the workspace: after a
    restart its manifest (owned by the project's uid) is refused, the allowlist empty."""
    broker = instance
    write_manifest(broker.workspaces["a"], "a", WIDER)
    _chown_tree(broker.workspaces["a"], A_UID)
    assert broker.stop() == 0
    state = os.path.join(broker.state_dir, "registrations.json")
    with open(state, encoding="utf-8") as handle:
        data = json.load(handle)
    for entry in data["projects"]:
        entry.pop("manifest_path")
    with open(state, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    again = broker_factory(start=False, base=broker.base)
    again.start()
    again.admin_ok("push-creds", secrets={"A_TOKEN": A_VALUE, "B_SECRET": B_VALUE})
    status = _project_status(again, "a")
    workspace_manifest = _manifest_of(broker.workspaces["a"])
    assert status["allowlist"] == [] and status["manifest_path"] == workspace_manifest
    assert workspace_manifest in status["manifest_error"] and "owned by" in status["manifest_error"], status
    for name in WIDER:
        assert _get_as(again, "a", A_UID, name)["code"] == "denied"
    # B's workspace is untouched but owned by B's uid too: refused the same way.
    assert _project_status(again, "b")["allowlist"] == []
    assert "project a: manifest not loaded" in again.stderr()


# ---------------------------------------------------------------------------
# (b) symlinks, (c) owners and modes: refused with manifest_invalid naming the path
# ---------------------------------------------------------------------------
def test_symlinked_manifest_is_refused_and_the_allowlist_kept(instance, tmp_path):
    broker = instance
    other = write_manifest(str(tmp_path / "other"), "a", WIDER)
    os.chmod(tmp_path, 0o755)
    approved = broker.approved["a"]
    os.unlink(approved)
    os.symlink(_manifest_of(other), approved)
    reply = broker.admin("reload", name="a")
    assert reply["code"] == "manifest_invalid" and approved in reply["message"], reply
    assert "symbolic link" in reply["message"] and reply["details"]["file"] == approved
    _sighup(broker)
    status = _project_status(broker, "a")
    assert status["allowlist"] == ["A_TOKEN"] and "symbolic link" in status["manifest_error"]
    assert _get_as(broker, "a", A_UID, "B_SECRET")["code"] == "denied"


def test_symlinked_directory_component_is_refused_naming_it(instance, tmp_path):
    broker = instance
    real = write_manifest(str(tmp_path / "real-c"), "c", ("A_TOKEN", "B_SECRET"))
    os.chmod(tmp_path, 0o755)
    linked = os.path.join(broker.base, "approved", "c")
    os.symlink(real, linked)
    reply = broker.admin("register", name="c", project_path=broker.workspaces["a"],
                         manifest_path=_manifest_of(linked), expected_uid=A_UID)
    assert reply["code"] == "manifest_invalid", reply
    assert "(%s)" % linked in reply["message"] and "symbolic link" in reply["message"], reply
    assert "c" not in [p["name"] for p in broker.status()["projects"]]


@pytest.mark.parametrize("manifest_path", ["relative/manifest.toml", "/tmp/\ud800/manifest.toml", 7, "/a\u0000b"])
def test_register_refuses_a_manifest_path_that_names_no_file(instance, manifest_path):
    reply = instance.admin("register", name="a", project_path=instance.workspaces["a"], manifest_path=manifest_path)
    assert reply["code"] == "invalid_payload" and "'manifest_path'" in reply["message"], reply
    assert _project_status(instance, "a")["manifest_path"] == instance.approved["a"]


def test_manifest_owned_by_a_project_uid_is_refused(instance):
    broker = instance
    # The proposal in A's workspace: owned by A's uid, so the container could rewrite it.
    proposal = _manifest_of(broker.workspaces["a"])
    reply = broker.admin("register", name="a", project_path=broker.workspaces["a"], manifest_path=proposal,
                         expected_uid=A_UID)
    assert reply["code"] == "manifest_invalid" and proposal in reply["message"], reply
    assert "owned by" in reply["message"]
    assert _project_status(broker, "a")["manifest_path"] == broker.approved["a"]
    os.chown(broker.approved["a"], A_UID, A_UID)
    reply = broker.admin("reload", name="a")
    assert reply["code"] == "manifest_invalid" and "file is owned by" in reply["message"], reply
    assert _project_status(broker, "a")["allowlist"] == ["A_TOKEN"]


@pytest.mark.parametrize("mode", [0o775, 0o757], ids=["group-writable", "world-writable"])
def test_manifest_in_a_group_or_world_writable_directory_is_refused(instance, broker_factory, mode):
    broker = instance
    remo = os.path.dirname(broker.approved["a"])
    os.chmod(remo, mode)
    reply = broker.admin("reload", name="a")
    assert reply["code"] == "manifest_invalid", reply
    assert "(%s)" % remo in reply["message"] and "writable by group or others" in reply["message"], reply
    assert "chmod go-w %s" % remo in reply["message"]
    _sighup(broker)
    assert _project_status(broker, "a")["allowlist"] == ["A_TOKEN"]
    # On start the project stays registered, with an empty allowlist and the reason.
    again = _restart(broker, broker_factory)
    status = _project_status(again, "a")
    assert status["allowlist"] == [] and "writable by group or others" in status["manifest_error"]
    assert _get_as(again, "a", A_UID, "A_TOKEN")["code"] == "denied"
    assert _project_status(again, "b")["allowlist"] == ["B_SECRET"]


# ---------------------------------------------------------------------------
# (d) start-up checks, (e) another local user rewrites the registrations
# ---------------------------------------------------------------------------
def _refused_start(daemon):
    """Start ``daemon``; it must exit before READY=1.  Its stderr."""
    with pytest.raises(AssertionError, match="exited with 2") as info:
        daemon.start()
    return str(info.value)


@pytest.mark.parametrize("which", ["run_dir", "state_dir", "log_dir"])
@pytest.mark.parametrize("problem", ["world-writable", "foreign-owned", "symlink"])
def test_daemon_refuses_directories_others_can_write(broker_factory, tmp_path, which, problem):
    daemon = broker_factory(start=False)
    for directory, mode in ((daemon.run_dir, 0o755), (daemon.state_dir, 0o700), (daemon.log_dir, 0o750)):
        os.mkdir(directory, mode)
    path = getattr(daemon, which)
    if problem == "world-writable":
        os.chmod(path, 0o777)
        fix = "chmod go-w %s" % path
    elif problem == "foreign-owned":
        os.chown(path, OTHER_UID, OTHER_UID)
        fix = "chown %d %s" % (os.geteuid(), path)
    else:
        os.chmod(tmp_path, 0o755)
        os.rename(path, str(tmp_path / "real"))
        os.symlink(str(tmp_path / "real"), path)
        fix = "replace it with a real directory"
    err = _refused_start(daemon)
    assert "refusing to start: %s" % path in err, err
    assert fix in err, err
    assert not os.path.exists(daemon.admin_socket)


def test_audit_log_directory_may_sit_in_a_root_owned_group_writable_parent(broker_factory, tmp_path):
    """Ubuntu's /var/log is 0775 root:syslog: the audit log directory below it is accepted,
    a run or state directory below such a parent is not."""
    os.chmod(tmp_path, 0o755)
    var_log = tmp_path / "var-log"
    var_log.mkdir()
    os.chmod(var_log, 0o775)
    audit_dir = var_log / "remo-broker"
    audit_dir.mkdir(mode=0o750)
    daemon = broker_factory("--audit-log", str(audit_dir / "audit.jsonl"))
    assert daemon.status()["audit"]["path"] == str(audit_dir / "audit.jsonl")
    assert daemon.stop() == 0
    run_dir = var_log / "run"
    run_dir.mkdir(mode=0o755)
    refused = broker_factory("--run-dir", str(run_dir), start=False)
    err = _refused_start(refused)
    assert "refusing to start: %s: run directory %s: directory is writable by group" % (var_log, run_dir) in err, err


def test_registrations_rewritten_by_another_user_in_a_loose_state_dir_refuse_start(instance, broker_factory):
    broker = instance
    assert broker.stop() == 0
    os.chmod(broker.state_dir, 0o777)      # a pre-existing, world-writable state directory
    forged = os.path.join(broker.state_dir, "registrations.json")
    rewrite = r"""
import json, os, sys
path = sys.argv[1]
with open(path + ".forged", "w") as handle:
    json.dump({"version": 1, "projects": [
        {"name": "b", "project_path": sys.argv[2], "manifest_path": sys.argv[3], "expected_uid": int(sys.argv[4])}]}, handle)
os.rename(path + ".forged", path)       # the directory, not the file's mode, decides who may replace it
print(os.stat(path).st_uid)
"""
    res = _as_uid(OTHER_UID, rewrite, forged, broker.workspaces["b"], broker.approved["b"], A_UID)
    assert res.returncode == 0 and res.stdout.strip() == str(OTHER_UID), res.stderr   # the rewrite worked
    again = broker_factory(start=False, base=broker.base)
    err = _refused_start(again)
    assert "%s: state directory is writable by group or others (mode 0777)" % broker.state_dir in err, err
    assert "chmod go-w %s" % broker.state_dir in err
    assert not os.path.exists(again.project_socket("b"))
    # Once the directory is tight again, the daemon starts (the admin re-registers).
    os.chmod(broker.state_dir, 0o700)
    os.unlink(forged)
    again = broker_factory(start=False, base=broker.base)
    again.start()
    assert again.status()["projects"] == []
