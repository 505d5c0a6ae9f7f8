# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo_vault_secret against the real sidecar CLI and a real age-encrypted store.

The ``docker`` the module calls is a strict stand-in: ``docker exec -i remo-vault-test
remo-vault ...`` runs the sidecar's own CLI (roles/vault_sidecar/files/remo_vault) on
this host with the store and key in a temporary directory, any other container is
"No such container", and every argv it receives is recorded so the tests can prove
the value never travels in one.  The Molecule scenario ``instance`` runs the same module
against the real container.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.plugins.modules import remo_vault_secret
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import run_module

SIDECAR = pathlib.Path(__file__).resolve().parents[4] / "roles" / "vault_sidecar" / "files" / "remo_vault" / "remo_vault.py"
CANARY = "unit-canary-vault-9c41e7"
STAND_IN = """#!%(python)s
import json, os, sys
with open(os.environ["STAND_IN_ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:2] != ["exec", "-i"] or len(args) < 4 or args[3] != "remo-vault":
    sys.stderr.write("stand-in docker: unsupported %%r\\n" %% args)
    sys.exit(125)
if args[2] != "remo-vault-test":
    sys.stderr.write("Error: No such container: %%s\\n" %% args[2])
    sys.exit(1)
os.environ["REMO_VAULT_PROG"] = "remo-vault"
os.execv(sys.executable, [sys.executable, "-E", "-s", %(sidecar)r] + args[4:])
"""


def make_sidecar(tmp_path, setenv):
    """The stand-in ``docker`` and a fresh store and key under ``tmp_path``; ``setenv`` sets the variables."""
    if not shutil.which("age") or not shutil.which("age-keygen"):
        pytest.fail("age is not installed (scripts/bootstrap.sh installs it)")
    store, key = tmp_path / "store", tmp_path / "key"
    store.mkdir()
    key.mkdir()
    (key / "identity").write_bytes(subprocess.run(["age-keygen"], capture_output=True, check=True).stdout)
    docker = tmp_path / "docker"
    docker.write_text(STAND_IN % {"python": sys.executable, "sidecar": str(SIDECAR)})
    docker.chmod(0o755)
    argv_log = tmp_path / "argv.log"
    # -E in the stand-in drops PYTHON* variables, not these.
    setenv("REMO_VAULT_STORE_DIR", str(store))
    setenv("REMO_VAULT_KEY_DIR", str(key))
    setenv("STAND_IN_ARGV_LOG", str(argv_log))
    return {"docker": str(docker), "store": store, "argv_log": argv_log}


@pytest.fixture
def sidecar(tmp_path, monkeypatch):
    return make_sidecar(tmp_path, monkeypatch.setenv)


def secret(sidecar, check_mode=False, diff=True, **args):
    args.setdefault("container", "remo-vault-test")
    args["docker_cli"] = sidecar["docker"]
    return run_module(remo_vault_secret.main, args, check_mode=check_mode, diff=diff, verbosity=4)


def names(sidecar):
    path = sidecar["store"] / "fnox.toml"
    return sorted(line[len("[secrets."):-1] for line in path.read_text().splitlines() if line.startswith("[secrets.")) if path.exists() else []


def test_check_mode_predicts_and_writes_nothing(sidecar):
    result = secret(sidecar, check_mode=True, name="NPM_TOKEN", value=CANARY)
    assert result["_rc"] == 0 and result["changed"] is True and result["existed"] is False
    assert result["diff"] == {"before": "NPM_TOKEN: absent\n", "after": "NPM_TOKEN: present (new value)\n",
                              "before_header": "vault store", "after_header": "vault store"}
    assert names(sidecar) == []


def test_set_then_idempotent_then_change_then_remove(sidecar):
    first = secret(sidecar, name="NPM_TOKEN", value=CANARY)
    assert first["changed"] is True and names(sidecar) == ["NPM_TOKEN"]
    assert CANARY not in (sidecar["store"] / "fnox.toml").read_text()
    again = secret(sidecar, name="NPM_TOKEN", value=CANARY)
    assert again["changed"] is False and again["existed"] is True
    assert again["diff"]["after"] == "NPM_TOKEN: present\n"
    predicted = secret(sidecar, check_mode=True, name="NPM_TOKEN", value=CANARY + "-2")
    assert predicted["changed"] is True and predicted["diff"]["before"] == "NPM_TOKEN: present\n"
    assert secret(sidecar, name="NPM_TOKEN", value=CANARY + "-2")["changed"] is True
    decrypted = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import vault_store; "
                                "print(vault_store.Store().load().decrypt_all()['NPM_TOKEN'] == sys.argv[2])",
                                str(SIDECAR.parent), CANARY + "-2"], capture_output=True, text=True, check=True)
    assert decrypted.stdout.strip() == "True"
    assert secret(sidecar, check_mode=True, name="NPM_TOKEN", state="absent")["changed"] is True
    assert names(sidecar) == ["NPM_TOKEN"]
    assert secret(sidecar, name="NPM_TOKEN", state="absent")["changed"] is True
    assert secret(sidecar, name="NPM_TOKEN", state="absent")["changed"] is False
    assert names(sidecar) == []


def test_trailing_newline_is_kept_exactly(sidecar):
    assert secret(sidecar, name="PEM", value="line\n")["changed"] is True
    assert secret(sidecar, name="PEM", value="line\n")["changed"] is False
    assert secret(sidecar, name="PEM", value="line")["changed"] is True


def test_the_value_never_travels_in_argv_or_output(sidecar):
    results = [secret(sidecar, name="LEAK", value=CANARY), secret(sidecar, check_mode=True, name="LEAK", value=CANARY + "x"),
               secret(sidecar, name="LEAK", value=CANARY, container="remo-vault-gone")]
    assert results[2]["_rc"] == 1
    for result in results:
        assert CANARY not in result["_raw"]
    argv = sidecar["argv_log"].read_text()
    assert "LEAK" in argv and CANARY not in argv


def test_sidecar_down_is_a_clear_error(sidecar):
    result = secret(sidecar, name="X", value="placeholder-value-8812", container="remo-vault-gone")
    assert result["_rc"] == 1 and result["failed"]
    assert result["msg"].startswith("the vault sidecar container remo-vault-gone is not running")


@pytest.mark.parametrize("bad", ["bad-name", "", "x" * 129, "sp ace"])
def test_bad_name_fails_before_contacting_the_sidecar(sidecar, bad):
    result = secret(sidecar, name=bad, value="placeholder-value-8812")
    assert result["_rc"] == 1 and "is not a valid secret name" in result["msg"]
    assert not sidecar["argv_log"].exists()


def test_empty_and_missing_values_are_refused(sidecar):
    assert "is empty" in secret(sidecar, name="X", value="")["msg"]
    assert "value" in secret(sidecar, name="X")["msg"]
    assert not sidecar["argv_log"].exists()


def test_a_sidecar_error_is_reported_without_the_value(sidecar):
    # No key: the sidecar's CLI fails with its own message, which names the key dir.
    os.unlink(os.path.join(os.environ["REMO_VAULT_KEY_DIR"], "identity"))
    result = secret(sidecar, name="X", value=CANARY)
    assert result["_rc"] == 1 and "no vault key in" in result["msg"] and CANARY not in json.dumps(result)
