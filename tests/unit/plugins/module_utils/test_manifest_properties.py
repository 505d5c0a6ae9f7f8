# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property tests (hypothesis) for plugins/module_utils/_manifest.py.

* any text or bytes, and any mutation of a valid manifest, gives a Manifest or a
  ManifestError -- never another exception -- and error positions lie in the text;
* generated valid specs survive render -> parse -> render unchanged, and the result
  validates against the JSON Schema;
* whatever the parser accepts, the JSON Schema accepts (the parser is the stricter);
* the locator finds every key and value of generated TOML written in every style;
* the structure scan that enforces the limits refuses no text tomllib accepts (below
  the limits), so a limit error is never a false TOML syntax error.
"""

from __future__ import annotations

import json
import tomllib

import jsonschema
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.remo.broker.plugins.module_utils import _manifest as m
from ansible_collections.remo.broker.plugins.module_utils._manifest import ManifestError, SecretSpec, parse_manifest, render_manifest

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALIDATOR = jsonschema.Draft202012Validator(m.manifest_json_schema())

SEEDS = [
    'schema_version = 2\nproject = "myrepo"\n\n[secrets.GITHUB_TOKEN]\nfetch_as = "env"\n[secrets.AWS_CONFIG]\nfetch_as = "file"\n'
    'file_path = "/run/secrets/aws/config"\nfile_mode = "0400"\ntemplate = "[default]\\nkey={{access_key_id}}\\n"\n[cache]\nttl_seconds = 5\n',
    'schema_version = 1\n\n[project]\nname = "tool"\ndescription = "x"\n\n[allowlist]\nsecrets = [\n  "GITHUB_TOKEN",\n  "NPM_TOKEN",\n]\n'
    '\n[cache]\nttl_seconds = 600\nmax_entries = 3\n',
    'schema_version = 1\nproject = "project-a"\n[secrets.gh]\nenv_var = "GH_TOKEN"\n[secrets.aws]\nfetch_as = "file"\n'
    'file_path = "~/.aws/credentials"\nfile_mode = "0600"\ntemplate = """\n[default]\nid={{id}}\n"""\n[cache]\ndefault_ttl_seconds = 900\n',
    'schema_version = 2\nproject = "p"\nsecrets.A = { fetch_as = "file", file_path = "/dev/shm/a", file_mode = 0o440 }\nsecrets."B".env_var = "BB"\n',
]
TOML_TOKENS = list('[]{}=."\',#\n \t\\0123456789abcdefxyz_-~/:+') + [
    "\r\n", "'''", '"""', "schema_version", "secrets", "fetch_as", "file", "env", "\x00", "\u00e9", "\ufeff"]
TOML_ALPHABET = st.sampled_from(TOML_TOKENS)


def check_outcome(text):
    """parse_manifest returns a Manifest or raises a well-formed ManifestError."""
    try:
        manifest = parse_manifest(text, path="f.toml")
    except ManifestError as exc:
        assert str(exc) == "f.toml:%d:%d: %s: %s" % (exc.line, exc.column, exc.key, exc.reason)
        assert exc.key and exc.reason
        if exc.line:
            source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            lines = source.split("\n")
            assert 1 <= exc.line <= len(lines), (exc, len(lines))
            assert 1 <= exc.column <= len(lines[exc.line - 1]) + 1, exc
        return None
    json.dumps(manifest.to_public_dict())
    assert manifest.source_format in m.SOURCE_FORMATS
    return manifest


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_only_manifest_error(text):
    check_outcome(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_only_manifest_error(data):
    check_outcome(data)


@SETTINGS
@given(st.lists(TOML_ALPHABET, max_size=80).map("".join))
def test_toml_like_noise_only_manifest_error(text):
    check_outcome(text)


@st.composite
def mutated_seed(draw):
    text = draw(st.sampled_from(SEEDS))
    for dummy in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "swap_lines"]))
        pos = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)):]
        elif op == "insert":
            text = text[:pos] + draw(st.lists(TOML_ALPHABET, min_size=1, max_size=4).map("".join)) + text[pos:]
        elif op == "replace":
            text = text[:pos] + draw(TOML_ALPHABET) + text[pos + 1:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def assert_scan_no_stricter_than_tomllib(text):
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    assert m._Locator(text).problem is None, (text, m._Locator(text).problem)


@SETTINGS
@given(st.lists(TOML_ALPHABET, max_size=80).map("".join))
def test_scan_accepts_what_tomllib_accepts_noise(text):
    assert_scan_no_stricter_than_tomllib(text)


@SETTINGS
@given(mutated_seed())
def test_scan_accepts_what_tomllib_accepts_mutations(text):
    assert_scan_no_stricter_than_tomllib(text)


@SETTINGS
@given(mutated_seed())
def test_mutated_manifests_only_manifest_error(text):
    manifest = check_outcome(text)
    if manifest is not None:
        assert VALIDATOR.is_valid(tomllib.loads(text)), text


def test_seeds_are_valid():
    for seed in SEEDS:
        assert check_outcome(seed) is not None
        assert VALIDATOR.is_valid(tomllib.loads(seed))


# ---------------------------------------------------------------------------
# Valid specs: render -> parse round trip
# ---------------------------------------------------------------------------
NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
ENV_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(lambda n: m._env_var_problem(n) is None)
SEGMENT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x7f"), min_size=1, max_size=6).filter(
    lambda s: s not in (".", ".."))
FILE_PATH = st.builds(lambda root, parts: root + "/" + "/".join(parts), st.sampled_from(m.DEFAULT_FILE_ROOTS), st.lists(SEGMENT, min_size=1, max_size=3))
MODE = st.sampled_from([0o400, 0o440, 0o444, 0o600, 0o640, 0o644, 0o604, 0o404])
LITERAL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="{"), max_size=12)
PLACEHOLDER = st.builds(lambda pad1, field, pad2: "{{" + pad1 + field + pad2 + "}}", st.sampled_from(["", " ", "\t"]),
                        st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True), st.sampled_from(["", " "]))
TEMPLATE = st.lists(st.one_of(LITERAL, PLACEHOLDER), min_size=1, max_size=6).map("".join).filter(bool)


@st.composite
def secret_spec(draw):
    name = draw(NAME)
    if draw(st.booleans()):
        env_var = draw(st.one_of(st.none(), ENV_NAME))
        spec = {"name": name, "fetch_as": draw(st.sampled_from([None, "env"])), "env_var": env_var}
        effective = env_var if env_var is not None else name
        return spec, SecretSpec(name, "env", effective)
    mode = draw(st.one_of(st.none(), MODE))
    written_mode = mode if mode is None or draw(st.booleans()) else m.format_file_mode(mode)
    template = draw(st.one_of(st.none(), TEMPLATE))
    path = draw(FILE_PATH)
    spec = {"name": name, "fetch_as": "file", "file_path": path, "file_mode": written_mode, "template": template}
    return spec, SecretSpec(name, "file", None, path, 0o400 if mode is None else mode, template)


@st.composite
def valid_specs(draw):
    pairs = draw(st.lists(secret_spec(), max_size=6, unique_by=lambda pair: pair[0]["name"]))
    env_vars = [expected.env_var for dummy, expected in pairs if expected.env_var]
    paths = [expected.file_path for dummy, expected in pairs if expected.file_path]
    assume(len(set(env_vars)) == len(env_vars) and len(set(paths)) == len(paths))
    assume(all(m._env_var_problem(e) is None for e in env_vars))
    return pairs


@SETTINGS
@given(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True), valid_specs())
def test_render_parse_round_trip(project, pairs):
    specs = [pair[0] for pair in pairs]
    text = render_manifest(project, specs)
    manifest = parse_manifest(text, expected_project=project)
    assert manifest.project == project
    assert list(manifest.secrets.values()) == [expected for dummy, expected in pairs]
    assert render_manifest(project, list(manifest.secrets.values())) == text
    assert VALIDATOR.is_valid(tomllib.loads(text))
    for spec in manifest.secrets.values():
        if spec.template is not None:
            assert list(spec.template_fields) == list(dict.fromkeys(m._FIELD_RE.findall(spec.template)))


# ---------------------------------------------------------------------------
# Parser accepts => schema accepts, on structurally generated manifests
# ---------------------------------------------------------------------------
SECRET_VALUE = st.fixed_dictionaries({}, optional={
    "fetch_as": st.sampled_from(["env", "file", "stdin"]),
    "env_var": st.sampled_from(["TOKEN", "PATH", "1X", "LD_AUDIT", "OTHER"]),
    "file_path": st.sampled_from(["/run/secrets/a", "~/b", "/etc/c", "rel", "/dev/shm/x/../y", "~/../z", "/run/secrets"]),
    "file_mode": st.sampled_from(["0400", "0644", "0700", "777", 0o600, 0o602, 400, "4400", True]),
    "template": st.sampled_from(["{{a}}", "{{ b }}", "{{bad-name}}", "", "plain", "{{{a}}}", 3]),
    "extra": st.just(1),
})
STRUCTURED = st.fixed_dictionaries({}, optional={
    "schema_version": st.sampled_from([1, 2, 3, "2", True]),
    "project": st.one_of(st.sampled_from(["p", "Bad", ""]), st.fixed_dictionaries({}, optional={
        "name": st.sampled_from(["p", "Bad"]), "description": st.sampled_from(["d", "x" * 300]), "x": st.just(1)})),
    "allowlist": st.fixed_dictionaries({}, optional={"secrets": st.lists(st.sampled_from(["A", "B", "PATH", "bad-name", "1X"]), max_size=3)}),
    "secrets": st.dictionaries(st.sampled_from(["A", "b", "B", "PATH", "bad name"]), SECRET_VALUE, max_size=3),
    "cache": st.fixed_dictionaries({}, optional={k: st.sampled_from([0, 1, 900, 100000]) for k in
                                                 ("ttl_seconds", "max_entries", "default_ttl_seconds", "default_max_entries")}),
    "other": st.just("x"),
})


def toml_key(key):
    return key if m._BARE_KEY_RE.fullmatch(key) else m._toml_string(key)


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return m._toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join("%s = %s" % (toml_key(k), toml_value(v)) for k, v in value.items()) + " }"


def dump_toml(tree):
    """Scalars first, then each sub-table as a [header] section (one level of nesting below)."""
    lines = ["%s = %s" % (toml_key(k), toml_value(v)) for k, v in tree.items() if not isinstance(v, dict)]
    for key, sub in tree.items():
        if not isinstance(sub, dict):
            continue
        lines.append("[%s]" % toml_key(key))
        lines.extend("%s = %s" % (toml_key(k), toml_value(v)) for k, v in sub.items() if not isinstance(v, dict))
        for key2, sub2 in sub.items():
            if isinstance(sub2, dict):
                lines.append("[%s.%s]" % (toml_key(key), toml_key(key2)))
                lines.extend("%s = %s" % (toml_key(k), toml_value(v)) for k, v in sub2.items())
    return "\n".join(lines) + "\n"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(STRUCTURED)
def test_parser_accepts_implies_schema_accepts(tree):
    text = dump_toml(tree)
    assert tomllib.loads(text) == tree
    manifest = check_outcome(text)
    schema_ok = VALIDATOR.is_valid(tree)
    if manifest is not None:
        assert schema_ok, text


# ---------------------------------------------------------------------------
# Locator on TOML written in every style
# ---------------------------------------------------------------------------
KEY = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True),
                st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5))
SCALAR = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=8))
TREE = st.recursive(st.dictionaries(KEY, st.one_of(SCALAR, st.lists(SCALAR, max_size=3)), max_size=3),
                    lambda children: st.dictionaries(KEY, st.one_of(SCALAR, children), max_size=3), max_leaves=12)


def render_string(draw, value):
    if "'" not in value and "\n" not in value and not any(ord(c) < 32 or ord(c) == 127 for c in value) and draw(st.booleans()):
        return "'" + value + "'"
    return m._toml_string(value)


def render_key(draw, key):
    if m._BARE_KEY_RE.fullmatch(key) and draw(st.booleans()):
        return key
    return render_string(draw, key)


def render_val(draw, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return render_string(draw, value)
    if isinstance(value, list):
        sep = draw(st.sampled_from([", ", ",\n  ", " , # c\n"]))
        return "[" + sep.join(render_val(draw, v) for v in value) + (draw(st.sampled_from(["", ",", "\n"])) if value else "") + "]"
    return "{ " + ", ".join("%s = %s" % (render_key(draw, k), render_val(draw, v)) for k, v in value.items()) + " }"


def write_table(draw, tree, prefix, out):
    """Write ``tree`` (the table at ``prefix``) in a random mix of styles."""
    headers = []
    for key, value in tree.items():
        rkey = render_key(draw, key)
        if isinstance(value, dict) and value and draw(st.booleans()):
            headers.append((key, value))
            continue
        if isinstance(value, dict) and value and all(not isinstance(v, dict) for v in value.values()) and draw(st.booleans()):
            for k2, v2 in value.items():
                out.append("%s . %s = %s" % (rkey, render_key(draw, k2), render_val(draw, v2)))
            continue
        out.append("%s = %s%s" % (rkey, render_val(draw, value), draw(st.sampled_from(["", "  # note"]))))
    for key, value in headers:
        path = prefix + (key,)
        out.append("[" + ".".join(render_key(draw, k) for k in path) + "]")
        write_table(draw, value, path, out)


def leaf_paths(tree, prefix=()):
    for key, value in tree.items():
        yield prefix + (key,), value
        if isinstance(value, dict):
            yield from leaf_paths(value, prefix + (key,))
        elif isinstance(value, list):
            for index, element in enumerate(value):
                yield prefix + (key, index), element


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREE, st.data())
def test_locator_finds_every_key(tree, data):
    out = []
    write_table(data.draw, tree, (), out)
    text = "\n".join(out) + "\n"
    assert tomllib.loads(text) == tree
    locator = m._Locator(text)
    if max((len(path) for path, dummy in leaf_paths(tree)), default=0) > m.MAX_MANIFEST_DEPTH:
        assert locator.problem[2].startswith("nested deeper than"), (locator.problem, text)
        return
    assert locator.problem is None, (locator.problem, text)
    offsets = [0]
    for line in text.split("\n"):
        offsets.append(offsets[-1] + len(line) + 1)
    for path, value in leaf_paths(tree):
        line, column = locator.locate(path, "key")
        last = path[-1]
        at = text[offsets[line - 1] + column - 1:]
        if not isinstance(last, int):
            assert at.startswith((last, m._toml_string(last), "'" + last + "'")), (path, line, column, text)
        line, column = locator.locate(path, "value")
        at = text[offsets[line - 1] + column - 1:]
        if isinstance(value, bool):
            assert at.startswith("true" if value else "false"), (path, text)
        elif isinstance(value, int):
            assert at.startswith(str(value)), (path, text)
        elif isinstance(value, str):
            assert at[:1] in ("'", '"'), (path, text)
        elif isinstance(value, list):
            assert at.startswith("["), (path, text)
        else:
            assert at[:1] in ("{", "[") or not isinstance(last, int), (path, text)
