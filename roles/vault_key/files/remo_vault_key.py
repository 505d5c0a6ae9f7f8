# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo-vault-key: the vault's age identity, sealed with systemd-creds.

The identity exists in plaintext only in this process's memory, on the pipes to and
from ``systemd-creds``, and on the key tmpfs the vault sidecar reads.  Commands:

  seal CRED           generate a new identity in memory and seal it to CRED (once)
  unseal              decrypt the sealed key(s) onto the key tmpfs for the sidecar
  shred               remove the identities from the key tmpfs
  rotate-begin        seal a next key (CRED.next) and put it on the tmpfs beside the current one
  rotate-commit       make the next key current
"""

import argparse
import os
import secrets
import subprocess
import sys

CRED_NAME = "remo-vault-key"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
IDENTITY, NEXT = "identity", "identity.next"


class KeyError_(Exception):
    pass


def _polymod(values):
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp, data):
    """BIP-173 bech32 (the encoding age uses for its keys)."""
    acc = bits = 0
    five = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    poly = _polymod(expanded + five + [0] * 6) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in five + checksum)


def new_identity():
    """An age X25519 identity: 32 random bytes, bech32 with HRP age-secret-key-, uppercase."""
    return (bech32_encode("age-secret-key-", secrets.token_bytes(32)).upper() + "\n").encode("ascii")


def _run(argv, data=None):
    proc = subprocess.run(argv, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise KeyError_("%s failed: %s" % (" ".join(argv[:2]), proc.stderr.decode("utf-8", "replace").strip()))
    return proc.stdout


def seal(cred, with_key):
    """Seal a freshly generated identity to ``cred``; refuses to overwrite one."""
    if os.path.exists(cred):
        return False
    os.makedirs(os.path.dirname(cred), mode=0o700, exist_ok=True)
    tmp = cred + ".tmp"
    _run(["systemd-creds", "encrypt", "--name=" + CRED_NAME, "--with-key=" + with_key, "-", tmp], new_identity())
    os.chmod(tmp, 0o600)
    os.rename(tmp, cred)
    return True


def _check_tmpfs(directory):
    fstype = _run(["stat", "-f", "-c", "%T", directory]).decode().strip()
    if fstype not in ("tmpfs", "ramfs"):
        raise KeyError_("%s is on %s, not tmpfs: refusing to put the vault key there" % (directory, fstype))


def _put(directory, name, data, uid, gid):
    tmp = os.path.join(directory, name + ".tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
    try:
        os.fchown(fd, uid, gid)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, name))


def _prepare_dir(directory, uid, gid):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise KeyError_("%s is not a directory" % directory)
    _check_tmpfs(directory)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(directory, uid, gid)
    os.chmod(directory, 0o700)


def unseal(args):
    _prepare_dir(args.dir, args.uid, args.gid)
    for cred, name in ((args.cred, IDENTITY), (args.cred + ".next", NEXT)):
        if os.path.exists(cred):
            _put(args.dir, name, _run(["systemd-creds", "decrypt", "--name=" + CRED_NAME, cred, "-"]), args.uid, args.gid)
        elif name == NEXT and os.path.lexists(os.path.join(args.dir, NEXT)):
            os.unlink(os.path.join(args.dir, NEXT))
    if not os.path.exists(args.cred):
        raise KeyError_("no sealed vault key at %s (run the vault_key role)" % args.cred)


def shred(args):
    for name in (IDENTITY, NEXT):
        path = os.path.join(args.dir, name)
        if os.path.lexists(path):
            os.unlink(path)


def rotate_begin(args):
    seal(args.cred + ".next", args.with_key)
    unseal(args)


def rotate_commit(args):
    nxt = args.cred + ".next"
    if not os.path.exists(nxt):
        raise KeyError_("no rotation in progress (%s is missing)" % nxt)
    os.rename(nxt, args.cred)
    os.rename(os.path.join(args.dir, NEXT), os.path.join(args.dir, IDENTITY))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="remo-vault-key")
    parser.add_argument("command", choices=["seal", "unseal", "shred", "rotate-begin", "rotate-commit"])
    parser.add_argument("--cred", default="/etc/remo-vault/key.cred")
    parser.add_argument("--dir", default="/run/remo-vault-key")
    parser.add_argument("--uid", type=int, default=10001)
    parser.add_argument("--gid", type=int, default=10001)
    parser.add_argument("--with-key", default="auto")
    args = parser.parse_args(argv)
    try:
        if args.command == "seal":
            print("sealed" if seal(args.cred, args.with_key) else "unchanged")
        else:
            {"unseal": unseal, "shred": shred, "rotate-begin": rotate_begin, "rotate-commit": rotate_commit}[args.command](args)
    except (KeyError_, OSError) as exc:
        print("remo-vault-key: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
