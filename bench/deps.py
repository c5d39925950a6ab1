#!/usr/bin/env python3
"""Start order benchmark. Prints figures; asserts nothing. Run through bench/deps.

A tree of LAYERS × WIDTH services: each service of layer k > 0 depends on two of layer k - 1,
and every service is ready DELAY ms after it starts (`ready.c`, which logs when it started
and when it was ready on CLOCK_MONOTONIC). The floor of a cold start is LAYERS × DELAY: no
supervisor that waits for each layer to be ready can do better.

- upkeep, twice: `ready = "notify"` (READY=1 over NOTIFY_SOCKET) and `ready = { fd = 3 }`
  (s6's newline), `depends_on` the two parents;
- supervisord (`bench/.deps/venv`): the same tree by `priority` (layer by layer), all it can
  express; it starts each program once the one before is spawned, not ready.

For each: launch → every service ready (from the services' own log), its ratio to the floor,
launch → every service `up` as the supervisor reports it (upkeep's API), how many services
started before one of their dependencies was ready (order violations), and how long the
supervisor took to stop everything on SIGTERM (upkeep stops dependents first, layer by layer).
"""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
UPKEEP = pathlib.Path(os.environ.get("UPKEEP_BIN") or pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "upkeep")
READY = HERE / "out" / "ready"
SUPERVISORD = HERE / ".deps" / "venv" / "bin" / "supervisord"


def tree(layers, width):
    """[(name, layer, [dependencies])]"""
    out = []
    for layer in range(layers):
        for i in range(width):
            parents = {f"s{layer - 1}_{i:02}", f"s{layer - 1}_{(i + 1) % width:02}"}
            deps = [] if layer == 0 else sorted(parents)
            out.append((f"s{layer}_{i:02}", layer, deps))
    return out


def read_log(path):
    """{name: {"start": ns, "ready": ns}}"""
    marks = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return marks
    for line in text.splitlines():
        name, what, ns = line.split()
        marks.setdefault(name, {})[what] = int(ns)
    return marks


def wait_for(what, check, timeout=120.0, step=0.002):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


def figures(services, marks, t0, delay_ms):
    ready = [marks[n]["ready"] for n, _, _ in services if "ready" in marks.get(n, {})]
    starts = [marks[n]["start"] for n, _, _ in services if "start" in marks.get(n, {})]
    violations = sum(
        1
        for n, _, deps in services
        if any(marks[n]["start"] < marks[d]["ready"] for d in deps)
    )
    return {
        "all_ready_s": (max(ready) - t0) / 1e9,
        "first_start_to_last_ready_s": (max(ready) - min(starts)) / 1e9,
        "violations": violations,
    }


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.path))


def all_up(sock, n):
    try:
        c = UnixHTTP(sock)
        c.request("GET", "/api/v1/status")
        states = json.loads(c.getresponse().read())
        c.close()
    except (OSError, ValueError):
        return False
    return len(states) == n and all(s["state"] == "up" for s in states)


def run_upkeep(services, mode, delay_ms, cgroups=True):
    d = pathlib.Path(tempfile.mkdtemp(prefix="upkeep-deps-bench-"))
    log = d / "marks.log"
    ready = '"notify"' if mode == "notify" else "{ fd = 3 }"
    how = "notify" if mode == "notify" else "fd=3"
    toml = f'[daemon]\ndata_dir = "{d / "data"}"\ncgroups = {"true" if cgroups else "false"}\n\n'
    for name, _, deps in services:
        toml += (
            f"[services.{name}]\ncommand = [\"{READY}\", \"{log}\", \"{name}\", \"{delay_ms}\", \"{how}\"]\n"
            f"ready = {ready}\ndepends_on = {json.dumps(deps)}\nstop_timeout = \"5s\"\n\n"
        )
    (d / "upkeep.toml").write_text(toml)
    t0 = time.monotonic_ns()
    proc = subprocess.Popen([UPKEEP, "daemon", "-c", d / "upkeep.toml"], stdout=subprocess.DEVNULL,
                            stderr=open(d / "daemon.log", "w"), env={**os.environ, "UPKEEP_LOG": "warn"})
    sock = d / "data" / "upkeep.sock"
    try:
        # Every 25 ms, not 2: each ask is a 100-service status the daemon's one thread
        # builds, and 500 of them a second slowed the start being measured.
        wait_for("every service up", lambda: sock.exists() and all_up(sock, len(services)), step=0.025)
        up = (time.monotonic_ns() - t0) / 1e9
        marks = wait_for("every service's marks", lambda: (m := read_log(log)) and all("ready" in m.get(n, {}) for n, _, _ in services) and m)
        res = figures(services, marks, t0, delay_ms)
        res["all_up_s"] = up
        t1 = time.monotonic_ns()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        res["stop_s"] = (time.monotonic_ns() - t1) / 1e9
        return res
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


def run_supervisord(services, delay_ms):
    d = pathlib.Path(tempfile.mkdtemp(prefix="supervisord-deps-bench-"))
    log = d / "marks.log"
    conf = d / "supervisord.conf"
    conf.write_text(
        f"[supervisord]\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nnodaemon=true\n\n"
        + "".join(
            f"[program:{name}]\ncommand={READY} {log} {name} {delay_ms} none\npriority={100 + layer}\n"
            f"startsecs=0\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n"
            for name, layer, _ in services
        )
    )
    t0 = time.monotonic_ns()
    proc = subprocess.Popen([SUPERVISORD, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        marks = wait_for("every service's marks", lambda: (m := read_log(log)) and all("ready" in m.get(n, {}) for n, _, _ in services) and m)
        res = figures(services, marks, t0, delay_ms)
        res["all_up_s"] = None
        t1 = time.monotonic_ns()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        res["stop_s"] = (time.monotonic_ns() - t1) / 1e9
        return res
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--delay-ms", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3, help="cold starts per supervisor (default 3); the best and the median are shown")
    ap.add_argument("--no-supervisord", action="store_true")
    ap.add_argument("--no-cgroups", action="store_true", help="also run upkeep with daemon.cgroups = false (posix_spawn, no cgroup per service)")
    args = ap.parse_args()
    services = tree(args.layers, args.width)
    floor = args.layers * args.delay_ms / 1000
    runs = {"upkeep (notify)": lambda: run_upkeep(services, "notify", args.delay_ms),
            "upkeep (fd)": lambda: run_upkeep(services, "fd", args.delay_ms)}
    if args.no_cgroups:
        runs["upkeep (fd, no cgroups)"] = lambda: run_upkeep(services, "fd", args.delay_ms, cgroups=False)
    if not args.no_supervisord and SUPERVISORD.exists():
        runs["supervisord (priority)"] = lambda: run_supervisord(services, args.delay_ms)
    results = {}
    for name, run in runs.items():
        results[name] = [run() for _ in range(args.runs)]
    print(f"\ncold start of {len(services)} services, {args.layers} layers of {args.width} (each depends on two "
          f"of the layer before), each ready {args.delay_ms} ms after it starts; floor {floor:.3f} s; "
          f"median of {args.runs} runs (best in brackets)")
    print(f"{'':24}{'all ready s':>18}{'/floor':>8}{'start→ready s':>15}{'all up s':>10}{'order viol.':>13}{'stop s':>9}")
    report = {}
    for name, rs in results.items():
        med = lambda k: sorted(r[k] for r in rs)[len(rs) // 2]
        best = lambda k: min(r[k] for r in rs)
        up = med("all_up_s") if rs[0]["all_up_s"] is not None else None
        print(f"{name:24}{med('all_ready_s'):>10.3f} ({best('all_ready_s'):.3f}){med('all_ready_s') / floor:>8.2f}"
              f"{med('first_start_to_last_ready_s'):>15.3f}{(f'{up:.3f}' if up is not None else '-'):>10}"
              f"{med('violations'):>13}{med('stop_s'):>9.3f}")
        report[name] = rs
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "deps.json").write_text(json.dumps({"floor_s": floor, "results": report}, indent=1))


if __name__ == "__main__":
    main()
