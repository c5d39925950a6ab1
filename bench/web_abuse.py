#!/usr/bin/env python3
"""Abuse of the TCP listeners (break-it, sessions 7 and 8): what idle sockets, slowloris heads,
stalled bodies, held streams and subscription spam do to the daemon, and whether a client that
sends a whole request at once is still served meanwhile.

Starts the real daemon (release build; UPKEEP_BIN to choose another) with `listen` and
`public_listen` on loopback and one service, then runs each case against it in turn. The
abusers come from many loopback addresses (127.0.1.x, 32 connections each, the cap per
address), so they are many clients, not one. While each case holds its sockets, a probe from
127.0.0.2 sends a whole request once a second; the case prints how many abusive connections
the daemon still holds, how it answered them, and the probe's answers and latency. Asserts
nothing: figures only.

Cases:
  idle     N connections that send nothing
  loris    N connections that send half a request head, reopened as soon as one is closed
  stalled  N `POST /api/v1/subscribe` with `Content-Length: 100` and no body
  streams  N `GET /api/v1/events/stream` with a read token (on `listen`)
  spam     ADDRS addresses × 10 `POST /subscribe` forms (the public subscription budget)

Usage: bench/web_abuse.py [--n 1000] [--hold 15] [--addrs 200] [--cases idle,loris,...]
"""

import argparse
import collections
import concurrent.futures as cf
import http.client
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.environ.get("UPKEEP_BIN", os.path.join(TARGET, "release", "upkeep"))
STALLED = (
    b"POST /api/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def abuser(i, per=32):
    """The local address of the i-th abusive connection: `per` per address."""
    k = i // per
    return f"127.0.{1 + k // 250}.{1 + k % 250}"


def connect(i, port, per=32):
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(abuser(i, per), 0))


class Daemon:
    def __init__(self, tmp):
        self.api, self.public = free_port(), free_port()
        self.config = os.path.join(tmp, "upkeep.toml")
        with open(self.config, "w") as f:
            f.write(
                f"""[daemon]
data_dir = "{tmp}/data"
listen = "127.0.0.1:{self.api}"
public_listen = "127.0.0.1:{self.public}"
[services.web]
command = "sleep 100000"
[notify]
public_url = "http://127.0.0.1:{self.public}/"
[notify.channels.mail]
kind = "email"
url = "smtp://127.0.0.1:1"
from = "upkeep <noreply@example.com>"
recipients = ["ops@example.com"]
[notify.subscribers]
"""
            )
        self.proc = subprocess.Popen(
            [BIN, "-c", self.config, "daemon"],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "daemon.log"), "w"),
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if probe(self.public, "/api/v1/health")[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the daemon did not answer within 30 s")
        out = subprocess.run(
            [BIN, "-c", self.config, "token", "create", "bench", "--scope", "read", "--json"],
            capture_output=True,
            check=True,
        )
        self.token = json.loads(out.stdout)["secret"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def probe(port, path, token=None):
    """A whole request from 127.0.0.2: (status or error name, milliseconds)."""
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        r.read()
        c.close()
        status = r.status
    except Exception as e:
        status = type(e).__name__
    return status, (time.monotonic() - t) * 1000


def state(s):
    """What the daemon did with `s` so far: (closed it, the status line it answered)."""
    got = b""
    s.setblocking(False)
    while True:
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            closed = False
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        got += chunk
        if len(got) > 4096:  # a stream: what it sends goes on
            closed = False
            break
    line = got.split(b"\r\n")[0].decode(errors="replace")
    return closed, line or ("closed unanswered" if closed else "no answer yet")


def held(socks):
    """How many of `socks` the daemon still holds, and how it answered them."""
    states = [state(s) for s in socks]
    return sum(not c for c, _ in states), collections.Counter(line for _, line in states)


def hold_and_probe(socks, port, path, hold, token=None):
    probes = []
    end = time.monotonic() + hold
    while time.monotonic() < end:
        probes.append(probe(port, path, token))
        time.sleep(1)
    still, answers = held(socks)
    return still, answers, probes


def report(case, n, still, answers, probes, extra=""):
    codes = collections.Counter(str(s) for s, _ in probes)
    ms = sorted(m for s, m in probes if s == 200)
    med = f"{statistics.median(ms):.1f}" if ms else "-"
    worst = f"{ms[-1]:.1f}" if ms else "-"
    print(
        f"{case:8} {n:6} {still:6}  {dict(answers)!s:40} probes {dict(codes)!s:22} "
        f"median {med:>6} ms  max {worst:>7} ms {extra}",
        flush=True,
    )


def case_idle(d, n, hold):
    socks = [connect(i, d.public) for i in range(n)]
    report("idle", n, *hold_and_probe(socks, d.public, "/api/v1/health", hold))
    for s in socks:
        s.close()


def case_loris(d, n, hold):
    sel = selectors.DefaultSelector()
    opened = [0]

    def new(i):
        try:
            s = connect(i, d.public)
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            opened[0] += 1
        except OSError:
            pass

    for i in range(n):
        new(i)

    def reopen():
        for key, _ in sel.select(0):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            new(key.data)

    probes = []
    end = time.monotonic() + hold
    while time.monotonic() < end:
        reopen()
        probes.append(probe(d.public, "/"))
        time.sleep(1)
    still = len(sel.get_map())
    report("loris", n, still, {}, probes, f"({opened[0]} opened in all)")
    for k in list(sel.get_map().values()):
        k.fileobj.close()


def case_stalled(d, n, hold):
    socks = []
    for i in range(n):
        # 4 per address, as in the break-it run: within the subscriptions' rate limit, which
        # would otherwise answer them a 429 before their body is awaited.
        s = connect(i, d.public, per=4)
        s.send(STALLED)
        socks.append(s)
    report("stalled", n, *hold_and_probe(socks, d.public, "/api/v1/health", hold))
    for s in socks:
        s.close()


def case_streams(d, n, hold):
    socks = []
    request = f"GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {d.token}\r\n\r\n"
    for i in range(n):
        s = connect(i, d.api)
        s.send(request.encode())
        socks.append(s)
    report("streams", n, *hold_and_probe(socks, d.api, "/api/v1/services", hold, d.token))
    for s in socks:
        s.close()


def case_spam(d, addrs, _hold):
    def one(i):
        out = []
        for k in range(10):
            try:
                c = http.client.HTTPConnection(
                    "127.0.0.1", d.public, timeout=10, source_address=(f"127.0.{10 + i // 250}.{1 + i % 250}", 0)
                )
                body = urllib.parse.urlencode({"email": f"victim{i}-{k}@example.com"})
                c.request("POST", "/subscribe", body, {"content-type": "application/x-www-form-urlencoded"})
                r = c.getresponse()
                r.read()
                c.close()
                out.append(r.status)
            except Exception as e:
                out.append(type(e).__name__)
        return out

    t = time.monotonic()
    answers = collections.Counter()
    with cf.ThreadPoolExecutor(16) as ex:
        for o in ex.map(one, range(addrs)):
            answers.update(str(s) for s in o)
    probes = [probe(d.public, "/api/v1/health")]
    report("spam", addrs * 10, 0, answers, probes, f"({time.monotonic() - t:.1f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="abusive connections per case")
    ap.add_argument("--hold", type=float, default=15, help="seconds each case holds them")
    ap.add_argument("--addrs", type=int, default=200, help="client addresses of the spam case")
    ap.add_argument("--cases", default="idle,loris,stalled,streams,spam")
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cases = {
        "idle": lambda d: case_idle(d, args.n, args.hold),
        "loris": lambda d: case_loris(d, args.n, args.hold),
        "stalled": lambda d: case_stalled(d, args.n, args.hold),
        "streams": lambda d: case_streams(d, args.n, args.hold),
        "spam": lambda d: case_spam(d, args.addrs, args.hold),
    }
    print(f"upkeep: {BIN}")
    print(f"{'case':8} {'conns':>6} {'held':>6}  {'answers to the abusers':40} whole requests meanwhile")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            # A daemon of its own per case: what one case leaves does not weigh on the next.
            sub = os.path.join(tmp, name)
            os.makedirs(sub)
            d = Daemon(sub)
            try:
                cases[name](d)
            finally:
                d.stop()


if __name__ == "__main__":
    main()
