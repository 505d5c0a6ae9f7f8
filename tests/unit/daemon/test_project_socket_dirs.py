# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Per-project socket directories: RUN_DIR/projects/NAME/ keeps its identity across restarts.

A container bind-mounts that directory (read-only) at /run/remo-broker; after a daemon
restart the new socket must be reachable through the same mount.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon, request


def _restart(broker):
    assert broker.stop() == 0
    again = Daemon(broker.base)
    again.start()
    return again


def test_restart_reuses_the_project_directory_and_replaces_the_socket(broker_factory):
    broker = broker_factory()
    reply = broker.add_project("keep", ("TOKEN",))
    directory = reply["socket_dir"]
    before = os.lstat(directory)
    again = _restart(broker)
    try:
        after = os.lstat(directory)
        assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev), "the directory was recreated"
        assert stat.S_ISSOCK(os.lstat(reply["socket_path"]).st_mode)
        assert request(reply["socket_path"], {"op": "ping"})["project"] == "keep"   # the new daemon's socket
        assert request(again.project_socket("keep"), {"op": "ping"})["project"] == "keep"   # via the symlink
        (project,) = again.admin_ok("status")["projects"]
        assert (project["socket_dir"], project["socket_path"]) == (directory, reply["socket_path"])
    finally:
        again.stop()


def test_unregister_removes_directory_socket_and_symlink(broker):
    reply = broker.add_project("gone", ("TOKEN",))
    assert os.path.islink(broker.project_socket("gone"))
    assert broker.admin_ok("unregister", name="gone")["changed"] is True
    assert not os.path.lexists(reply["socket_path"])
    assert not os.path.lexists(reply["socket_dir"])
    assert not os.path.lexists(broker.project_socket("gone"))


def test_a_file_where_the_directory_belongs_is_refused(broker):
    os.makedirs(os.path.join(broker.run_dir, "projects"), exist_ok=True)
    with open(os.path.join(broker.run_dir, "projects", "trap"), "w", encoding="utf-8") as handle:
        handle.write("not a directory")
    broker.add_project("trap", ("TOKEN",), register=False)
    reply = broker.admin("register", name="trap", project_path=os.path.join(broker.projects_root, "trap"))
    assert reply["ok"] is False and reply["code"] == "internal_error"
    assert "not a directory" in reply["message"]
    assert broker.admin_ok("status")["projects"] == []


def test_a_symlink_where_the_directory_belongs_is_refused(broker, tmp_path):
    os.makedirs(os.path.join(broker.run_dir, "projects"), exist_ok=True)
    os.symlink(str(tmp_path), os.path.join(broker.run_dir, "projects", "link"))
    broker.add_project("link", ("TOKEN",), register=False)
    reply = broker.admin("register", name="link", project_path=os.path.join(broker.projects_root, "link"))
    assert reply["ok"] is False and "not a directory" in reply["message"]
    assert os.listdir(str(tmp_path)) == []     # nothing created through the symlink


# A process inside its own mount namespace: bind-mounts the project directory read-only
# at MOUNT (as the devcontainer launcher does), then pings MOUNT/NAME.sock on each stdin line.
_IN_NAMESPACE = r"""
import json, os, socket, subprocess, sys
src, mnt, name = sys.argv[1:4]
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "--bind", src, mnt], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", mnt], check=True)
try:
    open(os.path.join(mnt, "probe"), "w")
    print(json.dumps({"writable": True}), flush=True)
except OSError as exc:
    print(json.dumps({"writable": False, "errno": exc.errno}), flush=True)
for _line in sys.stdin:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(os.path.join(mnt, name + ".sock"))
        s.sendall(b'{"op":"ping"}\n')
        print(s.makefile("rb").readline().decode().strip(), flush=True)
    except OSError as exc:
        print(json.dumps({"error": type(exc).__name__}), flush=True)
    finally:
        s.close()
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_read_only_bind_mount_of_the_directory_survives_a_restart(broker_factory, tmp_path):
    broker = broker_factory()
    reply = broker.add_project("ctr", ("TOKEN",))
    mount = tmp_path / "run-remo-broker"
    mount.mkdir()
    proc = subprocess.Popen(["unshare", "-m", sys.executable, "-c", _IN_NAMESPACE, reply["socket_dir"], str(mount), "ctr"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    again = None
    try:
        assert json.loads(proc.stdout.readline()) == {"writable": False, "errno": 30}, proc.stderr.read()   # EROFS
        proc.stdin.write("ping\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["project"] == "ctr"
        again = _restart(broker)
        proc.stdin.write("ping\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"ok": True, "protocol_version": 2, "daemon_version": "0.1.0",
                                                      "project": "ctr"}
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        if again is not None:
            again.stop()
