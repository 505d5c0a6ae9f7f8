# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault key helper: age identity encoding and its refusals (no systemd needed)."""
import pathlib
import re
import sys
import types

import pytest

FILES = pathlib.Path(__file__).resolve().parents[3] / "roles" / "vault_key" / "files"
sys.path.insert(0, str(FILES))

import remo_vault_key  # noqa: E402


def test_bech32_matches_the_bip173_vector():
    # BIP-173: "a12uel5l" is the valid encoding of HRP "a" with no data.
    assert remo_vault_key.bech32_encode("a", b"") == "a12uel5l"


def test_new_identities_have_age_shape_and_differ():
    first, second = remo_vault_key.new_identity(), remo_vault_key.new_identity()
    assert re.fullmatch(rb"AGE-SECRET-KEY-1[023456789ACDEFGHJKLMNPQRSTUVWXYZ]{58}\n", first)
    assert first != second


def test_seal_never_overwrites_an_existing_key(tmp_path):
    cred = tmp_path / "key.cred"
    cred.write_bytes(b"sealed")
    assert remo_vault_key.seal(str(cred), "host") is False
    assert cred.read_bytes() == b"sealed"


def test_unseal_refuses_a_directory_not_on_tmpfs():
    # The repository checkout is on a persistent file system.
    target = pathlib.Path(__file__).resolve().parent / "_not_tmpfs_probe"
    args = types.SimpleNamespace(dir=str(target), uid=0, gid=0, cred="/nonexistent")
    try:
        with pytest.raises(remo_vault_key.KeyError_, match="not tmpfs: refusing"):
            remo_vault_key.unseal(args)
    finally:
        if target.exists():
            target.rmdir()
