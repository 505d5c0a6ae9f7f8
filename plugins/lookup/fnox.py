# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fnox
short_description: Read secrets from fnox configs without one process per secret
version_added: 0.1.0
author:
  - remo.broker contributors (@remo-broker)
description:
  - Returns the value of each fnox secret named in the terms, as C(fnox get NAME) would print it,
    and is meant to replace C(lookup('ansible.builtin.pipe', 'fnox get NAME')).
  - Reads the fnox configuration the way fnox does. It starts in the playbook directory and walks up
    to C(/), loading C(fnox.toml), C(.fnox.toml), C(fnox.PROFILE.toml) and C(.fnox.PROFILE.toml) for each
    active profile, then C(fnox.local.toml) and C(.fnox.local.toml). It stops at a directory with
    C(root = true), follows C(import) lists, and puts the global C($FNOX_CONFIG_DIR/config.toml)
    underneath everything.
  - Files are parsed as TOML 1.1, so multi-line inline tables and trailing commas written by fnox
    are accepted. Parsed configs are cached for the life of the Ansible process and re-read when a
    file's mtime, size or inode changes. Decrypted values and age identities are never cached.
  - Secrets whose provider is C(plain) or C(age) are resolved in the controller's Python, including
    C(default) with C(${NAME}) interpolation, the environment-variable fallback, C(sync),
    C(json_path) and C(line).
  - The age identity is taken in fnox's order. First E(FNOX_AGE_KEY), then the provider's C(identity)
    when it points at a C(plain) provider, then the provider's C(key_file), then E(FNOX_AGE_KEY_FILE),
    and last C($FNOX_CONFIG_DIR/age.txt). Both C(AGE-SECRET-KEY-1...) lines and unencrypted OpenSSH
    ed25519/RSA private keys are accepted.
  - Every other provider type, age plugin identities, provider-backed identities and lease backends
    are handed to the C(fnox) binary. It runs as
    C(fnox --if-missing error [-c CONFIG] [-P PROFILE]... get NAME), without a shell, with
    E(FNOX_NON_INTERACTIVE=true), no standard input, in the playbook directory, and under O(timeout).
  - A secret counts as missing when it resolves to nothing. The lookup always resolves as if
    C(--if-missing error) were given, whatever the C(if_missing) settings say, so an empty value is
    never confused with a missing one. O(on_missing) then decides what happens.
  - Errors name the secret, the files, the env vars and the fnox error code. They never contain a
    value, a ciphertext, key material or the fnox binary's own output.
  - The returned values are marked unsafe, so Jinja never evaluates template syntax inside a secret.
options:
  _terms:
    description: Names of the secrets to read, as given to C(fnox get).
    type: list
    elements: str
    required: true
  config:
    description:
      - Config file to use, like fnox's C(-c). Relative paths are relative to the playbook directory.
      - A bare C(fnox.toml), C(.fnox.toml), C(fnox.local.toml) or C(.fnox.local.toml) keeps the upward
        search. Any other path loads only that file, its imports and the global config.
    type: str
  profile:
    description:
      - The fnox profiles to use, in order; later profiles win. Takes a list or a comma-separated
        string, like fnox's C(-P).
      - If not set, E(FNOX_PROFILE) is used, and if that is not set either, C(default).
    type: list
    elements: str
  on_missing:
    description:
      - What to do when a secret is not defined for the active profiles, or is defined but resolves
        to nothing (no provider value, no C(default), no environment variable).
      - V(error) fails the task.
      - V(skip) leaves the term out of the returned list.
      - V(default) returns O(default) in its place.
      - Provider failures, such as a wrong age key or a missing binary, always fail, except that fnox
        itself falls back to a secret's configured C(default) when its provider fails.
    type: str
    choices: [error, skip, default]
    default: error
  default:
    description:
      - The value to return for a missing secret when O(on_missing=default).
      - It can only be given in the lookup call, never through ini, env or vars.
    type: str
  rstrip:
    description:
      - Strip all trailing whitespace from each value, as C(ansible.builtin.pipe) does.
      - If V(false), the value is returned exactly as fnox resolves it. Only the single newline that
        C(fnox get) prints after the value is removed.
    type: bool
    default: true
  native:
    description:
      - If V(false), every secret is read by running the C(fnox) binary, one process per term.
    type: bool
    default: true
extends_documentation_fragment:
  - remo.broker.fnox
  - remo.broker.fnox.ANSIBLE_VARIABLES
  - remo.broker.fnox.ANSIBLE_ENV
  - remo.broker.fnox.ANSIBLE_INI
notes:
  - Lookups run on the controller, so the environment is the controller's, and a task's
    C(environment:) keyword does not reach fnox.
  - Use C(no_log=true) on tasks that handle the values; the lookup keeps them out of its errors and
    logs, but Ansible prints task results.
  - The ansible-core C(errors=) keyword (V(strict), V(warn), V(ignore)) applies on top, as for every lookup.
seealso:
  - name: fnox
    description: Secret management tool that this lookup reads configs of.
    link: https://github.com/jdx/fnox
  - plugin: ansible.builtin.pipe
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Read one secret (replaces lookup('pipe', 'fnox get DB_PASSWORD'))
  ansible.builtin.set_fact:
    db_password: "{{ lookup('remo.broker.fnox', 'DB_PASSWORD') }}"
  no_log: true

- name: Several secrets in one call share one config parse
  ansible.builtin.set_fact:
    api_creds: "{{ lookup('remo.broker.fnox', 'API_USER', 'API_TOKEN', wantlist=true) }}"
  no_log: true

- name: Use the prod profile on top of staging, with an explicit config file
  ansible.builtin.debug:
    msg: "{{ lookup('remo.broker.fnox', 'DB_URL', profile=['staging', 'prod'], config='deploy/fnox.toml') }}"
  no_log: true  # BAD IDEA to print secrets; shown only to make the call visible

- name: Optional secret with a fallback
  ansible.builtin.set_fact:
    sentry_dsn: "{{ lookup('remo.broker.fnox', 'SENTRY_DSN', on_missing='default', default='') }}"
  no_log: true

- name: Point at a fnox binary outside PATH (used only for providers other than plain and age)
  ansible.builtin.set_fact:
    vault_token: "{{ lookup('remo.broker.fnox', 'VAULT_TOKEN', binary='/opt/fnox/bin/fnox', timeout=60) }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - One value per term that was found, in the order of the terms, marked unsafe.
    - With O(on_missing=skip), missing terms are left out.
  type: list
  elements: str
"""

import importlib
import importlib.util
import os
import sys

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var

display = Display()

_RESOLVER = "ansible_collections.remo.broker.plugins.plugin_utils._fnox"


def _import_resolver():
    """Import plugin_utils/_fnox.py through importlib's source loader, so it gets a bytecode cache.

    ansible-playbook runs every task in a freshly forked worker, and its collection loader compiles
    collection modules from source in each of them: about 10 ms per task for this module. ansible
    loads the plugin file itself with ``spec_from_file_location``, which reads and writes
    ``__pycache__`` like any Python import (and honours PYTHONDONTWRITEBYTECODE); this loads the
    resolver the same way, under its normal name. Anything unexpected falls back to a plain import.
    """
    module = sys.modules.get(_RESOLVER)
    if module is not None:
        return module
    try:
        parent = importlib.import_module(_RESOLVER.rpartition(".")[0])
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(here, "plugin_utils", "_fnox.py")
        search = [os.path.realpath(p) for p in getattr(parent, "__path__", ())]
        if os.path.realpath(os.path.dirname(path)) not in search or not os.path.isfile(path):
            return importlib.import_module(_RESOLVER)
        spec = importlib.util.spec_from_file_location(_RESOLVER, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_RESOLVER] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(_RESOLVER, None)
            raise
        setattr(parent, "_fnox", module)
        return module
    except ImportError:
        return importlib.import_module(_RESOLVER)


def option_definitions():
    """The runtime part of the options in DOCUMENTATION and its fragments, as ansible would load it.

    ansible-playbook forks a new worker for every task, and the first time a worker loads this plugin
    the loader parses DOCUMENTATION and four doc fragments as YAML to learn the options (about 5 ms
    per task). It skips that when the definitions are already registered, so in a task worker the
    module registers this table when it is imported. Descriptions stay in DOCUMENTATION for
    ansible-doc and ansible-config, and a unit test checks that this table equals what ansible
    parses from the documentation.
    """
    defs = {
        "_terms": {"type": "list", "elements": "str", "required": True},
        "default": {"type": "str"},
    }
    for name, spec in (("config", {"type": "str"}),
                       ("profile", {"type": "list", "elements": "str"}),
                       ("on_missing", {"type": "str", "choices": ["error", "skip", "default"], "default": "error"}),
                       ("rstrip", {"type": "bool", "default": True}),
                       ("native", {"type": "bool", "default": True}),
                       ("binary", {"type": "str", "default": "fnox"}),
                       ("timeout", {"type": "float", "default": 30})):
        spec["ini"] = [{"section": "remo.broker", "key": "fnox_" + name}]
        spec["env"] = [{"name": "REMO_BROKER_FNOX_" + name.upper()}]
        spec["vars"] = [{"name": "remo_broker_fnox_" + name}]
        defs[name] = spec
    return defs


def _in_task_worker():
    """True in the per-task worker processes of ansible-playbook, ansible and ansible-console."""
    worker = sys.modules.get("ansible.executor.process.worker")
    if worker is None:
        return False
    import multiprocessing  # pylint: disable=import-outside-toplevel
    return isinstance(multiprocessing.current_process(), worker.WorkerProcess)


def _register_option_definitions():
    # Only in task workers: elsewhere (ansible-config, ansible-doc, tests) the process loads the
    # plugin once, and tools such as `ansible-config list` show the definitions with descriptions.
    # The loader registers and looks up a collection plugin's options under its Python module name.
    try:
        from ansible import constants as C  # pylint: disable=import-outside-toplevel
        if _in_task_worker() and not C.config.has_configuration_definition("lookup", __name__):
            C.config.initialize_plugin_configuration_definitions("lookup", __name__, option_definitions())
    except Exception:  # pylint: disable=broad-except
        pass  # the loader then reads DOCUMENTATION as usual


_register_option_definitions()
_fnox = _import_resolver()
FnoxError = _fnox.FnoxError
FnoxMissing = _fnox.FnoxMissing
FnoxNotDefined = _fnox.FnoxNotDefined
FnoxSession = _fnox.FnoxSession


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        on_missing = self.get_option("on_missing")
        default = self.get_option("default")
        if on_missing == "default" and default is None:
            raise AnsibleLookupError("remo.broker.fnox: on_missing=default needs the `default` option")
        timeout = self.get_option("timeout")
        if timeout is None or timeout <= 0:
            raise AnsibleLookupError("remo.broker.fnox: timeout must be a positive number of seconds")
        rstrip = self.get_option("rstrip")

        cwd = self._loader.get_basedir() if self._loader is not None else "."
        session = FnoxSession(
            cwd=cwd,
            profile=self.get_option("profile"),
            config=self.get_option("config"),
            binary=self.get_option("binary"),
            timeout=timeout,
            native=self.get_option("native"),
        )

        results = []
        for term in terms:
            if not isinstance(term, str) or not term:
                raise AnsibleLookupError("remo.broker.fnox: each term must be a non-empty secret name")
            try:
                value = session.get(term)
            except (FnoxNotDefined, FnoxMissing) as exc:
                if on_missing == "error":
                    raise AnsibleLookupError("remo.broker.fnox: %s" % exc.message) from None
                display.vvv("remo.broker.fnox: %s is missing; on_missing=%s" % (term, on_missing))
                if on_missing == "default":
                    results.append(wrap_var(default))
                continue
            except FnoxError as exc:
                raise AnsibleLookupError("remo.broker.fnox: [%s] %s" % (exc.code, exc.message)) from None
            if value is None:  # cannot happen with --if-missing error, kept for safety
                value = ""
            if rstrip:
                value = value.rstrip()
            display.vvvv("remo.broker.fnox: resolved %s (%s path)" % (term, session.last_path))
            results.append(wrap_var(value))
        return results
