# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""remo-vault-watcher against a real remo-broker daemon, real inotify and real age.

The watcher and the CLI run as the sidecar runs them (``remo_vault.py`` by program
name), with the store, the key and the admin socket in a temporary directory.  Whether
the broker holds a value is asked with ``diff-creds``, which answers names only.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SIDECAR = ROOT / "roles" / "vault_sidecar" / "files" / "remo_vault" / "remo_vault.py"

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon, wait_for  # noqa: E402

CANARY = "unit-canary-watcher-51d0"


@pytest.fixture
def vault(tmp_path):
    if not shutil.which("age") or not shutil.which("age-keygen"):
        pytest.fail("age is not installed (scripts/bootstrap.sh installs it)")
    daemon = Daemon(tmp_path / "broker").start()
    store, key = tmp_path / "store", tmp_path / "key"
    store.mkdir()
    key.mkdir()
    (key / "identity").write_bytes(subprocess.run(["age-keygen"], capture_output=True, check=True).stdout)
    env = dict(os.environ, REMO_BROKER_SOCKET=daemon.admin_socket, REMO_VAULT_STORE_DIR=str(store),
               REMO_VAULT_KEY_DIR=str(key))
    log = open(tmp_path / "watcher.log", "wb")
    watcher = subprocess.Popen([sys.executable, "-E", "-s", str(SIDECAR)], env=dict(env, REMO_VAULT_PROG="remo-vault-watcher"),
                               stdout=log, stderr=log)
    state = {"daemon": daemon, "env": env, "log": tmp_path / "watcher.log", "watcher": watcher}
    try:
        yield state
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        log.close()
        state["daemon"].stop()


def vault_set(vault, name, value):
    subprocess.run([sys.executable, "-E", "-s", str(SIDECAR), "set", name], input=value.encode(), check=True,
                   env=dict(vault["env"], REMO_VAULT_PROG="remo-vault"), stdout=subprocess.DEVNULL)


def broker_holds(vault, secrets):
    """Whether the sidecar's push source holds exactly ``secrets`` (names-only diff)."""
    reply = vault["daemon"].request({"op": "diff-creds", "secrets": secrets, "source": "vault"})
    return reply.get("ok") and not reply["added"] and not reply["removed"] and not reply["changed"]


def test_a_set_reaches_the_broker_and_again_after_a_restart(vault):
    wait_for(lambda: broker_holds(vault, {}), timeout=15, what="the watcher's start-up push")
    vault_set(vault, "APP_TOKEN", CANARY)
    wait_for(lambda: broker_holds(vault, {"APP_TOKEN": CANARY}), timeout=15, what="the new value at the broker")
    vault["daemon"].stop()
    vault["daemon"] = Daemon(vault["daemon"].base).start()   # same paths, a new socket inode
    wait_for(lambda: broker_holds(vault, {"APP_TOKEN": CANARY}), timeout=15, what="a re-push after the broker restarted")
    assert CANARY not in vault["log"].read_text()


def test_a_burst_of_writes_is_debounced_into_few_pushes(vault):
    wait_for(lambda: broker_holds(vault, {}), timeout=15)
    vault_set(vault, "BURST", CANARY)
    wait_for(lambda: broker_holds(vault, {"BURST": CANARY}), timeout=15)
    before = vault["log"].read_text().count("pushed ")
    sys.path.insert(0, str(SIDECAR.parent))
    import vault_store
    store = vault_store.Store(store_dir=vault["env"]["REMO_VAULT_STORE_DIR"]).load()
    for _rewrite in range(50):   # 50 atomic rewrites well inside one debounce window
        store.save()
    wait_for(lambda: vault["log"].read_text().count("pushed ") > before, timeout=15, what="a push after the burst")
    time.sleep(0.5)   # let any trailing push land before counting (not a wait for the condition)
    assert vault["log"].read_text().count("pushed ") - before <= 2


def test_an_idle_watcher_sends_nothing_to_the_broker(vault):
    # Every admin request is an audit line; an idle watcher must not fill the log.
    wait_for(lambda: broker_holds(vault, {}), timeout=15)
    audit = pathlib.Path(vault["daemon"].audit_log)
    # The start-up push is audited by the daemon's writer process, asynchronously.
    wait_for(lambda: audit.exists() and '"push-creds"' in audit.read_text(), timeout=15)
    time.sleep(0.5)   # the writer's queue drains; not a wait for the condition under test
    size = audit.stat().st_size
    time.sleep(3)   # the quiet period under test
    watcher_ops = [json.loads(line) for line in audit.read_text()[size:].splitlines() if line.strip()]
    assert [(e.get("event"), e.get("outcome")) for e in watcher_ops if e.get("event") != "diff-creds"] == []


def test_the_real_fnox_reads_the_store(vault, tmp_path):
    fnox = ROOT / ".cache" / "fnox" / "fnox"
    if not fnox.exists():
        pytest.fail("no fnox binary at %s (scripts/bootstrap.sh fetches it)" % fnox)
    vault_set(vault, "FNOX_CHECK", CANARY)
    store_dir = vault["env"]["REMO_VAULT_STORE_DIR"]
    env = dict(os.environ, FNOX_AGE_KEY_FILE=os.path.join(vault["env"]["REMO_VAULT_KEY_DIR"], "identity"),
               FNOX_CONFIG_DIR=str(tmp_path / "fnox-config"), HOME=str(tmp_path))
    got = subprocess.run([str(fnox), "get", "FNOX_CHECK"], cwd=store_dir, env=env, capture_output=True, text=True, check=False)
    assert got.returncode == 0, got.stderr
    assert got.stdout == CANARY + "\n"
