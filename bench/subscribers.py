#!/usr/bin/env python3
"""Subscribers' benchmark (issue 16): N confirmed subscribers (default 10,000), one maintenance
announcement, the real daemon (release build) and a local SMTP sink (aiosmtpd,
crates/upkeep-outbox/tests/smtp_sink.py, which parses and records every message before it
answers). Prints, per run: seconds from `upkeep maint add` until the sink has every
subscriber's mail, the rate, the daemon's peak RSS (VmHWM), messages lost (subscribers with no
mail) and duplicates (Message-IDs received more than once), and rows the restarted daemon took
over (each a possible resend). In the same invocation, what the sink takes from a plain
concurrent sender (Python's smtplib, 8 connections, messages of the shape upkeep sent), and
upkeep's rate as a share of it. Then `--killed` runs (default 1) each SIGKILL the daemon once,
halfway, and start it again. Per run also: the window between the SMTP server's 250 and the
row's mark in the store (p50, p99, max of the daemon's `marked_us`, debug log of
upkeep_outbox), in which a kill sends a mail twice. Asserts nothing.

Usage: bench/subscribers [--n 10000] [--plain 3000] [--concurrency 8] [--killed 1] [--no-kill]
"""

import argparse
import json
import os
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from email.message import EmailMessage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.environ.get("UPKEEP_BIN", os.path.join(TARGET, "release", "upkeep"))
SINK = os.path.join(ROOT, "crates/upkeep-outbox/tests/smtp_sink.py")


class Sink:
    def __init__(self, tmp):
        self.out = os.path.join(tmp, "mail-%d.jsonl" % time.monotonic_ns())
        self.proc = subprocess.Popen([sys.executable, SINK, self.out], stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())

    def count(self):
        try:
            with open(self.out, "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def messages(self):
        with open(self.out, encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def wait(what, cond, timeout=900, every=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise SystemExit("timed out waiting for " + what)


class Daemon:
    def __init__(self, tmp, sink, concurrency):
        self.dir = tempfile.mkdtemp(dir=tmp)
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "upkeep.toml")
        with open(self.config, "w") as f:
            f.write(
                f"""[daemon]
data_dir = "{self.data}"
[services.db]
command = "sleep 100000"
[notify]
public_url = "https://status.example.com/"
[notify.channels.mail]
kind = "email"
url = "smtp://127.0.0.1:{sink.port}"
from = "upkeep <noreply@example.com>"
concurrency = {concurrency}
pool_size = {concurrency}
[notify.subscribers]
notice = ["announced"]
[[notify.routes]]
notice = ["announced"]
channels = ["mail"]
recipients = ["ops@example.com"]
"""
            )
        self.proc = None

    def cli(self, *args):
        return subprocess.run([BIN, "-c", self.config, *args], capture_output=True, text=True)

    def start(self):
        log = open(os.path.join(self.dir, "daemon.log"), "a")
        env = dict(os.environ, UPKEEP_LOG="info,upkeep_outbox::dispatcher=debug")
        self.proc = subprocess.Popen(
            [BIN, "daemon", "-c", self.config], stdout=log, stderr=log, start_new_session=True,
            env=env,
        )
        wait("the daemon to answer", lambda: self.cli("ls").returncode == 0, timeout=60)

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.cli("down")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def add_subscribers(self, n):
        node = open(os.path.join(self.data, "node-id")).read().strip()
        db = sqlite3.connect(os.path.join(self.data, "upkeep.db"), timeout=30)
        db.executemany(
            "INSERT INTO subscribers (node, email, services, lang, created_ms, confirmed_ms)"
            " VALUES (?, ?, '[]', ?, 0, 1)",
            [(node, f"s{i}@example.com", "zh-CN" if i % 2 else "en") for i in range(n)],
        )
        db.commit()
        db.close()

    def announce(self):
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 8 * 86400))
        r = self.cli(
            "maint", "add", "--kind", "upgrade", "--title", "PostgreSQL 17", "--reason",
            "security fixes", "--start", start, "--for", "2h", "--services", "db",
            "--impact", "outage", "--alternative", "the read replica", "--follow-up",
            "https://status.example.com/help",
        )
        if r.returncode != 0:
            raise SystemExit(r.stderr)

    def marked_ms(self):
        """Every `marked_us` the daemons logged (ms): from a send's answer to its mark."""
        with open(os.path.join(self.dir, "daemon.log"), errors="replace") as f:
            return sorted(int(m.group(1)) / 1000 for m in re.finditer(r"marked_us=(\d+)", f.read()))

    def takeovers(self):
        r = self.cli("notify", "ls", "-n", "100000", "--json")
        return sum(row["takeovers"] for row in json.loads(r.stdout))


def upkeep_run(tmp, n, concurrency, kill):
    sink = Sink(tmp)
    d = Daemon(tmp, sink, concurrency)
    d.start()
    d.add_subscribers(n)
    t0 = time.monotonic()
    d.announce()
    want = n + 1  # and the operators' copy
    killed_at = None
    killed_time = None
    if kill:
        wait("half the mails", lambda: sink.count() >= want // 2)
        killed_at = sink.count()
        d.kill()
        killed_time = time.time()
        d.start()
    wait("every mail", lambda: sink.count() >= want)
    seconds = time.monotonic() - t0
    # Anything a resend adds arrives with the last rows: let the outbox settle.
    wait("the outbox to settle",
         lambda: not [r for r in json.loads(d.cli("notify", "ls", "--state", "sending", "--json").stdout)]
         and not [r for r in json.loads(d.cli("notify", "ls", "--state", "pending", "--json").stdout)],
         timeout=120)
    rss = d.peak_rss_kib()
    takeovers = d.takeovers()
    marked = d.marked_ms()
    messages = sink.messages()
    d.stop()
    sink.stop()
    ids = Counter(m["message_id"] for m in messages)
    to = {m["to"] for m in messages}
    lost = sum(1 for i in range(n) if f"s{i}@example.com" not in to)
    return {
        "seconds": seconds,
        "rate": n / seconds,
        "rss_mib": rss / 1024,
        "lost": lost,
        "twice": sum(c - 1 for c in ids.values() if c > 1),
        # Of those, the ones whose first copy the server recorded after the daemon was killed:
        # their data had been sent and the server's answer was still to come (it parses and
        # records before it answers), so no sender could have marked them.
        "twice_after_kill": sum(
            1 for i, c in ids.items() if c > 1 and killed_time is not None
            and min(m["recorded_at"] for m in messages if m["message_id"] == i) > killed_time
        ),
        "takeovers": takeovers,
        "killed_at": killed_at,
        "marked": marked,
        "sample": next(m for m in messages if m["to"].startswith("s")),
    }


def plain_run(tmp, n, concurrency, sample):
    """smtplib, `concurrency` sessions, messages of the sample's shape."""
    sink = Sink(tmp)
    parts = {p["content_type"]: p["text"] for p in sample["parts"]}

    def run(k):
        s = smtplib.SMTP("127.0.0.1", sink.port)
        for i in range(k, n, concurrency):
            m = EmailMessage()
            m["From"] = "upkeep <noreply@example.com>"
            m["To"] = f"p{i}@example.com"
            m["Subject"] = sample["subject"]
            m["Message-ID"] = f"<plain-{i}@example.com>"
            m.set_content(parts.get("text/plain", ""))
            m.add_alternative(parts.get("text/html", ""), subtype="html")
            s.send_message(m)
        s.quit()

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait("the plain sender's mails", lambda: sink.count() >= n)
    seconds = time.monotonic() - t0
    sink.stop()
    return n / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--plain", type=int, default=3_000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--killed", type=int, default=1, help="runs killed once each")
    p.add_argument("--no-kill", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("upkeep", upkeep_run(tmp, a.n, a.concurrency, kill=False))]
        plain = plain_run(tmp, a.plain, a.concurrency, runs[0][1]["sample"])
        for _ in range(0 if a.no_kill else a.killed):
            runs.append(("upkeep, killed once", upkeep_run(tmp, a.n, a.concurrency, kill=True)))
    print(f"plain smtplib, {a.concurrency} connections, {a.plain} messages: {plain:.0f}/s")
    print("| run | subscribers | seconds | per second | share of plain | peak RSS | lost | twice (server took it after the kill) | taken over | 250 to mark p50 / p99 / max |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def pct(xs, q):
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    for name, r in runs:
        killed = f" (at {r['killed_at']})" if r["killed_at"] is not None else ""
        m = r["marked"]
        print(
            f"| {name}{killed} | {a.n:,} | {r['seconds']:.1f} | {r['rate']:.0f} | "
            f"{100 * r['rate'] / plain:.0f}% | {r['rss_mib']:.1f} MiB | {r['lost']} | {r['twice']} ({r['twice_after_kill']}) | {r['takeovers']} | "
            f"{pct(m, 0.5):.1f} / {pct(m, 0.99):.1f} / {(m[-1] if m else float('nan')):.1f} ms |"
        )
    killed = [r for name, r in runs if r["killed_at"] is not None]
    if killed:
        print(f"killed runs: {len(killed)}, mails twice in all: {sum(r['twice'] for r in killed)} "
              f"({', '.join(str(r['twice']) for r in killed)}), of which the server took "
              f"{sum(r['twice_after_kill'] for r in killed)} after the kill")


if __name__ == "__main__":
    main()
