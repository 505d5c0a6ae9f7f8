# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The README's first command runs local_site from a fresh clone.

The clone is a copy of the files git knows about, on this prepared machine: it shares
the machine's virtualenvs, wheels and fnox binary (as every clone on one machine does),
and the command runs the bootstrap itself, which finds them ready, links the clone's own
collection and checks the images. The instance container and its Docker storage get
names of this run's own, and are removed afterwards.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shlex
import subprocess

import pytest

from tests.unit.test_docs_references import copy_checkout, read, shell_blocks

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = pathlib.Path(__file__).resolve().parents[3]
# What bootstrap would otherwise build or download for the clone.
SHARED = [".venv", ".cache/venvs", ".cache/wheels", ".cache/fnox"]


@pytest.fixture
def clone(tmp_path):
    dest = tmp_path / "remo.broker"
    copy_checkout(dest)
    for name in SHARED:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).symlink_to((ROOT / name).resolve())
    return dest


def test_readme_first_command_runs_local_site_from_a_fresh_clone(clone):
    first = shell_blocks(read("README.md"))[0]
    assert first == "scripts/dev.sh demo", first
    suffix = secrets.token_hex(3)
    names = ["-e", f"remo_local_instance=remo-local-e2e-{suffix}", "-e", f"remo_local_docker_volume=remo-local-e2e-{suffix}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "FNOX_", "REMO_"))}
    try:
        proc = subprocess.run(shlex.split(first) + names, cwd=clone, env=env, capture_output=True, text=True,
                              timeout=2400, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        # The bootstrap ran, in the clone, and found the machine ready.
        assert "[bootstrap]" in out and "ready" in out
        assert os.readlink(clone / ".cache/collections/ansible_collections/remo/broker") == str(clone)
        # local_site's closing report: names and modes only.
        assert "DEMO_TOKEN (env): present in the devcontainer's environment" in out, out[-3000:]
        assert "DEMO_CONFIG (file): /run/secrets/demo/config, mode 440 dev, tmpfs, non-empty" in out, out[-3000:]
        assert "NOT_FOR_DEMO (outside the manifest): denied" in out, out[-3000:]
    finally:
        down = subprocess.run(["bash", "scripts/dev.sh", "demo", "--no-bootstrap", *names, "-e", "remo_local_state=absent"],
                              cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert down.returncode == 0, (down.stdout + down.stderr)[-3000:]
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=remo-local-e2e-{suffix}"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert not left, "the demo's teardown left its instance container"
