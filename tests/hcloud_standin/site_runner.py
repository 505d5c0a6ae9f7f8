# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run the collection's playbooks against the stand-in, as a user would from a laptop.

Shared by the end-to-end test (tests/unit/provisioning) and the benchmark
(benchmarks/hetzner_site.py). Everything lives in one temporary directory: the
controller's SSH key, the pinned host keys and known_hosts, a fnox config holding the
API token, and the stand-in's volumes.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import socket
import subprocess
import time

from .api import StandIn
from .machines import Machines

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# Built by scripts/bootstrap.sh: the bare server (sshd, cloud-init), as a fresh Hetzner
# Debian server is; and the same with what instance_base installs already installed.
SERVER_IMAGE = "remo-test/hcloud-server:bookworm"
INSTALLED_SERVER_IMAGE = "remo-test/hcloud-server-installed:bookworm"
# Built by scripts/bootstrap.sh (vault step): Debian with age, the vault sidecar's base.
VAULT_BASE_IMAGE = "remo-test/vault-base:bookworm"
# instance_base's install tasks: skipped where the work is done, changed where they install.
INSTALL_TASKS = ("remo.broker.instance_base : Install Docker, Node, npm and git",
                 "remo.broker.instance_base : Install the pinned devcontainer CLI")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def task_results(output: str, task: str) -> dict[str, str]:
    """Host -> status (ok, changed, skipping, failed, fatal) of the task named exactly `task`
    ("role : name" for a role's task), from ansible-playbook's default output."""
    results: dict[str, str] = {}
    for block in re.split(r"\n(?:TASK|RUNNING HANDLER) \[", output)[1:]:
        header, body = block.split("]", 1) if "]" in block else (block, "")
        if header == task:
            results.update({host: status for status, host in
                            re.findall(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", body, re.M)})
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(output)}


class SiteRun:
    """A stand-in API plus everything a controller needs to run hetzner_site against it."""

    def __init__(self, workdir: pathlib.Path, name: str = "remo-e2e", prefix: str = "hcloud-standin-e2e",
                 image: str = SERVER_IMAGE, extra_vars: str = ""):
        self.workdir = workdir
        self.name = name
        self.token = "hcloud-token-" + secrets.token_hex(12)
        self.ssh_port = free_port()
        self.key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "controller", "-f", str(self.key)],
                       check=True)
        self.keys_dir = workdir / "keys"
        self.fnox = workdir / "fnox.toml"
        self.fnox.write_text('[providers.plain]\ntype = "plain"\n\n[secrets]\n'
                             f'HCLOUD_TOKEN = {{ provider = "plain", value = "{self.token}" }}\n')
        # A prefix of its own: cleanup removes only this run's containers, never a parallel run's.
        self.machines = Machines(image, f"{prefix}-{secrets.token_hex(3)}-", str(workdir / "standin"),
                                 {name: self.ssh_port})
        self.api = StandIn(self.token, self.machines).start()
        self.vault_base_archive = workdir / "vault-base.tar"
        subprocess.run(["docker", "save", "-o", str(self.vault_base_archive), VAULT_BASE_IMAGE], check=True)
        self.vars_file = workdir / "vars.yml"
        self.vars_file.write_text(
            f"hetzner_server_name: {name}\n"
            f"hetzner_server_api_endpoint: {self.api.endpoint}\n"
            f"hetzner_server_ssh_port: {self.ssh_port}\n"
            f"hetzner_server_ssh_public_key_file: {self.key}.pub\n"
            f"hetzner_server_ssh_private_key_file: {self.key}\n"
            f"hetzner_server_keys_dir: {self.keys_dir}\n"
            # The test machines reach npm through a TLS-intercepting proxy.
            "instance_base_node_extra_ca_certs: /etc/ssl/certs/ca-certificates.crt\n"
            # and no container registry: the sidecar's base image travels as an archive.
            f"vault_sidecar_base_image: {VAULT_BASE_IMAGE}\n"
            f"vault_sidecar_base_image_archive: {self.vault_base_archive}\n"
            "vault_sidecar_network_mode: none\n" + extra_vars)

    def env(self, **extra: str | None) -> dict[str, str]:
        site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "ANSIBLE_", "FNOX_"))}
        env.update({
            "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_COLLECTIONS_PATH": f"{ROOT / '.cache' / 'collections'}:{site}",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "REMO_BROKER_FNOX_CONFIG": str(self.fnox),
            "FNOX_CONFIG_DIR": str(self.workdir / "fnox-global"),
        })
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def playbook(self, playbook: str, *args: str, inventory: str = "localhost,", timeout: int = 1800,
                 **env: str | None) -> tuple[int, str, float]:
        """Run remo.broker.<playbook>; returns (rc, combined output, seconds)."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, f"remo.broker.{playbook}",
                "-e", f"@{self.vars_file}", *args]
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=self.workdir, env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout, check=False)
        return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start

    def exec(self, *argv: str) -> str:
        """Run a command inside the server's container (the test's view from the hypervisor)."""
        return subprocess.run(["docker", "exec", self.machines.container(self.name), *argv], capture_output=True,
                              text=True, check=True).stdout

    def close(self) -> None:
        self.api.close()
