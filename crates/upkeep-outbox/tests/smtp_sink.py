#!/usr/bin/env python3
"""A loopback SMTP server (aiosmtpd) for the outbox's SMTP tests.

Every message it accepts is parsed with Python's email package and appended as one JSON line
(envelope, raw and decoded headers, each MIME part, whether TLS and AUTH were used) to the
file named by the first argument, before the server answers 250, so a sender that has its
answer can read the record. The recipient's local part picks a failure: `tempfail@...` is
answered 451, `permfail@...` 550; a message to `slow@...` is recorded, then answered 2 s later
(a send under way when the sender is cut off has reached the server all the same).

Usage: smtp_sink.py OUT.jsonl [--starttls CERT KEY | --tls CERT KEY] [--auth USER:PASSWORD]
Prints the port it listens on (127.0.0.1) as the first line of stdout.
"""

import argparse
import asyncio
import email
import email.policy
import json
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local == "tempfail":
            return "451 4.3.0 mailbox busy, try again later"
        if local == "permfail":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "text": part.get_content(),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "raw_headers": [[k, v] for k, v in msg.raw_items()],
            "subject": str(msg["Subject"]),
            "message_id": msg["Message-ID"],
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "list_unsubscribe": msg["List-Unsubscribe"],
            "list_unsubscribe_post": msg["List-Unsubscribe-Post"],
            "content_type": msg.get_content_type(),
            "parts": parts,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            # The client's address and port: one per connection (a test counts them).
            "peer": list(session.peer),
            # When it was recorded (Unix seconds): a benchmark tells a mail the server took
            # after its sender was killed.
            "recorded_at": time.time(),
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if any(a.split("@")[0].lower() == "slow" for a in envelope.rcpt_tos):
            await asyncio.sleep(2)
        return "250 2.0.0 OK queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    args = p.parse_args()

    def context(pair):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*pair)
        return ctx

    starttls = context(args.starttls) if args.starttls else None
    implicit = context(args.tls) if args.tls else None
    user, _, password = (args.auth or "").partition(":")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == user and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd itself answers 535 to a failure.
        return AuthResult(success=ok, handled=False)

    handler = Handler(args.out)

    def factory():
        return SMTP(
            handler,
            hostname="sink.test",
            enable_SMTPUTF8=True,
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=authenticator if args.auth else None,
            auth_required=bool(args.auth),
            # Over implicit TLS the session is encrypted without STARTTLS.
            auth_require_tls=implicit is None,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", 0, ssl=implicit)
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
