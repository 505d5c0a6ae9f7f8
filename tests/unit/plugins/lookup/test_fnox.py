# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookup through ansible's real plugin loader and through a real ansible-playbook run."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap

import pyrage
import pytest

from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
CANARY = "CANARY-9d1e{{ 7*6 }}-tail"


def _b64enc(pt, recipient):
    return base64.b64encode(pyrage.encrypt(pt.encode(), [pyrage.x25519.Recipient.from_str(recipient)])).decode()


def _fake_fnox(path, value):
    with open(path, "w") as fh:
        fh.write("#!%s\nimport sys\nsys.stdout.write(%r + '\\n')\n" % (sys.executable, value))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def world(tmp_path, monkeypatch):
    _fnox.clear_caches()
    home = tmp_path / "home"
    (home / ".config" / "fnox").mkdir(parents=True)
    for var in list(os.environ):
        if var.startswith("FNOX_") or var.startswith("REMO_BROKER_FNOX"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    proj = tmp_path / "proj"
    proj.mkdir()
    ident = pyrage.x25519.Identity.generate()
    (home / ".config" / "fnox" / "age.txt").write_text(str(ident) + "\n")
    rec = str(ident.to_public())
    (proj / "fnox.toml").write_text(textwrap.dedent('''\
        [providers]
        age = { type = "age", recipients = ["%s"] }
        plain = { type = "plain" }
        op = { type = "1password" }
        [secrets]
        CANARY = { provider = "age", value = "%s" }
        PLAIN = { provider = "plain", value = "plain-value  \\n" }
        EMPTY = { provider = "plain", value = "" }
        UNSET = { provider = "plain" }
        REMOTE = { provider = "op", value = "op://vault/item/field" }
        [profiles.prod.secrets]
        PLAIN = { provider = "plain", value = "prod-plain" }
        ''') % (rec, _b64enc(CANARY, rec)))
    fake = _fake_fnox(str(tmp_path / "fnox"), "remote-value")
    return {"proj": str(proj), "home": str(home), "fake": fake, "tmp": str(tmp_path)}


def lookup(world, *terms, **kwargs):
    loader = DataLoader()
    loader.set_basedir(world["proj"])
    plugin = lookup_loader.get("remo.broker.fnox", loader=loader, templar=Templar(loader=loader))
    assert plugin is not None
    return plugin.run(list(terms), variables=kwargs.pop("variables", {}), **kwargs)


def test_loader_finds_plugin_and_reads_several_terms(world):
    out = lookup(world, "CANARY", "PLAIN", "EMPTY")
    assert out == [CANARY, "plain-value", ""]
    assert _fnox.STATS["parses"] == 1


def test_values_are_unsafe_and_never_templated(world):
    loader = DataLoader()
    loader.set_basedir(world["proj"])
    templar = Templar(loader=loader, variables={})
    out = templar.template(trust_as_template("{{ lookup('remo.broker.fnox', 'CANARY') }}"))
    assert out == CANARY
    assert "{{ 7*6 }}" in out and "42" not in out


def test_rstrip_option(world):
    assert lookup(world, "PLAIN") == ["plain-value"]
    assert lookup(world, "PLAIN", rstrip=False) == ["plain-value  \n"]


def test_profile_option_and_vars(world):
    assert lookup(world, "PLAIN", profile="prod") == ["prod-plain"]
    assert lookup(world, "PLAIN", variables={"remo_broker_fnox_profile": ["prod"]}) == ["prod-plain"]


def test_on_missing_modes(world):
    with pytest.raises(AnsibleLookupError, match="'NOPE' is not defined"):
        lookup(world, "NOPE")
    with pytest.raises(AnsibleLookupError, match="'UNSET' is defined but has no value"):
        lookup(world, "UNSET")
    assert lookup(world, "NOPE", "PLAIN", "UNSET", on_missing="skip") == ["plain-value"]
    assert lookup(world, "NOPE", "UNSET", on_missing="default", default="dflt") == ["dflt", "dflt"]
    with pytest.raises(AnsibleLookupError, match="needs the `default` option"):
        lookup(world, "NOPE", on_missing="default")


def test_binary_option_env_and_missing_binary(world, monkeypatch):
    assert lookup(world, "REMOTE", binary=world["fake"]) == ["remote-value"]
    monkeypatch.setenv("REMO_BROKER_FNOX_BINARY", world["fake"])
    assert lookup(world, "REMOTE") == ["remote-value"]
    monkeypatch.setenv("REMO_BROKER_FNOX_BINARY", "/nonexistent/fnox")
    with pytest.raises(AnsibleLookupError) as err:
        lookup(world, "REMOTE")
    msg = str(err.value)
    assert "binary" in msg and "REMO_BROKER_FNOX_BINARY" in msg and "'op' (type '1password')" in msg


def test_native_false_uses_binary_for_everything(world):
    assert lookup(world, "PLAIN", binary=world["fake"], native=False, rstrip=False) == ["remote-value"]


def test_errors_carry_no_values(world):
    (open(os.path.join(world["home"], ".config", "fnox", "age.txt"), "w")
     .write(str(pyrage.x25519.Identity.generate()) + "\n"))
    with pytest.raises(AnsibleLookupError) as err:
        lookup(world, "CANARY")
    assert "decrypt" in str(err.value) and "CANARY-9d1e" not in str(err.value)
    with open(os.path.join(world["proj"], "fnox.toml")) as fh:
        assert not any(line[40:80] in str(err.value) for line in fh if "YWdl" in line)


def test_bad_timeout(world):
    with pytest.raises(AnsibleLookupError, match="timeout"):
        lookup(world, "PLAIN", timeout=0)


# --- a real ansible-playbook run -------------------------------------------------------------

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: read the canary with no_log
      ansible.builtin.set_fact:
        secret_value: "{{ lookup('remo.broker.fnox', 'CANARY') }}"
      no_log: true
    - name: use it with no_log
      ansible.builtin.debug:
        msg: "value is {{ secret_value }}"
      no_log: true
    - name: the value is literal, and several terms come back in order
      ansible.builtin.assert:
        that:
          - secret_value is search('7\\\\*6')
          - lookup('remo.broker.fnox', 'PLAIN', 'EMPTY', wantlist=true) == ['plain-value', '']
        quiet: true
      no_log: true
"""

FAILING = """\
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: wrong key
      ansible.builtin.debug:
        msg: "{{ lookup('remo.broker.fnox', 'CANARY') }}"
"""


def _playbook(world, text, name):
    path = os.path.join(world["proj"], name)
    with open(path, "w") as fh:
        fh.write(text)
    env = dict(os.environ)
    env.update({"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS + os.pathsep + os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(pyrage.__file__)))), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0"})
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run([exe, "-vvv", "-i", "localhost,", path], cwd=world["tmp"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_playbook_no_log_keeps_canary_out(world):
    proc = _playbook(world, PLAYBOOK, "site.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "CANARY-9d1e" not in out
    assert "ok=3" in out


def test_playbook_errors_contain_no_canary(world):
    with open(os.path.join(world["home"], ".config", "fnox", "age.txt"), "w") as fh:
        fh.write(str(pyrage.x25519.Identity.generate()) + "\n")
    proc = _playbook(world, FAILING, "fail.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "fnox::encryption::age::decrypt_failed" in out
    assert "CANARY-9d1e" not in out
    with open(os.path.join(world["proj"], "fnox.toml")) as fh:
        ciphertexts = [line.split('value = "')[1][:60] for line in fh if 'value = "YWdl' in line]
    assert ciphertexts and not any(c in out for c in ciphertexts)
