# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo_manifest against a real daemon: validate, synthesize, register, reload, unregister."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

import pytest

from ansible_collections.remo.broker.plugins.modules import remo_manifest
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import (
    run_module,
    run_module_as,
)

MANIFEST = """\
schema_version = 2
project = "demo"

[secrets.GITHUB_TOKEN]
fetch_as = "env"

[secrets.aws]
fetch_as = "file"
file_path = "/run/secrets/aws/config"
file_mode = "0400"
template = "[default]\\naws_access_key_id={{access_key_id}}\\n"
"""


def manifest(args, **kwargs):
    return run_module(remo_manifest.main, args, **kwargs)


@pytest.fixture
def conn(daemon, tmp_path):
    """Module arguments for the fixture daemon, with the approved copies under tmp_path."""
    return {"socket_path": daemon.admin_socket, "timeout": 5.0, "approved_root": str(tmp_path / "approved")}


def approved_copy(conn, name="demo"):
    return os.path.join(conn["approved_root"], name, ".remo", "manifest.toml")


def last_diff(result):
    """The registration diff (the last one when the module also shows the approved copy)."""
    diff = result["diff"]
    return diff[-1] if isinstance(diff, list) else diff


def write_project(root, text=MANIFEST, name="demo"):
    project = root / name
    (project / ".remo").mkdir(parents=True, exist_ok=True)
    (project / ".remo" / "manifest.toml").write_text(text)
    return project


def registered(daemon, name):
    for project in daemon.status()["projects"]:
        if project["name"] == name:
            return project
    return None


# ----------------------------------------------------------------------------- validated

def test_validated_needs_no_daemon(tmp_path):
    project = write_project(tmp_path)
    result = manifest(dict(project_path=str(project), state="validated",
                           socket_path=str(tmp_path / "no-daemon.sock")))
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["project"] == "demo"
    assert result["allowlist"] == ["GITHUB_TOKEN", "aws"]
    assert result["manifest"]["project"] == "demo"
    assert result["manifest_path"] == str(project / ".remo" / "manifest.toml")
    assert len(result["manifest_sha256"]) == 64
    assert "registered" not in result


def test_invalid_manifest_reports_file_line_column(tmp_path):
    # present validates locally before it contacts the daemon, so no daemon is needed
    conn = dict(socket_path=str(tmp_path / "no-daemon.sock"))
    bad = MANIFEST.replace('fetch_as = "env"', 'fetch_as = "env"\nfetch_sa = "typo"')
    project = write_project(tmp_path, bad)
    path = str(project / ".remo" / "manifest.toml")
    for state in ("validated", "present"):
        result = manifest(dict(conn, project_path=str(project), state=state))
        assert result["failed"]
        assert "%s:6:1: secrets.GITHUB_TOKEN.fetch_sa" % path in result["msg"], result["msg"]
        details = result["failure"]["details"]
        assert result["failure"]["code"] == "manifest_invalid"
        assert (details["file"], details["line"], details["column"]) == (path, 6, 1)


def test_wrong_expected_name(tmp_path):
    project = write_project(tmp_path)
    result = manifest(dict(project_path=str(project), state="validated", name="other"))
    assert result["failed"] and "manifest.toml:" in result["msg"] and "other" in result["msg"]


def test_missing_manifest_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    result = manifest(dict(project_path=str(tmp_path / "empty"), state="validated"))
    assert result["failed"] and result["failure"]["code"] == "manifest_not_found"
    assert ".remo/manifest.toml" in result["msg"] and "synthesize" in result["msg"]


def test_state_requirements():
    assert "project_path" in manifest(dict(state="present"))["msg"]
    assert "name" in manifest(dict(state="absent"))["msg"]
    bad = manifest(dict(state="absent", name="Not_Valid!"))
    assert bad["failed"] and "Not_Valid!" in bad["msg"]


# ----------------------------------------------------------------------------- present / absent

def test_register_check_real_idempotent_unregister(daemon, conn, tmp_path):
    project = write_project(tmp_path)
    args = dict(conn, project_path=str(project), expected_uid=os.getuid())

    checked = manifest(args, check_mode=True, diff=True)
    assert checked["changed"] is True and checked["registered"] is True
    assert registered(daemon, "demo") is None, "check mode must not register"
    assert "registered: false" in last_diff(checked)["before"]
    assert "  - GITHUB_TOKEN" in last_diff(checked)["after"]

    real = manifest(args, diff=True)
    assert real["changed"] is True
    assert real["socket_path"] == os.path.join(daemon.run_dir, "projects", "demo", "demo.sock")
    assert os.path.exists(real["socket_path"])
    current = registered(daemon, "demo")
    assert current["manifest_sha256"] == real["manifest_sha256"]
    assert sorted(current["allowlist"]) == ["GITHUB_TOKEN", "aws"]

    again = manifest(args, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert manifest(args, check_mode=True)["changed"] is False

    gone_check = manifest(dict(conn, name="demo", state="absent"), check_mode=True, diff=True)
    assert gone_check["changed"] is True and registered(daemon, "demo") is not None
    assert gone_check["diff"]["after"] == "registered: false\n"

    gone = manifest(dict(conn, name="demo", state="absent"))
    assert gone["changed"] is True and registered(daemon, "demo") is None
    assert manifest(dict(conn, name="demo", state="absent"))["changed"] is False
    # absent may also take the name from the manifest
    assert manifest(dict(conn, project_path=str(project), state="absent"))["changed"] is False


def test_manifest_change_triggers_reload(daemon, conn, tmp_path):
    project = write_project(tmp_path)
    args = dict(conn, project_path=str(project))
    first = manifest(args)
    assert first["changed"] is True

    path = project / ".remo" / "manifest.toml"
    path.write_text(MANIFEST + '\n[secrets.NPM_TOKEN]\nfetch_as = "env"\n')
    checked = manifest(args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert "  - NPM_TOKEN" in last_diff(checked)["after"] and "NPM_TOKEN" not in last_diff(checked)["before"]
    assert "NPM_TOKEN" not in registered(daemon, "demo")["allowlist"]

    reloaded = manifest(args)
    assert reloaded["changed"] is True
    assert "NPM_TOKEN" in registered(daemon, "demo")["allowlist"]
    assert registered(daemon, "demo")["manifest_sha256"] == reloaded["manifest_sha256"]
    assert manifest(args)["changed"] is False


def test_broken_manifest_keeps_registration(daemon, conn, tmp_path):
    project = write_project(tmp_path)
    args = dict(conn, project_path=str(project))
    manifest(args)
    before = registered(daemon, "demo")
    (project / ".remo" / "manifest.toml").write_text("schema_version = 2\nproject = \"demo\"\n[secrets.X]\nbogus = 1\n")
    result = manifest(args)
    assert result["failed"] and "manifest.toml:4:1: secrets.X.bogus" in result["msg"], result["msg"]
    assert registered(daemon, "demo")["manifest_sha256"] == before["manifest_sha256"]


def test_same_name_other_path_is_a_conflict(daemon, conn, tmp_path):
    one = write_project(tmp_path / "a")
    two = write_project(tmp_path / "b")
    assert manifest(dict(conn, project_path=str(one)))["changed"] is True
    result = manifest(dict(conn, project_path=str(two)))
    assert result["failed"] and result["failure"]["code"] == "conflict"
    assert str(one) in result["msg"]


def test_present_daemon_down(tmp_path):
    project = write_project(tmp_path)
    missing = str(tmp_path / "run" / "admin.sock")
    result = manifest(dict(project_path=str(project), socket_path=missing))
    assert result["failed"] and result["failure"]["code"] == "connection_error"
    assert "is remo-broker running" in result["msg"] and missing in result["msg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged uid")
def test_present_permission_denied(traversable_daemon, tmp_path):
    base = os.path.dirname(traversable_daemon.run_dir)
    project = os.path.join(base, "proj")
    os.makedirs(os.path.join(project, ".remo"))
    with open(os.path.join(project, ".remo", "manifest.toml"), "w") as handle:
        handle.write(MANIFEST)
    os.chmod(traversable_daemon.admin_socket, 0o660)
    result = run_module_as(65534, 65534, remo_manifest.main,
                           dict(project_path=project, socket_path=traversable_daemon.admin_socket))
    assert "_child_error" not in result, result
    assert result["failed"] and "permission denied" in result["msg"].lower()


# ----------------------------------------------------------------------------- synthesis

SPECS = [
    {"name": "GITHUB_TOKEN"},
    {"name": "aws", "fetch_as": "file", "file_path": "/run/secrets/aws/config", "file_mode": "0400",
     "template": "[default]\naws_access_key_id={{access_key_id}}\n"},
]


def test_synthesize_check_write_idempotent(daemon, conn, tmp_path):
    project = tmp_path / "tools"
    project.mkdir()
    target = project / ".remo" / "manifest.toml"
    args = dict(conn, project_path=str(project), secrets=SPECS)

    checked = manifest(args, check_mode=True, diff=True)
    assert checked["changed"] is True and checked["synthesized"] is True
    assert not target.exists() and not (project / ".remo").exists()
    assert checked["project"] == "tools"
    diffs = checked["diff"]
    assert isinstance(diffs, list) and diffs[0]["after"] == "GITHUB_TOKEN (env)\naws (file)\n"
    assert registered(daemon, "tools") is None

    real = manifest(args, diff=True)
    assert real["changed"] is True and real["synthesized"] is True
    assert target.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert registered(daemon, "tools")["manifest_sha256"] == real["manifest_sha256"]

    mtime = target.stat().st_mtime_ns
    again = manifest(args)
    assert again["changed"] is False and again["synthesized"] is False
    assert target.stat().st_mtime_ns == mtime
    assert manifest(dict(args, force_synthesize=True))["changed"] is False


def test_synthesis_skipped_when_manifest_exists(tmp_path):
    project = write_project(tmp_path)
    original = (project / ".remo" / "manifest.toml").read_text()
    result = manifest(dict(project_path=str(project), state="validated", secrets=[{"name": "OTHER"}]))
    assert result["changed"] is False and result["allowlist"] == ["GITHUB_TOKEN", "aws"]
    assert (project / ".remo" / "manifest.toml").read_text() == original

    forced = manifest(dict(project_path=str(project), state="validated", secrets=[{"name": "OTHER"}],
                           force_synthesize=True), diff=True)
    assert forced["changed"] is True and forced["allowlist"] == ["OTHER"]
    assert forced["project"] == "demo"
    assert forced["diff"]["before"] == "GITHUB_TOKEN (env)\naws (file)\n"
    assert forced["diff"]["after"] == "OTHER (env)\n"


def test_from_devcontainer(tmp_path):
    project = tmp_path / "webapp"
    (project / ".devcontainer").mkdir(parents=True)
    (project / ".devcontainer" / "devcontainer.json").write_text(json.dumps({
        "name": "webapp",
        "secrets": {"OPENAI_API_KEY": {"description": "model key"}, "NPM_TOKEN": {}},
    }))
    result = manifest(dict(project_path=str(project), state="validated", from_devcontainer=True,
                           secrets=[{"name": "EXTRA"}]))
    assert result["changed"] is True
    assert sorted(result["allowlist"]) == ["EXTRA", "NPM_TOKEN", "OPENAI_API_KEY"]
    assert (project / ".remo" / "manifest.toml").exists()


def test_from_devcontainer_bad_json_is_located(tmp_path):
    project = tmp_path / "webapp"
    (project / ".devcontainer").mkdir(parents=True)
    (project / ".devcontainer" / "devcontainer.json").write_text('{\n  "secrets": {\n    "A": 1,,\n  }\n}\n')
    result = manifest(dict(project_path=str(project), state="validated", from_devcontainer=True))
    # Python 3.11's json points at the closing brace, 3.13's at the second comma.
    assert result["failed"] and re.search(r"devcontainer\.json:(4:3|3:11): <json>: invalid JSON", result["msg"]), result["msg"]


def test_from_devcontainer_missing_file(tmp_path):
    (tmp_path / "p").mkdir()
    result = manifest(dict(project_path=str(tmp_path / "p"), state="validated", from_devcontainer=True))
    assert result["failed"] and "devcontainer.json" in result["msg"]


def test_synthesis_rejects_bad_spec_with_location(tmp_path):
    (tmp_path / "p").mkdir()
    result = manifest(dict(project_path=str(tmp_path / "p"), state="validated",
                           secrets=[{"name": "X", "fetch_as": "file", "file_path": "/etc/passwd"}]))
    assert result["failed"] and result["failure"]["code"] == "manifest_invalid"
    assert not (tmp_path / "p" / ".remo" / "manifest.toml").exists()


def test_synthesis_name_from_directory_must_be_valid(tmp_path):
    (tmp_path / "Bad Name").mkdir()
    result = manifest(dict(project_path=str(tmp_path / "Bad Name"), state="validated", secrets=[{"name": "X"}]))
    assert result["failed"] and "set the name option" in result["msg"]


def test_expected_uid_change_re_registers(daemon, conn, tmp_path):
    project = write_project(tmp_path)
    args = dict(conn, project_path=str(project), expected_uid=1000)
    assert manifest(args)["changed"] is True
    assert registered(daemon, "demo")["expected_uid"] == 1000
    assert manifest(args)["changed"] is False
    moved = manifest(dict(args, expected_uid=1001), diff=True)
    assert moved["changed"] is True
    assert "expected_uid: 1001" in moved["diff"]["after"]
    assert registered(daemon, "demo")["expected_uid"] == 1001
    assert manifest(dict(args, expected_uid=1001))["changed"] is False


# ----------------------------------------------------------------------------- approval

def test_present_installs_the_approved_copy_and_registers_it(daemon, conn, tmp_path):
    project = write_project(tmp_path / "ws")
    proposal = project / ".remo" / "manifest.toml"
    target = approved_copy(conn)
    args = dict(conn, project_path=str(project))

    checked = manifest(args, check_mode=True, diff=True)
    assert checked["changed"] is True and checked["approved"] is True and not os.path.exists(target)
    assert checked["diff"][0]["before_header"].startswith("(no approved manifest)")
    assert checked["diff"][0]["after"] == "GITHUB_TOKEN (env)\naws (file)\n"

    real = manifest(args)
    assert real["changed"] is True and real["approved"] is True
    assert (real["manifest_path"], real["proposal_path"]) == (target, str(proposal))
    info = os.lstat(target)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o644 and info.st_uid == 0
    with open(target, "rb") as handle:
        assert handle.read() == proposal.read_bytes()
    current = registered(daemon, "demo")
    assert (current["manifest_path"], current["project_path"]) == (target, str(project))

    again = manifest(args)
    assert again["changed"] is False and again["approved"] is False


def test_proposal_changed_in_the_workspace_stays_unenforced_until_approved(daemon, conn, tmp_path):
    project = write_project(tmp_path / "ws")
    args = dict(conn, project_path=str(project))
    manifest(args)
    proposal = project / ".remo" / "manifest.toml"
    proposal.write_text(MANIFEST + '\n[secrets.OTHER_PROJECT_TOKEN]\n')
    daemon.admin_ok("reload", name="demo")
    assert "OTHER_PROJECT_TOKEN" not in registered(daemon, "demo")["allowlist"]

    checked = manifest(args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"][0]["after"] == "GITHUB_TOKEN (env)\nOTHER_PROJECT_TOKEN (env)\naws (file)\n"
    assert checked["diff"][0]["before"] == "GITHUB_TOKEN (env)\naws (file)\n"
    with open(approved_copy(conn), "rb") as handle:
        assert b"OTHER_PROJECT_TOKEN" not in handle.read(), "check mode wrote the approved copy"
    assert manifest(args)["changed"] is True
    assert "OTHER_PROJECT_TOKEN" in registered(daemon, "demo")["allowlist"]


def test_pinned_proposal_is_approved_only_while_unchanged(daemon, conn, tmp_path):
    project = write_project(tmp_path / "ws")
    proposal = project / ".remo" / "manifest.toml"
    pin = hashlib.sha256(proposal.read_bytes()).hexdigest()
    args = dict(conn, project_path=str(project), proposal_sha256=pin)
    assert manifest(args)["changed"] is True
    proposal.write_text(MANIFEST + '\n[secrets.WIDER]\n')
    result = manifest(args)
    assert result["failed"] and "not the pinned proposal_sha256" in result["msg"], result
    with open(approved_copy(conn), "rb") as handle:
        assert b"WIDER" not in handle.read()
    assert "WIDER" not in registered(daemon, "demo")["allowlist"]
    assert "64 hexadecimal" in manifest(dict(args, proposal_sha256="abc"))["msg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another uid")
def test_proposal_owned_by_the_project_account_is_approved(daemon, conn, tmp_path):
    os.chmod(tmp_path, 0o755)
    project = write_project(tmp_path / "ws")
    for path in (project, project / ".remo", project / ".remo" / "manifest.toml"):
        os.chown(path, 1000, 1000)
    assert manifest(dict(conn, project_path=str(project), expected_uid=1000))["changed"] is True
    assert os.stat(approved_copy(conn)).st_uid == 0
    assert registered(daemon, "demo")["allowlist"] == ["GITHUB_TOKEN", "aws"]


def test_symlinked_proposal_is_refused(daemon, conn, tmp_path):
    project = write_project(tmp_path / "ws")
    elsewhere = write_project(tmp_path / "elsewhere")
    proposal = project / ".remo" / "manifest.toml"
    proposal.unlink()
    proposal.symlink_to(elsewhere / ".remo" / "manifest.toml")
    result = manifest(dict(conn, project_path=str(project)))
    assert result["failed"] and result["failure"]["code"] == "manifest_invalid"
    assert "symbolic link" in result["msg"] and str(proposal) in result["msg"]
    assert not os.path.exists(approved_copy(conn)) and registered(daemon, "demo") is None


def test_approved_copy_is_never_written_through_a_symlink(daemon, conn, tmp_path):
    project = write_project(tmp_path / "ws")
    redirect = tmp_path / "redirect"
    redirect.mkdir()
    os.makedirs(conn["approved_root"])
    os.symlink(str(redirect), os.path.join(conn["approved_root"], "demo"))
    result = manifest(dict(conn, project_path=str(project)))
    assert result["failed"] and "not a real directory" in result["msg"], result
    assert list(redirect.iterdir()) == [] and registered(daemon, "demo") is None
