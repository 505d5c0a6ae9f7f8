# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Local stand-in for the Hetzner Cloud API (test code; see docs/provisioning.md)."""

from .api import StandIn
from .machines import Machines

__all__ = ["Machines", "StandIn"]
