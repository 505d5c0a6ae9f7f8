# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a module's ``main()`` in-process the way Ansible would (optionally as another uid).

The daemon the module tests talk to comes from tests/unit/broker_harness.py.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout

from ansible.module_utils.testing import patch_module_args


class ModuleResult(dict):
    """The JSON a module printed, plus the exit code."""

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(main, args, check_mode=False, diff=False, verbosity=0):
    """Run a module's ``main()`` in-process the way Ansible would, and return its JSON result.

    The arguments go through ``patch_module_args`` (ansible-core's unit-test helper), so
    argument_spec validation, no_log masking and check/diff handling are the real ones.
    """
    module_args = dict(args)
    module_args["_ansible_check_mode"] = check_mode
    module_args["_ansible_diff"] = diff
    module_args["_ansible_verbosity"] = verbosity
    out = io.StringIO()
    code = None
    with patch_module_args(module_args), redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    text = out.getvalue()
    if code is None:
        raise AssertionError("module returned without exit_json/fail_json; output: %r" % text)
    result = ModuleResult(json.loads(text))
    result["_rc"] = code
    result["_raw"] = text
    return result


def run_module_as(uid, gid, main, args, **kwargs):
    """Run :func:`run_module` in a forked child that dropped root to ``uid``/``gid``.

    Tests run as root, and root connects to any socket whatever its mode; a real
    unprivileged process is the only honest way to see "permission denied".
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            result = run_module(main, args, **kwargs)
            payload = json.dumps(result).encode()
        except BaseException as exc:  # report anything to the parent
            payload = json.dumps({"_child_error": repr(exc)}).encode()
            status = 1
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return ModuleResult(json.loads(data))
