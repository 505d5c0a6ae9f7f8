# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_trusted_path against real files, real symlinks and real foreign uids.

Each attack is what code running as a project's uid can do to paths it can write:
replace a file or directory with a symlink, own a directory on the way, loosen modes.
"""

from __future__ import annotations

import os
import threading

import pytest

from ansible_collections.remo.broker.plugins.module_utils._trusted_path import (
    UntrustedPathError,
    check_private_directory,
    read_trusted_file,
    trusted_uids_for,
)

PROJECT_UID = 1000  # a project's devcontainer user on remo
OTHER_UID = 65534
LIMIT = 4096

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create files owned by other uids")


@pytest.fixture()
def approved(tmp_path):
    """A root-owned approved tree: ROOT/approved/demo/.remo/manifest.toml, dirs 0755, file 0644."""
    os.chmod(tmp_path, 0o755)
    remo = tmp_path / "approved" / "demo" / ".remo"
    remo.mkdir(parents=True)
    for directory in (tmp_path / "approved", tmp_path / "approved" / "demo", remo):
        os.chmod(directory, 0o755)
    manifest = remo / "manifest.toml"
    manifest.write_text('project = "demo"\n')
    os.chmod(manifest, 0o644)
    return manifest


def _refused(path, *needles):
    with pytest.raises(UntrustedPathError) as info:
        read_trusted_file(str(path), LIMIT)
    text = str(info.value)
    for needle in needles:
        assert needle in text, text
    return info.value


def test_trusted_copy_is_read(approved):
    assert read_trusted_file(str(approved), LIMIT) == b'project = "demo"\n'


def test_symlinked_file_is_refused(approved, tmp_path):
    wider = tmp_path / "wider.toml"
    wider.write_text("project = \"demo\"\n[secrets.OTHER_PROJECT_TOKEN]\n")
    approved.unlink()
    approved.symlink_to(wider)
    error = _refused(approved, "symbolic link")
    assert error.path == str(approved)


def test_symlinked_directory_is_refused(approved, tmp_path):
    # The container-side rename attack: `.remo` moved away and replaced by a link to a
    # directory the attacker controls.
    remo = approved.parent
    evil = tmp_path / "evil"
    evil.mkdir(mode=0o755)
    (evil / "manifest.toml").write_text("project = \"demo\"\n")
    os.rename(remo, tmp_path / "moved")
    remo.symlink_to(evil)
    _refused(approved, str(remo), "symbolic link")


def test_directory_owned_by_project_uid_is_refused(approved):
    # A workspace: the project's uid owns the directory, so it can rename entries in it.
    os.chown(approved.parent.parent, PROJECT_UID, PROJECT_UID)
    error = _refused(approved, "uid %d" % PROJECT_UID, "chown root")
    assert error.path == str(approved.parent.parent)


def test_file_owned_by_project_uid_is_refused(approved):
    os.chown(approved, PROJECT_UID, PROJECT_UID)
    _refused(approved, "file is owned by", "uid %d" % PROJECT_UID)


def test_project_uid_can_be_trusted_explicitly(approved):
    os.chown(approved, PROJECT_UID, PROJECT_UID)
    assert read_trusted_file(str(approved), LIMIT, trusted_uids_for(PROJECT_UID)).startswith(b"project")


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_directory_writable_by_others_is_refused(approved, mode):
    os.chmod(approved.parent, mode)
    _refused(approved, "writable by group or others", "chmod go-w")


def test_root_owned_sticky_directory_is_allowed(approved):
    os.chmod(approved.parent.parent, 0o1777)
    assert read_trusted_file(str(approved), LIMIT)


def test_sticky_directory_owned_by_another_account_is_refused(approved):
    os.chown(approved.parent.parent, OTHER_UID, OTHER_UID)
    os.chmod(approved.parent.parent, 0o1777)
    _refused(approved, "owned by")


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_file_writable_by_others_is_refused(approved, mode):
    os.chmod(approved, mode)
    _refused(approved, "file is writable by group or others")


def test_oversized_file_is_refused(approved):
    approved.write_bytes(b"#" * (LIMIT + 1))
    _refused(approved, "larger than %d bytes" % LIMIT)


def test_fifo_is_refused_without_blocking(approved):
    approved.unlink()
    os.mkfifo(approved, 0o644)
    _refused(approved, "not a regular file")


def test_directory_as_file_is_refused(approved):
    _refused(approved.parent, "is a directory")


def test_missing_components_name_the_missing_path(approved):
    _refused(approved.parent / "nope" / "manifest.toml", "does not exist", "nope")
    _refused(approved.parent / "absent.toml", "not found")


@pytest.mark.parametrize("path", ["relative/manifest.toml", "/etc/../etc/passwd"])
def test_relative_and_dotdot_paths_are_refused(path):
    with pytest.raises(UntrustedPathError):
        read_trusted_file(path, LIMIT)


def test_swapping_race_never_serves_the_attackers_file(approved, tmp_path):
    # An attacker who can write a directory on the path flips it between the real
    # directory and a symlink to its own copy while the broker reads.  Because that
    # directory is writable by the attacker, every read is refused, and none returns
    # the attacker's bytes.
    base = approved.parent.parent
    os.chown(base, OTHER_UID, OTHER_UID)
    evil = tmp_path / "evil"
    evil.mkdir(mode=0o755)
    (evil / "manifest.toml").write_text("EVIL\n")
    stop = threading.Event()

    def flip():
        real, moved = base / ".remo", base / ".remo.real"
        while not stop.is_set():
            os.rename(real, moved)
            real.symlink_to(evil)
            real.unlink()
            os.rename(moved, real)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        outcomes = set()
        for _attempt in range(300):
            try:
                outcomes.add(read_trusted_file(str(approved), LIMIT))
            except UntrustedPathError:
                outcomes.add("refused")
    finally:
        stop.set()
        flipper.join()
    assert outcomes == {"refused"}


# --- private directories (state, run, audit) -------------------------------------

@pytest.fixture()
def state_dir(tmp_path):
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "state"
    path.mkdir(mode=0o750)
    os.chown(path, OTHER_UID, OTHER_UID)
    return path


def test_private_directory_passes(state_dir):
    check_private_directory(str(state_dir), OTHER_UID, "state directory")


def test_world_writable_state_directory_is_refused(state_dir):
    os.chmod(state_dir, 0o777)
    with pytest.raises(UntrustedPathError) as info:
        check_private_directory(str(state_dir), OTHER_UID, "state directory")
    assert "state directory" in str(info.value) and "chmod go-w %s" % state_dir in str(info.value)


def test_state_directory_of_another_account_is_refused(state_dir):
    with pytest.raises(UntrustedPathError) as info:
        check_private_directory(str(state_dir), PROJECT_UID, "state directory")
    assert "expected uid %d" % PROJECT_UID in str(info.value) or "(uid %d)" % PROJECT_UID in str(info.value)
    assert "chown %d" % PROJECT_UID in str(info.value)


def test_symlinked_state_directory_is_refused(state_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(state_dir)
    with pytest.raises(UntrustedPathError, match="symbolic link"):
        check_private_directory(str(link), OTHER_UID, "state directory")


def test_parent_writable_by_another_account_is_refused(state_dir):
    os.chown(state_dir.parent, PROJECT_UID, PROJECT_UID)
    with pytest.raises(UntrustedPathError) as info:
        check_private_directory(str(state_dir), OTHER_UID, "state directory")
    assert info.value.path == str(state_dir.parent)
    assert "state directory %s" % state_dir in str(info.value)


def test_missing_private_directory_is_reported(tmp_path):
    with pytest.raises(UntrustedPathError, match="audit directory does not exist"):
        check_private_directory(str(tmp_path / "absent"), 0, "audit directory")


def test_root_owned_group_writable_parent_only_when_allowed(state_dir):
    # Ubuntu's rsyslog makes /var/log 0775 root:syslog; only the audit directory's check allows it.
    os.chmod(state_dir.parent, 0o775)
    with pytest.raises(UntrustedPathError, match="writable by group or others"):
        check_private_directory(str(state_dir), OTHER_UID, "audit log directory")
    check_private_directory(str(state_dir), OTHER_UID, "audit log directory", root_group_parents=True)
    os.chmod(state_dir.parent, 0o777)
    with pytest.raises(UntrustedPathError, match="writable by group or others"):
        check_private_directory(str(state_dir), OTHER_UID, "audit log directory", root_group_parents=True)
    os.chmod(state_dir.parent, 0o775)
    os.chown(state_dir.parent, PROJECT_UID, PROJECT_UID)
    with pytest.raises(UntrustedPathError):
        check_private_directory(str(state_dir), OTHER_UID, "audit log directory", root_group_parents=True)
    os.chown(state_dir.parent, 0, 0)
    os.chmod(state_dir, 0o770)     # the directory itself: never group-writable
    with pytest.raises(UntrustedPathError, match="writable by group or others"):
        check_private_directory(str(state_dir), OTHER_UID, "audit log directory", root_group_parents=True)
