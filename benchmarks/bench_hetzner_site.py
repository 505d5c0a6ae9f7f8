# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wall time of hetzner_site against the Hetzner Cloud API stand-in: first run,
converged re-run, and each role's share (ansible.posix.profile_roles).

    .venv/bin/python benchmarks/bench_hetzner_site.py

The baseline in the same run is the first run: the converged re-run is reported as a
ratio of it, each role as a share of its run. Tears everything down at the end.
"""

from __future__ import annotations

import pathlib
import re
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.hcloud_standin.site_runner import SiteRun, recap  # noqa: E402  pylint: disable=wrong-import-position

ROLE_LINE = re.compile(r"^(\S+) -+ (\d+\.\d+)s$", re.M)


def roles(output: str) -> dict[str, float]:
    tail = output[output.rfind("ROLES RECAP"):]
    return {name: float(sec) for name, sec in ROLE_LINE.findall(tail) if name != "total"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-hetzner-site-") as tmp:
        run = SiteRun(pathlib.Path(tmp), name="bench-site", prefix="hcloud-standin-bench")
        try:
            results = []
            for label in ("first run", "converged re-run"):
                rc, out, seconds = run.playbook("hetzner_site")
                if rc != 0:
                    print(out[-4000:])
                    return 1
                changed = sum(c["changed"] for c in recap(out).values())
                results.append((label, seconds, changed, roles(out)))
            run.playbook("hetzner_teardown", "-e", "hetzner_server_remove_volume=true")
        finally:
            run.close()
    first = results[0][1]
    print("| run | wall | ratio to first run | changed |")
    print("|---|---:|---:|---:|")
    for label, seconds, changed, _roles in results:
        print(f"| {label} | {seconds:.1f} s | {seconds / first:.2f} | {changed} |")
    print()
    names = sorted({n for r in results for n in r[3]}, key=lambda n: -results[0][3].get(n, 0))
    print("| role | first run | share | converged re-run | share |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        cells = []
        for _label, seconds, _changed, per_role in results:
            value = per_role.get(name, 0.0)
            cells += [f"{value:.1f} s", f"{100 * value / seconds:.0f} %"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
