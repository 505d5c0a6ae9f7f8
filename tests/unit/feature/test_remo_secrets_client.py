# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remo-secrets feature's static C client against a REAL daemon process.

The client is built here exactly as the project_manifest role builds it on an
instance (``gcc -static``).  File secrets go to a private directory on this machine's
tmpfs (/dev/shm) through ``REMO_SECRETS_TMPFS_ROOT``; the container-only parts (the
entrypoint, the shell hooks, /run/secrets) are covered by the Molecule scenario
``devcontainer``.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest


from ansible_collections.remo.broker.tests.unit.broker_harness import COLLECTION_ROOT as ROOT, Daemon, acl_users

SOURCE = os.path.join(ROOT, "roles", "project_manifest", "files", "remo-secrets", "remo-secrets.c")
TOKEN = "CANARY-client-tok'en $(id) `x` \\n-5d1"
AKID = "CANARY-client-akid-77e0"
OTHER = "CANARY-client-other-0c3b"

MANIFEST = """schema_version = 2
project = "app"

[secrets.APP_TOKEN]
fetch_as = "env"
env_var = "APP_TOKEN_VAR"

[secrets.APP_AWS]
fetch_as = "file"
file_path = "~/.aws/credentials"
file_mode = "0440"
template = "[default]\\naws_access_key_id = {{ access_key_id }}\\n"

[secrets.APP_PLAIN]
fetch_as = "file"
file_path = "~/plain/token"
"""

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the client")


@pytest.fixture(scope="module")
def client_binary(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("client") / "remo-secrets")
    subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Werror", "-o", out, SOURCE], check=True)
    return out


def make_world(client_binary, uid):
    """A started daemon with project ``app`` registered for ``uid``, secrets pushed."""
    base = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    os.chmod(base, 0o755)         # the project's uid must reach the socket and its home
    shm = tempfile.mkdtemp(prefix="remo-secrets-test-", dir="/dev/shm")
    home = os.path.join(base, "home")
    os.makedirs(home)
    os.chown(home, uid, uid)
    os.chown(shm, uid, uid)
    daemon = Daemon(base).start()
    project = os.path.join(daemon.projects_root, "app")
    os.makedirs(os.path.join(project, ".remo"))
    with open(os.path.join(project, ".remo", "manifest.toml"), "w", encoding="utf-8") as handle:
        handle.write(MANIFEST)
    daemon.admin_ok("register", name="app", project_path=project, expected_uid=uid)
    daemon.admin_ok("push-creds", secrets={"APP_TOKEN": TOKEN, "APP_AWS": {"access_key_id": AKID}, "APP_PLAIN": OTHER,
                                           "NOT_ALLOWED": OTHER})
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "REMO_SECRETS_TMPFS_ROOT": os.path.join(shm, "root")}
    return {"daemon": daemon, "home": home, "shm": shm, "env": env, "bin": client_binary,
            "socket": daemon.project_socket("app"), "base": base}


@pytest.fixture
def world(client_binary):
    """The project registered for this test's own uid."""
    made = make_world(client_binary, os.getuid())
    yield made
    made["daemon"].stop()
    shutil.rmtree(made["base"], ignore_errors=True)
    shutil.rmtree(made["shm"], ignore_errors=True)


def run(world, *args, timeout=20):
    return subprocess.run([world["bin"], *args, "--socket", world["socket"]], env=world["env"], capture_output=True,
                          text=True, timeout=timeout, check=False)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def test_env_lines_survive_eval_in_sh(world):
    """Quotes, $(...), backticks and backslashes stay data: the shell runs nothing."""
    script = 'eval "$(%s env --socket %s)"; printf %%s "$APP_TOKEN_VAR"' % (world["bin"], world["socket"])
    result = subprocess.run(["sh", "-c", script], env=world["env"], capture_output=True, text=True, check=True)
    assert result.stdout == TOKEN
    assert "uid=" not in result.stdout
    only = run(world, "env")
    assert only.returncode == 0
    assert only.stdout.count("export ") == 1, "file secrets must not be exported"


def test_file_secrets_rendered_on_tmpfs_with_mode_and_home_symlink(world):
    result = run(world, "sync")
    assert result.returncode == 0, result.stderr
    real = os.path.join(world["env"]["REMO_SECRETS_TMPFS_ROOT"], "home", ".aws", "credentials")
    link = os.path.join(world["home"], ".aws", "credentials")
    assert os.readlink(link) == real
    assert read(link) == "[default]\naws_access_key_id = %s\n" % AKID
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o440
    assert os.stat(real).st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(os.path.join(world["home"], "plain", "token")).st_mode) == 0o400
    assert read(os.path.join(world["home"], "plain", "token")) == OTHER
    assert stat.S_IMODE(os.stat(world["env"]["REMO_SECRETS_TMPFS_ROOT"]).st_mode) == 0o700
    # A second sync leaves unchanged files alone (same inode).
    inode = os.stat(real).st_ino
    assert run(world, "sync").returncode == 0
    assert os.stat(real).st_ino == inode


def test_refuses_to_write_anywhere_but_tmpfs(world):
    world["env"]["REMO_SECRETS_TMPFS_ROOT"] = os.path.join(world["base"], "not-tmpfs")
    result = run(world, "sync")
    assert result.returncode != 0
    assert "not on tmpfs" in result.stderr
    assert not os.path.exists(os.path.join(world["base"], "not-tmpfs", "home"))


def test_refuses_a_tmpfs_root_that_others_can_enter(world):
    root = world["env"]["REMO_SECRETS_TMPFS_ROOT"]
    os.makedirs(root, mode=0o755)
    os.chmod(root, 0o755)
    result = run(world, "sync")
    assert result.returncode != 0
    assert "not a private directory" in result.stderr


def test_get_names_outside_the_manifest_are_denied_without_a_value(world):
    result = run(world, "get", "NOT_ALLOWED")
    assert result.returncode == 1
    assert "denied" in result.stderr
    assert OTHER not in result.stderr + result.stdout
    field = run(world, "get", "APP_AWS", "access_key_id")
    assert field.returncode == 0 and field.stdout == AKID


def test_bounded_retry_names_the_socket(world):
    missing = os.path.join(world["base"], "missing.sock")
    start = time.monotonic()
    result = subprocess.run([world["bin"], "env", "--socket", missing, "--tries", "3", "--delay-ms", "50"],
                            env=world["env"], capture_output=True, text=True, timeout=10, check=False)
    elapsed = time.monotonic() - start
    assert result.returncode == 3
    assert missing in result.stderr and "after 3 tries" in result.stderr
    assert result.stdout == ""
    assert 0.09 < elapsed < 3


def test_watch_rewrites_atomically_and_survives_a_daemon_restart(world):
    link = os.path.join(world["home"], ".aws", "credentials")
    proc = subprocess.Popen([world["bin"], "watch", "--socket", world["socket"]], env=world["env"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: read(link) is not None and AKID in read(link))
        inode = os.stat(link).st_ino
        secrets = {"APP_TOKEN": TOKEN, "APP_AWS": {"access_key_id": "CANARY-client-akid-2"}, "APP_PLAIN": OTHER}
        world["daemon"].admin("push-creds", secrets=secrets)
        assert wait_for(lambda: "CANARY-client-akid-2" in (read(link) or ""), timeout=15.0)
        assert os.stat(link).st_ino != inode, "a rewrite is a new file renamed into place"
        # The daemon restarts (new socket, registrations restored, secrets empty until a push).
        world["daemon"].stop()
        world["daemon"].start()
        secrets["APP_AWS"] = {"access_key_id": "CANARY-client-akid-3"}
        world["daemon"].admin("push-creds", secrets=secrets)
        assert wait_for(lambda: "CANARY-client-akid-3" in (read(link) or ""), timeout=10.0)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=5)[1]
    assert "CANARY" not in err.decode()


# --- the uid the socket grants ------------------------------------------------------
# As on an instance: the daemon (here root) owns the project socket and grants the
# project's uid a POSIX ACL entry; the container user has a passwd entry with its home.
PROJECT_UID = 4713


@pytest.fixture(scope="module")
def passwd_client():
    """The client built to read a test passwd file instead of /etc/passwd, in a
    directory the project's uid can reach."""
    where = tempfile.mkdtemp(prefix="rs-passwd", dir="/tmp")
    os.chmod(where, 0o755)
    out, passwd = os.path.join(where, "remo-secrets"), os.path.join(where, "passwd")
    subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Werror", '-DPASSWD_FILE="%s"' % passwd, "-o", out, SOURCE],
                   check=True)
    yield out, passwd
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def granted_world(passwd_client):
    if os.geteuid() != 0:
        pytest.fail("these tests run the client as another uid: run them as root (the units stage does)")
    binary, passwd = passwd_client
    made = make_world(binary, PROJECT_UID)
    with open(passwd, "w", encoding="utf-8") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\ndev:x:%d:%d::%s:/bin/sh\n" % (PROJECT_UID, PROJECT_UID, made["home"]))
    os.chmod(passwd, 0o644)
    # The entrypoint starts the watcher under `env -i PATH=...`: no HOME.
    del made["env"]["HOME"]
    yield made
    made["daemon"].stop()
    shutil.rmtree(made["base"], ignore_errors=True)
    shutil.rmtree(made["shm"], ignore_errors=True)


def test_the_socket_grants_the_project_uid_by_acl_not_by_owner(granted_world):
    info = os.stat(granted_world["socket"])
    assert info.st_uid == 0, "the daemon owns the socket"
    assert acl_users(os.path.realpath(granted_world["socket"])) == {PROJECT_UID: 6}


def test_root_acts_as_the_uid_the_socket_grants(granted_world):
    """Container root (an image whose user is root) is refused by the broker: the client
    switches to the project's uid, found in the socket's ACL, and writes as it."""
    got = run(granted_world, "get", "APP_TOKEN")
    assert got.returncode == 0, got.stderr
    assert got.stdout == TOKEN
    result = run(granted_world, "sync")
    assert result.returncode == 0, result.stderr
    link = os.path.join(granted_world["home"], ".aws", "credentials")
    real = os.path.join(granted_world["env"]["REMO_SECRETS_TMPFS_ROOT"], "home", ".aws", "credentials")
    assert os.readlink(link) == real
    assert os.stat(real).st_uid == PROJECT_UID
    assert os.lstat(link).st_uid == PROJECT_UID
    assert read(link) == "[default]\naws_access_key_id = %s\n" % AKID


def test_a_watcher_without_home_links_into_its_own_users_home(granted_world):
    """The project's user, no HOME (the entrypoint's watcher): `~` is that user's passwd
    home, not the home of the socket's owner."""
    link = os.path.join(granted_world["home"], "plain", "token")
    proc = subprocess.Popen([granted_world["bin"], "watch", "--socket", granted_world["socket"]],
                            env=granted_world["env"], user=PROJECT_UID, group=PROJECT_UID, extra_groups=[], cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: read(link) == OTHER, timeout=15.0), "the ~ file secret never arrived"
        real = os.path.join(granted_world["env"]["REMO_SECRETS_TMPFS_ROOT"], "home", "plain", "token")
        assert os.readlink(link) == real
        assert os.stat(real).st_uid == PROJECT_UID
        assert stat.S_IMODE(os.stat(real).st_mode) == 0o400
        assert not os.path.lexists(os.path.join("/root", "plain", "token"))
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=5)[1]
    assert "unusable file_path" not in err.decode()
    assert "CANARY" not in err.decode()
