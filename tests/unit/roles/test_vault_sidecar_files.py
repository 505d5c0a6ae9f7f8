# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault sidecar's store format, its inotify binding and its name rules, on the host.

Encryption needs the ``age`` command, which the sidecar image has; the Molecule
scenario ``instance`` covers it end to end.  These tests cover what needs no age.
"""
import os
import pathlib
import select
import sys
import tomllib

import pytest

FILES = pathlib.Path(__file__).resolve().parents[3] / "roles" / "vault_sidecar" / "files" / "remo_vault"
sys.path.insert(0, str(FILES))

import vault_inotify  # noqa: E402
import vault_store  # noqa: E402


def test_render_then_load_round_trips(tmp_path):
    store = vault_store.Store(store_dir=str(tmp_path), key_dir=str(tmp_path / "key"))
    store.recipients = ["age1example"]
    store.values = {"GH_TOKEN": "YWdlLWVuY3J5cHRpb24ub3JnL3Yx", "aws_2": 'quote"back\\slash\nnl'}
    store.save()
    doc = tomllib.loads((tmp_path / "fnox.toml").read_text())
    assert doc["providers"]["age"] == {"type": "age", "recipients": ["age1example"]}
    assert doc["secrets"]["GH_TOKEN"] == {"provider": "age", "value": "YWdlLWVuY3J5cHRpb24ub3JnL3Yx"}
    again = vault_store.Store(store_dir=str(tmp_path)).load()
    assert again.values == store.values and again.recipients == ["age1example"]
    assert not (tmp_path / "fnox.toml.tmp").exists()


@pytest.mark.parametrize("name", ["bad-name", "", "x" * 129, "a b", "ünicode", None])
def test_names_outside_the_broker_rule_are_refused(name):
    with pytest.raises(vault_store.VaultError, match="invalid secret name"):
        vault_store.check_name(name)


def test_a_store_with_a_foreign_entry_is_refused(tmp_path):
    (tmp_path / "fnox.toml").write_text('[secrets.X]\nprovider = "plain"\nvalue = "v"\n')
    with pytest.raises(vault_store.VaultError, match=r"\[secrets.X\] must have provider = 'age'"):
        vault_store.Store(store_dir=str(tmp_path)).load()


def test_an_oversized_store_is_refused_before_parsing(tmp_path):
    (tmp_path / "fnox.toml").write_bytes(b"#" * (vault_store.MAX_STORE_BYTES + 1))
    with pytest.raises(vault_store.VaultError, match="larger than"):
        vault_store.Store(store_dir=str(tmp_path)).load()


def test_no_key_is_a_clear_error(tmp_path):
    with pytest.raises(vault_store.VaultError, match="no vault key in"):
        vault_store.identity_files(str(tmp_path))


def test_identity_files_put_the_current_key_first(tmp_path):
    for name in ("identity.next", "identity", "identity.tmp"):
        (tmp_path / name).write_text("x")
    assert [os.path.basename(p) for p in vault_store.identity_files(str(tmp_path))] == ["identity", "identity.next"]


def test_inotify_reports_the_atomic_rename_of_the_store(tmp_path):
    ino = vault_inotify.Inotify()
    try:
        ino.add_watch(str(tmp_path), vault_inotify.IN_CLOSE_WRITE | vault_inotify.IN_MOVED_TO)
        store = vault_store.Store(store_dir=str(tmp_path))
        store.recipients, store.values = ["age1example"], {"A": "x"}
        store.save()
        poller = select.poll()
        poller.register(ino.fd, select.POLLIN)
        assert poller.poll(2000), "no inotify event within 2 s"
        assert "fnox.toml" in ino.read_names()
    finally:
        ino.close()
