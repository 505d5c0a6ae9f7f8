# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Entry point of every command in the vault sidecar; the command is the program name
(``remo-vault``, ``remo-vault-watcher``, ``remo-list-creds``, ...)."""

import os
import sys

import vault_cli
import vault_watcher


def main():
    prog = os.path.basename(os.environ.get("REMO_VAULT_PROG") or sys.argv[0])
    if prog == "remo-vault-watcher":
        return vault_watcher.main()
    if prog not in vault_cli.HELPERS and prog != "remo-vault":
        prog = "remo-vault"
    return vault_cli.main(prog, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
