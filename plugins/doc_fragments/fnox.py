# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Where the options of the fnox lookup may come from, split like community.sops does it.

    Nothing that could hold a secret gets an C(ini:) source: ansible.cfg is often committed.
    """

    DOCUMENTATION = r"""
options:
  binary:
    description:
      - Name or path of the C(fnox) executable. It runs only for secrets that are not resolved
        natively (providers other than C(plain) and C(age), age plugin identities, lease backends).
    type: str
    default: fnox
  timeout:
    description: Seconds to wait for one C(fnox get) run before killing it.
    type: float
    default: 30
requirements:
  - In the Python that runs Ansible on the controller, C(tomli>=2.4.0) to parse fnox's TOML 1.1
    config files (older tomli releases reject valid fnox files) and C(pyrage>=1.4.0) to decrypt
    age-encrypted secrets.
  - The C(fnox) binary, only for secrets whose provider is not C(plain) or C(age)
    (or when O(native=false)).
"""

    ANSIBLE_VARIABLES = r"""
options:
  config:
    vars:
      - name: remo_broker_fnox_config
  profile:
    vars:
      - name: remo_broker_fnox_profile
  on_missing:
    vars:
      - name: remo_broker_fnox_on_missing
  binary:
    vars:
      - name: remo_broker_fnox_binary
  timeout:
    vars:
      - name: remo_broker_fnox_timeout
  rstrip:
    vars:
      - name: remo_broker_fnox_rstrip
  native:
    vars:
      - name: remo_broker_fnox_native
"""

    ANSIBLE_ENV = r"""
options:
  config:
    env:
      - name: REMO_BROKER_FNOX_CONFIG
  profile:
    env:
      - name: REMO_BROKER_FNOX_PROFILE
  on_missing:
    env:
      - name: REMO_BROKER_FNOX_ON_MISSING
  binary:
    env:
      - name: REMO_BROKER_FNOX_BINARY
  timeout:
    env:
      - name: REMO_BROKER_FNOX_TIMEOUT
  rstrip:
    env:
      - name: REMO_BROKER_FNOX_RSTRIP
  native:
    env:
      - name: REMO_BROKER_FNOX_NATIVE
"""

    ANSIBLE_INI = r"""
options:
  config:
    ini:
      - section: remo.broker
        key: fnox_config
  profile:
    ini:
      - section: remo.broker
        key: fnox_profile
  on_missing:
    ini:
      - section: remo.broker
        key: fnox_on_missing
  binary:
    ini:
      - section: remo.broker
        key: fnox_binary
  timeout:
    ini:
      - section: remo.broker
        key: fnox_timeout
  rstrip:
    ini:
      - section: remo.broker
        key: fnox_rstrip
  native:
    ini:
      - section: remo.broker
        key: fnox_native
"""
