# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Each tag of roles/broker_install runs on its own, in check mode too, and the
preflight refuses directories systemd cannot create for the unit.

The role runs for real through ``ansible-playbook`` against this machine (local
connection). Check mode changes nothing; the only run without ``--check`` is the
run tag on a machine without the unit, which must stop at the role's own assertion
before systemd is asked anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UNIT = "/etc/systemd/system/remo-broker.service"
PLAY = """\
- name: Apply broker_install
  hosts: "{{ target | default('localhost') }}"
  connection: local
  gather_facts: false
  roles:
    - role: remo.broker.broker_install
"""


def run_role(tmp_path, *args, inventory="localhost,"):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".cache", "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
            "-e", "ansible_python_interpreter=%s" % sys.executable, str(play), *args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def role_tags(tmp_path):
    out = run_role(tmp_path, "--list-tags")[1]
    tags = set(re.findall(r"\bbroker_install_[a-z_]+\b", out))
    assert {"broker_install_install", "broker_install_configure", "broker_install_run"} <= tags, out
    return sorted(tags)


def test_every_tag_runs_alone_in_check_mode(tmp_path):
    for tag in role_tags(tmp_path):
        proc, out = run_role(tmp_path, "--check", "--tags", tag)
        assert proc.returncode == 0, "--check --tags %s failed:\n%s" % (tag, out)
        assert "undefined" not in out, out


def test_whole_role_in_check_mode(tmp_path):
    proc, out = run_role(tmp_path, "--check")
    assert proc.returncode == 0, out


def test_run_tag_alone_without_unit_says_what_to_run(tmp_path):
    assert not os.path.exists(UNIT), "this test needs a machine without %s" % UNIT
    proc, out = run_role(tmp_path, "--tags", "broker_install_run")
    assert proc.returncode != 0, out
    assert "remo-broker.service is not installed" in out, out
    assert "undefined" not in out, out


BAD_PATHS = [
    ("broker_install_run_dir", "/srv/remo-broker"),
    ("broker_install_run_dir", "/run"),
    ("broker_install_run_dir", "/run/../etc"),
    ("broker_install_run_dir", "/var/run/remo-broker"),
    ("broker_install_state_dir", "/opt/remo-broker"),
    ("broker_install_audit_log", "/tmp/audit.jsonl"),
]


@pytest.mark.parametrize("tag", ["broker_install_install", "broker_install_configure", "broker_install_run"])
def test_preflight_refuses_paths_systemd_cannot_create(tmp_path, tag):
    # One run, one inventory host per bad path: each host must fail in the preflight.
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(
        "bad%d ansible_connection=local ansible_python_interpreter=%s %s=%s\n" % (i, sys.executable, var, value)
        for i, (var, value) in enumerate(BAD_PATHS)))
    proc, out = run_role(tmp_path, "--check", "--tags", tag, "-e", "target=all", inventory=str(inventory))
    assert proc.returncode != 0, out
    for i, (var, value) in enumerate(BAD_PATHS):
        failed = re.search(r"fatal: \[bad%d\]: FAILED!.*?must be a directory below /run.*?\n" % i, out, re.S)
        assert failed and value in failed.group(0), "%s=%s was not refused:\n%s" % (var, value, out)
