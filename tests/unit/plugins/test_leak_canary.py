# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Leak canary: no secret value may appear in Ansible output or in any file a run writes.

Runs ``tests/integration/targets/leak_canary/playbook.yml`` with ``ansible-playbook -vvv``
four ways (plain, ``--diff``, ``--check``, ``--check --diff``). Each run gets:

* fresh, unique canary values, written only to the ``fnox.toml`` next to a private copy of
  the playbook (plain provider; read by the ``remo.broker.fnox`` lookup);
* its own real daemon (run dir, state dir, audit log) in a temporary directory;
* its own HOME, ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP and FNOX_CONFIG_DIR.

The run fails when any canary, in plain text, base64 or hex, is found in stdout, stderr,
the daemon's own output, or any file under the run's temporary tree other than the
``fnox.toml`` input.  Module arguments travel by pipelining (the setting a real site uses
for these modules), so Ansible itself never writes them into an AnsiballZ file.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import COLLECTION_ROOT, DAEMON, Daemon

TARGET = os.path.join(COLLECTION_ROOT, "tests", "integration", "targets", "leak_canary")
FNOX_NAMES = ("CANARY_GH", "CANARY_NPM", "CANARY_AWS_ID", "CANARY_AWS_KEY", "CANARY_ROTATED")
MODES = {
    "plain": [],
    "diff": ["--diff"],
    "check": ["--check"],
    "check_diff": ["--check", "--diff"],
}


def collections_path():
    """This checkout as ``remo.broker`` (conftest.py's symlink tree), then the installed collections."""
    import ansible

    parts = []
    root = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_ROOT)))
    if os.path.basename(os.path.dirname(os.path.dirname(COLLECTION_ROOT))) == "ansible_collections":
        parts.append(root)
    parts.append(os.path.dirname(os.path.dirname(ansible.__file__)))
    return ":".join(parts)


def encodings(value):
    raw = value.encode()
    return {
        "plain": value,
        "base64": base64.b64encode(raw).decode(),
        "hex": raw.hex(),
    }


def write_fnox(path, canaries):
    lines = ["root = true", "", "[providers.plain]", 'type = "plain"', ""]
    for name, value in canaries.items():
        lines += ["[secrets.%s]" % name, 'provider = "plain"', 'value = "%s"' % value, ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def scan_text(where, text, canaries, hits):
    for name, value in canaries.items():
        for kind, needle in encodings(value).items():
            if needle in text:
                hits.append("%s: %s (%s)" % (where, name, kind))


def scan_tree(root, canaries, hits, skip):
    for dirpath, dirnames, filenames in os.walk(root):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if os.path.realpath(path) in skip or os.path.islink(path):
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue  # sockets, vanished files
            scan_text(path, data.decode("latin-1"), canaries, hits)


def run_canary_playbook(tmp_path, mode, extra_tasks=""):
    """Run the playbook once with fresh canaries; return (completed process, leak hits, daemon)."""
    run_id = uuid.uuid4().hex[:12]
    canaries = dict((name, "LEAKCANARY%s%s%s" % (name.replace("_", ""), run_id, uuid.uuid4().hex))
                    for name in FNOX_NAMES)

    play_dir = tmp_path / "play"
    shutil.copytree(TARGET, play_dir)
    fnox_toml = play_dir / "fnox.toml"
    write_fnox(fnox_toml, canaries)
    if extra_tasks:
        with open(play_dir / "playbook.yml", "a", encoding="utf-8") as handle:
            handle.write(extra_tasks)

    dirs = dict((name, tmp_path / name) for name in ("home", "local_tmp", "remote_tmp", "fnox_config", "project", "approved"))
    for directory in dirs.values():
        directory.mkdir()
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\nretry_files_enabled = False\n[connection]\npipelining = True\n")

    # AF_UNIX paths are limited to 108 bytes: the daemon's dirs live under a short /tmp path
    broker_base = tempfile.mkdtemp(prefix="rbleak", dir="/tmp")
    broker = Daemon(broker_base).start()
    try:
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("ANSIBLE_", "FNOX_")) or key == "REMO_BROKER_SOCKET":
                del env[key]
        env.update({
            "HOME": str(dirs["home"]),
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_LOCAL_TEMP": str(dirs["local_tmp"]),
            "ANSIBLE_REMOTE_TEMP": str(dirs["remote_tmp"]),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "FNOX_CONFIG_DIR": str(dirs["fnox_config"]),
        })
        argv = [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-vvv", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable,
            "-e", "remo_socket=%s" % broker.admin_socket,
            "-e", "remo_project_path=%s" % dirs["project"],
            "-e", "remo_project_name=leak-%s" % run_id,
            "-e", "remo_approved_root=%s" % dirs["approved"],
            "-e", "remo_missing_socket=%s" % (tmp_path / "no-such-dir" / "admin.sock"),
            str(play_dir / "playbook.yml"),
        ] + MODES[mode]
        proc = subprocess.run(argv, cwd=str(play_dir), env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        broker.stop()

    hits = []
    scan_text("stdout", proc.stdout, canaries, hits)
    scan_text("stderr", proc.stderr, canaries, hits)
    scan_tree(str(tmp_path), canaries, hits, skip={os.path.realpath(str(fnox_toml))})
    scan_tree(broker_base, canaries, hits, skip=set())
    return proc, hits, broker


@pytest.mark.skipif(not os.path.exists(DAEMON), reason="bundled daemon missing")
@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_canary_leaks(tmp_path, mode):
    proc, hits, broker = run_canary_playbook(tmp_path, mode)
    assert not hits, "canary values leaked:\n" + "\n".join(hits)

    # The run must have really exercised everything, or the absence of leaks proves nothing.
    assert proc.returncode == 0, "ansible-playbook failed (rc=%s):\n%s\n%s" % (
        proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])
    assert "failed=0" in proc.stdout
    for task in ("Push the canary secrets", "Synthesize and register the project manifest",
                 "Validate the manifest without the broker", "Oversized push", "Unregister the project",
                 "Clear the secrets"):
        assert "TASK [%s" % task in proc.stdout
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in proc.stdout or "********" in proc.stdout
    if "--diff" in MODES[mode]:
        assert "(names only)" in proc.stdout
    assert os.path.getsize(broker.audit_log) > 0, "the daemon wrote no audit events"


@pytest.mark.skipif(not os.path.exists(DAEMON), reason="bundled daemon missing")
def test_the_detector_catches_a_leak(tmp_path):
    """Self-test: a task that prints a secret (and one that writes it to disk) must be caught."""
    leaky = """
    - name: Deliberate leak to stdout
      ansible.builtin.debug:
        msg: "{{ lookup('remo.broker.fnox', 'CANARY_NPM') }}"

    - name: Deliberate leak to a file
      ansible.builtin.copy:
        content: "{{ lookup('remo.broker.fnox', 'CANARY_AWS_KEY') | b64encode }}"
        dest: "{{ remo_project_path }}/oops.txt"
        mode: "0600"
      no_log: true
"""
    proc, hits, broker = run_canary_playbook(tmp_path, "plain", extra_tasks=leaky)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert any(hit.startswith("stdout: CANARY_NPM (plain)") for hit in hits), hits
    assert any("oops.txt: CANARY_AWS_KEY (base64)" in hit for hit in hits), hits
