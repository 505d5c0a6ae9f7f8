# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the fnox tests (no tests here): real files, real pyrage encryption."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import textwrap

import pyrage
import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))


def encrypt(plaintext, recipients):
    """fnox's stored form: base64 of binary age v1, STANDARD alphabet, one line."""
    rs = []
    for r in recipients:
        r = str(r)
        rs.append(pyrage.ssh.Recipient.from_str(r) if r.startswith("ssh-") else pyrage.x25519.Recipient.from_str(r))
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    return base64.b64encode(pyrage.encrypt(data, rs)).decode("ascii")


class AgeKey:
    def __init__(self):
        self.identity = pyrage.x25519.Identity.generate()
        self.secret = str(self.identity)
        self.recipient = str(self.identity.to_public())

    def file_text(self):
        return "# created: by the test\n# public key: %s\n%s\n" % (self.recipient, self.secret)


class SshKey:
    def __init__(self):
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        key = Ed25519PrivateKey.generate()
        self.private = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()).decode()
        self.recipient = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text) if text.startswith("\n") else text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def fake_fnox(directory, value="fake-value", exit_code=0, stderr="", sleep=0, name="fnox"):
    """A stand-in fnox executable that records argv, cwd and a few env vars, then prints ``value``."""
    path = os.path.join(directory, name)
    log = path + ".log"
    script = textwrap.dedent('''\
        #!%(python)s
        import json, os, sys, time
        with open(%(log)r, "a") as fh:
            fh.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(),
                                 "non_interactive": os.environ.get("FNOX_NON_INTERACTIVE"),
                                 "stdin_tty": sys.stdin.isatty(), "stdin": sys.stdin.read()}) + "\\n")
        time.sleep(%(sleep)r)
        sys.stderr.write(%(stderr)r)
        if %(exit_code)d == 0:
            sys.stdout.write(%(value)r + "\\n")
        sys.exit(%(exit_code)d)
        ''') % {"python": shutil.which("python3") or "/usr/bin/python3", "log": log, "sleep": sleep,
                "stderr": stderr, "exit_code": exit_code, "value": value}
    write(path, script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_calls(path):
    import json
    log = path + ".log"
    if not os.path.exists(log):
        return []
    with open(log) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def real_fnox():
    """A real fnox binary for differential tests: $REMO_BROKER_TEST_REAL_FNOX, .cache/fnox/fnox, or PATH."""
    for cand in (os.environ.get("REMO_BROKER_TEST_REAL_FNOX"), os.path.join(REPO, ".cache", "fnox", "fnox"),
                 shutil.which("fnox")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            try:
                out = subprocess.run([cand, "--version"], capture_output=True, timeout=20, check=False)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.returncode == 0 and out.stdout.startswith(b"fnox "):
                return cand
    return None


@pytest.fixture
def fx(tmp_path):
    """An isolated world: HOME, FNOX_CONFIG_DIR and a project tree under tmp_path."""
    _fnox.clear_caches()
    home = tmp_path / "home"
    cfgdir = home / ".config" / "fnox"
    cfgdir.mkdir(parents=True)
    proj = tmp_path / "work" / "proj"
    proj.mkdir(parents=True)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return World(tmp_path, home, cfgdir, proj, env)


class World:
    def __init__(self, root, home, cfgdir, proj, env):
        self.root = str(root)
        self.home = str(home)
        self.cfgdir = str(cfgdir)
        self.proj = str(proj)
        self.env = env

    def write(self, rel, text):
        base = self.root if not os.path.isabs(rel) else ""
        return write(os.path.join(base, rel), text)

    def load(self, cwd=None, profiles=None, config=None):
        profiles = _fnox.normalize_profiles(profiles)
        return _fnox.load_config(cwd or self.proj, profiles, config, self.env)

    def get(self, key, cwd=None, profiles=None, config=None, override="error", **kw):
        profs = _fnox.active_profiles(profiles, self.env)
        cfg = _fnox.load_config(cwd or self.proj, profs, config, self.env)
        res = _fnox.Resolver(cfg, profs, cwd or self.proj, self.env, if_missing_override=override, **kw)
        return res.get(key)
