# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Isolation benchmark: project B's ``get`` latency while project A floods the daemon.

Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_isolation.py [--daemon PATH] [--floods idle,noread,ratelimited,manifest]
                                                   [--json benchmarks/results/bench_isolation.json]

For each flood a fresh daemon is started (as the systemd unit starts it, through the
daemon test harness, with its default rate limit and the audit log on) with two
projects, A (the attacker) and B (the neighbour).  B's probe, a separate process, opens
a fresh connection for every ``get`` (as the feature's client and the lookups do), at a
fixed pace that stays under the rate limit, and times each request with a timeout.  It
runs once with the daemon idle and once while A floods.  Reported per flood:

* B's ``get`` p50/p99/max while idle and during the flood, the ratio of the two p99s
  (the target is at most 3x), timeouts and error replies;
* the admin socket's worst ``status`` round trip during the flood;
* peak RSS: ``VmHWM`` of every process of the daemon (the serving process and all its
  descendants, such as the audit writer), summed, read once the flood has stopped (for
  ``manifest``, once the reload in progress finished or timed out); since each daemon is
  fresh, that is the peak of its whole life, the flood included;
* what the flood achieved (connections held, bytes sent, replies, reloads), the audit log's
  growth and the lines the daemon wrote to stderr, and whether the daemon still answered
  afterwards.

Floods (all from project A's socket, or for ``manifest`` A's registration):

* ``idle``: idle connections, opened without blocking until the daemon stops accepting or
  its descriptor limit (``--nofile``, set on the daemon at start) plus a margin is reached;
* ``noread``: two connections that never read: one pipelining ``ping``, one bare newlines;
* ``ratelimited``: pipelined ``get`` on 8 connections far above the rate limit, replies read
  and discarded (each rate-limited request can cost an audit line);
* ``manifest``: A's manifest replaced by a hostile one of the largest size the daemon
  accepts (long dotted keys) and reloaded in a loop.

Every step has a timeout and the flood processes are killed at the end of their phase, so
a daemon that stalls or dies is reported rather than waited for.  A daemon whose processes
together pass ``--rss-cap`` of RSS are killed (``capped`` in the report): a flood that grows
it without bound must not take the shared machine with it.  A full audit disk is a
failure mode, not a flood: tests/unit/daemon/ covers it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The daemon harness, the percentile and the machine description, as bench_daemon.py has
# them (importing it makes the checkout importable as the collection).
sys.path.insert(0, HERE)
from bench_daemon import Daemon, machine, pct as _pct  # noqa: E402  pylint: disable=wrong-import-position

FLOODS = ("idle", "noread", "ratelimited", "manifest")
TARGET_P99_RATIO = 3.0
GET = b'{"op":"get","name":"TOKEN"}\n'
PING = b'{"op":"ping"}\n'


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def pct(values, q):
    """Percentile ``q`` of ``values``; None when there are none (a probe that hung)."""
    return _pct(values, q) if values else None


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (flood and probe processes)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def become(uid):
    """Drop to ``uid`` (a flood process started by root), so A is another peer than B."""
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def descendants(pid):
    """``pid`` and every process below it (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        try:
            for tid in os.listdir("/proc/%d/task" % cur):
                with open("/proc/%d/task/%s/children" % (cur, tid), encoding="ascii") as handle:
                    todo.extend(int(x) for x in handle.read().split())
        except OSError:
            continue
    return out


def proc_status(pid, keys=("VmRSS", "VmHWM")):
    fields = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as handle:
            for line in handle:
                key, _sep, value = line.partition(":")
                if key in keys:
                    fields[key] = int(value.split()[0]) / 1024.0
    except OSError:
        pass
    return fields


def daemon_memory(pid):
    """{pid: {VmRSS, VmHWM} MiB} for the daemon and its descendants."""
    return {p: proc_status(p) for p in descendants(pid)}


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def line_count(path):
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def timed_request(path, payload, timeout):
    """One request on a fresh connection: (seconds, reply dict or None, error string or None)."""
    t0 = time.perf_counter()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(payload)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return time.perf_counter() - t0, None, "closed"
            buf += chunk
        return time.perf_counter() - t0, json.loads(buf), None
    except socket.timeout:
        return time.perf_counter() - t0, None, "timeout"
    except OSError as exc:
        return time.perf_counter() - t0, None, type(exc).__name__
    except ValueError:
        return time.perf_counter() - t0, None, "bad_reply"
    finally:
        sock.close()


# ---------------------------------------------------------------------------
# B's probe (its own process)
# ---------------------------------------------------------------------------
def _probe(path, seconds, rate, timeout, out_q):
    raise_nofile()
    lat, errors = [], {}
    interval = 1.0 / rate
    t_next = time.monotonic()
    t_end = t_next + seconds
    while time.monotonic() < t_end:
        elapsed, reply, error = timed_request(path, GET, timeout)
        lat.append(elapsed)
        if error is None and reply.get("ok") is not True:
            error = str(reply.get("code"))
        if error is not None:
            errors[error] = errors.get(error, 0) + 1
        t_next += interval
        delay = t_next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            t_next = time.monotonic()
    out_q.put({"lat": lat, "errors": errors})


def probe(path, seconds, rate, timeout, admin=None, monitor=None):
    """Run B's probe for ``seconds``; meanwhile time admin ``status`` and call ``monitor``."""
    ctx = multiprocessing.get_context("fork")
    out_q = ctx.Queue()
    proc = ctx.Process(target=_probe, args=(path, seconds, rate, timeout, out_q), daemon=True)
    proc.start()
    admin_lat, admin_errors = [], {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if admin:
            elapsed, reply, error = timed_request(admin, b'{"op":"status"}\n', timeout)
            admin_lat.append(elapsed)
            if error is None and reply.get("ok") is not True:
                error = str(reply.get("code"))
            if error:
                admin_errors[error] = admin_errors.get(error, 0) + 1
        if monitor and monitor():
            break
        time.sleep(0.25)
    try:
        res = out_q.get(timeout=seconds + timeout + 30)
    except Exception:  # pylint: disable=broad-except  # queue.Empty: the probe hung
        res = {"lat": [], "errors": {"probe_hung": 1}}
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
    lat = res["lat"]
    out = {"n": len(lat), "errors": res["errors"],
           "p50_ms": _ms(pct(lat, 50)), "p99_ms": _ms(pct(lat, 99)), "max_ms": _ms(max(lat) if lat else None),
           "timeouts": res["errors"].get("timeout", 0)}
    if admin:
        out["admin_status_max_ms"] = _ms(max(admin_lat) if admin_lat else None)
        out["admin_status_n"] = len(admin_lat)
        out["admin_errors"] = admin_errors
    return out


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


# ---------------------------------------------------------------------------
# A's floods (each its own process; ``stop`` is a multiprocessing Event)
# ---------------------------------------------------------------------------
def _flood_idle(path, target, stop, out_q, uid=None):
    """Hold up to ``target`` idle connections, opened without blocking."""
    raise_nofile()
    become(uid)
    socks, refused, failures = [], {}, 0
    ramp_end = time.monotonic() + 60
    while len(socks) < target and time.monotonic() < ramp_end and not stop.is_set():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
            socks.append(sock)
            failures = 0
        except OSError as exc:
            sock.close()
            name = type(exc).__name__ if exc.errno is None else os.strerror(exc.errno)
            refused[name] = refused.get(name, 0) + 1
            failures += 1
            if failures >= 200:     # the daemon stopped accepting: its backlog is full
                break
            time.sleep(0.005)
    out_q.put({"connections_opened": len(socks), "connect_failures": refused})
    stop.wait(600)
    closed_by_daemon = 0
    for sock in socks:
        try:
            if sock.recv(1) == b"":
                closed_by_daemon += 1
        except BlockingIOError:
            pass
        except OSError:
            closed_by_daemon += 1
        sock.close()
    out_q.put({"closed_by_daemon": closed_by_daemon})


def _flood_noread(path, stop, out_q, uid=None):
    """Two connections that never read: pipelined pings and bare newlines."""
    become(uid)
    chunks = {"ping": PING * 4096, "newline": b"\n" * 65536}
    conns = {}
    for kind in chunks:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.2)
        sock.connect(path)
        conns[kind] = sock
    sent = {kind: 0 for kind in chunks}
    blocked = {kind: 0 for kind in chunks}
    closed = {kind: False for kind in chunks}
    while not stop.is_set() and not all(closed.values()):
        for kind, sock in conns.items():
            if closed[kind]:
                continue
            try:
                sent[kind] += sock.send(chunks[kind])
            except socket.timeout:
                blocked[kind] += 1      # the daemon stopped reading this connection
            except OSError:
                closed[kind] = True
    for sock in conns.values():
        sock.close()
    out_q.put({"bytes_sent": sent, "send_timeouts_0.2s": blocked, "closed_by_daemon": closed})


def _flood_ratelimited(path, stop, out_q, uid=None, conns=8, depth=64):
    """Pipelined gets far above the rate limit on ``conns`` connections; replies discarded."""
    become(uid)
    socks = []
    for _i in range(conns):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.2)
        sock.connect(path)
        socks.append(sock)
    batch = GET * depth
    replies, ok, limited, closed = 0, 0, 0, 0
    live = list(socks)
    while not stop.is_set() and live:
        for sock in list(live):
            try:
                sock.sendall(batch)
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionResetError
            except socket.timeout:
                continue
            except OSError:
                live.remove(sock)
                closed += 1
                continue
            replies += data.count(b"\n")
            ok += data.count(b'"ok":true')
            limited += data.count(b'"rate_limited"')
    for sock in socks:
        sock.close()
    out_q.put({"replies_read": replies, "ok": ok, "rate_limited": limited, "closed_by_daemon": closed})


def hostile_manifest(project, size):
    """A schema-2 manifest of about ``size`` bytes whose bulk is one long dotted key."""
    head = 'schema_version = 2\nproject = "%s"\n\n[secrets.TOKEN]\nfetch_as = "env"\n\n' % project
    room = max(0, size - len(head) - len(" = 1\n") - 1)
    key = ".".join(["a"] * (room // 2 + 1))[:room].rstrip(".")
    return head + key + " = 1\n"


def _flood_manifest(admin, name, stop, timeout, out_q):
    """Reload A's (hostile) manifest in a loop; record each reload's time and reply."""
    times, codes = [], {}
    while not stop.is_set():
        elapsed, reply, error = timed_request(admin, json.dumps({"op": "reload", "name": name}).encode() + b"\n",
                                              timeout)
        times.append(elapsed)
        code = error or ("ok" if reply.get("ok") else str(reply.get("code")))
        codes[code] = codes.get(code, 0) + 1
        if error:
            time.sleep(0.05)    # the daemon is gone or hung: do not spin
    out_q.put({"reloads": len(times), "reload_replies": codes, "reload_p50_ms": _ms(pct(times, 50)),
               "reload_max_ms": _ms(max(times) if times else None)})


# ---------------------------------------------------------------------------
# one flood on a fresh daemon
# ---------------------------------------------------------------------------
class Run:
    """A fresh daemon with projects A and B, started with RLIMIT_NOFILE ``nofile``."""

    def __init__(self, base, daemon, nofile, attacker_uid=None):
        # Run as root, A's flood runs as ``attacker_uid`` (its project's expected uid), so
        # the daemon sees A and B as different peers and uids, as two projects are.
        self.a_uid = attacker_uid if os.geteuid() == 0 else None
        os.makedirs(base, exist_ok=True)
        os.chmod(base, 0o755)
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, old[1]), old[1]))
        try:
            self.broker = Daemon(base, daemon=daemon).start(timeout=60)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        self.registered = {}
        try:
            self.registered["a"] = self.broker.add_project("a", ("TOKEN",), expected_uid=self.a_uid)
            self.registered["b"] = self.broker.add_project("b", ("TOKEN",))
            self.broker.admin_ok("push-creds", secrets={"TOKEN": "t" * 40})
        except BaseException:
            self.stop()
            raise
        self.nofile = nofile

    def manifest_path(self, name):
        reply = self.registered[name]
        return reply.get("manifest_path") or os.path.join(self.broker.projects_root, name, ".remo", "manifest.toml")

    def stop(self):
        try:
            self.broker.stop(timeout=20)
        except Exception:  # pylint: disable=broad-except  # a hung daemon is killed and reported
            self.broker.kill()


class MemoryWatchdog(threading.Thread):
    """SIGKILL the daemon (every process of it) once their summed RSS passes ``cap_mib``.

    A flood that grows the daemon without bound must not take the shared machine with it;
    the report then says ``capped`` and the peak is at least the cap.
    """

    def __init__(self, pid, cap_mib, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.cap, self.interval = pid, cap_mib, interval
        self.max_rss = 0.0
        self.capped = False
        self.finish = threading.Event()

    def run(self):
        while not self.finish.wait(self.interval):
            pids = descendants(self.pid)
            total = sum(proc_status(p, ("VmRSS",)).get("VmRSS", 0) for p in pids)
            self.max_rss = max(self.max_rss, total)
            if total > self.cap:
                self.capped = True
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                return


def find_manifest_size(run, limit):
    """The size of A's hostile manifest: ``limit``, or the daemon's own limit when lower.

    Asks with a cheap manifest (valid, padded with a comment) one byte over ``limit``: a
    daemon with a lower limit refuses it naming its limit ("larger than N bytes"), one
    without parses it quickly.  The hostile manifest itself is only ever loaded by the
    flood, while B is being measured.  Returns (size, reply).
    """
    path = run.manifest_path("a")
    head = 'schema_version = 2\nproject = "a"\n\n[secrets.TOKEN]\nfetch_as = "env"\n'
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + "#" * max(0, limit + 1 - len(head) - 1) + "\n")
    _t, reply, error = timed_request(run.broker.admin_socket, b'{"op":"reload","name":"a"}\n', 60)
    if error:
        return limit, {"error": error}
    match = re.search(r"larger than (\d+) bytes", str(reply.get("message", "")))
    return (min(limit, int(match.group(1))) if match else limit), reply


def one_flood(kind, base, args):
    run = Run(os.path.join(base, kind), args.daemon, args.nofile, args.attacker_uid)
    broker = run.broker
    res = {"flood": kind, "daemon_nofile": run.nofile}
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    out_q = ctx.Queue()
    procs = []
    watchdog = MemoryWatchdog(broker.pid, args.rss_cap)
    watchdog.start()
    try:
        res["idle"] = probe(broker.project_socket("b"), args.seconds, args.rate, args.timeout)
        res["idle_memory"] = daemon_memory(broker.pid)
        audit0, stderr0 = file_size(broker.audit_log), line_count(broker.stderr_path)
        path_a = broker.project_socket("a")
        if kind == "idle":
            procs.append(ctx.Process(target=_flood_idle, args=(path_a, run.nofile + 256, stop, out_q, run.a_uid),
                                     daemon=True))
        elif kind == "noread":
            procs.append(ctx.Process(target=_flood_noread, args=(path_a, stop, out_q, run.a_uid), daemon=True))
        elif kind == "ratelimited":
            procs.append(ctx.Process(target=_flood_ratelimited, args=(path_a, stop, out_q, run.a_uid), daemon=True))
        elif kind == "manifest":
            size, probe_reply = find_manifest_size(run, args.manifest_bytes)
            res["manifest_bytes"] = size
            res["size_probe"] = {k: probe_reply.get(k) for k in ("ok", "code", "message", "error") if k in probe_reply}
            with open(run.manifest_path("a"), "w", encoding="utf-8") as handle:
                handle.write(hostile_manifest("a", size))
            procs.append(ctx.Process(target=_flood_manifest,
                                     args=(broker.admin_socket, "a", stop, args.reload_timeout, out_q), daemon=True))
        t_flood = time.monotonic()
        for proc in procs:
            proc.start()
        if kind == "idle":        # wait for the connections to be held (or the ramp to give up)
            try:
                res["flood_ramp"] = out_q.get(timeout=90)
            except Exception:  # pylint: disable=broad-except  # queue.Empty
                res["flood_ramp"] = {"error": "ramp did not finish in 90 s"}
            res["daemon_fds_after_ramp"] = fd_count(broker.pid)
        else:
            time.sleep(1.0)

        res["during"] = probe(broker.project_socket("b"), args.seconds, args.rate, args.timeout,
                              admin=broker.admin_socket, monitor=lambda: not broker.alive())
        res["flood_seconds"] = time.monotonic() - t_flood
        res["audit_growth_mib_per_s"] = (file_size(broker.audit_log) - audit0) / 1048576.0 / res["flood_seconds"]
        res["stderr_lines_during"] = line_count(broker.stderr_path) - stderr0
    finally:
        stop.set()
        # A reload in progress is let finish (or time out), so its memory counts too; the
        # watchdog keeps the daemon under the cap meanwhile.
        for proc in procs:
            proc.join(timeout=args.reload_timeout + 10 if kind == "manifest" else 15)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        res["peak_memory"] = daemon_memory(broker.pid) if broker.alive() else {}
        watchdog.finish.set()
        watchdog.join(timeout=5)
        res["capped"] = watchdog.capped
        res["max_rss_sampled_mib"] = watchdog.max_rss
        stats = {}
        while True:
            try:
                stats.update(out_q.get(timeout=0.5))
            except Exception:  # pylint: disable=broad-except  # queue.Empty: all reported
                break
        res["flood_stats"] = stats
        res["alive_after"] = broker.alive()
        if res["alive_after"]:
            res["after"] = probe(broker.project_socket("b"), min(args.seconds, 3.0), args.rate, args.timeout)
        else:
            res["exit_code"] = broker.proc.returncode
        run.stop()
    idle, during = res["idle"]["p99_ms"], res["during"]["p99_ms"]
    # Failed requests (refused, closed) return fast: a p99 over them would flatter a dead
    # daemon, so there is no ratio then (timeouts count, at the timeout).
    failed = sum(v for k, v in res["during"]["errors"].items() if k != "timeout")
    res["p99_ratio"] = during / idle if idle and during is not None and not failed else None
    # A killed daemon has no VmHWM left to read: the highest sampled RSS stands in.
    res["peak_rss_mib"] = max(sum(m.get("VmHWM", 0) for m in res["peak_memory"].values()), watchdog.max_rss)
    res["peak_rss_each_mib"] = {str(p): m.get("VmHWM") for p, m in res["peak_memory"].items()}
    res["idle_rss_mib"] = sum(m.get("VmRSS", 0) for m in res["idle_memory"].values())
    return res


# ---------------------------------------------------------------------------
def _fmt(v, unit=""):
    return "-" if v is None else ("%.1f%s" % (v, unit) if v < 1000 else "{:,.0f}{}".format(v, unit))


def render(res):
    m = res["machine"]
    out = ["daemon %s; %s cores, Python %s, commit %s; load average %s at start; B probes at %g get/s for %g s "
           "per phase, fresh connection each, %g s timeout" % (
               res["daemon"], m["nproc"], m["python"], m["commit"],
               "/".join("%.1f" % x for x in res["load_average_at_start"]),
               res["args"]["rate"], res["args"]["seconds"], res["args"]["timeout"]), "",
           "| flood | B p99 idle | B p99 during | ratio (target <= %g) | B max during | B timeouts / errors | "
           "admin status max | peak RSS (VmHWM, all processes) | daemon after |" % TARGET_P99_RATIO,
           "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in res["floods"]:
        if "error" in r:
            out.append("| %s | error: %s | | | | | | | |" % (r["flood"], r["error"]))
            continue
        d = r["during"]
        errs = dict(d["errors"])
        errs.pop("timeout", None)
        ratio = r["p99_ratio"]
        # A timed-out request counts at the timeout: the true latency is at least that.
        at_least = ">= " if d["timeouts"] and d["p99_ms"] is not None and d["p99_ms"] >= 1000 * res["args"]["timeout"] else ""
        out.append("| %s | %s ms | %s%s ms | %s | %s ms | %d / %s | %s ms | %s MiB%s | %s |" % (
            r["flood"], _fmt(r["idle"]["p99_ms"]), at_least, _fmt(d["p99_ms"]),
            "- (requests failed)" if ratio is None else (at_least + "%.1fx" % ratio + (
                "" if ratio <= TARGET_P99_RATIO else " **over**")),
            _fmt(d["max_ms"]), d["timeouts"], json.dumps(errs) if errs else "0",
            _fmt(d.get("admin_status_max_ms")), _fmt(r["peak_rss_mib"]),
            " (killed at the %g MiB cap)" % res["args"]["rss_cap"] if r["capped"] else "",
            "answers" if r["alive_after"] else "**exited %s**" % r.get("exit_code")))
    out.append("")
    for r in res["floods"]:
        if "error" in r:
            continue
        extra = {k: r[k] for k in ("manifest_bytes", "size_probe", "flood_ramp", "daemon_fds_after_ramp") if k in r}
        out.append("%s: flood %s; audit +%.2f MiB/s; daemon stderr +%d lines; idle RSS %.1f MiB; %s" % (
            r["flood"], json.dumps(r["flood_stats"]), r["audit_growth_mib_per_s"], r["stderr_lines_during"],
            r["idle_rss_mib"], json.dumps(extra)))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--daemon", default=None, help="daemon file (default: the role's remo_broker.py)")
    parser.add_argument("--floods", default=",".join(FLOODS), type=lambda v: [x for x in v.split(",") if x],
                        help="comma-separated floods to run (default: %s)" % ",".join(FLOODS))
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds B probes per phase")
    parser.add_argument("--rate", type=float, default=50.0, help="B's gets per second (under the rate limit)")
    parser.add_argument("--timeout", type=float, default=2.0, help="timeout of each probe request (s)")
    parser.add_argument("--nofile", type=int, default=4096,
                        help="RLIMIT_NOFILE the daemon starts with (the unit sets 65536)")
    parser.add_argument("--manifest-bytes", type=int, default=65536,
                        help="size of A's hostile manifest (smaller if the daemon names a lower limit)")
    parser.add_argument("--reload-timeout", type=float, default=120.0,
                        help="seconds one reload of the hostile manifest may take before it counts as hung")
    parser.add_argument("--rss-cap", type=float, default=1024.0,
                        help="MiB of daemon RSS at which a flood is stopped early")
    parser.add_argument("--attacker-uid", type=int, default=65534,
                        help="uid A's floods run as when the benchmark runs as root (default: 65534); "
                             "otherwise A and B share the caller's uid")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "bench_isolation.json"))
    args = parser.parse_args(argv)
    unknown = [f for f in args.floods if f not in FLOODS]
    if unknown:
        parser.error("unknown flood(s) %s; choose from %s" % (", ".join(unknown), ", ".join(FLOODS)))
    if args.daemon:
        args.daemon = os.path.abspath(args.daemon)
    raise_nofile()
    base = tempfile.mkdtemp(prefix="rbiso", dir="/tmp")
    os.chmod(base, 0o755)   # A's uid reaches its socket through it
    res = {"machine": machine(), "args": vars(args), "load_average_at_start": os.getloadavg(),
           "daemon": args.daemon or "roles/broker_install/files/remo_broker.py", "floods": []}
    try:
        for kind in args.floods:
            sys.stderr.write("flood %s ...\n" % kind)
            try:
                r = one_flood(kind, base, args)
            except Exception as exc:  # pylint: disable=broad-except  # report, go on with the next flood
                r = {"flood": kind, "error": "%s: %s" % (type(exc).__name__, str(exc)[:500])}
            res["floods"].append(r)
            summary = {k: r.get(k) for k in ("p99_ratio", "peak_rss_mib", "capped", "alive_after", "error")}
            sys.stderr.write("  %s\n" % json.dumps(summary))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    res["load_average_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(res, handle, indent=2, default=str)
        handle.write("\n")
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
