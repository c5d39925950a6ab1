"""A flood of failed admin sign-ins against one daemon (issue 18): what it costs the daemon.

Starts BIN as a daemon with `listen` on loopback, one admin user and one service that exits
every 200 ms (restarted at once: backoff 0), then signs in with wrong passwords from ADDRS
client addresses (127.2.x.y) × TRIES attempts, on THREADS threads. Prints the daemon's RSS
(VmRSS) before, at most during and after the flood, the answers by status, and the restart
latency of the flapping service (from the end of one run to the start of the next, as the
service itself stamps them) before and during the flood. Asserts nothing.

    python3 bench/login_flood.py [BIN] [ADDRS] [TRIES] [THREADS]
"""
import collections, concurrent.futures as cf, http.client, os, re, socket, statistics
import subprocess, sys, tempfile, threading, time, urllib.parse

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/upkeep"
ADDRS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
TRIES = int(sys.argv[3]) if len(sys.argv) > 3 else 20
THREADS = int(sys.argv[4]) if len(sys.argv) > 4 else 50


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stamps(path):
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def latencies(lines, since, until):
    """Gaps from each run's end to the next run's start, for ends within [since, until)."""
    out, end = [], None
    for kind, t in lines:
        t = float(t)
        if kind == "end":
            end = t
        elif kind == "start" and end is not None:
            if since <= end < until:
                out.append((t - end) * 1000)
            end = None
    return out


def summary(ms):
    if not ms:
        return "no restarts"
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{len(ms)} restarts, median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def one(port, i):
    a = f"127.2.{i // 250}.{1 + i % 250}"
    out = []
    for k in range(TRIES):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(a, 0))
            c.request("GET", "/admin/login")
            r = c.getresponse()
            b = r.read().decode()
            tok = re.search(r'name="csrf" value="([^"]+)"', b).group(1)
            body = urllib.parse.urlencode({"csrf": tok, "user": f"u{i}x{k}", "password": "wrongpassword"})
            c.request("POST", "/admin/login", body, {
                "content-type": "application/x-www-form-urlencoded",
                "Origin": f"http://127.0.0.1:{port}", "Cookie": "upkeep_login=" + tok})
            r = c.getresponse()
            r.read()
            out.append(r.status)
            c.close()
        except Exception as e:
            out.append(type(e).__name__)
    return out


def main():
    d = tempfile.mkdtemp(prefix="upkeep-flood-")
    port = free_port()
    flap = os.path.join(d, "flap.log")
    cfg = os.path.join(d, "upkeep.toml")
    with open(cfg, "w") as f:
        f.write(f'''[daemon]
data_dir = "{d}/data"
listen = "127.0.0.1:{port}"

[services.flap]
command = ["sh", "-c", "echo start $(date +%s.%N) >> {flap}; sleep 0.2; echo end $(date +%s.%N) >> {flap}; exit 1"]
backoff_min = "0s"
backoff_max = "0s"
max_restarts = 1000000
window = "1s"
''')
    daemon = subprocess.Popen([BIN, "-c", cfg, "daemon"], stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(d, "daemon.log"), "w"))
    try:
        for _ in range(600):
            if subprocess.run([BIN, "-c", cfg, "ls"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        add = subprocess.run([BIN, "-c", cfg, "user", "add", "admin"],
                             input=b"a long enough password\n", capture_output=True)
        assert add.returncode == 0, add.stderr
        time.sleep(12)  # past the daemon's start-up (its start-up pages are let go at 10 s)
        t0 = time.time()
        time.sleep(5)
        before = rss_kib(daemon.pid)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(daemon.pid))
                time.sleep(0.1)

        threading.Thread(target=sample, daemon=True).start()
        t1 = time.time()
        res = collections.Counter()
        with cf.ThreadPoolExecutor(THREADS) as ex:
            for o in ex.map(lambda i: one(port, i), range(ADDRS)):
                res.update(o)
        t2 = time.time()
        done.set()
        time.sleep(2)
        after = rss_kib(daemon.pid)
        lines = stamps(flap)
        print(f"binary {BIN}; {ADDRS} addresses x {TRIES} sign-ins on {THREADS} threads")
        print(f"answers {dict(res)} in {t2 - t1:.1f} s")
        print(f"daemon VmRSS: before {before / 1024:.1f} MiB, peak during {peak[0] / 1024:.1f} MiB, "
              f"2 s after {after / 1024:.1f} MiB")
        print(f"restart latency before the flood: {summary(latencies(lines, t0, t1))}")
        print(f"restart latency during the flood: {summary(latencies(lines, t1, t2))}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
