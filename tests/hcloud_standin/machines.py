# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the stand-in's servers and volumes are made of on this machine.

A server is a systemd container booted from the stand-in server image (sshd and real
cloud-init). Its cloud-init NoCloud seed (the user data from the API call plus a
meta-data file with the instance id, hostname and the project's SSH keys, the way
Hetzner's own datasource hands them over) is copied in before the first boot, so the
host key and authorized keys are in place before sshd answers. sshd is published on
127.0.0.1 only.

A volume is a sparse file behind a loop device. Attaching it "hot-plugs" the block
device: the container's device cgroup is allowed the loop device's major:minor and the
node is created at the path Hetzner uses, /dev/disk/by-id/scsi-0HC_Volume_<id>.
Resizing grows the file and refreshes the loop device's capacity, as the real API
grows the block device and leaves the filesystem alone.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

# Every capability dockerd 20.10 knows except SYS_RESOURCE, which is missing from the
# bounding set on these machines (so --privileged fails): Docker runs inside the server.
CAPABILITIES = (
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH "
    "FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD "
    "NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN "
    "SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_TIME "
    "SYS_TTY_CONFIG SYSLOG WAKE_ALARM"
).split()

GIB = 1024 ** 3


class MachineError(Exception):
    """A container or loop-device operation failed."""


def _run(*argv: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise MachineError(f"{' '.join(argv[:3])} failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    return proc.stdout.decode()


def linux_device(volume_id: int) -> str:
    return f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}"


class Machines:
    """Docker containers and loop devices behind the stand-in's servers and volumes."""

    def __init__(self, image: str, prefix: str, state_dir: str, ssh_ports: dict[str, int] | None = None):
        self.image = image
        self.prefix = prefix
        self.state_dir = state_dir
        self.ssh_ports = dict(ssh_ports or {})
        self.loops: dict[int, str] = {}
        os.makedirs(os.path.join(state_dir, "volumes"), exist_ok=True)

    # --- servers -----------------------------------------------------------
    def container(self, server_name: str) -> str:
        return self.prefix + server_name

    def create_server(self, server_id: int, name: str, user_data: str | None, public_keys: list[str]) -> None:
        port = self.ssh_ports.get(name)
        publish = f"127.0.0.1:{port}:22" if port else "127.0.0.1::22"
        argv = ["docker", "create", "--name", self.container(name), "--hostname", name,
                "--label", f"hcloud-standin={self.prefix}", "--cap-drop", "ALL"]
        for cap in CAPABILITIES:
            argv += ["--cap-add", cap]
        argv += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                 "--cgroupns", "host", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                 "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
                 "-p", publish, self.image, "/lib/systemd/systemd"]
        _run(*argv)
        meta = [f"instance-id: i-{server_id}", f"local-hostname: {name}", "public-keys:"]
        meta += [f"  - {key}" for key in public_keys]
        with tempfile.TemporaryDirectory() as seed:
            with open(os.path.join(seed, "meta-data"), "w", encoding="utf-8") as f:
                f.write("\n".join(meta) + "\n")
            with open(os.path.join(seed, "user-data"), "w", encoding="utf-8") as f:
                f.write(user_data or "")
            _run("docker", "cp", seed + "/.", self.container(name) + ":/var/lib/cloud/seed/nocloud/")

    def start(self, name: str, volumes: list[int]) -> None:
        _run("docker", "start", self.container(name))
        for volume_id in volumes:
            self.plug(name, volume_id)

    def stop(self, name: str, graceful: bool) -> None:
        _run("docker", "stop", "-t", "20" if graceful else "0", self.container(name))

    def delete_server(self, name: str) -> None:
        _run("docker", "rm", "-f", "-v", self.container(name))

    def ssh_port(self, name: str) -> int | None:
        out = _run("docker", "port", self.container(name), "22/tcp").strip().splitlines()
        return int(out[0].rsplit(":", 1)[1]) if out else None

    # --- volumes -----------------------------------------------------------
    def _volume_file(self, volume_id: int) -> str:
        return os.path.join(self.state_dir, "volumes", f"{volume_id}.img")

    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None) -> None:
        path = self._volume_file(volume_id)
        with open(path, "wb") as f:
            f.truncate(size_gb * GIB)
        self.loops[volume_id] = _run("losetup", "--find", "--show", path).strip()
        if fmt == "ext4":
            # Lazy init keeps a 10 GiB sparse file at a few MiB on disk.
            _run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", self.loops[volume_id])
        elif fmt == "xfs":
            _run("mkfs.xfs", "-q", "-f", self.loops[volume_id])

    def resize_volume(self, volume_id: int, size_gb: int) -> None:
        with open(self._volume_file(volume_id), "r+b") as f:
            f.truncate(size_gb * GIB)
        _run("losetup", "--set-capacity", self.loops[volume_id])

    def delete_volume(self, volume_id: int) -> None:
        loop = self.loops.pop(volume_id, None)
        if loop:
            _run("losetup", "--detach", loop)
        path = self._volume_file(volume_id)
        if os.path.exists(path):
            os.unlink(path)

    def _devices_cgroup(self, name: str) -> str:
        pid = _run("docker", "inspect", "-f", "{{.State.Pid}}", self.container(name)).strip()
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            for line in f:
                _hierarchy, controllers, path = line.strip().split(":", 2)
                if "devices" in controllers.split(","):
                    return "/sys/fs/cgroup/devices" + path
        raise MachineError(f"no devices cgroup for {name}")

    def _major_minor(self, volume_id: int) -> tuple[int, int]:
        st = os.stat(self.loops[volume_id])
        return os.major(st.st_rdev), os.minor(st.st_rdev)

    def plug(self, name: str, volume_id: int) -> None:
        major, minor = self._major_minor(volume_id)
        with open(os.path.join(self._devices_cgroup(name), "devices.allow"), "w", encoding="ascii") as f:
            f.write(f"b {major}:{minor} rwm")
        node = linux_device(volume_id)
        _run("docker", "exec", self.container(name), "sh", "-c",
             f"mkdir -p /dev/disk/by-id && rm -f {node} && mknod -m 0660 {node} b {major} {minor}")

    def unplug(self, name: str, volume_id: int, running: bool) -> None:
        if not running:
            return
        major, minor = self._major_minor(volume_id)
        _run("docker", "exec", self.container(name), "rm", "-f", linux_device(volume_id))
        with open(os.path.join(self._devices_cgroup(name), "devices.deny"), "w", encoding="ascii") as f:
            f.write(f"b {major}:{minor} rwm")

    # --- cleanup -----------------------------------------------------------
    def close(self) -> None:
        """Remove every container and loop device this stand-in made."""
        ids = _run("docker", "ps", "-aq", "--filter", f"label=hcloud-standin={self.prefix}").split()
        if ids:
            _run("docker", "rm", "-f", "-v", *ids)
        for volume_id in list(self.loops):
            self.delete_volume(volume_id)
