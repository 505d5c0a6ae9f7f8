# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded parsing: the manifest limits, their errors, and parse time linear in the input.

Each limit is tested at its boundary (the limit itself passes, one more is refused
with FILE:LINE:COLUMN: KEY).  Linearity is asserted as a ratio of CPU times measured
in this process (an input 4x larger may take at most 8x longer), never as an
absolute time, so a loaded machine cannot make these tests flaky.
"""

from __future__ import annotations

import time
import tomllib

import pytest

from ansible_collections.remo.broker.plugins.module_utils import _manifest as m
from ansible_collections.remo.broker.plugins.module_utils._manifest import ManifestError, parse_manifest
from ansible_collections.remo.broker.tests.unit import hostile_manifests as hostile

HEAD = hostile.HEAD
KIB = 1024


def error_of(text, **kwargs):
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, path="m.toml", **kwargs)
    return info.value


def structure_ok(text):
    """True when the limits let ``text`` through to tomllib."""
    return m._Locator(text).problem is None


# ---------------------------------------------------------------------------
# Each limit at its boundary
# ---------------------------------------------------------------------------
def test_size_limit_boundary():
    filler = "#" * (m.MAX_MANIFEST_BYTES - len(HEAD) - 1) + "\n"
    assert len((HEAD + filler).encode()) == m.MAX_MANIFEST_BYTES
    assert parse_manifest(HEAD + filler).project == "p"
    err = error_of(HEAD + "#" + filler)
    assert (err.line, err.column, err.key) == (0, 0, "<file>")
    assert "larger than 65536 bytes" in err.reason


def test_line_limit_boundary():
    text = HEAD + "\n" * (m.MAX_MANIFEST_LINES - 2)
    assert text.count("\n") == m.MAX_MANIFEST_LINES
    assert parse_manifest(text).project == "p"
    err = error_of(text + "# one line too many")
    assert (err.line, err.column, err.key) == (m.MAX_MANIFEST_LINES + 1, 1, "<toml>")
    assert err.reason == "more than 4096 lines (manifest limit)"


def test_backslash_limit_boundary():
    text = HEAD + "[secrets.A]\nfetch_as = 'file'\nfile_path = '/run/secrets/a'\ntemplate = \"x%s\"\n"
    assert parse_manifest(text % ("\\t" * m.MAX_MANIFEST_BACKSLASHES)).secrets["A"].template.endswith("\t")
    err = error_of(text % ("\\t" * (m.MAX_MANIFEST_BACKSLASHES + 1)))
    assert (err.line, err.column, err.key) == (6, 14 + 2 * m.MAX_MANIFEST_BACKSLASHES, "<toml>")
    assert "more than 4096 backslashes" in err.reason


def test_item_limit_boundary():
    keys = HEAD + "".join("k%d = 1\n" % i for i in range(m.MAX_MANIFEST_ITEMS - 2))
    assert structure_ok(keys)
    assert error_of(keys).reason.startswith("unknown key")     # tomllib and the rules saw it
    err = error_of(keys + "one_more = 1\n")
    assert (err.line, err.column, err.key) == (m.MAX_MANIFEST_ITEMS + 1, 1, "one_more")
    assert err.reason == "more than 1024 keys, tables and array elements (manifest limit)"
    # array elements and table headers count too
    err = error_of(HEAD + "x = [" + "1, " * (m.MAX_MANIFEST_ITEMS - 2) + "1]\n")
    assert (err.line, err.key) == (3, "x[%d]" % (m.MAX_MANIFEST_ITEMS - 3))
    err = error_of(HEAD + "".join("[t%d]\n" % i for i in range(m.MAX_MANIFEST_ITEMS)))
    assert (err.line, err.column, err.key) == (m.MAX_MANIFEST_ITEMS + 1, 1, "t%d" % (m.MAX_MANIFEST_ITEMS - 2))


@pytest.mark.parametrize("deep,too_deep,line,column,key", [
    ("a.b.c.d.e.f.g.h = 1", "a.b.c.d.e.f.g.h.i = 1", 3, 17, "a.b.c.d.e.f.g.h.i"),
    ("[a.b.c.d]\ne.f.g.h = 1", "[a.b.c.d]\ne.f.g.h.i = 1", 4, 9, "a.b.c.d.e.f.g.h.i"),
    ("[a.b.c.d.e.f.g.h]", "[a.b.c.d.e.f.g.h.i]", 3, 18, "a.b.c.d.e.f.g.h.i"),
    ("[[a.b.c.d.e.f.g]]", "[[a.b.c.d.e.f.g.h]]", 3, 1, "a.b.c.d.e.f.g.h[0]"),
    ("x = [[[[[[[1]]]]]]]", "x = [[[[[[[[1]]]]]]]]", 3, 13, "x[0][0][0][0][0][0][0][0]"),
    ("x = {a={b={c={d={e={f={g=1}}}}}}}", "x = {a={b={c={d={e={f={g={h=1}}}}}}}}", 3, 27, "x.a.b.c.d.e.f.g.h"),
    ("x = [{a=[{b=[{c=[1]}]}]}]", "x = [{a=[{b=[{c=[{d=1}]}]}]}]", 3, 19, "x[0].a[0].b[0].c[0].d"),
])
def test_depth_limit_boundary(deep, too_deep, line, column, key):
    assert structure_ok(HEAD + deep + "\n")
    err = error_of(HEAD + too_deep + "\n")
    assert (err.line, err.column, err.key) == (line, column, key), str(err)
    assert err.reason.startswith("nested deeper than 8 levels")


def test_dotted_key_of_thousands_of_parts_is_refused_at_its_ninth_part():
    err = error_of(hostile.dotted_key(m.MAX_MANIFEST_BYTES))
    assert (err.line, err.column, err.key) == (3, 17, "a.a.a.a.a.a.a.a.a")


@pytest.mark.parametrize("quote", ["", '"', "'"])
def test_key_length_limit_boundary(quote):
    name = "k" * m.MAX_MANIFEST_KEY_CHARS
    assert structure_ok(HEAD + "%s%s%s = 1\n" % (quote, name, quote))
    err = error_of(HEAD + "[secrets]\n%s%sk%s = 1\n" % (quote, name, quote))
    assert (err.line, err.column) == (4, 1)
    assert err.key == "secrets." + "k" * 77 + "..."
    assert err.reason == "key longer than 256 characters (manifest limit)"


def test_secret_count_limit_boundary():
    most = HEAD + "".join("[secrets.S%d]\n" % i for i in range(m.MAX_MANIFEST_SECRETS))
    assert len(parse_manifest(most).secrets) == m.MAX_MANIFEST_SECRETS
    err = error_of(most + "[secrets.ONE_MORE]\n")
    assert (err.line, err.column, err.key) == (3, 2, "secrets")
    assert err.reason == "129 secrets, more than the manifest limit of 128"
    names = ", ".join('"S%d"' % i for i in range(m.MAX_MANIFEST_SECRETS + 1))
    err = error_of('schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = [%s]\n' % names)
    assert (err.line, err.column, err.key) == (5, 1, "allowlist.secrets")


def test_largest_valid_manifest_passes_every_rule():
    text = hostile.largest_valid_manifest(m)
    manifest = parse_manifest(text, expected_project="p")
    assert len(manifest.secrets) == m.MAX_MANIFEST_SECRETS


def test_scan_errors_name_the_key_never_a_value():
    text = HEAD + '[secrets.A]\ntemplate = "s3cr3t-looking %s"\n' % ("\\n" * (m.MAX_MANIFEST_BACKSLASHES + 1))
    assert "s3cr3t" not in str(error_of(text))


@pytest.mark.parametrize("text,line,column,reason", [
    (HEAD + 'x = "abc\ny = 1\n', 3, 9, "unterminated string"),
    (HEAD + 'x = """abc\ny = 1\n', 3, 5, "unterminated multi-line string"),
    (HEAD + "x = \n", 3, 5, "expected a value"),
    (HEAD + "x 1\n", 3, 3, "expected '='"),
    (HEAD + "[a\n", 3, 3, "expected ']'"),
    (HEAD + "x = [1 2]\n", 3, 8, "expected ',' or ']'"),
    (HEAD + "x = {a = 1 b = 2}\n", 3, 12, "expected ',' or '}'"),
    (HEAD + '"bad\\q" = 1\n', 3, 1, "bad escape"),
])
def test_structure_errors_are_located(text, line, column, reason):
    err = error_of(text)
    assert (err.line, err.column, err.key) == (line, column, "<toml>"), str(err)
    assert err.reason.startswith("TOML syntax error: ") and reason in err.reason, str(err)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)     # the scan only refuses what TOML refuses


# ---------------------------------------------------------------------------
# Time linear in the input
# ---------------------------------------------------------------------------
def cpu_seconds(text, repeat=5):
    """Best-of-``repeat`` CPU time of one parse_manifest call (errors included)."""
    best = None
    for dummy in range(repeat):
        start = time.process_time()
        try:
            parse_manifest(text)
        except ManifestError:
            pass
        elapsed = time.process_time() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


# Below this, a difference is clock granularity and cache noise, not growth.
FLOOR_SECONDS = 0.002
# A linear parse of 4x the input takes about 4x; quadratic takes 16x.
MAX_RATIO_FOR_4X = 8.0


def growth(small, large):
    return max(cpu_seconds(large), FLOOR_SECONDS) / max(cpu_seconds(small), FLOOR_SECONDS)


@pytest.mark.parametrize("name", sorted(hostile.HOSTILE))
def test_parse_time_is_linear_up_to_the_size_limit_and_beyond(name):
    make = hostile.HOSTILE[name]
    sizes = (16 * KIB, 64 * KIB, 256 * KIB)      # the limit is 64 KiB: the last one is refused by size
    times = [cpu_seconds(make(size)) for size in sizes]
    for small, large in zip(times, times[1:]):
        assert max(large, FLOOR_SECONDS) / max(small, FLOOR_SECONDS) < MAX_RATIO_FOR_4X, (name, times)


# The shapes the limits let through to tomllib at sizes worth timing (the others are
# refused within their first few hundred bytes: see the boundary tests above).
PARSED_SHAPES = ("many tables", "many keys", "many secrets", "many array elements", "many inline-table entries",
                 "one long string", "string escapes", "many small lines", "long quoted keys", "template placeholders")


@pytest.mark.parametrize("name", PARSED_SHAPES)
def test_parse_time_is_linear_within_the_limits(name):
    """The largest text the limits let through to tomllib, against a quarter of it."""
    make = hostile.HOSTILE[name]
    largest = hostile.largest_accepted(make, m)
    assert largest is not None and len(largest) >= 2 * KIB, name
    quarter = make(len(largest.encode()) // 4)
    assert structure_ok(largest) and structure_ok(quarter)
    assert growth(quarter, largest) < MAX_RATIO_FOR_4X, name


def test_scanner_patterns_avoid_constructs_old_python_311_mismatches():
    # Debian 12's Python 3.11.2 mis-matches possessive quantifiers and atomic groups
    # inside repeated groups (fixed in 3.11.5): a multi-line template string read as
    # unterminated.  Modules run on the managed host's Python, so none may be used.
    import re as re_module
    patterns = [value.pattern for value in vars(m).values() if isinstance(value, re_module.Pattern)]
    assert patterns
    for pattern in patterns:
        assert not re_module.search(r"(?<!\\)[*+?}]\+|\(\?>", pattern), pattern
