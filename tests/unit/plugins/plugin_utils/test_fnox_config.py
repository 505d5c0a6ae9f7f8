# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fnox config discovery, layering, profiles, TOML 1.1 and schema errors, on real files."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox
from test_fnox_support import fx  # noqa: F401  pylint: disable=unused-import

PLAIN = '[providers]\np = { type = "plain" }\n'


def sec(name, value):
    return '[secrets]\n%s = { provider = "p", value = "%s" }\n' % (name, value)


def test_layers_global_parent_child_local(fx):
    fx.write(os.path.join(fx.cfgdir, "config.toml"), PLAIN + '[secrets]\nG = { provider = "p", value = "global" }\n'
             'X = { provider = "p", value = "from-global" }\n')
    fx.write("work/fnox.toml", PLAIN + '[secrets]\nX = { provider = "p", value = "from-parent" }\n'
             'P = { provider = "p", value = "parent" }\n')
    fx.write("work/proj/fnox.toml", sec("X", "from-child"))
    fx.write("work/proj/.fnox.toml", '[secrets]\nD = { provider = "p", value = "dotfile" }\n')
    fx.write("work/proj/fnox.local.toml", '[secrets]\nD = { provider = "p", value = "local-wins" }\n')
    assert fx.get("X") == "from-child"
    assert fx.get("G") == "global"
    assert fx.get("P") == "parent"
    assert fx.get("D") == "local-wins"
    cfg = fx.load()
    assert cfg.files[0].endswith("config.toml")
    assert cfg.files[-1].endswith("fnox.local.toml")


def test_dotfile_beats_plain_name_and_local_dotfile_is_last(fx):
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "plain-name"))
    fx.write("work/proj/.fnox.toml", sec("A", "dot-name"))
    assert fx.get("A") == "dot-name"
    fx.write("work/proj/fnox.local.toml", sec("A", "local"))
    fx.write("work/proj/.fnox.local.toml", sec("A", "dot-local"))
    assert fx.get("A") == "dot-local"


def test_entries_replaced_whole_not_field_merged(fx):
    fx.write("work/fnox.toml", PLAIN + '[secrets]\nA = { provider = "p", value = "parent", json_path = "x" }\n')
    fx.write("work/proj/fnox.toml", '[secrets]\nA = { provider = "p", value = "child" }\n')
    # the parent's json_path must not leak into the child's entry
    assert fx.get("A") == "child"


def test_root_true_stops_walk_but_keeps_global(fx):
    fx.write(os.path.join(fx.cfgdir, "config.toml"), PLAIN + sec("G", "global"))
    fx.write("work/fnox.toml", PLAIN + sec("ABOVE", "hidden"))
    fx.write("work/proj/fnox.toml", "root = true\n" + sec("A", "mine"))
    assert fx.get("A") == "mine"
    assert fx.get("G") == "global"
    with pytest.raises(_fnox.FnoxNotDefined) as err:
        fx.get("ABOVE")
    assert "work/proj/fnox.toml" in str(err.value)
    assert "work/fnox.toml" not in str(err.value)


def test_root_in_local_file_counts_for_the_directory(fx):
    fx.write("work/fnox.toml", PLAIN + sec("ABOVE", "hidden"))
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "mine"))
    fx.write("work/proj/fnox.local.toml", "root = true\n")
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("ABOVE")


def test_imports_under_the_file_and_first_import_wins(fx):
    fx.write("work/proj/shared/one.toml", PLAIN + sec("I", "one") + 'ONLY1 = { provider = "p", value = "1" }\n'
             'import = ["nested.toml"]\n'.replace('import = ["nested.toml"]\n', ''))
    fx.write("work/proj/shared/two.toml", PLAIN + sec("I", "two") + 'ONLY2 = { provider = "p", value = "2" }\n')
    fx.write("work/proj/fnox.toml", 'import = ["shared/one.toml", "shared/two.toml"]\n' + sec("OWN", "own"))
    assert fx.get("I") == "one"      # earlier import beats later one
    assert fx.get("ONLY2") == "2"
    fx.write("work/proj/fnox.toml", 'import = ["shared/one.toml", "shared/two.toml"]\n' + sec("I", "file-wins"))
    assert fx.get("I") == "file-wins"


def test_nested_imports_are_not_followed(fx):
    fx.write("work/proj/a.toml", 'import = ["b.toml"]\n' + PLAIN + sec("A", "a"))
    fx.write("work/proj/b.toml", PLAIN + sec("B", "b"))
    fx.write("work/proj/fnox.toml", 'import = ["a.toml"]\n')
    assert fx.get("A") == "a"
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("B")


def test_missing_import_is_a_config_error(fx):
    fx.write("work/proj/fnox.toml", 'import = ["nope.toml"]\n' + PLAIN)
    with pytest.raises(_fnox.FnoxConfigError, match="import file not found"):
        fx.load()


def test_parent_imports_sit_under_parent_not_child(fx):
    fx.write("work/lib.toml", PLAIN + sec("A", "parent-import") + 'B = { provider = "p", value = "parent-import" }\n')
    fx.write("work/fnox.toml", 'import = ["lib.toml"]\n' + sec("B", "parent"))
    fx.write("work/proj/fnox.toml", sec("C", "child"))
    assert fx.get("A") == "parent-import"
    assert fx.get("B") == "parent"


def test_explicit_config_loads_only_it_imports_and_global(fx):
    fx.write(os.path.join(fx.cfgdir, "config.toml"), PLAIN + sec("G", "global"))
    fx.write("work/proj/fnox.toml", PLAIN + sec("NEAR", "near"))
    fx.write("work/proj/deploy/inc.toml", PLAIN + sec("INC", "inc"))
    fx.write("work/proj/deploy/prod.toml", 'import = ["inc.toml"]\n' + PLAIN + sec("A", "explicit"))
    assert fx.get("A", config="deploy/prod.toml") == "explicit"
    assert fx.get("INC", config="deploy/prod.toml") == "inc"
    assert fx.get("G", config="deploy/prod.toml") == "global"
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("NEAR", config="deploy/prod.toml")
    # a bare default name keeps discovery
    assert fx.get("NEAR", config="fnox.toml") == "near"


def test_profiles_files_sections_and_order(fx):
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "base") + 'B = { provider = "p", value = "base-b" }\n'
             '[profiles.staging.secrets]\nA = { provider = "p", value = "staging" }\n'
             '[profiles.prod.secrets]\nA = { provider = "p", value = "prod" }\nP = { provider = "p", value = "prod-only" }\n')
    fx.write("work/proj/fnox.staging.toml", '[secrets]\nS = { provider = "p", value = "staging-file" }\n')
    assert fx.get("A") == "base"
    assert fx.get("A", profiles="staging") == "staging"
    assert fx.get("A", profiles=["staging", "prod"]) == "prod"
    assert fx.get("A", profiles="prod, staging") == "staging"
    assert fx.get("B", profiles="prod") == "base-b"
    assert fx.get("S", profiles="staging") == "staging-file"
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("S")      # fnox.staging.toml is not loaded without the profile
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("P", profiles="staging")


def test_profile_from_env_and_invalid_names_dropped(fx):
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "base") + '[profiles.dev.secrets]\nA = { provider = "p", value = "dev" }\n')
    fx.env["FNOX_PROFILE"] = " ../x , dev ,"
    assert _fnox.active_profiles(None, fx.env) == ["dev"]
    assert fx.get("A") == "dev"
    # the option wins over the environment
    assert fx.get("A", profiles="default") == "base"
    assert _fnox.normalize_profiles(["a,b", "c"]) == ["a", "b", "c"]
    assert _fnox.normalize_profiles(["", " "]) == ["default"]


def test_no_defaults_drops_top_level_secrets(fx):
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "base") + '[profiles.dev.secrets]\nB = { provider = "p", value = "dev" }\n')
    fx.env["FNOX_NO_DEFAULTS"] = "true"
    assert fx.get("B", profiles="dev") == "dev"
    with pytest.raises(_fnox.FnoxNotDefined):
        fx.get("A", profiles="dev")
    assert fx.get("A") == "base"   # only applies with a non-default profile


def test_profile_providers_and_default_provider(fx):
    fx.write("work/proj/fnox.toml", '[providers]\na = { type = "plain" }\nb = { type = "plain" }\n'
             'default_provider = "a"\n'.replace('default_provider = "a"\n', '') +
             '[secrets]\nA = { value = "v" }\n'
             '[profiles.x]\ndefault_provider = "b"\n')
    # two providers and no default: the value is not resolved -> missing
    with pytest.raises(_fnox.FnoxMissing):
        fx.get("A")
    assert fx.get("A", profiles="x") == "v"


def test_toml_11_multiline_inline_tables_and_trailing_commas(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = {\n  type = "plain",\n}\n[secrets]\n'
             'A = {\n  provider = "p",\n  value = "multi",\n}\n')
    assert fx.get("A") == "multi"


def test_bad_toml_reports_file_line_column(fx):
    path = fx.write("work/proj/fnox.toml", PLAIN + '[secrets]\nA = { provider = "p", value = }\n')
    with pytest.raises(_fnox.FnoxConfigError) as err:
        fx.load()
    e = err.value
    assert e.path == path and e.line == 4 and e.column
    assert "%s:4:" % path in str(e)


@pytest.mark.parametrize("text,field,line", [
    (PLAIN + '[secrets]\nA = { provider = "p", value = "v", valeu = "typo" }\n', "valeu", 4),
    (PLAIN + 'encryption = "x"\n', "encryption", 3),
    (PLAIN + '[profiles.dev]\nif_missing = "warn"\n', "if_missing", 4),
    ('[providers]\na = { type = "age", recipients = [], keyfile = "k" }\n', "keyfile", 2),
])
def test_unknown_fields_are_rejected_with_location(fx, text, field, line):
    path = fx.write("work/proj/fnox.toml", text)
    with pytest.raises(_fnox.FnoxConfigError) as err:
        fx.load()
    assert "unknown" in str(err.value) and field in str(err.value)
    assert err.value.path == path and err.value.line == line


def test_bad_values_are_rejected(fx):
    fx.write("work/proj/fnox.toml", PLAIN + '[secrets]\nA = { provider = "p", value = "v", if_missing = "maybe" }\n')
    with pytest.raises(_fnox.FnoxConfigError, match="if_missing"):
        fx.load()


def test_unknown_provider_type_is_left_to_the_binary(fx):
    fx.write("work/proj/fnox.toml", '[providers]\nz = { type = "zz-future", anything = 1 }\n[secrets]\nA = { provider = "z", value = "x" }\n')
    with pytest.raises(_fnox.NeedsBinary):
        fx.get("A")


def test_no_config_anywhere(fx):
    with pytest.raises(_fnox.FnoxConfigNotFound) as err:
        fx.load(cwd=fx.proj)
    assert "fnox.toml" in str(err.value) and fx.cfgdir in str(err.value)


def test_global_alone_is_enough(fx):
    fx.write(os.path.join(fx.cfgdir, "config.toml"), PLAIN + sec("G", "g"))
    assert fx.get("G") == "g"


def test_config_dir_resolution():
    assert _fnox.config_dir({"FNOX_CONFIG_DIR": "/c", "HOME": "/h"}) == "/c"
    assert _fnox.config_dir({"FNOX_CONFIG_DIR": "rel", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == "/x/fnox"
    assert _fnox.config_dir({"XDG_CONFIG_HOME": "", "HOME": "/h"}) == "/h/.config/fnox"


def test_validate_like_fnox_get(fx):
    fx.write("work/proj/fnox.toml", '[secrets]\nA = { default = "d" }\n')
    with pytest.raises(_fnox.FnoxConfigError, match="no providers configured"):
        fx.get("A")
    fx.write("work/proj/fnox.toml", '[providers]\na = { type = "age", recipients = [] }\n[secrets]\nA = { provider = "a", value = "" }\n')
    with pytest.raises(_fnox.FnoxConfigError, match="empty value"):
        fx.get("A")
    fx.write("work/proj/fnox.toml", PLAIN + '[secrets]\nA = { provider = "p", value = "" }\n')
    assert fx.get("A") == ""


def test_cache_one_parse_and_invalidation_on_change(fx):
    path = fx.write("work/proj/fnox.toml", PLAIN + sec("A", "one"))
    for _round in range(50):
        assert fx.get("A") == "one"
    assert _fnox.STATS["parses"] == 1
    assert _fnox.STATS["loads"] == 1
    assert _fnox.STATS["load_hits"] == 49
    # same size, new content: mtime_ns changes
    time.sleep(0.01)
    fx.write("work/proj/fnox.toml", PLAIN + sec("A", "two"))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert fx.get("A") == "two"
    # a new nearer file appearing is noticed too
    fx.write("work/proj/fnox.local.toml", sec("A", "three"))
    assert fx.get("A") == "three"
    # and FNOX_CONFIG_DIR is part of the key
    other = os.path.join(fx.root, "other")
    fx.write(os.path.join(other, "config.toml"), PLAIN + sec("G", "other-global"))
    fx.env["FNOX_CONFIG_DIR"] = other
    assert fx.get("G") == "other-global"
