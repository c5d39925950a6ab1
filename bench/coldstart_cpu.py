#!/usr/bin/env python3
"""Cold start of bench/deps.py's tree (5 layers of 20, ready = { fd = 3 }, 200 ms each), for
two binaries side by side: the daemon's CPU time (every thread's, from
/proc/PID/task/*/schedstat, in ms) and launch -> every service ready (from the services' own
log). CPU time moves less with the machine's load than wall time does. Prints figures;
asserts nothing.

    gcc -O2 -o bench/out/ready bench/ready.c
    python3 bench/coldstart_cpu.py OLD_BINARY NEW_BINARY [--runs 3]
"""
import argparse
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import deps  # noqa: E402


def cpu_ms(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total / 1e6


@contextlib.contextmanager
def cold_start(binary, services, prefix):
    """Launches `binary` on the tree `services` (each ready on fd 3 200 ms after its start) in a
    fresh data dir; yields (daemon process, launch time in ns, the services' marks once every
    one is ready); stops it and removes the dir after."""
    d = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    log = d / "marks.log"
    toml = f'[daemon]\ndata_dir = "{d / "data"}"\n\n'
    for name, _, dep in services:
        toml += (
            f'[services.{name}]\ncommand = ["{deps.READY}", "{log}", "{name}", "200", "fd=3"]\n'
            f"ready = {{ fd = 3 }}\ndepends_on = {json.dumps(dep)}\n\n"
        )
    (d / "upkeep.toml").write_text(toml)
    t0 = time.monotonic_ns()
    p = subprocess.Popen([binary, "daemon", "-c", d / "upkeep.toml"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "UPKEEP_LOG": "warn"})
    try:
        marks = deps.wait_for("every service ready", lambda: (m := deps.read_log(log))
                              and all("ready" in m.get(n, {}) for n, _, _ in services) and m, step=0.01)
        yield p, t0, marks
    finally:
        p.terminate()
        p.wait(60)
        shutil.rmtree(d, ignore_errors=True)


def one(binary, services):
    with cold_start(binary, services, "upkeep-coldstart-") as (p, t0, marks):
        cpu = cpu_ms(p.pid)
        last = max(m["ready"] for m in marks.values())
        return cpu, (last - t0) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs=2)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    services = deps.tree(5, 20)
    for _ in range(a.runs):
        for b in a.binaries:
            cpu, wall = one(b, services)
            print(f"{b}: daemon CPU {cpu:.0f} ms, launch -> all ready {wall:.3f} s")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
