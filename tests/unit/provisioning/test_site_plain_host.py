# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""site.yml against a plain SSH host: Debian with sshd and nothing else (no Hetzner, no
cloud-init), configured from scratch (the one full instance_base install of the e2e
stage), then again with zero changes.

Its own module, so that the e2e stage's second pytest-xdist worker runs it beside
test_hetzner_site.py; it shares no state with that module.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time

import pytest

from tests.hcloud_standin.machines import CAPABILITIES
from tests.hcloud_standin.site_runner import INSTALL_TASKS, SERVER_IMAGE, SiteRun, free_port, recap, task_results

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture
def site(tmp_path):
    """The controller side only (SSH keys, variables, the sidecar's base image archive)."""
    (tmp_path / "controller").mkdir()
    run = SiteRun(tmp_path / "controller", name="remo-plain", prefix="hcloud-standin-plain")
    yield run
    run.close()


def wait_for_ssh_banner(port, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no sshd banner on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.5)


@pytest.fixture
def plain_host(tmp_path):
    """A Debian host with sshd and nothing from Hetzner (cloud-init disabled)."""
    name = f"remo-e2e-plain-ssh-{secrets.token_hex(3)}"
    port = free_port()
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/cloud").mkdir(parents=True)
    (root / "etc/cloud/cloud-init.disabled").write_text("")
    (root / "root/.ssh").mkdir(parents=True, mode=0o700)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    (root / "root/.ssh/authorized_keys").write_text(key.with_suffix(".pub").read_text())
    (root / "root/.ssh/authorized_keys").chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    # Docker runs inside it, so it gets the same capabilities as the stand-in's servers.
    caps = [arg for cap in CAPABILITIES for arg in ("--cap-add", cap)]
    subprocess.run(["docker", "create", "--name", name, "--cap-drop", "ALL", *caps,
                    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                    "--cgroupns", "host", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
                    "-p", f"127.0.0.1:{port}:22", SERVER_IMAGE, "/lib/systemd/systemd"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["docker", "cp", f"{root}/.", f"{name}:/"], check=True)
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        # Docker's port proxy accepts connections before sshd listens (and then resets
        # them): wait for sshd's own banner.
        wait_for_ssh_banner(port)
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(
            f"[remo_instances]\nplain ansible_host=127.0.0.1 ansible_port={port} ansible_user=root "
            f"ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3 "
            f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null "
            f"-o StrictHostKeyChecking=yes'\n")
        yield name, inventory
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], check=False, capture_output=True)


def test_site_configures_a_plain_ssh_host(site, plain_host):
    name, inventory = plain_host
    rc, out, _seconds = site.playbook("site", inventory=str(inventory), timeout=1800)
    assert rc == 0, out[-6000:]

    def on_host(*argv):
        return subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True, check=True).stdout

    # The one install from scratch: the packages and the CLI came from the role.
    for task in INSTALL_TASKS:
        assert task_results(out, task) == {"plain": "changed"}, task
    assert on_host("id", "-u", "remo").strip() == "1000"
    assert "docker" in on_host("id", "-nG", "remo").split()
    assert on_host("devcontainer", "--version").strip() == "0.89.0"
    assert on_host("systemctl", "is-active", "remo-broker").strip() == "active"
    rc, out, _seconds = site.playbook("site", inventory=str(inventory), timeout=1800)
    assert rc == 0, out[-6000:]
    assert recap(out)["plain"]["changed"] == 0, recap(out)
