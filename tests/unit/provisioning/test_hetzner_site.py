# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""hetzner_site, hetzner_teardown and site end to end, against the Hetzner Cloud API stand-in.

The tests run in file order and share one stand-in project: preflight failures (nothing
may reach the API), provision + configure, a converged re-run and a check-mode run with
zero changes, an impostor host key refused, teardown keeping the volume, re-provision on
the kept (grown) volume, teardown removing it.

The stand-in's servers boot from an image that already has what instance_base installs
(bootstrap's hcloud_installed image), so on the Hetzner path that role runs in full and
finds its install work done. The one install from scratch is site.yml's, on the plain
SSH host of test_site_plain_host.py.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from tests.hcloud_standin.site_runner import INSTALL_TASKS, INSTALLED_SERVER_IMAGE, SiteRun, recap, task_results

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GIB = 1024 ** 3
# One project for project_manifest to approve and register (a synthesized manifest: no
# workspace content needed).
PROJECT_VARS = """project_manifest_projects:
  - name: e2e
    workspace: /home/remo/projects/e2e
    uid: 1000
    secrets:
      - name: E2E_TOKEN
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    run = SiteRun(tmp_path_factory.mktemp("hetzner-site"), image=INSTALLED_SERVER_IMAGE, extra_vars=PROJECT_VARS)
    yield run
    run.close()


def _state(site):
    return site.api.state


def _posts(site):
    return [r for r in _state(site).requests if r[0] != "GET"]


def _assert_ok(rc, out):
    assert rc == 0, out[-6000:]


@pytest.mark.parametrize("extra, message", [
    ({"HCLOUD_TOKEN": None, "REMO_BROKER_FNOX_CONFIG": "/nonexistent/fnox.toml"},
     "No Hetzner Cloud API token: hetzner_server_api_token is empty"),
    ({"args": ["-e", "hetzner_server_ssh_public_key_file=/nonexistent/id.pub"]},
     "The SSH public key /nonexistent/id.pub does not exist"),
    ({"args": ["-e", '{"hetzner_server_labels": {"remo:role": "dev"}}']},
     "hetzner_server_labels has an invalid label 'remo:role: dev'"),
    ({"args": ["-e", "hetzner_server_volume_size=5"]},
     "hetzner_server_volume_size is 5: Hetzner volumes are 10 to 10240 GB"),
    ({"args": ["-e", '{"hetzner_server_ssh_source_ranges": ["10.0.0.1/33"]}']},
     "these are not: 10.0.0.1/33"),
    ({"args": ["-e", "hetzner_server_name=Remo_1"]},
     "hetzner_server_name 'Remo_1' is not a valid server name"),
], ids=["no-token", "no-ssh-key", "colon-label", "volume-size", "source-range", "server-name"])
def test_preflight_stops_before_any_api_call(site, extra, message):
    extra = dict(extra)
    args = extra.pop("args", [])
    before = len(_state(site).requests)
    rc, out, _seconds = site.playbook("hetzner_site", *args, **extra)
    assert rc != 0
    assert message in " ".join(out.split()), out[-3000:]
    assert _state(site).requests[before:] == [], "the preflight let a request reach the API"
    assert not _state(site).servers and not _state(site).volumes


def test_first_run_provisions_and_configures(site):
    # -v prints every task's result and arguments: a missing no_log would show here.
    rc, out, seconds = site.playbook("hetzner_site", "-v")
    _assert_ok(rc, out)
    print(f"first run: {seconds:.1f} s")
    state = _state(site)
    (server,) = state.servers.values()
    assert server["name"] == site.name and server["status"] == "running"
    assert server["labels"] == {"remo_managed": "true", "remo_instance": site.name}
    (firewall,) = state.firewalls.values()
    assert firewall["name"] == f"{site.name}-ssh"
    assert firewall["rules"] == [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "::/0"],
                                  "destination_ips": [], "description": "ssh"}]
    assert firewall["applied_to"] == [{"type": "server", "server": {"id": server["id"]}}]
    (volume,) = state.volumes.values()
    assert (volume["name"], volume["size"], volume["server"]) == (f"{site.name}-home", 10, server["id"])

    # On the instance: the volume is /home/remo, remo is uid 1000 in docker, the tools run.
    assert site.exec("findmnt", "-no", "SOURCE", "/home/remo").strip() == volume["linux_device"]
    assert site.exec("id", "-u", "remo").strip() == "1000"
    assert "docker" in site.exec("id", "-nG", "remo").split()
    assert site.exec("stat", "-c", "%U %a", "/home/remo/projects").split() == ["remo", "750"]
    assert site.exec("devcontainer", "--version").strip() == "0.89.0"
    assert site.exec("systemctl", "is-active", "docker", "remo-broker").split() == ["active", "active"]
    site.exec("sh", "-c", "echo kept > /home/remo/marker")

    # instance_base ran in full; on this pre-installed image its install tasks found the
    # work done (the plain SSH host below is where they install).
    for task in INSTALL_TASKS:
        assert task_results(out, task) == {site.name: "skipping"}, task
    assert task_results(out, "remo.broker.instance_base : Create the remo user in the docker group") == {
        site.name: "changed"}
    # The rest of the configure play: the sealed vault key, the sidecar built on the base
    # image loaded from its archive (the server reaches no registry; the copy is removed),
    # and the project approved and registered with the broker.
    assert site.exec("sh", "-c", "test -s /etc/remo-vault/key.cred && echo sealed").strip() == "sealed"
    assert task_results(out, "remo.broker.vault_sidecar : Load the base image") == {site.name: "changed"}
    assert "base-image.tar" not in site.exec("ls", "/usr/local/lib/remo-vault").split()
    assert site.exec("docker", "inspect", "-f", "{{.State.Running}}", "remo-vault").strip() == "true"
    status = json.loads(site.exec("remo-broker", "status"))
    assert [(p["name"], p["project_path"]) for p in status["projects"]] == [("e2e", "/var/lib/remo-broker-approved/e2e")]

    # sshd serves the key generated on the controller, and only that key is trusted.
    host_pub = (site.keys_dir / f"{site.name}_ssh_host_ed25519_key.pub").read_text().split()[:2]
    served = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(site.ssh_port), "127.0.0.1"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert served[1:3] == host_pub
    known = (site.keys_dir / "known_hosts").read_text()
    assert f"[127.0.0.1]:{site.ssh_port} {' '.join(host_pub)}" in known
    # The host's private key travelled in the user data, never in the output.
    private = (site.keys_dir / f"{site.name}_ssh_host_ed25519_key").read_text().splitlines()[1]
    assert private not in out and site.token not in out


def test_second_run_changes_nothing(site):
    rc, out, seconds = site.playbook("hetzner_site")
    _assert_ok(rc, out)
    print(f"converged run: {seconds:.1f} s")
    counts = recap(out)
    assert set(counts) == {"localhost", site.name}
    assert all(c["changed"] == 0 for c in counts.values()), counts


def _plain(value):
    """ansible-inventory's JSON wraps templated values as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_dynamic_inventory_example_finds_the_instance(site):
    example = pathlib.Path(__file__).resolve().parents[3] / "docs" / "examples" / "hcloud.yml"
    env = site.env(HCLOUD_TOKEN=site.token, HCLOUD_ENDPOINT=site.api.endpoint)
    proc = subprocess.run([str(pathlib.Path(site.env()["PATH"].split(":")[0]) / "ansible-inventory"),
                           "-i", str(example), "--list"], env=env, capture_output=True, text=True, check=True)
    inventory = _plain(json.loads(proc.stdout))
    assert site.name in inventory["remo_instances"]["hosts"]
    assert site.name in inventory["remo_location_fsn1"]["hosts"]
    hostvars = inventory["_meta"]["hostvars"][site.name]
    assert hostvars["ansible_host"] == "127.0.0.1"
    assert hostvars["hcloud_labels"] == {"remo_managed": "true", "remo_instance": site.name}
    assert "StrictHostKeyChecking=yes" in hostvars["ansible_ssh_common_args"]


def test_check_mode_changes_nothing(site):
    posts = len(_posts(site))
    rc, out, _seconds = site.playbook("hetzner_site", "--check")
    _assert_ok(rc, out)
    assert all(c["changed"] == 0 for c in recap(out).values()), recap(out)
    assert len(_posts(site)) == posts, "check mode wrote to the API"


def test_impostor_host_key_is_refused(site, tmp_path):
    """An sshd answering at the server's address with another host key gets no connection."""
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    container = site.machines.container(site.name)
    site.exec("cp", "-p", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pinned")
    for src, dest in ((impostor, "ssh_host_ed25519_key"), (impostor.with_suffix(".pub"), "ssh_host_ed25519_key.pub")):
        subprocess.run(["docker", "cp", str(src), f"{container}:/etc/ssh/{dest}"], check=True)
    site.exec("systemctl", "restart", "ssh")
    try:
        # A fresh ControlPath directory: no multiplexed session from an earlier run.
        rc, out, _seconds = site.playbook("hetzner_site", "-e", "hetzner_server_wait_timeout=20", timeout=900,
                                          ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"))
        assert rc != 0
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out or "Host key verification failed" in out, out[-3000:]
    finally:
        site.exec("mv", "/etc/ssh/ssh_host_ed25519_key.pinned", "/etc/ssh/ssh_host_ed25519_key")
        site.exec("sh", "-c", "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub")
        site.exec("systemctl", "restart", "ssh")


def test_teardown_keeps_the_volume(site):
    volume_file = pathlib.Path(site.machines.state_dir) / "volumes"
    # This time the token comes from the environment: no fnox secret.
    rc, out, _seconds = site.playbook("hetzner_teardown", HCLOUD_TOKEN=site.token,
                                      REMO_BROKER_FNOX_CONFIG="/nonexistent/fnox.toml")
    _assert_ok(rc, out)
    state = _state(site)
    assert not state.servers and not state.firewalls
    (volume,) = state.volumes.values()
    assert volume["server"] is None and any(volume_file.iterdir())
    assert site.machines.container(site.name) not in subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()
    assert str(site.ssh_port) not in (site.keys_dir / "known_hosts").read_text()
    assert not (site.keys_dir / f"{site.name}_ssh_host_ed25519_key").exists()


def test_new_server_gets_the_kept_volume_grown(site):
    """A new server (new host key) attaches the kept volume, grown to 11 GB while detached."""
    tags = "hetzner_server_install,hetzner_server_run,hetzner_server_configure"
    rc, out, _seconds = site.playbook("hetzner_site", "-e", "hetzner_server_volume_size=11", "--tags", tags)
    _assert_ok(rc, out)
    assert site.exec("cat", "/home/remo/marker").strip() == "kept"
    fs_bytes = int(site.exec("findmnt", "-bno", "SIZE", "/home/remo"))
    assert 10.5 * GIB < fs_bytes <= 11 * GIB


def test_teardown_can_remove_the_volume(site):
    rc, out, _seconds = site.playbook("hetzner_teardown", "-e", "hetzner_server_remove_volume=true")
    _assert_ok(rc, out)
    assert not _state(site).volumes and not site.machines.loops
    assert not any((pathlib.Path(site.machines.state_dir) / "volumes").iterdir())
