# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures for the lookup tests."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")


@pytest.fixture(scope="module", autouse=True)
def collection_finder():
    """Let ansible's plugin loader resolve FQCNs, as ansible-test does; removed afterwards."""
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    had = _AnsibleCollectionFinder._find_existing_finder() is not None
    if not had:
        _AnsibleCollectionFinder(paths=[COLLECTIONS])._install()
    # the package may already be imported through sys.path (root conftest.py), without the
    # routing metadata the finder attaches; our plugins need no routing, so an empty one does.
    pkg = sys.modules.get("ansible_collections.remo.broker")
    added_meta = pkg is not None and getattr(pkg, "_collection_meta", None) is None
    if added_meta:
        pkg._collection_meta = {}
    yield
    if added_meta:
        del pkg._collection_meta
    if not had:
        _AnsibleCollectionFinder._remove()
