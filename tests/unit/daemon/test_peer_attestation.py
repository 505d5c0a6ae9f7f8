# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Container attestation against a real daemon and real Docker containers.

The project's uid is the same inside the container and outside it (as on a remo
instance, where every devcontainer and the ``remo`` user are uid 1000): only the
attested container's processes are served; a same-uid process on this machine, and a
same-uid process in another container that mounts the same socket directory, get
``peer_unexpected`` with an audit line.  Attestation survives a daemon restart and
moves to a new container id when the launcher attests again.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import uuid

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import CANARIES

IMAGE = "remo-test/debian:bookworm"
# A Python every uid can run (the test's own may live under a private home).
HOST_PYTHON = "/usr/bin/python3"
UID = 4711         # the project's container user, here and on the host
SECRET = CANARIES[0]

# One request on the project socket, printed as the reply line; the same script runs on
# the host and in the containers (both have Python).
CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"op":"get","name":"TOKEN"}\n')
except OSError:
    pass             # refused peers are closed right after the one peer_unexpected line
buf = b""
while b"\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(json.dumps({"ok": json.loads(buf.split(b"\n")[0]).get("ok"),
                  "code": json.loads(buf.split(b"\n")[0]).get("code"),
                  "value_ok": json.loads(buf.split(b"\n")[0]).get("value") == sys.argv[2]}))
"""


def _docker_ok():
    if shutil.which("docker") is None or not os.access(HOST_PYTHON, os.X_OK):
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _docker_ok() or os.geteuid() != 0,
                                reason="needs root (to chown the project socket), %s and Docker with %s" % (HOST_PYTHON, IMAGE))


class Containers:
    """Containers named attest-<random>, removed at teardown."""

    def __init__(self):
        self.ids = []

    def run(self, socket_dir, extra=()):
        name = "attest-%s" % uuid.uuid4().hex[:12]
        out = subprocess.run(
            ["docker", "run", "-d", "--rm", "--name", name, "--user", "%d:%d" % (UID, UID), "--network", "none",
             "-v", "%s:/run/remo-broker:ro" % socket_dir] + list(extra) + [IMAGE, "sleep", "600"],
            capture_output=True, text=True, check=True, timeout=120)
        cid = out.stdout.strip()
        self.ids.append(cid)
        pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True,
                                 check=True, timeout=60).stdout)
        return cid, pid

    def get(self, cid, socket_name):
        out = subprocess.run(["docker", "exec", cid, "python3", "-c", CLIENT, "/run/remo-broker/" + socket_name, SECRET],
                             capture_output=True, text=True, check=True, timeout=120)
        return json.loads(out.stdout)

    def cleanup(self):
        for cid in self.ids:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False, timeout=120)


@pytest.fixture
def containers():
    made = Containers()
    yield made
    made.cleanup()


def host_get(path):
    """The same request from a process of the project's uid on this machine, outside every container."""
    out = subprocess.run([HOST_PYTHON, "-I", "-c", CLIENT, path, SECRET], user=UID, group=UID, extra_groups=[], cwd="/",
                         capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def world(broker_factory):
    daemon = broker_factory()
    os.chmod(daemon.base, 0o755)     # the project's uid must reach the socket in it
    daemon.make_project("pa", ["TOKEN"], expected_uid=UID)
    daemon.admin_ok("push-creds", secrets={"TOKEN": SECRET})
    return daemon


def socket_dir(daemon, name):
    return os.path.join(daemon.run_dir, "projects", name)


def refusals(daemon, project):
    return [e for e in daemon.audit_events() if e["event"] == "connect" and e["project"] == project
            and e["outcome"] == "peer_unexpected"]


def test_only_the_attested_container_is_served(world, containers):
    cid, pid = containers.run(socket_dir(world, "pa"))
    other, _other_pid = containers.run(socket_dir(world, "pa"))
    # Before any attestation, the uid alone decides: the host process is served too.
    assert host_get(world.project_socket("pa")) == {"ok": True, "code": None, "value_ok": True}

    reply = world.admin_ok("attest", name="pa", container_id=cid, pid=pid)
    assert reply["changed"] is True
    assert reply["attestation"]["container_id"] == cid
    assert cid in reply["attestation"]["cgroup"].rsplit("/", 1)[-1]

    assert containers.get(cid, "pa.sock") == {"ok": True, "code": None, "value_ok": True}
    assert host_get(world.project_socket("pa")) == {"ok": False, "code": "peer_unexpected", "value_ok": False}
    assert containers.get(other, "pa.sock") == {"ok": False, "code": "peer_unexpected", "value_ok": False}

    denied = refusals(world, "pa")
    assert len(denied) == 2
    assert all(e["peer_uid"] == UID and e["decision"] == "deny" and e.get("reason") == "not_in_container"
               for e in denied)
    status = world.admin_ok("status")
    project = [p for p in status["projects"] if p["name"] == "pa"][0]
    assert project["counters"]["peer_unexpected"] == 2
    assert project["attestation"]["container_id"] == cid
    # The same attestation again changes nothing.
    assert world.admin_ok("attest", name="pa", container_id=cid, pid=pid)["changed"] is False


def test_a_pid_outside_the_claimed_container_is_refused(world, containers):
    cid, _pid = containers.run(socket_dir(world, "pa"))
    other, other_pid = containers.run(socket_dir(world, "pa"))
    for pid in (other_pid, os.getpid()):
        reply = world.admin("attest", name="pa", container_id=cid, pid=pid)
        assert reply["ok"] is False and reply["code"] == "invalid_payload"
        assert "is not a process of container %s" % cid in reply["message"]
    for bad in ({"container_id": cid[:12], "pid": 1}, {"container_id": cid, "pid": 0}, {"container_id": cid, "pid": True},
                {"container_id": cid.upper(), "pid": 1}, {"container_id": 5, "pid": 1}):
        reply = world.admin("attest", name="pa", **bad)
        assert reply["ok"] is False and reply["code"] == "invalid_payload", bad
    assert world.admin("attest", name="nope", container_id=cid, pid=other_pid)["code"] == "not_registered"
    # Nothing was attested: the project still serves by uid.
    assert host_get(world.project_socket("pa"))["ok"] is True
    assert other


def test_attestation_survives_a_restart_and_moves_to_a_new_container(broker_factory, containers):
    daemon = broker_factory()
    os.chmod(daemon.base, 0o755)
    daemon.make_project("pr", ["TOKEN"], expected_uid=UID)
    old, old_pid = containers.run(socket_dir(daemon, "pr"))
    daemon.admin_ok("attest", name="pr", container_id=old, pid=old_pid)

    daemon.stop()
    with open(os.path.join(daemon.state_dir, "registrations.json"), encoding="utf-8") as handle:
        saved = json.load(handle)["projects"][0]["attestation"]
    assert saved["container_id"] == old
    restarted = broker_factory(base=daemon.base)
    restarted.admin_ok("push-creds", secrets={"TOKEN": SECRET})
    assert restarted.admin_ok("status")["projects"][0]["attestation"]["container_id"] == old
    assert containers.get(old, "pr.sock")["ok"] is True
    assert host_get(restarted.project_socket("pr"))["code"] == "peer_unexpected"

    # The container is recreated (new id): the launcher attests again at `up`.
    new, new_pid = containers.run(socket_dir(restarted, "pr"))
    assert containers.get(new, "pr.sock")["code"] == "peer_unexpected"
    assert restarted.admin_ok("attest", name="pr", container_id=new, pid=new_pid)["changed"] is True
    assert containers.get(new, "pr.sock") == {"ok": True, "code": None, "value_ok": True}
    assert containers.get(old, "pr.sock")["code"] == "peer_unexpected"

    # --clear goes back to the uid check alone.
    assert restarted.admin_ok("attest", name="pr", container_id=None)["attestation"] is None
    assert host_get(restarted.project_socket("pr"))["ok"] is True


def test_a_damaged_saved_attestation_refuses_every_peer(broker_factory, containers):
    daemon = broker_factory()
    os.chmod(daemon.base, 0o755)
    daemon.make_project("pd", ["TOKEN"], expected_uid=UID)
    cid, pid = containers.run(socket_dir(daemon, "pd"))
    daemon.admin_ok("attest", name="pd", container_id=cid, pid=pid)
    daemon.stop()
    path = os.path.join(daemon.state_dir, "registrations.json")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    data["projects"][0]["attestation"]["cgroup"] = "/"     # would match every process
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    restarted = broker_factory(base=daemon.base)
    restarted.admin_ok("push-creds", secrets={"TOKEN": SECRET})
    assert containers.get(cid, "pd.sock")["code"] == "peer_unexpected"
    assert host_get(restarted.project_socket("pd"))["code"] == "peer_unexpected"
    assert "damaged attestation" in restarted.stderr()
    # A fresh attest repairs it.
    restarted.admin_ok("attest", name="pd", container_id=cid, pid=pid)
    assert containers.get(cid, "pd.sock")["ok"] is True


WATCHER = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"op":"watch"}\n')
print(s.recv(65536).decode().strip(), flush=True)
while s.recv(65536):
    pass
print("closed", flush=True)
"""


def test_a_new_attestation_closes_connections_admitted_before(world, containers):
    cid, pid = containers.run(socket_dir(world, "pa"))
    watcher = subprocess.Popen([HOST_PYTHON, "-I", "-c", WATCHER, world.project_socket("pa")], user=UID, group=UID,
                               extra_groups=[], cwd="/", stdout=subprocess.PIPE, text=True)

    def next_line():
        ready = select.select([watcher.stdout], [], [], 60)[0]
        return watcher.stdout.readline().strip() if ready else "(no line in 60 s)"
    try:
        assert json.loads(next_line())["ok"] is True     # admitted by its uid
        world.admin_ok("attest", name="pa", container_id=cid, pid=pid)
        assert next_line() == "closed"
    finally:
        watcher.kill()
        watcher.wait(timeout=30)


CLIENT_SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "project_manifest", "files",
                             "remo-secrets", "remo-secrets.c")


@pytest.fixture(scope="module")
def client_binary(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the feature's client")
    out = str(tmp_path_factory.mktemp("client") / "remo-secrets")
    subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Werror", "-o", out, CLIENT_SOURCE], check=True, timeout=300)
    return out


def test_a_recreated_container_gets_its_env_once_the_launcher_attests_it(world, containers, client_binary):
    """The entrypoint's `remo-secrets env` runs before `up` returns: peer_unexpected is retried within its tries."""
    old, old_pid = containers.run(socket_dir(world, "pa"))
    world.admin_ok("attest", name="pa", container_id=old, pid=old_pid)
    new, new_pid = containers.run(socket_dir(world, "pa"), extra=["-v", "%s:/remo-secrets:ro" % client_binary])
    before = len(refusals(world, "pa"))
    env = subprocess.Popen(["docker", "exec", new, "/remo-secrets", "env", "--tries", "400", "--delay-ms", "50"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The new container is refused (it is not the attested one) and keeps trying ...
        world.audit_events(until=lambda events: len([e for e in events if e["event"] == "connect"
                                                     and e["outcome"] == "peer_unexpected"]) > before + 1,
                           timeout=60)
        assert env.poll() is None
        # ... until the launcher attests it.
        world.admin_ok("attest", name="pa", container_id=new, pid=new_pid)
        out, err = env.communicate(timeout=120)
    finally:
        if env.poll() is None:
            env.kill()
            env.communicate()
    assert env.returncode == 0, err
    assert out == "export TOKEN='%s'\n" % SECRET
    assert SECRET not in err


# -- the check itself, without Docker: pid reuse -------------------------------------
def _own_cgroup():
    from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import read_cgroups
    for key, path in sorted(read_cgroups(os.getpid()).items()):
        if path not in ("", "/"):
            return {"container_id": None, "hierarchy": key, "cgroup": path}
    return None


def test_a_peer_that_exited_is_refused_even_when_its_pid_names_a_process_in_the_cgroup(tmp_path):
    """Pid reuse: the peer is gone and its number now names a process of the container.

    Simulated by handing the check a live pid in the attested cgroup (this test's own)
    while the socket's peer has exited: the pidfd taken from the socket tells them apart.
    """
    import socket as socket_module
    from ansible_collections.remo.broker.plugins.module_utils._daemon.peer_attestation import peer_in_container
    attestation = _own_cgroup()
    if attestation is None:
        pytest.skip("this process is in the root cgroup of every hierarchy")
    path = str(tmp_path / "s.sock")
    server = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    connect = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); sys.stdin.read()"
    try:
        alive = subprocess.Popen([sys.executable, "-c", connect, path], stdin=subprocess.PIPE)
        conn = server.accept()[0]
        # Control: a live peer in the cgroup (its own pid) is admitted.
        assert peer_in_container(conn, alive.pid, attestation) is True
        alive.communicate(b"")
        # Gone (reaped): the same question about a live pid of the cgroup is refused.
        assert peer_in_container(conn, os.getpid(), attestation) is False
        conn.close()
    finally:
        server.close()
