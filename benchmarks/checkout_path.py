# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make this checkout importable as ``ansible_collections.remo.broker``, as the tests see it.

The benchmarks run as scripts from any directory; the test harness they reuse
(tests/unit/broker_harness.py) and the collection's module_utils are imported under
the collection's name, through the same ``.cache/collections`` link the bootstrap makes.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")


def add_checkout_to_path():
    """Link ``.cache/collections/ansible_collections/remo/broker`` to the checkout (once) and import from there."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "remo", "broker")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
