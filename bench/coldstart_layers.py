#!/usr/bin/env python3
"""Cold start of bench/deps.py's tree (5 layers of 20, ready = { fd = 3 }, 200 ms each), layer by
layer, for one or more binaries in turn: launch -> first spawn, and for each layer after the
first, how long its services started after both their dependencies were ready (median and
max, ms, from the services' own marks), then launch -> every service ready. Shows where a cold
start loses time past the floor. Prints figures; asserts nothing.

    gcc -O2 -o bench/out/ready bench/ready.c
    python3 bench/coldstart_layers.py BINARY [BINARY...] [--runs 3]
"""
import argparse
import os
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import coldstart_cpu  # noqa: E402
import deps  # noqa: E402


def one(binary, services):
    with coldstart_cpu.cold_start(binary, services, "upkeep-layers-") as (_, t0, m):
        first = min(m[n]["start"] for n, layer, _ in services if layer == 0)
        out = [f"first spawn {(first - t0) / 1e6:.0f}"]
        for layer in range(1, max(layer for _, layer, _ in services) + 1):
            waits = [(m[n]["start"] - max(m[x]["ready"] for x in dep)) / 1e6
                     for n, l, dep in services if l == layer]
            out.append(f"L{layer} wait {statistics.median(waits):.0f}/{max(waits):.0f}")
        last = max(x["ready"] for x in m.values())
        out.append(f"all ready {(last - t0) / 1e6:.0f}")
        return " | ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    services = deps.tree(5, 20)
    for _ in range(a.runs):
        for b in a.binaries:
            print(f"{b}: {one(b, services)} (ms; wait = median/max)")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
