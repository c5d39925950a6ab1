#!/usr/bin/env python3
"""upkeep's benchmarks. Prints figures; asserts nothing. Run through bench/run.

Everything runs in one go on one machine, so the figures that matter are the ratios:
- respawn: SIGKILL of a service to the first line of code of its replacement, for a bare C
  fork/exec/wait loop (the floor), upkeep, PM2 and supervisord;
- flood: upkeep's respawn with the TCP API on (`daemon.listen`), quiet and then while client
  processes flood the listener (public reads, bad tokens, 60 KiB bodies, idle connections);
- footprint: supervisor RSS and CPU over an idle period while it supervises 100 `sleep`s;
- logs: lines a second a program writes through upkeep's capture, against /dev/null;
- probes: HTTP probes of nginx at 1,000 a second (scheduling lag p50/p99, daemon CPU), then
  higher rates until lag p99 passes 10 ms.
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
DEPS = HERE / ".deps"
UPKEEP = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "upkeep"
CHILD = OUT / "child"
FLOOR = OUT / "floor"
WRITER = OUT / "writer"
PM2 = DEPS / "npm" / "node_modules" / ".bin" / "pm2"
SUPERVISORD = DEPS / "venv" / "bin" / "supervisord"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HZ = os.sysconf("SC_CLK_TCK")


def lines_of(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_for(what, check, timeout=30.0, step=0.0002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure_respawn(name, start, stop, record, reps, settle):
    """Kills the recorded child `reps` times; returns latencies in ms."""
    start()
    try:
        wait_for(f"{name}: first child", lambda: len(lines_of(record)) >= 1)
        time.sleep(0.3)
        lat = []
        for _ in range(reps):
            lines = lines_of(record)
            pid = int(lines[-1].split()[0])
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            lines = wait_for(f"{name}: respawn", lambda: (l := lines_of(record)) and len(l) > len(lines) and l, timeout=10)
            lat.append((int(lines[-1].split()[1]) - t0) / 1e6)
            time.sleep(settle)
        return lat
    finally:
        stop()


def proc_ticks(pid):
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    f = stat.rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def proc_rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Upkeep:
    def __init__(self, services_toml, daemon_toml=""):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="upkeep-bench-"))
        self.config = self.dir / "upkeep.toml"
        self.config.write_text(f'[daemon]\ndata_dir = "{self.dir / "data"}"\n{daemon_toml}\n{services_toml}')
        self.proc = None

    def start(self):
        log = open(self.dir / "daemon.log", "w")
        self.proc = subprocess.Popen([UPKEEP, "daemon", "-c", self.config], stdout=log, stderr=log, env={**os.environ, "UPKEEP_LOG": "warn"})
        wait_for("upkeep socket", lambda: (self.dir / "data" / "upkeep.sock").exists(), step=0.01)

    def cli(self, *args):
        return subprocess.run([UPKEEP, "-c", self.config, *args], capture_output=True, text=True, check=True).stdout

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


class Pm2:
    def __init__(self):
        self.home = pathlib.Path(tempfile.mkdtemp(prefix="pm2-bench-"))
        self.env = {**os.environ, "PM2_HOME": str(self.home)}

    def run(self, *args):
        subprocess.run([PM2, *args], env=self.env, capture_output=True, check=True)

    def start_apps(self, apps):
        eco = self.home / "ecosystem.json"
        eco.write_text(json.dumps({"apps": apps}))
        self.run("start", str(eco))

    def daemon_pid(self):
        return int((self.home / "pm2.pid").read_text())

    def stop(self):
        subprocess.run([PM2, "kill"], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


class Supervisord:
    def __init__(self, programs):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="supervisord-bench-"))
        conf = self.dir / "supervisord.conf"
        conf.write_text(
            f"[supervisord]\nlogfile={self.dir}/supervisord.log\npidfile={self.dir}/supervisord.pid\nnodaemon=true\n\n"
            + "".join(
                f"[program:{name}]\ncommand={cmd}\nstartsecs=0\nautorestart=true\nstartretries=1000000\n"
                f"stdout_logfile={self.dir}/{name}.out\nstderr_logfile={self.dir}/{name}.err\n\n"
                for name, cmd in programs
            )
        )
        self.conf = conf
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([SUPERVISORD, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_respawn(reps, supervisord_reps, settle):
    results = {}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="respawn-"))

    rec = tmp / "floor.rec"
    floor = {}
    def floor_start():
        floor["p"] = subprocess.Popen([FLOOR, CHILD, rec])
    def floor_stop():
        floor["p"].kill()
        floor["p"].wait()
        for line in lines_of(rec)[-1:]:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    results["floor (C fork/exec/wait)"] = measure_respawn("floor", floor_start, floor_stop, rec, reps, settle)

    # upkeep at once, and again once the daemon has unmapped its start-up pages (10 s after
    # start): the first respawns then fault the code they run back in.
    # And without cgroups (`daemon.cgroups = false`): the child then starts by posix_spawn
    # instead of a fork that enters the service's cgroup before exec.
    for label, wait, daemon in (("upkeep", 0, ""), ("upkeep, after 12 s", 12, ""),
                                ("upkeep, no cgroups", 0, "cgroups = false\n")):
        rec = tmp / f"upkeep-{wait}-{len(daemon)}.rec"
        u = Upkeep(f'[services.child]\ncommand = ["{CHILD}", "{rec}"]\nbackoff_min = "0"\nmax_restarts = 1000000\nwindow = "1s"\n', daemon)
        def start(u=u, wait=wait):
            u.start()
            time.sleep(wait)
        results[label] = measure_respawn("upkeep", start, u.stop, rec, reps, settle)

    if PM2.exists():
        rec = tmp / "pm2.rec"
        p = Pm2()
        app = {"name": "child", "script": str(CHILD), "args": [str(rec)], "interpreter": "none", "autorestart": True,
               "restart_delay": 0, "max_restarts": 1000000, "min_uptime": 0, "exec_mode": "fork"}
        results["PM2"] = measure_respawn("pm2", lambda: p.start_apps([app]), p.stop, rec, reps, settle)

    if SUPERVISORD.exists():
        rec = tmp / "supervisord.rec"
        s = Supervisord([("child", f"{CHILD} {rec}")])
        results["supervisord"] = measure_respawn("supervisord", s.start, s.stop, rec, supervisord_reps, settle)
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def flood_client(port, stop_at, counts, idx):
    """One flooding process: new connection per request, a mix of public reads, bad tokens and
    60 KiB bodies; counts answers by status code in counts[idx] (codes 2xx, 4xx, 5xx, errors)."""
    import socket

    big = b"x" * 60_000
    reqs = [
        b"GET /api/v1/status HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/services HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer upk_" + b"0" * 64 + b"\r\nConnection: close\r\n\r\n",
        b"POST /api/v1/services HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer nope\r\nContent-Length: 60000\r\nConnection: close\r\n\r\n" + big,
        b"POST /api/v1/services/x/restart HTTP/1.1\r\nHost: b\r\nContent-Length: 60000\r\nConnection: close\r\n\r\n" + big,
    ]
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(reqs[n % len(reqs)])
            head = s.recv(64)
            s.close()
            code = head[9:10]
            slot = {b"2": 0, b"4": 1, b"5": 2}.get(code, 3)
        except OSError:
            slot = 3
        with counts.get_lock():
            counts[idx * 4 + slot] += 1


def start_flood(port, clients, idle_conns, counts):
    """Holds `idle_conns` idle connections to `port` and starts `clients` flooding processes;
    returns what `stop_flood` needs."""
    import multiprocessing
    import socket

    idle = []
    for _ in range(idle_conns):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    stop_at = time.monotonic() + 3600
    procs = [multiprocessing.Process(target=flood_client, args=(port, stop_at, counts, i), daemon=True) for i in range(clients)]
    for p in procs:
        p.start()
    time.sleep(1)
    return procs, idle


def stop_flood(flood):
    procs, idle = flood
    for p in procs:
        p.terminate()
        p.join()
    for s in idle:
        s.close()


def bench_flood(reps, settle, clients=4, idle_conns=400):
    """Respawn p50/p99 of upkeep with the TCP API quiet, then flooded; and of the floor while an
    upkeep daemon beside it is flooded (what the flood costs the machine, not the daemon)."""
    import multiprocessing

    results, flood = {}, {}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="flood-"))
    child = lambda rec: f'[services.child]\ncommand = ["{CHILD}", "{rec}"]\nbackoff_min = "0"\nmax_restarts = 1000000\nwindow = "1s"\n'
    for label, flooded, floor in (("upkeep, TCP API quiet", False, False), ("upkeep, TCP API flooded", True, False),
                                  ("floor, beside the flood", True, True)):
        port = free_port()
        rec = tmp / f"{label}.rec"
        counts = multiprocessing.Array("q", clients * 4)
        # The daemon the flood hits: the measured one, or (for the floor) a bystander.
        u = Upkeep("" if floor else child(rec), f'listen = "127.0.0.1:{port}"\n')
        state = {}

        def start(u=u, port=port, flooded=flooded, floor=floor, rec=rec, counts=counts, state=state):
            u.start()
            if flooded:
                state["flood"] = start_flood(port, clients, idle_conns, counts)
            if floor:
                state["floor"] = subprocess.Popen([FLOOR, CHILD, rec])

        def stop(u=u, state=state, rec=rec):
            if "floor" in state:
                state["floor"].kill()
                state["floor"].wait()
                for line in lines_of(rec)[-1:]:
                    try:
                        os.kill(int(line.split()[0]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if "flood" in state:
                stop_flood(state["flood"])
            u.stop()

        t0 = time.monotonic()
        results[label] = measure_respawn(label, start, stop, rec, reps, settle)
        if flooded and not floor:
            c = list(counts)
            secs = time.monotonic() - t0
            flood = {"requests": sum(c), "per_s": sum(c) / secs, "2xx": sum(c[0::4]), "4xx": sum(c[1::4]),
                     "5xx": sum(c[2::4]), "errors": sum(c[3::4]), "idle_connections": idle_conns}
    shutil.rmtree(tmp, ignore_errors=True)
    return results, flood


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def idle_usage(pid, seconds):
    t1, r1 = proc_ticks(pid), proc_rss_kib(pid)
    time.sleep(seconds)
    t2, r2 = proc_ticks(pid), proc_rss_kib(pid)
    # RSS at the end of the idle period (the steady state) and at its start (just after
    # start-up and the `ls` calls that waited for it).
    return {"rss_mib": r2 / 1024, "rss_start_mib": r1 / 1024, "cpu_ticks": t2 - t1, "cpu_percent": (t2 - t1) / HZ / seconds * 100}


def bench_footprint(n, seconds):
    results = {}
    sleep = shutil.which("sleep")
    u = Upkeep("".join(f'[services.s{i}]\ncommand = ["{sleep}", "100000"]\n\n' for i in range(n)))
    u.start()
    try:
        wait_for("100 services up", lambda: sum(1 for s in json.loads(u.cli("ls", "--json")) if s["state"] == "up") == n, step=0.1)
        time.sleep(3)
        results["upkeep"] = idle_usage(u.proc.pid, seconds)
    finally:
        u.stop()
    if PM2.exists():
        p = Pm2()
        try:
            p.start_apps([{"name": f"s{i}", "script": sleep, "args": ["100000"], "interpreter": "none"} for i in range(n)])
            time.sleep(3)
            results["PM2"] = idle_usage(p.daemon_pid(), seconds)
        finally:
            p.stop()
    if SUPERVISORD.exists():
        s = Supervisord([(f"s{i}", f"{sleep} 100000") for i in range(n)])
        s.start()
        try:
            time.sleep(5)
            results["supervisord"] = idle_usage(s.proc.pid, seconds)
        finally:
            s.stop()
    return results


def bench_logs(lines):
    direct = subprocess.run([WRITER, str(lines)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    n, secs = direct.stderr.split()
    results = {"/dev/null": {"lines_per_s": int(n) / float(secs), "seconds": float(secs)}}
    # The same writer into a pipe that `cat` drains to /dev/null: what any pipe costs.
    piped = subprocess.run(f"'{WRITER}' {lines} | cat > /dev/null", shell=True, stderr=subprocess.PIPE, text=True, check=True)
    n, secs = piped.stderr.split()
    results["pipe to cat"] = {"lines_per_s": int(n) / float(secs), "seconds": float(secs)}
    u = Upkeep(f'[services.w]\ncommand = ["{WRITER}", "{lines}"]\nrestart = "never"\nlog = {{ max_size = "100MiB", keep = 2 }}\n')
    u.start()
    try:
        wait_for("writer to finish", lambda: json.loads(u.cli("ls", "--json"))[0]["state"] == "exited", step=0.05, timeout=300)
        err = u.dir / "data" / "logs" / "w.err.log"
        last = wait_for("writer's report", lambda: [l for l in lines_of(err) if l.split()[-1].replace(".", "").isdigit()], step=0.05)
        n, secs = last[-1].split()[-2:]
        status = json.loads(u.cli("status", "w", "--json"))
        results["through upkeep"] = {"lines_per_s": int(n) / float(secs), "seconds": float(secs), "dropped_lines": status["info"]["dropped_lines"]}
    finally:
        u.stop()
    return results


class Nginx:
    """nginx from Debian answering 200 "ok" on loopback: fast enough not to be the bottleneck."""

    def __init__(self, port):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="nginx-bench-"))
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"worker_processes 2;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\ndaemon off;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {self.dir}; proxy_temp_path {self.dir};\n"
            f"  fastcgi_temp_path {self.dir}; uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};\n"
            f"  keepalive_requests 1000000;\n"
            f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }} }}\n"
        )
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("nginx", lambda: subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/"], capture_output=True).stdout == b"ok", step=0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape(data_dir):
    """GET /metrics over the control socket; returns {sample name with labels: value}."""
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.connect(str(data_dir / "upkeep.sock"))
    s.sendall(b"GET /metrics HTTP/1.0\r\nHost: upkeep\r\n\r\n")
    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    out = {}
    for line in raw.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def lag_quantile(before, after, q):
    """Quantile of the probe lag between two scrapes, interpolated within histogram buckets."""
    les = sorted((float(k.split('le="')[1].rstrip('"}').replace("+Inf", "inf")), k) for k in after if k.startswith("upkeep_probe_lag_seconds_bucket"))
    counts = [(le, after[k] - before.get(k, 0)) for le, k in les]
    total = counts[-1][1]
    if total == 0:
        return float("nan"), 0
    rank, prev_le, prev_n = q * total, 0.0, 0
    for le, n in counts:
        if n >= rank:
            if le == float("inf"):
                return prev_le, total
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1), total
        prev_le, prev_n = le, n
    return prev_le, total


def time_wait():
    for line in pathlib.Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("tw") + 1])
    return 0


def probe_run(port, rate, seconds, services=100):
    # The previous run's closed connections hold loopback ports for 60 s (TIME_WAIT); let
    # them drain so this run is not measured against a half-exhausted port range.
    wait_for("TIME_WAIT sockets to drain", lambda: time_wait() < 2000, step=1, timeout=90)
    per = max(1, rate // services)
    url = f"http://127.0.0.1:{port}/"
    probes = ", ".join(f'{{ kind = "http", name = "h{i}", url = "{url}", every = "1s", timeout = "2s", grace = "0s" }}' for i in range(per))
    u = Upkeep("".join(f"[services.s{i}]\nprobes = [{probes}]\n\n" for i in range(services)))
    u.start()
    try:
        data = u.dir / "data"
        def all_up():
            listing = json.loads(u.cli("ls", "--json"))
            states = [s["state"] for s in listing]
            reasons = {p["reason"] for s in listing for p in s["probes"].values() if p["health"] == "down"}
            all_up.last = ({st: states.count(st) for st in set(states)}, sorted(reasons)[:3])
            return len(states) == services and all(st == "up" for st in states)
        try:
            wait_for("all services up", all_up, step=0.2, timeout=60)
        except TimeoutError:
            raise TimeoutError(f"not all {services} services came up: {all_up.last}")
        time.sleep(2)
        a = scrape(data)
        time.sleep(seconds)
        b = scrape(data)
        p50, n = lag_quantile(a, b, 0.50)
        p99, _ = lag_quantile(a, b, 0.99)
        cpu = (b["process_cpu_seconds_total"] - a["process_cpu_seconds_total"]) / seconds * 100
        return {"rate_target": services * per, "checks_per_s": n / seconds, "lag_p50_ms": p50 * 1000, "lag_p99_ms": p99 * 1000, "cpu_percent": cpu}
    finally:
        u.stop()


def reached(r):
    """A rate is reached when the checks were done at (95% of) that rate with lag p99 under
    10 ms. Lag alone is not enough: a runner that falls behind does fewer checks, not later
    ones (issue 14, F26)."""
    return "failed" not in r and r["lag_p99_ms"] <= 10 and r["checks_per_s"] >= 0.95 * r["rate_target"]


def bench_probes(seconds, ramp_seconds, rates):
    port = 18799
    nginx = Nginx(port)
    try:
        results = [probe_run(port, 1000, seconds)]
        for rate in rates:
            try:
                r = probe_run(port, rate, ramp_seconds)
            except TimeoutError as e:
                # The limit, reached another way: the probes could not even all pass.
                results.append({"rate_target": rate, "failed": str(e)})
                break
            results.append(r)
            if not reached(r):
                break
        return results
    finally:
        nginx.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="kills per supervisor (default 200)")
    ap.add_argument("--supervisord-reps", type=int, default=20, help="supervisord wakes once a second: fewer kills (default 20)")
    ap.add_argument("--settle", type=float, default=0.02, help="seconds between kills (default 0.02)")
    ap.add_argument("--idle", type=float, default=60, help="idle measurement in seconds (default 60)")
    ap.add_argument("--services", type=int, default=100, help="services for the footprint (default 100)")
    ap.add_argument("--log-lines", type=int, default=2_000_000, help="lines for the log throughput (default 2,000,000)")
    ap.add_argument("--probe-seconds", type=float, default=60, help="the 1,000 probes/s run (default 60)")
    ap.add_argument("--ramp-seconds", type=float, default=20, help="each higher-rate run (default 20)")
    ap.add_argument("--ramp", default="2000,5000,10000,20000", help="probe rates to try after 1,000/s")
    ap.add_argument("--only", choices=["respawn", "flood", "footprint", "logs", "probes"], action="append")
    args = ap.parse_args()
    only = set(args.only or ["respawn", "flood", "footprint", "logs", "probes"])
    OUT.mkdir(exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release}}

    if "respawn" in only:
        res = bench_respawn(args.reps, args.supervisord_reps, args.settle)
        floor_p99 = percentile(res["floor (C fork/exec/wait)"], 99)
        print(f"\ncrash to respawn (SIGKILL → first line of the new child), ms; {args.reps} kills each")
        print(f"{'':28}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'p99/floor':>11}")
        for name, lat in res.items():
            p50, p90, p99 = (percentile(lat, p) for p in (50, 90, 99))
            print(f"{name:28}{len(lat):>5}{p50:>9.3f}{p90:>9.3f}{p99:>9.3f}{p99 / floor_p99:>10.2f}x")
        if "PM2" in res:
            print(f"upkeep p99 is {percentile(res['PM2'], 99) / percentile(res['upkeep'], 99):.1f}x faster than PM2's")
        report["respawn_ms"] = {k: {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99)} for k, v in res.items()}

    if "flood" in only:
        res, flood = bench_flood(args.reps, args.settle)
        print(f"\ncrash to respawn with the TCP API on, ms; {args.reps} kills each")
        print(f"{'':28}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}")
        for name, lat in res.items():
            print(f"{name:28}{len(lat):>5}{percentile(lat, 50):>9.3f}{percentile(lat, 90):>9.3f}{percentile(lat, 99):>9.3f}")
        print(f"flood: {flood['requests']:,} requests ({flood['per_s']:,.0f}/s) from 4 processes, "
              f"{flood['2xx']:,} 2xx, {flood['4xx']:,} 4xx, {flood['5xx']:,} 5xx (503: past the cap), "
              f"{flood['errors']:,} errors, {flood['idle_connections']} idle connections held")
        report["flood"] = {"respawn_ms": {k: {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99)} for k, v in res.items()}, **flood}

    if "footprint" in only:
        res = bench_footprint(args.services, args.idle)
        print(f"\nfootprint: {args.services} idle `sleep` services, {args.idle:.0f}s idle")
        print(f"{'':14}{'RSS MiB':>9}{'at start':>10}{'CPU ticks':>11}{'CPU % core':>12}")
        for name, r in res.items():
            print(f"{name:14}{r['rss_mib']:>9.1f}{r['rss_start_mib']:>10.1f}{r['cpu_ticks']:>11}{r['cpu_percent']:>12.4f}")
        report["footprint"] = res

    if "logs" in only:
        res = bench_logs(args.log_lines)
        print(f"\nlog throughput: {args.log_lines:,} lines of 100 bytes")
        for name, r in res.items():
            extra = f", {r['dropped_lines']} dropped" if "dropped_lines" in r else ""
            print(f"{name:16}{r['lines_per_s']:>14,.0f} lines/s ({r['seconds']:.3f}s{extra})")
        up = res["through upkeep"]["lines_per_s"]
        print(f"through upkeep the writer runs at {up / res['/dev/null']['lines_per_s']:.0%} of its /dev/null speed, "
              f"{up / res['pipe to cat']['lines_per_s']:.0%} of its speed into a bare pipe")
        report["logs"] = res

    if "probes" in only:
        res = bench_probes(args.probe_seconds, args.ramp_seconds, [int(r) for r in args.ramp.split(",") if r])
        print("\nprobes: HTTP probes of nginx on loopback (100 services × N probes, every 1s)")
        print(f"{'target/s':>9}{'done/s':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}{'CPU % core':>12}")
        for r in res:
            if "failed" in r:
                print(f"{r['rate_target']:>9}  failed: {r['failed']}")
                continue
            print(f"{r['rate_target']:>9}{r['checks_per_s']:>9.0f}{r['lag_p50_ms']:>12.3f}{r['lag_p99_ms']:>12.3f}{r['cpu_percent']:>12.1f}")
        ok = [r["rate_target"] for r in res if reached(r)]
        print(f"highest rate done in full (95% of target) with lag p99 under 10 ms: {max(ok) if ok else 'none'} probes/s")
        report["probes"] = res

    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    print(f"\nsaved {OUT / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
