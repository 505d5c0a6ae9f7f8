# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""remo-devcontainer: start a project's devcontainer with the reference devcontainer CLI,
wired to remo-broker, without editing the project's repository.

    remo-devcontainer up PROJECT [DEVCONTAINER-UP-ARGS...]
    remo-devcontainer exec PROJECT [--] COMMAND [ARGS...]
    remo-devcontainer config PROJECT      (print the generated devcontainer.json)

The project_manifest role writes /etc/remo-broker/projects/PROJECT.json (no secrets:
paths and feature options).  The pinned CLI accepts a local feature only below
WORKSPACE/.devcontainer/ (also with --override-config and --additional-features), so
the launcher generates a launch folder outside the repository,
~/.local/state/remo-devcontainer/PROJECT/.devcontainer/, holding the project's
devcontainer.json plus: the remo-secrets feature, the repository as the workspace
mount, the project's broker socket DIRECTORY at /run/remo-broker and the approved
manifest DIRECTORY at WORKSPACE_IN_CONTAINER/.remo, both read-only.  Directories, so a
broker restart (new socket) and an approved-manifest rewrite (new file) reach a
running container.  See docs/devcontainer.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading

CONFIG_DIR = os.environ.get("REMO_DEVCONTAINER_CONFIG_DIR", "/etc/remo-broker/projects")
FEATURE_ID = "./remo-secrets"
SOCKET_TARGET = "/run/remo-broker"
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Options that would put the probed environment (secrets included) on a disk or in a log.
REFUSED_ARGS = ("--container-session-data-folder", "--override-config")


class LaunchError(Exception):
    """A problem the user can fix; printed without a traceback."""


def strip_jsonc(text):
    """JSON with comments and trailing commas (devcontainer.json) -> JSON."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def load_project(name):
    if not PROJECT_RE.match(name):
        raise LaunchError("invalid project name %r (expected %s)" % (name, PROJECT_RE.pattern))
    path = os.path.join(CONFIG_DIR, name + ".json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise LaunchError("project %s is not configured on this instance (%s is missing; run the "
                          "remo.broker.project_manifest role)" % (name, path)) from None
    except ValueError as exc:
        raise LaunchError("%s: not valid JSON: %s" % (path, exc)) from None


def find_user_config(workspace):
    for rel in (".devcontainer/devcontainer.json", ".devcontainer.json"):
        path = os.path.join(workspace, rel)
        if os.path.isfile(path):
            return path
    return None


def substitute(value, workspace):
    """Resolve the local-folder variables against the repository, not the launch folder."""
    if isinstance(value, str):
        return (value.replace("${localWorkspaceFolderBasename}", os.path.basename(workspace))
                .replace("${localWorkspaceFolder}", workspace))
    if isinstance(value, list):
        return [substitute(v, workspace) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, workspace) for k, v in value.items()}
    return value


def check_read_only_source(path, what):
    """The approved manifest directory must be one the container user cannot change."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise LaunchError("%s %s does not exist (run the remo.broker.project_manifest role)" % (what, path)) from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise LaunchError("%s %s must be a real directory, not a symlink" % (what, path))
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise LaunchError("%s %s must be owned by root and writable by nobody else" % (what, path))


def generate(project, launch_dir):
    """Write the launch folder; return the path of its devcontainer.json."""
    workspace = project["workspace"]
    if not os.path.isdir(workspace):
        raise LaunchError("workspace %s does not exist" % workspace)
    check_read_only_source(project["approved_dir"], "approved manifest directory")
    if not os.path.isdir(project["socket_dir"]):
        raise LaunchError("broker socket directory %s does not exist: is remo-broker running and the project "
                          "registered?" % project["socket_dir"])

    user_config = find_user_config(workspace)
    if user_config:
        with open(user_config, encoding="utf-8") as handle:
            try:
                config = json.loads(strip_jsonc(handle.read()))
            except ValueError as exc:
                raise LaunchError("%s: not valid JSON: %s" % (user_config, exc)) from None
        config_dir = os.path.dirname(user_config)
    else:
        if not project.get("default_image"):
            raise LaunchError("%s has no devcontainer.json and no default image is configured" % workspace)
        config = {"name": project["name"], "image": project["default_image"]}
        config_dir = os.path.join(workspace, ".devcontainer")
    if "dockerComposeFile" in config:
        raise LaunchError("%s: Docker Compose devcontainers are not supported by remo-devcontainer yet" % user_config)
    config = substitute(config, workspace)

    devcontainer_dir = os.path.join(launch_dir, ".devcontainer")
    shutil.rmtree(devcontainer_dir, ignore_errors=True)
    os.makedirs(devcontainer_dir, mode=0o700)

    # Build paths are relative to the user's devcontainer.json; make them absolute.
    build = config.get("build")
    if isinstance(build, dict):
        build["dockerfile"] = os.path.join(config_dir, build.get("dockerfile", "Dockerfile"))
        build["context"] = os.path.normpath(os.path.join(config_dir, build.get("context", ".")))
    elif "dockerFile" in config:
        config["build"] = {"dockerfile": os.path.join(config_dir, config.pop("dockerFile")),
                           "context": os.path.normpath(os.path.join(config_dir, config.pop("context", ".")))}

    features = dict(config.get("features") or {})
    for feature_id in list(features):
        if feature_id.startswith(("./", "../")):
            # The user's own local features travel with the launch folder.
            source = os.path.normpath(os.path.join(config_dir, feature_id))
            local_id = "./user-" + os.path.basename(source)
            shutil.copytree(source, os.path.join(devcontainer_dir, local_id[2:]))
            features[local_id] = features.pop(feature_id)
    if FEATURE_ID in features:
        raise LaunchError("%s already names a feature %s" % (user_config, FEATURE_ID))
    shutil.copytree(project["feature_dir"], os.path.join(devcontainer_dir, FEATURE_ID[2:]))
    features[FEATURE_ID] = project.get("feature_options", {})
    config["features"] = features

    folder = config.get("workspaceFolder") or "/workspaces/" + os.path.basename(workspace)
    config["workspaceFolder"] = folder
    config.setdefault("workspaceMount", "source=%s,target=%s,type=bind" % (workspace, folder))
    mounts = list(config.get("mounts") or [])
    for mount in mounts:
        target = mount.get("target") if isinstance(mount, dict) else dict(
            part.split("=", 1) for part in mount.split(",") if "=" in part).get("target", "")
        if target in (SOCKET_TARGET, folder + "/.remo"):
            raise LaunchError("%s mounts %s itself; remove that mount" % (user_config, target))
    mounts.append("source=%s,target=%s,type=bind,readonly" % (project["socket_dir"], SOCKET_TARGET))
    mounts.append("source=%s,target=%s/.remo,type=bind,readonly" % (project["approved_dir"], folder))
    config["mounts"] = mounts

    path = os.path.join(devcontainer_dir, "devcontainer.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def launch_dir_for(name):
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "remo-devcontainer", name)


def devcontainer_cli(project):
    return project.get("devcontainer_cli") or "devcontainer"


def refuse_leaky(args):
    for i, arg in enumerate(args):
        level = arg.split("=", 1)[1] if arg.startswith("--log-level=") else (
            args[i + 1] if arg == "--log-level" and i + 1 < len(args) else "")
        if arg.split("=", 1)[0] in REFUSED_ARGS or level == "trace":
            raise LaunchError("%s is refused: it would write the probed environment (secrets) to a disk or a "
                              "log, or replace the generated configuration" % arg)


def docker_cli(project):
    return project.get("docker_cli") or "docker"


def attest(project, container):
    """Tell the broker that ``container`` (an id or name) is the project's container."""
    out = subprocess.run([docker_cli(project), "inspect", "--type", "container", "--format",
                          "{{.Id}} {{.State.Pid}}", container], capture_output=True, text=True, check=False)
    fields = out.stdout.split()
    if out.returncode != 0 or len(fields) != 2 or not fields[1].isdigit() or fields[1] == "0":
        raise LaunchError("cannot find the running container %s: %s" % (container, out.stderr.strip() or "not running"))
    res = subprocess.run([project.get("broker_cli") or "remo-broker", "--run-dir", project["broker_run_dir"], "attest",
                          project["name"], "--container", fields[0], "--pid", fields[1]],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise LaunchError("the broker refused to attest container %s for project %s (this user needs the broker's "
                          "admin group): %s" % (fields[0][:12], project["name"], res.stderr.strip()))


def up_and_attest(project, launch_dir, cmd):
    """``devcontainer up``, attesting the container as soon as Docker reports its start.

    The container's entrypoint fetches the env secrets right away, and the broker serves
    only the attested container: attest on the start event, not only after ``up`` ends
    (the feature's client retries within its bounded tries meanwhile).
    """
    events = subprocess.Popen([docker_cli(project), "events", "--filter", "type=container", "--filter", "event=start",
                               "--filter", "label=devcontainer.local_folder=" + launch_dir, "--format", "{{.ID}}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def follow():
        for line in events.stdout:
            try:
                attest(project, line.strip())
            except LaunchError as exc:
                sys.stderr.write("remo-devcontainer: %s (again when up finishes)\n" % exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        up = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
    finally:
        events.terminate()
        events.wait()
        thread.join(10)
    sys.stdout.buffer.write(up.stdout)
    sys.stdout.flush()
    if up.returncode != 0:
        return up.returncode
    try:
        container = json.loads(up.stdout.decode("utf-8", "replace").strip().splitlines()[-1])["containerId"]
    except (ValueError, IndexError, KeyError, TypeError):
        raise LaunchError("devcontainer up printed no containerId; the container was not attested") from None
    attest(project, container)      # also when up found the container already running
    return 0


def main(argv):
    if len(argv) < 3 or argv[1] not in ("up", "exec", "config"):
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    command, name, rest = argv[1], argv[2], argv[3:]
    try:
        project = load_project(name)
        launch_dir = launch_dir_for(name)
        refuse_leaky(rest)
        if command == "config":
            with open(generate(project, launch_dir), encoding="utf-8") as handle:
                sys.stdout.write(handle.read())
            return 0
        if command == "up":
            generate(project, launch_dir)
            cmd = [devcontainer_cli(project), "up", "--workspace-folder", launch_dir,
                   "--mount-workspace-git-root", "false"] + rest
            if project.get("attest", False):
                return up_and_attest(project, launch_dir, cmd)
        else:
            if not os.path.isfile(os.path.join(launch_dir, ".devcontainer", "devcontainer.json")):
                raise LaunchError("project %s was not started with `remo-devcontainer up %s`" % (name, name))
            if rest[:1] == ["--"]:
                rest = rest[1:]
            if not rest:
                raise LaunchError("exec needs a command")
            cmd = [devcontainer_cli(project), "exec", "--workspace-folder", launch_dir] + rest
    except LaunchError as exc:
        sys.stderr.write("remo-devcontainer: %s\n" % exc)
        return 1
    except OSError as exc:
        sys.stderr.write("remo-devcontainer: %s: %s\n" % (getattr(exc, "filename", "") or "", exc.strerror or exc))
        return 1
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.stderr.write("remo-devcontainer: cannot run %s: %s\n" % (cmd[0], exc.strerror))
        return 127
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
