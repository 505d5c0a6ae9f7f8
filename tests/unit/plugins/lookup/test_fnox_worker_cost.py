# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What keeps the per-task cost of the lookup low in ansible-playbook's forked workers.

Each task runs in a new worker process, so whatever the plugin does the first time it is loaded
is paid once per task (benchmarks/bench_fnox_lookup.py, docs/benchmarks-fnox.md). These tests pin
the three things that keep that small, and that each of them stays correct:

* the option table registered at import equals what ansible parses from DOCUMENTATION and its
  fragments, so ansible skips that YAML parse without the options changing;
* the resolver module is imported through importlib's source loader (which has a bytecode cache),
  under its normal name, with a fallback to the collection loader;
* tomli and pyrage are imported only when a config is parsed or an age secret is decrypted.
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
PLUGIN = os.path.join(REPO, "plugins", "lookup", "fnox.py")
RUNTIME_KEYS = ("type", "elements", "default", "choices", "required", "vars", "env", "ini", "keyword", "cli",
                "aliases", "deprecated")
DOC_ONLY_KEYS = ("description", "version_added")


@pytest.fixture
def fnox_lookup(collection_finder):
    """The plugin module as ansible's loader imports it (importing it through sys.path would leave its
    package without the paths the loader needs, and break test_fnox.py)."""
    from ansible.plugins.loader import lookup_loader
    assert lookup_loader.get("remo.broker.fnox") is not None
    return sys.modules["ansible_collections.remo.broker.plugins.lookup.fnox"]


def _plain(obj):
    """Drop ansible's data tags (Origin, TrustedAsTemplate) so values compare as plain Python."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, str):
        return str(obj)
    return obj


def _documented_options():
    from ansible.plugins.loader import fragment_loader
    from ansible.utils.plugin_docs import get_docstring
    doc = get_docstring(PLUGIN, fragment_loader, collection_name="remo.broker")[0]
    return _plain(doc["options"])


def test_option_table_matches_documentation(fnox_lookup):
    documented = _documented_options()
    table = fnox_lookup.option_definitions()
    assert sorted(table) == sorted(documented)
    for name, spec in documented.items():
        unknown = set(spec) - set(RUNTIME_KEYS) - set(DOC_ONLY_KEYS)
        assert not unknown, "option %s: add %s to RUNTIME_KEYS and to option_definitions()" % (name, unknown)
        runtime = {k: v for k, v in spec.items() if k in RUNTIME_KEYS}
        assert table[name] == runtime, name


def test_outside_a_worker_ansible_parses_the_documentation(fnox_lookup):
    from ansible import constants as C
    assert not fnox_lookup._in_task_worker()
    assert fnox_lookup.__name__ == "ansible_collections.remo.broker.plugins.lookup.fnox"
    registered = _plain(C.config.get_configuration_definitions("lookup", fnox_lookup.__name__))
    assert "description" in registered["timeout"], "ansible-config must still see the descriptions"
    runtime = {name: {k: v for k, v in spec.items() if k in RUNTIME_KEYS} for name, spec in registered.items()}
    assert runtime == fnox_lookup.option_definitions()


def test_option_table_is_a_fresh_copy(fnox_lookup):
    first = fnox_lookup.option_definitions()
    first["timeout"]["default"] = 1
    assert fnox_lookup.option_definitions()["timeout"]["default"] == 30


def test_plugin_module_uses_the_same_resolver_module(fnox_lookup):
    assert fnox_lookup.FnoxSession is _fnox.FnoxSession
    assert fnox_lookup._import_resolver() is sys.modules[fnox_lookup._RESOLVER]


def _fresh_python(code, env=None):
    """Run ``code`` in a new interpreter with the collection finder installed, as ansible-playbook does."""
    prologue = textwrap.dedent("""\
        import sys
        from ansible.plugins.loader import init_plugin_loader, lookup_loader
        init_plugin_loader([%r])
        """ % COLLECTIONS)
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# what multiprocessing.current_process() returns inside a task worker of ansible-playbook
AS_WORKER = textwrap.dedent("""\
    import multiprocessing.process
    from ansible.executor.process.worker import WorkerProcess
    multiprocessing.process._current_process = WorkerProcess.__new__(WorkerProcess)
    """)


def test_fresh_worker_loads_resolver_with_source_loader_and_no_yaml_docs(tmp_path):
    out = _fresh_python(AS_WORKER + textwrap.dedent("""
        import ansible.plugins.loader as L
        calls = []
        orig = L.add_fragments
        L.add_fragments = lambda *a, **k: calls.append(a) or orig(*a, **k)
        plugin = lookup_loader.get("remo.broker.fnox")
        mod = sys.modules["ansible_collections.remo.broker.plugins.plugin_utils._fnox"]
        print(type(mod.__spec__.loader).__name__)
        print(mod.__file__)
        print(mod is sys.modules["ansible_collections.remo.broker.plugins.plugin_utils"]._fnox)
        print(len(calls))
        print("tomli" in sys.modules, "pyrage" in sys.modules)
        plugin.set_options(var_options={}, direct={})
        print(plugin.get_option("timeout"), plugin.get_option("on_missing"), plugin.get_option("binary"))
        """), env={"PYTHONPYCACHEPREFIX": str(tmp_path)})
    loader, path, bound, fragments, imported, options = out.splitlines()
    assert loader == importlib.machinery.SourceFileLoader.__name__
    assert os.path.realpath(path) == os.path.realpath(os.path.join(REPO, "plugins", "plugin_utils", "_fnox.py"))
    assert bound == "True"
    assert fragments == "0", "the documentation was parsed although the option table was registered"
    assert imported == "False False", "tomli/pyrage must not be imported before they are needed"
    assert options == "30.0 error fnox"


def test_ansible_config_still_sees_descriptions():
    out = _fresh_python("""
        import ansible.plugins.loader as L
        from ansible import constants as C
        plugin = lookup_loader.get("remo.broker.fnox", class_only=True)
        print("description" in C.config.get_configuration_definitions("lookup", plugin._load_name)["timeout"])
        """)
    assert out.strip() == "True"


def test_resolver_bytecode_is_cached_when_python_allows_it(tmp_path):
    code = """
        lookup_loader.get("remo.broker.fnox")
        print(sys.modules["ansible_collections.remo.broker.plugins.plugin_utils._fnox"].__cached__)
        """
    cached = _fresh_python(code, env={"PYTHONPYCACHEPREFIX": str(tmp_path), "PYTHONDONTWRITEBYTECODE": ""}).strip()
    assert cached.startswith(str(tmp_path)) and os.path.isfile(cached)
    # the .pyc holds code only: no config, no value (the resolver reads those at run time)
    with open(cached, "rb") as fh:
        assert b"value-" not in fh.read()
    os.unlink(cached)
    _fresh_python(code, env={"PYTHONPYCACHEPREFIX": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    assert not os.path.exists(cached), "PYTHONDONTWRITEBYTECODE must be honoured"


def test_import_resolver_falls_back_to_the_collection_loader(fnox_lookup, monkeypatch):
    monkeypatch.delitem(sys.modules, fnox_lookup._RESOLVER)

    def no_source_loader(*args, **kwargs):
        raise ImportError("no source loader")
    monkeypatch.setattr(fnox_lookup.importlib.util, "spec_from_file_location", no_source_loader)
    module = fnox_lookup._import_resolver()
    assert module.__name__ == fnox_lookup._RESOLVER
    assert module is sys.modules[fnox_lookup._RESOLVER]


def test_optional_dependencies_are_imported_on_first_use(monkeypatch):
    monkeypatch.setattr(_fnox, "_OPTIONAL", {})
    assert _fnox._tomli() is sys.modules["tomli"]
    assert set(_fnox._OPTIONAL) == {"tomli"}
    monkeypatch.setattr(_fnox, "HAS_TOMLI", False)
    assert _fnox._tomli() is None
    with pytest.raises(_fnox.FnoxDependencyError, match="tomli"):
        _fnox.parse_config_text("x.toml", "")


def test_missing_optional_module_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(_fnox, "_OPTIONAL", {})
    assert _fnox._optional("remo_broker_no_such_module") is None
    assert _fnox._OPTIONAL == {"remo_broker_no_such_module": None}
