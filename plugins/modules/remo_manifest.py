#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: remo_manifest
short_description: Validate, approve and register a project's remo-broker manifest
version_added: 0.1.0
description:
  - A project's manifest is its allowlist, the list of secret names its devcontainer may
    read from remo-broker, and how each one is delivered (environment variable or tmpfs file).
  - The project's own C(.remo/manifest.toml) is a proposal. The daemon enforces only an
    approved copy that no project can write, C(APPROVED_ROOT/NAME/.remo/manifest.toml)
    (see O(approved_root)); it checks that copy on every load and refuses it when any
    account but root or its own could have written it.
  - With O(state=validated) the module finds and validates the proposal on the managed
    host and returns it, without contacting the daemon (it works with no daemon at all).
  - With O(state=present) it validates the proposal first, failing early with the file,
    line and column of the first problem, installs its exact bytes as the approved copy
    (only when they differ), then registers the project with the approved copy, or makes
    the daemon reload it when the daemon's copy (path or SHA-256) differs.
  - The proposal is read without following symlinks and only when it and its directories
    belong to root or the owner of O(project_path) and nobody else can write them.
  - With O(state=absent) it unregisters the project; the project's socket goes away.
  - When the project has no manifest (or O(force_synthesize=true)), the module can write
    one from O(secrets) and/or the C(secrets) declared in C(.devcontainer/devcontainer.json)
    (O(from_devcontainer=true)).
  - Manifests hold secret names, never values; the diff shows names and delivery modes only.
author:
  - remo.broker contributors (@remo-broker)
extends_documentation_fragment:
  - remo.broker.broker
  - remo.broker.attributes
  - remo.broker.attributes.actiongroup_broker
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the daemon's C(status) and the files, and writes nothing.
  diff_mode:
    support: full
    details:
      - Shows secret names and delivery modes of a synthesized proposal and of the approved
        copy, and the registration (manifest path, allowlist names and manifest SHA-256)
        before and after.
  idempotent:
    support: full
options:
  project_path:
    description:
      - Root directory of the project on the managed host; the proposal
        C(.remo/manifest.toml) is looked up below it.
      - Required when O(state=present) or O(state=validated), and with O(state=absent)
        when O(name) is not given.
    type: path
  name:
    description:
      - The project's name, as registered with the daemon. Must match C(^[a-z0-9][a-z0-9_-]{0,63}$).
      - Defaults to the C(project) the manifest declares. When given, the manifest must
        declare the same name.
      - When a manifest is synthesized and O(name) is not given, the lower-cased base name
        of O(project_path) is used.
    type: str
  state:
    description:
      - V(present) validates and registers (or reloads) the project.
      - V(absent) unregisters it.
      - V(validated) only validates and returns the manifest; the daemon is never contacted.
    type: str
    choices: [present, absent, validated]
    default: present
  expected_uid:
    description:
      - The only user ID allowed to connect to the project's socket (the devcontainer's user).
      - When not given, the daemon's default applies (it uses the owner of O(project_path)).
    type: int
  secrets:
    description:
      - Secret specifications used to synthesize C(.remo/manifest.toml) when the project has
        no manifest, or when O(force_synthesize=true). Ignored otherwise.
      - Merged with the ones from C(devcontainer.json) when O(from_devcontainer=true); these win on a name clash.
    type: list
    elements: dict
    suboptions:
      name:
        description: Secret name, C(^[A-Za-z0-9_]{1,128}$).
        type: str
        required: true
      fetch_as:
        description: How the devcontainer receives the secret.
        type: str
        choices: [env, file]
        default: env
      env_var:
        description: Environment variable name (O(secrets[].fetch_as=env)); defaults to the secret name.
        type: str
      file_path:
        description: Where the file is materialized (O(secrets[].fetch_as=file)); must lie under O(file_roots).
        type: str
      file_mode:
        description: Octal mode of the materialized file, for example V('0400').
        type: str
      template:
        description:
          - Text of the file, with C({{field}}) placeholders filled from a structured secret.
          - This is a template, not a value; it must not contain secrets.
          - Ansible would evaluate C({{field}}) itself; mark the string C(!unsafe) or
            write the braces as C({{ '{{' }}) and C({{ '}}' }}).
        type: str
  from_devcontainer:
    description:
      - Synthesize the manifest from the C(secrets) declared in the project's
        C(.devcontainer/devcontainer.json) (or C(.devcontainer.json)).
      - Same conditions as O(secrets) apply (no manifest yet, or O(force_synthesize=true)).
    type: bool
    default: false
  force_synthesize:
    description:
      - Rewrite C(.remo/manifest.toml) from O(secrets) / O(from_devcontainer) even if the
        project already has a manifest. The file is only written when its content differs.
    type: bool
    default: false
  file_roots:
    description:
      - Directories under which O(secrets[].file_path) entries of the manifest may point.
      - Defaults to the manifest library's roots (C(/run/secrets), C(/dev/shm) and C(~)).
    type: list
    elements: str
  approved_root:
    description:
      - Directory of the approved copies, C(APPROVED_ROOT/NAME/.remo/manifest.toml), outside
        every workspace. It must be a real directory owned by root that only root can write;
        the module creates C(NAME) and C(NAME/.remo) in it (root, C(0755)).
      - When O(project_path) is C(APPROVED_ROOT/NAME) (a manifest synthesized from O(secrets)
        in place), the proposal is the approved copy and nothing is copied.
      - The devcontainer launcher mounts C(APPROVED_ROOT/NAME/.remo) read-only into the container.
    type: path
    default: /var/lib/remo-broker-approved
  proposal_sha256:
    description:
      - Approve the proposal only while its SHA-256 is this value (64 hex digits); fail otherwise.
      - Pin the proposal you reviewed, so that a change made in the workspace after the review
        (for example by code running in the devcontainer) is never approved.
    type: str
notes:
  - A synthesized manifest is written atomically with mode C(0644); its directory is created if needed.
  - The approved copy is written atomically, mode C(0644), owned by the user the module runs as
    (use C(become)); the daemon refuses a copy owned by any account but root or its own.
  - O(state=absent) leaves the approved copy in place.
  - See the collection's docs/manifest.md ("How to change a project's allowlist").
seealso:
  - module: remo.broker.remo_broker_info
  - module: remo.broker.remo_broker_push
"""

EXAMPLES = r"""
- name: Approve the project's reviewed proposal and register the approved copy
  remo.broker.remo_manifest:
    project_path: /home/dev/src/myrepo
    expected_uid: 1000
    proposal_sha256: 3b7e1c0d9a4f2e6b8c5d7a9f1e3b5c7d9f0a2c4e6b8d0f1a3c5e7b9d1f3a5c7e
  become: true
  register: reg

- name: The devcontainer bind-mounts this socket
  ansible.builtin.debug:
    var: reg.socket_path

- name: Validate a manifest without a daemon (for example in CI)
  remo.broker.remo_manifest:
    project_path: "{{ playbook_dir }}/../myrepo"
    state: validated
  delegate_to: localhost

- name: Write a manifest when the project has none, then register it
  remo.broker.remo_manifest:
    project_path: /home/dev/src/tools
    name: tools
    secrets:
      - name: GITHUB_TOKEN
      - name: aws
        fetch_as: file
        file_path: /run/secrets/aws/config
        file_mode: "0400"
        template: !unsafe "[default]\naws_access_key_id={{access_key_id}}\n"
  become: true

- name: Derive the manifest from the secrets declared in devcontainer.json
  remo.broker.remo_manifest:
    project_path: /home/dev/src/webapp
    from_devcontainer: true
  become: true

- name: Unregister a project
  remo.broker.remo_manifest:
    name: oldproject
    state: absent
  become: true
"""

RETURN = r"""
project:
  description: The project's name.
  returned: success
  type: str
  sample: myrepo
manifest:
  description:
    - The parsed manifest (public form, no values), as returned by the manifest library.
  returned: when a manifest was read or synthesized (not by O(state=absent) with only O(name))
  type: dict
  contains:
    project:
      description: Project name declared by the manifest (or derived from its directory).
      type: str
      sample: myrepo
    schema_version:
      description: Manifest schema version the file was read as.
      type: int
      sample: 2
    source_format:
      description: >-
        The format the file was written in: C(remo.v2) (schema_version 2), C(remo-broker.v1)
        (remo-broker v0.1) or C(remo-sidecar.v1) (remo sidecar manifests).
      type: str
      sample: remo.v2
    path:
      description: The proposal file that was parsed.
      type: str
      sample: /home/dev/src/myrepo/.remo/manifest.toml
    sha256:
      description: SHA-256 of the file's bytes.
      type: str
      sample: 9f2c6d5e0b1a4f7c8e3d2a1b0c9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f
    secrets:
      description: One entry per secret the project may read, in file order.
      type: list
      elements: dict
      contains:
        name:
          description: Secret name in the broker.
          type: str
          sample: GITHUB_TOKEN
        fetch_as:
          description: How the devcontainer receives it, C(env) or C(file).
          type: str
          sample: env
        env_var:
          description: Environment variable for C(fetch_as=env), else V(null).
          type: str
          sample: GITHUB_TOKEN
        file_path:
          description: File path for C(fetch_as=file), else V(null).
          type: str
          sample: /run/secrets/aws/config
        file_mode:
          description: Octal mode of the file for C(fetch_as=file), else V(null).
          type: str
          sample: "0400"
        template_fields:
          description: Fields of a structured secret the file template uses.
          type: list
          elements: str
          sample: [access_key_id]
allowlist:
  description: Secret names the project may read, sorted.
  returned: when a manifest was read or synthesized (not by O(state=absent) with only O(name))
  type: list
  elements: str
  sample: [GITHUB_TOKEN, aws]
manifest_path:
  description:
    - With O(state=present), the approved copy the daemon enforces.
    - Otherwise the proposal that was read (as RV(proposal_path)).
  returned: when a manifest was found or synthesized
  type: str
  sample: /var/lib/remo-broker-approved/myrepo/.remo/manifest.toml
proposal_path:
  description: The project's proposal that was validated.
  returned: when a manifest was found or synthesized
  type: str
  sample: /home/dev/src/myrepo/.remo/manifest.toml
approved:
  description: Whether the approved copy was (in check mode, would be) written.
  returned: when O(state=present)
  type: bool
  sample: true
manifest_sha256:
  description: SHA-256 of the proposal's bytes (with O(state=present) also the approved copy's).
  returned: when a manifest was found or synthesized
  type: str
  sample: 9f2c6d5e0b1a4f7c8e3d2a1b0c9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f
synthesized:
  description: Whether C(.remo/manifest.toml) was (or in check mode would be) written.
  returned: success
  type: bool
  sample: false
registered:
  description: Whether the project is registered with the daemon after the task.
  returned: when O(state) is V(present) or V(absent)
  type: bool
  sample: true
socket_path:
  description:
    - The project's socket (to bind-mount into its devcontainer) after O(state=present).
    - The admin socket used for O(state=absent).
  returned: when O(state) is V(present) or V(absent)
  type: str
  sample: /run/remo-broker/projects/myrepo/myrepo.sock
socket_dir:
  description:
    - The project's socket directory after O(state=present). The daemon keeps it across its
      restarts, so a devcontainer bind-mounts this directory rather than the socket file.
  returned: when O(state) is V(present)
  type: str
  sample: /run/remo-broker/projects/myrepo
failure:
  description:
    - The error when the module failed. C(code) is the daemon's error code, C(manifest_invalid)
      for a local validation error (with C(file), C(line), C(column) and C(key) in C(details)),
      or C(connection_error).
  returned: failure
  type: dict
  contains:
    code:
      description: Error code.
      type: str
    message:
      description: Error message.
      type: str
    details:
      description: Extra structured information, may be empty.
      type: dict
"""

import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.remo.broker.plugins.module_utils._manifest import (
    MANIFEST_RELATIVE_PATH,
    ManifestError,
    discover_manifest,
    parse_manifest,
    read_manifest_bytes,
    render_manifest,
    secrets_from_devcontainer,
)
from ansible_collections.remo.broker.plugins.module_utils._module_base import (
    BrokerModule,
    merge_argument_spec,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    E_CONFLICT,
    E_MANIFEST_INVALID,
    E_MANIFEST_NOT_FOUND,
    OP_REGISTER,
    OP_RELOAD,
    OP_STATUS,
    OP_UNREGISTER,
    PROJECT_NAME_PATTERN,
    is_valid_project_name,
    project_dir_socket_path,
    project_socket_dir,
)

MANIFEST_RELPATH = MANIFEST_RELATIVE_PATH
DEVCONTAINER_CANDIDATES = (
    os.path.join(".devcontainer", "devcontainer.json"),
    ".devcontainer.json",
)
SPEC_KEYS = ("name", "fetch_as", "env_var", "file_path", "file_mode", "template")
DEFAULT_APPROVED_ROOT = "/var/lib/remo-broker-approved"
APPROVED_DIR_MODE = 0o755
APPROVED_FILE_MODE = 0o644


# ----------------------------------------------------------------------------- helpers

def fail_manifest(module, error, **result):
    """Fail with the manifest library's FILE:LINE:COL: KEY: REASON message."""
    details = error.to_dict() if hasattr(error, "to_dict") else {}
    module.fail_json(
        msg="invalid manifest: %s" % to_native(error),
        failure=dict(code=E_MANIFEST_INVALID, message=to_native(error), details=details),
        **result
    )


def spec_summary(specs):
    """Diff text for a manifest: one ``NAME (fetch_as)`` line per secret, never more."""
    lines = []
    for spec in sorted(specs, key=lambda s: s["name"]):
        lines.append("%s (%s)\n" % (spec["name"], spec.get("fetch_as") or "env"))
    return "".join(lines)


def manifest_specs(manifest):
    """The SecretSpec objects of a Manifest as plain dicts (name and fetch mode are enough for diffs)."""
    specs = []
    for name, spec in sorted((manifest.secrets or {}).items()):
        specs.append(dict(name=name, fetch_as=getattr(spec, "fetch_as", None) or "env"))
    return specs


def read_file(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def atomic_write(module, path, data, mode=0o644):
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def approved_manifest_path(approved_root, name):
    """Where project ``name``'s approved copy lives: APPROVED_ROOT/NAME/.remo/manifest.toml."""
    return os.path.join(os.path.normpath(approved_root), name, MANIFEST_RELPATH)


def find_devcontainer(project_path):
    for rel in DEVCONTAINER_CANDIDATES:
        path = os.path.join(project_path, rel)
        if os.path.isfile(path):
            return path
    return None


def default_project_name(module, project_path):
    base = os.path.basename(os.path.normpath(project_path)).lower()
    if not is_valid_project_name(base):
        module.fail_json(
            msg="cannot derive a project name from %s (%r does not match %s); set the name option"
            % (project_path, base, PROJECT_NAME_PATTERN)
        )
    return base


def clean_spec(spec):
    return dict((k, spec[k]) for k in SPEC_KEYS if spec.get(k) is not None)


# ----------------------------------------------------------------------------- the module

class ManifestModule:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.broker = BrokerModule(module)
        self.project_path = self.params["project_path"]
        self.file_roots = self.params["file_roots"]
        self.diffs = []
        self.proposal = None    # the bytes of the proposal read (and, with state=present, approved)
        self.result = dict(changed=False, synthesized=False)

    # -- local manifest -------------------------------------------------------

    def wants_synthesis(self):
        return bool(self.params["secrets"]) or self.params["from_devcontainer"]

    def desired_specs(self):
        specs = {}
        if self.params["from_devcontainer"]:
            path = find_devcontainer(self.project_path)
            if path is None:
                self.module.fail_json(
                    msg="from_devcontainer is set but %s has no .devcontainer/devcontainer.json or .devcontainer.json"
                    % self.project_path
                )
            try:
                with open(path, "rb") as handle:
                    raw = handle.read()
                for spec in secrets_from_devcontainer(raw, path):
                    specs[spec["name"]] = clean_spec(spec)
            except ManifestError as exc:
                fail_manifest(self.module, exc)
            except (OSError, ValueError) as exc:
                self.module.fail_json(msg="cannot read %s: %s" % (path, to_native(exc)))
        for spec in self.params["secrets"] or []:
            specs[spec["name"]] = clean_spec(spec)
        return [specs[name] for name in sorted(specs)]

    def synthesize(self, existing_path):
        """Write ``.remo/manifest.toml`` if needed; return (path, bytes) of the manifest to use."""
        target = os.path.join(self.project_path, MANIFEST_RELPATH)
        specs = self.desired_specs()
        if not specs:
            self.module.fail_json(msg="no secrets to synthesize a manifest from (secrets is empty and devcontainer.json declares none)")
        existing_name = None
        if existing_path:
            try:
                existing_name = self.read_proposal(existing_path, None).project
            except ManifestError:
                existing_name = None
        name = self.params["name"] or existing_name or default_project_name(self.module, self.project_path)
        try:
            data = to_bytes(render_manifest(name, specs, file_roots=self.file_roots))
            # Validate what we are about to write, under its real path, before touching the disk.
            parse_manifest(data, path=target, expected_project=self.params["name"], file_roots=self.file_roots)
        except ManifestError as exc:
            fail_manifest(self.module, exc)

        current = read_file(target)
        if current != data:
            self.result["synthesized"] = True
            self.result["changed"] = True
            if self.module._diff:
                self._diff_manifest_file(target, current, specs, "(no manifest)")
            if not self.module.check_mode:
                try:
                    atomic_write(self.module, target, data)
                except OSError as exc:
                    self.module.fail_json(msg="cannot write %s: %s" % (target, to_native(exc)))
        return target, data

    def local_manifest(self):
        """Find (or synthesize) and validate the manifest; fail with file:line:col on errors."""
        expected = self.params["name"]
        if not os.path.isdir(self.project_path):
            self.module.fail_json(
                msg="project_path %s is not a directory" % self.project_path,
                failure=dict(code=E_MANIFEST_NOT_FOUND, message="no such directory", details=dict(project_path=self.project_path)),
            )
        try:
            existing = discover_manifest(self.project_path)
            not_found = None
        except ManifestError as exc:
            existing, not_found = None, exc
        if self.wants_synthesis() and (existing is None or self.params["force_synthesize"]):
            path, data = self.synthesize(existing)
            try:
                if self.module.check_mode and self.result["synthesized"]:
                    self.proposal = data
                    return self.pinned(parse_manifest(data, path=path, expected_project=expected,
                                                      file_roots=self.file_roots))
                return self.pinned(self.read_proposal(path, expected))
            except ManifestError as exc:
                fail_manifest(self.module, exc)
        if existing is None:
            self.module.fail_json(
                msg=(
                    "no manifest for project %s: %s; add one, or set secrets or from_devcontainer "
                    "to synthesize it" % (self.project_path, to_native(not_found))
                ),
                failure=dict(code=E_MANIFEST_NOT_FOUND, message=to_native(not_found),
                             details=not_found.to_dict() if hasattr(not_found, "to_dict") else {}),
            )
        try:
            return self.pinned(self.read_proposal(existing, expected))
        except ManifestError as exc:
            fail_manifest(self.module, exc)

    def read_proposal(self, path, expected):
        """Read (once) and parse the proposal; its bytes are what gets approved.

        The proposal may belong to the project's account (the owner of project_path), but
        no symlink is followed and no directory on the way may be writable by others.
        """
        try:
            owner = os.stat(self.project_path).st_uid
        except OSError:
            owner = None
        data = read_manifest_bytes(path, (owner,) if owner is not None else ())
        manifest = parse_manifest(data, path=path, expected_project=expected, file_roots=self.file_roots)
        self.proposal = data
        return manifest

    def pinned(self, manifest):
        """``manifest``, unless proposal_sha256 is set and the proposal's bytes differ from it."""
        pin = self.params["proposal_sha256"]
        if pin is not None and manifest.sha256 != pin.lower():
            self.module.fail_json(
                msg=("%s changed: its SHA-256 is %s, not the pinned proposal_sha256 %s. Review the proposal, "
                     "then update the pin." % (manifest.path, manifest.sha256, pin)),
                failure=dict(code=E_MANIFEST_INVALID, message="proposal does not match proposal_sha256",
                             details=dict(file=manifest.path, sha256=manifest.sha256)),
            )
        return manifest

    def describe(self, manifest):
        self.result.update(
            project=manifest.project,
            manifest=manifest.to_public_dict(),
            allowlist=sorted(manifest.allowlist),
            manifest_path=manifest.path,
            proposal_path=manifest.path,
            manifest_sha256=manifest.sha256,
        )

    # -- the approved copy ----------------------------------------------------

    def approve(self, manifest):
        """Install the validated proposal's bytes as the approved copy; return its path.

        The approved copy is what the daemon reads, so it lives outside every workspace,
        owned by root, in real (never symlinked) directories only root can write.
        """
        target = approved_manifest_path(self.params["approved_root"], manifest.project)
        self.result["approved"] = False
        if os.path.normpath(manifest.path) == target:
            return target    # synthesized in place: the proposal is the approved copy
        try:
            current = read_manifest_bytes(target)
        except ManifestError:
            current = None    # missing or untrusted: (re)written below, then checked
        if current == self.proposal:
            return target
        self.result["approved"] = True
        self.result["changed"] = True
        if self.module._diff:
            self._diff_manifest_file(target, current, manifest_specs(manifest), "(no approved manifest)")
        if self.module.check_mode:
            return target
        root = os.path.normpath(self.params["approved_root"])
        for directory in (root, os.path.join(root, manifest.project), os.path.dirname(target)):
            try:
                os.mkdir(directory, APPROVED_DIR_MODE)
            except FileExistsError:
                pass
            except OSError as exc:
                self.module.fail_json(msg="cannot create %s: %s" % (directory, to_native(exc)))
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                self.module.fail_json(msg="%s is not a real directory (a symlink or a file); the approved "
                                          "manifest is only written into real directories" % directory)
        try:
            atomic_write(self.module, target, self.proposal, APPROVED_FILE_MODE)
        except OSError as exc:
            self.module.fail_json(msg="cannot write %s: %s" % (target, to_native(exc)))
        try:
            if read_manifest_bytes(target) != self.proposal:
                self.module.fail_json(msg="%s changed while it was written" % target)
        except ManifestError as exc:
            fail_manifest(self.module, exc)
        return target

    # -- broker ---------------------------------------------------------------

    def _diff_manifest_file(self, target, current, after_specs, missing):
        """The names-only diff of a manifest file about to be (re)written: ``current`` bytes or None."""
        before = ""
        if current is not None:
            try:
                before = spec_summary(manifest_specs(parse_manifest(current, path=target, file_roots=self.file_roots)))
            except ManifestError:
                before = "(unparseable manifest)\n"
        self.diffs.append(dict(
            before=before,
            after=spec_summary(after_specs),
            before_header="%s (secret names and fetch modes)" % (target if current is not None else missing),
            after_header="%s (secret names and fetch modes)" % target,
        ))

    def registration(self, name):
        status = self.broker.request(OP_STATUS, what="the status request")
        for project in status.get("projects") or []:
            if project.get("name") == name:
                return project
        return None

    @staticmethod
    def registration_text(project):
        if project is None:
            return "registered: false\n"
        lines = ["registered: true\n", "manifest_path: %s\n" % project.get("manifest_path"),
                 "manifest_sha256: %s\n" % project.get("manifest_sha256")]
        lines.append("expected_uid: %s\n" % project.get("expected_uid"))
        lines.append("allowlist:\n")
        lines.extend("  - %s\n" % n for n in sorted(project.get("allowlist") or []))
        return "".join(lines)

    def add_registration_diff(self, name, before, after):
        if self.module._diff:
            header = "remo-broker project %s" % name
            self.diffs.append(dict(
                before=self.registration_text(before),
                after=self.registration_text(after),
                before_header=header,
                after_header=header,
            ))

    def present(self):
        manifest = self.local_manifest()
        self.describe(manifest)
        name = manifest.project
        current = self.registration(name)
        if current is not None and \
                os.path.realpath(current.get("project_path") or "") != os.path.realpath(self.project_path):
            self.module.fail_json(
                msg=(
                    "project %s is already registered for %s, not %s; unregister it first (state=absent)"
                    % (name, current.get("project_path"), self.project_path)
                ),
                failure=dict(code=E_CONFLICT, message="name registered for another path",
                             details=dict(name=name, project_path=current.get("project_path"))),
            )
        approved = self.approve(manifest)     # after the conflict check: never overwrite another's copy
        self.result["manifest_path"] = approved
        expected_uid = self.params["expected_uid"]

        op = None
        if current is None:
            op = OP_REGISTER
        else:
            if (expected_uid is not None and current.get("expected_uid") != expected_uid) \
                    or os.path.normpath(current.get("manifest_path") or "") != approved:
                op = OP_REGISTER
            elif current.get("manifest_sha256") != manifest.sha256:
                op = OP_RELOAD

        after = current
        if op is not None:
            self.result["changed"] = True
            predicted = dict(current or {})
            predicted.update(manifest_path=approved, manifest_sha256=manifest.sha256, allowlist=sorted(manifest.allowlist))
            if expected_uid is not None:
                predicted["expected_uid"] = expected_uid
            after = predicted
            if not self.module.check_mode:
                fields = dict(name=name)
                if op == OP_REGISTER:
                    fields["project_path"] = self.project_path
                    fields["manifest_path"] = approved
                    if expected_uid is not None:
                        fields["expected_uid"] = expected_uid
                reply = self.broker.request(op, what="the %s request for project %s" % (op, name), **fields)
                after = dict(predicted)
                after.update(dict((k, reply[k]) for k in ("manifest_sha256", "allowlist", "socket_path", "socket_dir")
                                  if k in reply))
                if "changed" in reply and current is not None:
                    self.result["changed"] = (bool(reply["changed"]) or op == OP_REGISTER
                                              or self.result["approved"] or self.result["synthesized"])
        self.add_registration_diff(name, current, after)
        self.result["registered"] = True
        run_dir = os.path.dirname(self.broker.socket_path)
        self.result["socket_path"] = (after or {}).get("socket_path") or project_dir_socket_path(run_dir, name)
        self.result["socket_dir"] = (after or {}).get("socket_dir") or project_socket_dir(run_dir, name)

    def absent(self):
        name = self.params["name"]
        if name is None:
            manifest = self.local_manifest()
            self.describe(manifest)
            name = manifest.project
        self.result["project"] = name
        current = self.registration(name)
        if current is not None:
            self.result["changed"] = True
            if not self.module.check_mode:
                reply = self.broker.request(OP_UNREGISTER, what="the unregister request for project %s" % name, name=name)
                self.result["changed"] = bool(reply.get("changed", True))
        self.add_registration_diff(name, current, None)
        self.result["registered"] = False
        self.result["socket_path"] = self.broker.socket_path

    def validated(self):
        self.describe(self.local_manifest())

    def run(self):
        state = self.params["state"]
        if self.params["name"] is not None and not is_valid_project_name(self.params["name"]):
            self.module.fail_json(
                msg="name %r does not match %s (or is reserved)" % (self.params["name"], PROJECT_NAME_PATTERN)
            )
        pin = self.params["proposal_sha256"]
        if pin is not None and not (len(pin) == 64 and all(c in "0123456789abcdefABCDEF" for c in pin)):
            self.module.fail_json(msg="proposal_sha256 must be 64 hexadecimal digits")
        getattr(self, state)()
        if self.module._diff and self.diffs:
            self.result["diff"] = self.diffs if len(self.diffs) > 1 else self.diffs[0]
        self.module.exit_json(**self.result)


def main():
    argument_spec = merge_argument_spec(
        dict(
            project_path=dict(type="path"),
            name=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent", "validated"]),
            expected_uid=dict(type="int"),
            secrets=dict(
                type="list",
                elements="dict",
                no_log=False,
                options=dict(
                    name=dict(type="str", required=True),
                    fetch_as=dict(type="str", default="env", choices=["env", "file"]),
                    env_var=dict(type="str"),
                    file_path=dict(type="str"),
                    file_mode=dict(type="str"),
                    template=dict(type="str"),
                ),
            ),
            from_devcontainer=dict(type="bool", default=False),
            force_synthesize=dict(type="bool", default=False),
            file_roots=dict(type="list", elements="str"),
            approved_root=dict(type="path", default=DEFAULT_APPROVED_ROOT),
            proposal_sha256=dict(type="str"),
        )
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[
            ("state", "present", ("project_path",)),
            ("state", "validated", ("project_path",)),
            ("state", "absent", ("name", "project_path"), True),
        ],
        supports_check_mode=True,
    )
    ManifestModule(module).run()


if __name__ == "__main__":
    main()
