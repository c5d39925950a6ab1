#!/usr/bin/env python3
"""A loopback HTTP receiver for the outbox's channel tests.

It plays the generic webhook endpoint, a Slack incoming webhook, a WeCom group bot, a DingTalk
robot, a Feishu bot and the Telegram Bot API, answers each the way the vendor documents, and
checks every signature with Python's own hmac, following the algorithm each vendor publishes
(an implementation independent of the Rust one under test). Each request it takes is
appended, with its verdict, as one JSON line to the file named by the first argument, before
the answer goes out, so a sender that has its answer can read its record.

Usage: receiver.py OUT.jsonl
Secrets from the environment: WEBHOOK_SECRET, DINGTALK_SECRET, FEISHU_SECRET, TELEGRAM_TOKEN.
Prints the port it listens on (127.0.0.1) as the first line of stdout.

A path may start with an instruction for this request:
  /answer/<status>[/<retry-after>]  answer that status (with Retry-After), body {"error":...}
  /answer/vendor-limit              answer 200 with the vendor's own rate-limit body
  /answer/telegram-429/<seconds>    answer 429 the way Telegram does (retry_after in the body)
  /answer/silent                    answer nothing for a minute (the sender's timeout must end it)
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OUT = sys.argv[1]
LOCK = threading.Lock()
MESSAGE_ID = [0]


def h256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def webhook_signature_ok(headers, body: bytes):
    """X-Upkeep-Signature: sha256=hex(HMAC(secret, timestamp + "." + body))."""
    ts = headers.get("X-Upkeep-Timestamp", "")
    given = headers.get("X-Upkeep-Signature", "")
    want = "sha256=" + hmac.new(
        os.environ["WEBHOOK_SECRET"].encode(), ts.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
    return fresh and hmac.compare_digest(given, want)


def dingtalk_sign_ok(query):
    """DingTalk: base64(HMAC(key=secret, msg=timestamp_ms + "\\n" + secret)), URL-encoded."""
    ts = query.get("timestamp", [""])[0]
    given = query.get("sign", [""])[0]  # parse_qs has undone the URL encoding
    secret = os.environ["DINGTALK_SECRET"]
    want = base64.b64encode(h256(secret.encode(), f"{ts}\n{secret}".encode())).decode()
    fresh = ts.isdigit() and abs(time.time() * 1000 - int(ts)) < 3600 * 1000
    return fresh and hmac.compare_digest(given, want)


def feishu_sign_ok(body):
    """Feishu: base64(HMAC(key=timestamp_s + "\\n" + secret, msg=""))."""
    ts = str(body.get("timestamp", ""))
    given = body.get("sign", "")
    secret = os.environ["FEISHU_SECRET"]
    want = base64.b64encode(h256(f"{ts}\n{secret}".encode(), b"")).decode()
    fresh = ts.isdigit() and abs(time.time() - int(ts)) < 3600
    return fresh and hmac.compare_digest(given, want)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        url = urlsplit(self.path)
        parts = url.path.split("/")
        instruction = None
        if len(parts) > 2 and parts[1] == "answer":
            # /answer/vendor-limit, /answer/telegram-429/<s>, /answer/<status>[/<retry-after>]
            takes_arg = parts[2] == "telegram-429" or (len(parts) > 3 and parts[3].isdigit())
            instruction = parts[2:4] if takes_arg else parts[2:3]
            path = "/" + "/".join(parts[2 + len(instruction) :])
        else:
            path = url.path
        query = parse_qs(url.query)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = {
            "path": path,
            "query": {k: v[0] for k, v in query.items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": raw.decode("utf-8", "replace"),
            "json": body,
            "signature_ok": None,
        }
        status, headers, answer = self.answer(path, query, raw, body, instruction, record)
        record["answered"] = status
        with LOCK, open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, path, query, raw, body, instruction, record):
        vendor = path.split("/")[1] if path.count("/") else ""
        if path.startswith("/bot"):
            vendor = "telegram"
        if instruction and instruction[0] == "silent":
            time.sleep(60)
        if instruction and instruction[0] == "telegram-429":
            secs = int(instruction[1])
            return 429, [], {"ok": False, "error_code": 429,
                             "description": f"Too Many Requests: retry after {secs}",
                             "parameters": {"retry_after": secs}}
        if instruction and instruction[0] == "vendor-limit":
            return 200, [], {
                "wecom": {"errcode": 45009, "errmsg": "api freq out of limit"},
                "dingtalk": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
                "feishu": {"code": 11232, "msg": "frequency limited"},
            }[vendor]
        if instruction:
            headers = [("Retry-After", instruction[1])] if len(instruction) > 1 else []
            return int(instruction[0]), headers, {"error": "injected by the test"}
        if vendor == "webhook":
            record["signature_ok"] = webhook_signature_ok(self.headers, raw)
            if not record["signature_ok"]:
                return 401, [], {"error": "bad signature"}
            return 200, [], {"received": True}
        if vendor == "slack":
            ok = isinstance(body, dict) and (body.get("text") or body.get("blocks"))
            return (200, [], "ok") if ok else (400, [], "invalid_payload")
        if vendor == "wecom":
            if query.get("key", [""])[0] != "wecom-key":
                return 200, [], {"errcode": 93000, "errmsg": "invalid webhook url"}
            return 200, [], {"errcode": 0, "errmsg": "ok"}
        if vendor == "dingtalk":
            record["signature_ok"] = dingtalk_sign_ok(query)
            if not record["signature_ok"]:
                return 200, [], {"errcode": 310000, "errmsg": "sign not match"}
            return 200, [], {"errcode": 0, "errmsg": "ok"}
        if vendor == "feishu":
            record["signature_ok"] = feishu_sign_ok(body or {})
            if not record["signature_ok"]:
                return 200, [], {"code": 19021, "data": {},
                                 "msg": "sign match fail or timestamp is not within one hour from current time"}
            return 200, [], {"code": 0, "msg": "success", "data": {},
                             "StatusCode": 0, "StatusMessage": "success"}
        if vendor == "telegram":
            if path != f"/bot{os.environ['TELEGRAM_TOKEN']}/sendMessage":
                return 401, [], {"ok": False, "error_code": 401, "description": "Unauthorized"}
            MESSAGE_ID[0] += 1
            return 200, [], {"ok": True, "result": {
                "message_id": MESSAGE_ID[0], "date": int(time.time()),
                "chat": {"id": body.get("chat_id")}, "text": body.get("text")}}
        return 404, [], {"error": f"no route {path}"}


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
