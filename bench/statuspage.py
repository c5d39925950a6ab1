#!/usr/bin/env python3
"""The status page benchmark (issue 17); run by bench/statuspage, which builds what it needs.

One run: nginx (Debian) on loopback answers the services' HTTP probes and, later, serves a
saved copy of upkeep's page as a static file. upkeep supervises 100 external services (svc-N,
an HTTP probe of nginx each, every second, in 10 groups), one service whose probe fails (an
open incident), 10 services that crash 0.2 s after each start (the flapping burst, started
on demand) and the benchmark's C child (respawn latency). History: a first daemon run makes
the data dir, then 90 days of events for svc-N are written through the store
(status_history). Then, --runs times, the daemon starts again and wrk runs against `/`

  startup   from the moment the public port accepts, for 5 s (as a client that takes gzip
            on every second run: one start has one first five seconds)
  steady    once the page shows the open incident and the 90-day bars; then nginx
  flapping  while the 10 flapping services restart five times a second each; then nginx,
            the burst still going (its processes take the same cores)
  nginx     the saved page (HTML, and its CSS and script beside it) as static files, at the
            nice value of upkeep's page threads (10, --nice): like for like on a shared
            machine; with `index.html.gz` beside it (gzip_static, zlib's level 6 as upkeep's)

steady and flapping run twice, plain and with `Accept-Encoding: gzip` (`_gzip`): each is
compared with nginx serving the same bytes the same way, in the same run. The respawn
latency of the child (SIGKILL to its first line of code) is measured quiet and while wrk
runs. While the services flap, a poller reads the page's ETag every 20 ms: how often the
page is rendered and the longest gap between two renders while something changes all the
time. And freshness, the age of what is shown: during the burst the operator stops and starts
the service `flip` again and again (`upkeep stop flip`, `upkeep start flip`), and a poller
times from the command's return to the page showing the change (polled every 10 ms, the
whole page each time: a poll's own time under wrk is in the figure). Right after the port
first accepts, one GET is timed before wrk starts (a request before the first render must
not wait for one).

`--upkeep PATH` (repeatable) measures several builds in the same run, their daemon starts
taking turns (e.g. the build before a change and the one after it, same profile);
`--profile debug` takes target/debug's upkeep and status_history instead of release's.
Prints a table per build (medians over the runs, and each run's ratio to nginx) and saves
out/statuspage.json. Asserts nothing.
"""

import argparse
import gzip
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench import CHILD, NGINX, OUT, UPKEEP, lines_of, percentile, wait_for  # noqa: E402



def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Nginx:
    def __init__(self, port, root, nice=0):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="nginx-status-"))
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"worker_processes 2;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\ndaemon off;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {self.dir}; proxy_temp_path {self.dir};\n"
            f"  fastcgi_temp_path {self.dir}; uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};\n"
            "  keepalive_requests 1000000; sendfile on; tcp_nopush on; etag on; gzip_static on;\n"
            "  types { text/html html; text/css css; text/javascript js; }\n"
            f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
        )
        self.proc = subprocess.Popen(["nice", "-n", str(nice), NGINX, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("nginx", lambda: accepts(port), step=0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, secs, conns, threads=2, gzip=False):
    """wrk's requests a second and latency percentiles (ms); `gzip`: as a client that takes it."""
    head = ["-H", "Accept-Encoding: gzip"] if gzip else []
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", *head, url],
        capture_output=True, text=True, check=True,
    ).stdout
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else None

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps, "p50": pct(50), "p90": pct(90), "p99": pct(99),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1) if sock else "",
    }


def services_toml(nginx_port, child_record):
    parts = []
    for i in range(100):
        parts.append(
            f'[services.svc-{i}]\ngroup = "Group {i // 10}"\ndisplay_name = "Service {i}"\n'
            f'description = "What service {i} does, in a line"\n'
            f'probes = [{{ kind = "http", url = "http://127.0.0.1:{nginx_port}/probe", every = "1s" }}]\n'
        )
    dead = free_port()
    parts.append(
        f'[services.payments]\ndisplay_name = "Payments"\nincident_after = "0s"\n'
        f'probes = [{{ kind = "tcp", addr = "127.0.0.1:{dead}", every = "1s", failures = 1, grace = "0s" }}]\n'
    )
    for i in range(10):
        parts.append(
            f'[services.flap-{i}]\ncommand = ["sh", "-c", "sleep 0.2; exit 1"]\nautostart = false\n'
            'backoff_min = "0s"\nbackoff_max = "0s"\nmax_restarts = 1000000\nwindow = "1s"\ngroup = "Flapping"\n'
        )
    # Stopped and started by the benchmark during the burst: how old what the page shows is.
    parts.append('[services.flip]\ncommand = ["sleep", "100000"]\ngroup = "Flapping"\n')
    parts.append(
        f'[services.child]\ncommand = ["{CHILD}", "{child_record}"]\nbackoff_min = "0s"\n'
        'max_restarts = 1000000\nwindow = "1s"\npublic = false\n'
    )
    return "\n".join(parts)


class Daemon:
    def __init__(self, bin, dir, public_port, services):
        self.bin = bin
        self.dir = dir
        self.config = dir / "upkeep.toml"
        self.config.write_text(
            # wrk is one address standing in for many readers: no cap per address for it.
            f'[daemon]\ndata_dir = "{dir / "data"}"\npublic_listen = "127.0.0.1:{public_port}"\n'
            f'max_connections_per_address = 512\n\n{services}'
        )
        self.proc = None

    def start(self):
        log = open(self.dir / "daemon.log", "a")
        self.proc = subprocess.Popen([self.bin, "daemon", "-c", self.config], stdout=log, stderr=log,
                                     env={**os.environ, "UPKEEP_LOG": "warn"})

    def cli(self, *args):
        return subprocess.run([self.bin, "-c", self.config, *args], capture_output=True, text=True, check=True).stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def respawns(record, reps):
    """SIGKILLs the child `reps` times; each respawn's latency in ms."""
    lat = []
    for _ in range(reps):
        lines = lines_of(record)
        pid = int(lines[-1].split()[0])
        t0 = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        lines = wait_for("respawn", lambda: (l := lines_of(record)) and len(l) > len(lines) and l, timeout=10)
        lat.append((int(lines[-1].split()[1]) - t0) / 1e6)
        time.sleep(0.02)
    return lat


def render_times(url, secs, every=0.02):
    """When the page's ETag changed, polling `url` every `every` seconds for `secs`."""
    changes, last, end = [], None, time.monotonic() + secs
    while time.monotonic() < end:
        with urllib.request.urlopen(url, timeout=10) as r:
            tag = r.headers.get("ETag")
        if tag != last:
            changes.append(time.monotonic())
            last = tag
        time.sleep(every)
    return changes[1:]


FLIP = re.compile(rb'data-svc="flip"><div class="row"><span class="name">[^<]*</span><span class="st k-[a-z]+">([^<]*)<')


def flip_ages(d, url, secs):
    """Stops and starts `flip` for `secs`; each time (ms) from the command's return to the page
    showing it (Stopped after a stop; anything else after a start), None if not within 60 s."""
    ages, stop, end = [], True, time.monotonic() + secs
    while time.monotonic() < end:
        d.cli("stop" if stop else "start", "flip")
        t0, age = time.monotonic(), None
        while time.monotonic() - t0 < 60:
            m = FLIP.search(get(url))
            if m and (m.group(1) == b"Stopped") == stop:
                age = (time.monotonic() - t0) * 1000
                break
            time.sleep(0.01)
        ages.append(age)
        stop = not stop
        time.sleep(0.2)
    if not stop:
        d.cli("start", "flip")
    return ages


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def get_gzip(url):
    """The answer to a client that takes gzip: (Content-Encoding, body length)."""
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Content-Encoding"), len(r.read())


# Each phase and the nginx run it is compared with (measured in the same run, under the same
# load: nginx while the services flap for the flapping phases).
PHASES = (
    ("startup", "nginx"),
    ("startup_gzip", "nginx_gzip"),
    ("steady", "nginx"),
    ("steady_gzip", "nginx_gzip"),
    ("steady_with_respawns", "nginx"),
    ("flapping", "nginx_flapping"),
    ("flapping_gzip", "nginx_flapping_gzip"),
    ("nginx", "nginx"),
    ("nginx_gzip", "nginx_gzip"),
    ("nginx_flapping", "nginx_flapping"),
    ("nginx_flapping_gzip", "nginx_flapping_gzip"),
)


def median(values):
    s = sorted(values)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if s else None


def one_run(n, args, d, public, nginx_port, www, record, results):
    """One start of the daemon and every phase against it; returns the phases' wrk figures."""
    page_url, ngx_url = f"http://127.0.0.1:{public}/", f"http://127.0.0.1:{nginx_port}/index.html"
    run = {}
    # The first seconds after start: wrk from the moment the port accepts; plain on even runs,
    # gzip on odd ones (one daemon start has one first five seconds).
    d.start()
    wait_for("public port", lambda: accepts(public), step=0.001)
    t0 = time.monotonic()
    try:
        get(page_url)
        results.setdefault("first_get_ms", []).append((time.monotonic() - t0) * 1000)
    except OSError as e:
        results.setdefault("first_get_ms", []).append(None)
        print(f"the first GET after the port accepted failed: {e}")
    first = "startup_gzip" if n % 2 else "startup"
    run[first] = wrk(page_url, min(args.secs, 5), args.conns, gzip=n % 2 == 1)

    page = wait_for(
        "the page with the open incident and the bars",
        lambda: (b := get(page_url)) and b"Incident on Payments" in b and b"class=\"bar\"" in b and b,
        timeout=120, step=0.5,
    )
    if not www.joinpath("index.html").exists():
        # nginx serves the same bytes, and a gzip copy of them beside (gzip_static) at the
        # level upkeep compresses with (zlib's default, 6).
        (www / "index.html").write_bytes(page)
        (www / "index.html.gz").write_bytes(gzip.compress(page, compresslevel=6, mtime=0))
        (www / "static").mkdir()
        for f in ("page.css", "page.js"):
            (www / "static" / f).write_bytes(get(f"http://127.0.0.1:{public}/static/{f}"))
        view = len(page) + sum((www / "static" / f).stat().st_size for f in ("page.css", "page.js"))
        up_enc, up_gz = get_gzip(page_url)
        ngx_enc, ngx_gz = get_gzip(ngx_url)
        assert up_enc == "gzip" and ngx_enc == "gzip", f"gzip answers: upkeep {up_enc}, nginx {ngx_enc}"
        results["page_bytes"] = {"html": len(page), "view": view, "gzip_upkeep": up_gz, "gzip_nginx": ngx_gz}
    if "respawn_quiet" not in results:
        wait_for("child", lambda: len(lines_of(record)) >= 1)
        results["respawn_quiet"] = respawns(record, args.reps)

    # Steady: upkeep and nginx one after the other, plain then gzip.
    for gz in (False, True):
        sfx = "_gzip" if gz else ""
        run["steady" + sfx] = wrk(page_url, args.secs, args.conns, gzip=gz)
        run["nginx" + sfx] = wrk(ngx_url, args.secs, args.conns, gzip=gz)

    # Respawns while wrk runs against the page.
    box = {}
    t = threading.Thread(target=lambda: box.update(w=wrk(page_url, args.secs, args.conns)))
    t.start()
    time.sleep(1)
    results.setdefault("respawn_under_wrk", []).extend(respawns(record, args.reps))
    t.join()
    run["steady_with_respawns"] = box["w"]

    # The flapping burst: ten services restarting about five times a second each, and nginx
    # measured during it too (the burst's processes take the same cores).
    for i in range(10):
        d.cli("start", f"flap-{i}")
    time.sleep(1)
    results["flapping_page_bytes"] = len(get(page_url))
    box = {}
    t = threading.Thread(target=lambda: box.update(r=render_times(page_url, args.secs - 1)))
    f = threading.Thread(target=lambda: box.update(f=flip_ages(d, page_url, args.secs - 1)))
    t.start()
    f.start()
    run["flapping"] = wrk(page_url, args.secs, args.conns)
    t.join()
    f.join()
    results.setdefault("flip_ms", []).extend(box["f"])
    renders = box["r"]
    gaps = [b - a for a, b in zip(renders, renders[1:])]
    results.setdefault("flapping_renders", []).append({
        "per_s": len(renders) / (args.secs - 1),
        "longest_gap_ms": max(gaps) * 1000 if gaps else None,
    })
    run["nginx_flapping"] = wrk(ngx_url, args.secs, args.conns)
    run["flapping_gzip"] = wrk(page_url, args.secs, args.conns, gzip=True)
    run["nginx_flapping_gzip"] = wrk(ngx_url, args.secs, args.conns, gzip=True)
    for i in range(10):
        d.cli("stop", f"flap-{i}")
    d.stop()
    return run


def summary(label, results, args):
    """Prints one build's figures."""
    runs = results["runs"]
    print(f"\n== {label}: status page, GET / with wrk -t2 -c{args.conns}, {args.secs} s each (startup: 5 s from the"
          f" first accept), {len(runs)} runs; medians, and each run's ratio to nginx in the same run under the same load")
    pb = results.get("page_bytes")
    if pb:
        print(f"page: {pb['html']} bytes of HTML, {pb['view']} bytes with its CSS and script;"
              f" gzipped {pb['gzip_upkeep']} bytes from upkeep, {pb['gzip_nginx']} from nginx (gzip_static)")
    print(f"{'':24}{'req/s':>9}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max p99':>8}{'of nginx':>9}  per run  errors")
    for k, base in PHASES:
        rs = [(r[k], r[base]) for r in runs if k in r]
        if not rs:
            continue
        ratios = [a["rps"] / b["rps"] for a, b in rs]
        col = lambda f: median([a[f] for a, _ in rs if a[f] is not None])  # noqa: E731
        err = sum(a["non2xx"] for a, _ in rs)
        sock = "; ".join(a["socket_errors"] for a, _ in rs if a["socket_errors"])
        err = f"{err} non-2xx {sock}".strip() if err or sock else ""
        print(f"{k:24}{col('rps'):>9.0f}{col('p50'):>8.2f}{col('p90'):>8.2f}{col('p99'):>8.2f}"
              f"{max(a['p99'] for a, _ in rs):>8.2f}{median(ratios):>9.2f}  {' '.join(f'{x:.2f}' for x in ratios)}  {err}")
    firsts = " ".join("failed" if f is None else f"{f:.1f}" for f in results["first_get_ms"])
    print(f"first GET once the port accepts, each start: {firsts} ms")
    for i, fr in enumerate(results["flapping_renders"]):
        gap = f"{fr['longest_gap_ms']:.0f} ms" if fr["longest_gap_ms"] is not None else "n/a"
        print(f"while flapping (run {i + 1}): {fr['per_s']:.1f} renders a second, longest gap between two {gap}"
              " (ETag polled every 20 ms)")
    ages = [a for a in results["flip_ms"] if a is not None]
    lost = sum(a is None for a in results["flip_ms"])
    if ages:
        print(f"freshness while flapping: {len(ages)} stops/starts of flip shown after p50 {percentile(ages, 50):.0f},"
              f" p90 {percentile(ages, 90):.0f}, max {max(ages):.0f} ms"
              + (f"; {lost} not shown within 60 s" if lost else ""))
    print(f"respawn (SIGKILL → first line of the new child), ms; quiet {args.reps} kills,"
          f" under wrk {args.reps} kills a run")
    for k in ("respawn_quiet", "respawn_under_wrk"):
        v = results[k]
        print(f"{k:24}p50 {percentile(v, 50):6.2f}  p90 {percentile(v, 90):6.2f}  p99 {percentile(v, 99):6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=int, default=10, help="seconds of each wrk run (default 10)")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--reps", type=int, default=100, help="kills per respawn measurement (default 100)")
    ap.add_argument("--runs", type=int, default=2, help="daemon starts per build, each measuring every phase (default 2)")
    ap.add_argument("--nice", type=int, default=10, help="nginx's nice value (default 10, as upkeep's page threads)")
    ap.add_argument("--profile", choices=("release", "debug"), default="release",
                    help="the build whose upkeep and status_history run (default release)")
    ap.add_argument("--upkeep", action="append", metavar="PATH",
                    help="an upkeep binary to measure (repeat to compare builds in one run; default the profile's)")
    args = ap.parse_args()
    build = UPKEEP.parent.parent / args.profile
    bins = [pathlib.Path(b).resolve() for b in (args.upkeep or [build / "upkeep"])]
    labels = [str(b) for b in bins]
    history = build / "examples" / "status_history"

    work = pathlib.Path(tempfile.mkdtemp(prefix="status-bench-"))
    www = work / "www"
    www.mkdir()
    (www / "probe").write_text("ok")
    os.chmod(work, 0o755)
    nginx_port, public = free_port(), free_port()
    nginx = Nginx(nginx_port, www, args.nice)
    record = work / "child.rec"
    daemons = [Daemon(b, work, public, services_toml(nginx_port, record)) for b in bins]
    results = {label: {"runs": []} for label in labels}
    try:
        # A first run makes the data dir, its node id and the store; then the history.
        d = daemons[0]
        d.start()
        wait_for("first daemon", lambda: accepts(public), step=0.05)
        d.stop()
        if history.exists():
            print(subprocess.run([history, work / "data", "100"], capture_output=True, text=True, check=True).stdout.strip())
        else:
            print(f"no {history}: running without the 90 days of history")
        # The builds take turns, so that each meets the machine's load as the other does.
        for n in range(args.runs):
            for label, d in zip(labels, daemons):
                results[label]["runs"].append(one_run(n, args, d, public, nginx_port, www, record, results[label]))
    finally:
        for d in daemons:
            d.stop()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)

    OUT.mkdir(exist_ok=True)
    (OUT / "statuspage.json").write_text(json.dumps(results, indent=2))
    for label in labels:
        summary(label, results[label], args)


if __name__ == "__main__":
    main()
