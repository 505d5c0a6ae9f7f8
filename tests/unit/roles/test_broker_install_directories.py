# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The directories broker_install's unit makes systemd create pass the daemon's start-up check.

The unit template is rendered by ``ansible.builtin.template`` with the role's defaults
(as the role renders it); the test then creates each directory the way systemd does for
``RuntimeDirectory=``, ``StateDirectory=`` and ``LogsDirectory=`` (owned by the unit's
``User=``, here this test's account, with the unit's mode, parents root-owned 0755),
checks that the daemon's flags name exactly those directories, and starts the real daemon
on them: it must reach READY=1.  The same directories with one mode loosened must be
refused, so the check is not vacuous.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "broker_install")
PLAY = """\
- name: Render the broker_install unit
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {defaults}
  tasks:
    - name: Render it as the role does
      ansible.builtin.template:
        src: {template}
        dest: {dest}
        mode: "0644"
"""


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """The unit rendered with the role's defaults: {directive: value} (last one wins)."""
    tmp = tmp_path_factory.mktemp("unit")
    dest = tmp / "remo-broker.service"
    play = tmp / "play.yml"
    play.write_text(PLAY.format(defaults=os.path.join(ROLE, "defaults", "main.yml"),
                                template=os.path.join(ROLE, "templates", "remo-broker.service.j2"), dest=dest))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".cache", "collections")})
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = dest.read_text().replace("\\\n", " ")
    directives = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if match:
            directives[match.group(1)] = match.group(2).strip()
    return directives


def _flag(unit, name):
    match = re.search(r'--%s "([^"]+)"' % name, unit["ExecStart"])
    assert match, unit["ExecStart"]
    return match.group(1)


def _systemd_directories(unit, root):
    """Create ROOT/{run,var/lib,var/log}/NAME as systemd would; {flag: (path, mode)}."""
    made = {}
    for directive, parent, flag in (("RuntimeDirectory", "run", "run-dir"), ("StateDirectory", "var/lib", "state-dir"),
                                    ("LogsDirectory", "var/log", "audit-log")):
        mode = int(unit[directive + "Mode"], 8)
        path = os.path.join(root, parent, unit[directive])
        for directory in (os.path.join(root, parent), os.path.dirname(path)):
            os.makedirs(directory, mode=0o755, exist_ok=True)
            os.chmod(directory, 0o755)
        os.mkdir(path, mode)
        os.chmod(path, mode)
        made[flag] = (path, mode)
    return made


def test_unit_names_the_directories_it_makes_systemd_create(unit):
    assert _flag(unit, "run-dir") == "/run/" + unit["RuntimeDirectory"]
    assert _flag(unit, "state-dir") == "/var/lib/" + unit["StateDirectory"]
    assert os.path.dirname(_flag(unit, "audit-log")) == "/var/log/" + unit["LogsDirectory"]
    for directive in ("RuntimeDirectoryMode", "StateDirectoryMode", "LogsDirectoryMode"):
        assert int(unit[directive], 8) & 0o022 == 0, "%s=%s lets others write" % (directive, unit[directive])
    assert unit["UMask"] == "0077"


def test_daemon_starts_on_the_directories_the_unit_creates(unit, tmp_path):
    os.chmod(tmp_path, 0o755)
    made = _systemd_directories(unit, str(tmp_path / "root"))
    # The harness's own BASE/{run,state,log} are overridden by the unit's paths (last flag wins).
    base = str(tmp_path / "base")
    daemon = Daemon(base, ("--run-dir", made["run-dir"][0], "--state-dir", made["state-dir"][0],
                           "--audit-log", os.path.join(made["audit-log"][0], "audit.jsonl")))
    daemon.start()
    try:
        reply = daemon.request({"op": "status"}, path=os.path.join(made["run-dir"][0], "admin.sock"))
        assert reply["ok"] is True
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("flag", ["run-dir", "state-dir", "audit-log"])
def test_the_same_directories_loosened_are_refused(unit, tmp_path, flag):
    os.chmod(tmp_path, 0o755)
    made = _systemd_directories(unit, str(tmp_path / "root"))
    path, mode = made[flag]
    os.chmod(path, mode | 0o002)
    base = str(tmp_path / "base")
    daemon = Daemon(base, ("--run-dir", made["run-dir"][0], "--state-dir", made["state-dir"][0],
                           "--audit-log", os.path.join(made["audit-log"][0], "audit.jsonl")))
    with pytest.raises(AssertionError, match="exited with 2") as info:
        daemon.start()
    assert "refusing to start: %s" % path in str(info.value)
