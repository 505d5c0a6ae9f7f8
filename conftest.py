# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make this checkout importable as ``ansible_collections.remo.broker`` for pytest.

Collections are imported by their FQCN path, so the tests need the checkout to sit at
``<root>/ansible_collections/remo/broker``.  ``scripts/bootstrap.sh`` builds that
symlink tree under ``.cache/collections``; this hook recreates it if it is missing
(for a plain ``pytest`` run) and puts it first on ``sys.path``.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.join(_HERE, ".cache", "collections")
_LINK = os.path.join(_ROOT, "ansible_collections", "remo", "broker")

if not os.path.islink(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(_HERE, _LINK)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
