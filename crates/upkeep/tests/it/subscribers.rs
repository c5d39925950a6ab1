//! Subscribers end to end (issue 16, items 7 and 8): a real SMTP server (aiosmtpd), the public
//! listener over TCP, the daemon on a driven clock. Someone subscribes, confirms with the link
//! of the real mail, gets the next announcement with RFC 8058's headers, and unsubscribes with
//! a real one-click POST (the address is deleted); forged and expired links are refused; a
//! daemon SIGKILLed in the middle of a fan-out to 1,000 subscribers sends each of them one
//! distinct message after its restart, any resend counted; the heartbeat reaches a loopback
//! receiver once a minute of the daemon's clock.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon, free_addr, free_port, http};

use crate::{BIN, LONG, stderr, stdout};

/// The window's notices only (a jump of the test clock can fail a probe check in flight, and
/// the incident it makes is not these tests' business).
const KINDS: &str = r#"["announced", "cancelled"]"#;

fn config(sink: &SmtpSink, public: SocketAddr, db: &TcpListener, mail: &str) -> String {
    format!(
        "public_listen = \"{public}\"\n\
         [services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\
         [notify]\npublic_url = \"http://{public}/\"\n\
         {}\n\
         [notify.subscribers]\nnotice = {KINDS}\n\
         [[notify.routes]]\nnotice = {KINDS}\nchannels = [\"mail\"]\nrecipients = [\"ops@example.com\"]\n",
        db.local_addr().unwrap(),
        sink.mail_channel(mail)
    )
}

fn schedule(d: &TestDaemon, now: jiff::Timestamp) -> i64 {
    let start = now + jiff::SignedDuration::from_hours(8 * 24);
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        "PostgreSQL 17",
        "--reason",
        "security fixes",
        "--start",
        &start.to_string(),
        "--for",
        "2h",
        "--services",
        "db",
        "--impact",
        "outage",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out)).unwrap()["id"]
        .as_i64()
        .unwrap()
}

fn subscribe(public: SocketAddr, body: &str) -> upkeep_testkit::Answer {
    http(public, "POST", "/api/v1/subscribe", &[], body.as_bytes()).unwrap()
}

fn subscribers(d: &TestDaemon) -> Vec<Value> {
    let out = d.cli(&["subscribers", "ls", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A token with one character of its signature changed.
fn forge(path: &str) -> String {
    let last = path.chars().last().unwrap();
    let other = if last == 'A' { 'B' } else { 'A' };
    format!("{}{other}", &path[..path.len() - 1])
}

#[test]
fn double_opt_in_and_one_click_unsubscribe_end_to_end() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let public = free_addr();
    let d = TestDaemon::start_on_test_clock(BIN, &config(&sink, public, &db, ""));
    d.wait_state("db", "up", LONG);

    // Bad requests are refused with what to do.
    for (body, want) in [
        (r#"{"email": "not an address"}"#, "not an email address"),
        (
            r#"{"email": "Ann <ann@example.com>"}"#,
            "not an email address",
        ),
        (
            r#"{"email": "ann@example.com", "services": ["nope"]}"#,
            "no public service named `nope`",
        ),
        (
            r#"{"email": "ann@example.com", "lang": "fr"}"#,
            "unknown language",
        ),
    ] {
        let a = subscribe(public, body);
        assert_eq!(a.code, 400, "{body}: {}", a.text());
        assert!(a.text().contains(want), "{body}: {}", a.text());
    }
    let a = subscribe(
        public,
        r#"{"email": "ann@Example.COM", "services": ["db"], "lang": "zh-CN"}"#,
    );
    assert_eq!(a.code, 202, "{}", a.text());
    assert_eq!(a.json()["confirm_within_s"], 48 * 3600);
    let confirm = d.wait_mail(&sink, Some("ann@example.com"), "请确认订阅");
    assert!(
        confirm["list_unsubscribe"].is_null(),
        "nothing to unsubscribe from yet"
    );
    let confirm_path = SmtpSink::link(&confirm, public, "/api/v1/subscribe/confirm?token=");
    assert_eq!(subscribers(&d)[0]["confirmed"], Value::Null);

    // Before confirmation, a forged link is refused and nothing is confirmed.
    let forged = http(public, "GET", &forge(&confirm_path), &[], b"").unwrap();
    assert_eq!(forged.code, 403, "{}", forged.text());
    assert!(
        forged.text().contains("This link does not work"),
        "{}",
        forged.text()
    );
    assert_eq!(subscribers(&d)[0]["confirmed"], Value::Null);
    // The link's page only asks (a mail scanner that fetches it confirms nothing)...
    let asked = http(public, "GET", &confirm_path, &[], b"").unwrap();
    assert_eq!(asked.code, 200, "{}", asked.text());
    assert!(
        asked.text().contains("确认订阅")
            && asked.text().contains("method=\"post\"")
            && asked.text().contains("ann@example.com"),
        "{}",
        asked.text()
    );
    assert_eq!(subscribers(&d)[0]["confirmed"], Value::Null);
    // ...and its button confirms.
    let ok = http(public, "POST", &confirm_path, &[], b"").unwrap();
    assert_eq!(ok.code, 200, "{}", ok.text());
    assert!(
        ok.text().contains("订阅已确认") && ok.text().contains("ann@example.com"),
        "{}",
        ok.text()
    );
    let s = subscribers(&d);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["email"], "ann@example.com");
    assert_eq!(s[0]["services"], serde_json::json!(["db"]));
    assert!(s[0]["confirmed"].is_string(), "{s:?}");

    // The next announcement reaches her in Chinese, with a one-click unsubscribe.
    let now = d.advance_clock("1s");
    schedule(&d, now);
    let news = d.wait_mail(&sink, Some("ann@example.com"), "计划维护");
    let unsub = SmtpSink::link(&news, public, "/api/v1/unsubscribe?token=");
    assert_eq!(
        news["list_unsubscribe"].as_str().unwrap(),
        format!("<http://{public}{unsub}>")
    );
    assert_eq!(news["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
    d.wait_mail(&sink, Some("ops@example.com"), "Scheduled maintenance");
    let ops = sink
        .messages()
        .into_iter()
        .find(|m| m["to"] == "ops@example.com")
        .unwrap();
    assert!(
        ops["list_unsubscribe"].is_null(),
        "operators' mails have no unsubscribe"
    );

    // GET shows a page with a button and changes nothing; a forged token is refused; the
    // one-click POST deletes the address; a second POST is the same success (what was asked
    // holds: a mail client may POST after the person clicked).
    let page = http(public, "GET", &unsub, &[], b"").unwrap();
    assert_eq!(page.code, 200, "{}", page.text());
    assert!(
        page.text()
            .contains("<form id=\"unsubscribe\" method=\"post\""),
        "{}",
        page.text()
    );
    assert_eq!(subscribers(&d).len(), 1);
    let forged = http(
        public,
        "POST",
        &forge(&unsub),
        &[],
        b"List-Unsubscribe=One-Click",
    )
    .unwrap();
    assert_eq!(forged.code, 403, "{}", forged.text());
    assert_eq!(subscribers(&d).len(), 1);
    let gone = http(public, "POST", &unsub, &[], b"List-Unsubscribe=One-Click").unwrap();
    assert_eq!(gone.code, 200, "{}", gone.text());
    assert!(gone.text().contains("已退订"), "{}", gone.text());
    assert!(subscribers(&d).is_empty(), "deleted, not flagged");
    assert_eq!(
        d.store_sql("SELECT COUNT(*) FROM subscribers WHERE node = '{node}'")[0][0],
        "0",
        "no row is left"
    );
    let again = http(public, "POST", &unsub, &[], b"List-Unsubscribe=One-Click").unwrap();
    assert_eq!(again.code, 200, "{}", again.text());
    assert!(again.text().contains("ann@example.com"), "{}", again.text());

    // A confirmation link used after confirm_within (48h of the daemon's clock) has expired.
    let a = subscribe(public, r#"{"email": "bob@example.com"}"#);
    assert_eq!(a.code, 202, "{}", a.text());
    let confirm = d.wait_mail(&sink, Some("bob@example.com"), "Confirm your subscription");
    let path = SmtpSink::link(&confirm, public, "/api/v1/subscribe/confirm?token=");
    d.advance_clock("49h");
    let late = http(public, "POST", &path, &[], b"").unwrap();
    assert_eq!(late.code, 410, "{}", late.text());
    let late = http(public, "GET", &path, &[], b"").unwrap();
    assert_eq!(late.code, 410, "{}", late.text());
    assert!(late.text().contains("expired"), "{}", late.text());
    assert_eq!(subscribers(&d)[0]["confirmed"], Value::Null);

    // An operator removes a subscriber by address.
    let out = d.cli(&["subscribers", "rm", "bob@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.cli(&["subscribers", "export"]);
    assert_eq!(stdout(&out), "id,email,services,lang,created,confirmed\r\n");
    let out = d.cli(&["subscribers", "rm", "bob@example.com"]);
    assert!(!out.status.success());
    drop(db);
}

#[test]
fn subscriptions_are_rate_limited_per_client_address() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let public = free_addr();
    let d = TestDaemon::start(BIN, &config(&sink, public, &db, ""));
    // A burst of 10 is let through, then one every 6 s: 40 in a row cannot all pass.
    let mut codes = Vec::new();
    for i in 0..40 {
        let a = subscribe(public, &format!(r#"{{"email": "x{i}@example.com"}}"#));
        codes.push(a.code);
        if a.code == 429 {
            assert!(
                a.head.to_ascii_lowercase().contains("retry-after"),
                "{}",
                a.head
            );
            break;
        }
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
    assert!(
        codes.iter().filter(|c| **c == 202).count() >= 10,
        "{codes:?}"
    );
    // The control socket's operators are not limited.
    let (code, _) = d
        .try_api(
            "POST",
            "/api/v1/subscribe",
            Some(&serde_json::json!({"email": "local@example.com"})),
        )
        .unwrap();
    assert_eq!(code, 202);
    drop(db);
}

#[test]
fn a_daemon_killed_mid_fan_out_to_1000_subscribers_sends_each_one_message() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let public = free_addr();
    let mut d = TestDaemon::start(BIN, &config(&sink, public, &db, "concurrency = 4"));
    d.wait_state("db", "up", LONG);
    let n = 1000;
    // Confirmed subscribers, as 1,000 double opt-ins would have left them.
    let values: Vec<String> = (0..n)
        .map(|i| format!("('{{node}}', 's{i}@example.com', '[]', 'en', 0, 1)"))
        .collect();
    d.store_sql(&format!(
        "INSERT INTO subscribers (node, email, services, lang, created_ms, confirmed_ms) VALUES {}",
        values.join(", ")
    ));
    assert_eq!(subscribers(&d).len(), n);
    schedule(&d, jiff::Timestamp::now());
    let to_subscribers = |sink: &SmtpSink| {
        sink.messages()
            .into_iter()
            .filter(|m| m["to"].as_str().is_some_and(|t| t.starts_with('s')))
            .count()
    };
    d.wait_until("some subscribers' mails sent and some leased", LONG, || {
        let leased = d.api_get("/api/v1/notify?state=sending&limit=100");
        (to_subscribers(&sink) >= 50 && !leased.as_array().unwrap().is_empty()).then_some(())
    });
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let before = to_subscribers(&sink);
    assert!(before < n, "the kill came mid-fan-out ({before} of {n})");
    d.launch();
    d.wait_until(
        "every subscriber's mail to be sent after the restart",
        Duration::from_secs(120),
        || {
            let sent = d.api_get("/api/v1/notify?state=sent&limit=10000");
            (sent.as_array().unwrap().len() == n + 1).then_some(())
        },
    );
    let mails: Vec<Value> = sink
        .messages()
        .into_iter()
        .filter(|m| m["to"].as_str().is_some_and(|t| t.starts_with('s')))
        .collect();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &mails {
        ids.entry(m["to"].as_str().unwrap().to_owned())
            .or_default()
            .push(m["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), n, "every subscriber got the announcement");
    for (to, got) in &ids {
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 1, "{to}: one distinct message, got {got:?}");
    }
    let resent = mails.len() - n;
    let rows = d.api_get("/api/v1/notify?limit=10000");
    let takeovers: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["takeovers"].as_u64().unwrap())
        .sum();
    eprintln!(
        "{n} subscribers, {before} mailed before the kill, {resent} resent (same Message-ID), {takeovers} rows taken over"
    );
    assert!(
        resent as u64 <= takeovers,
        "every resend is a counted takeover ({resent} > {takeovers})"
    );
    let ls = d.cli(&["notify", "ls", "-n", "10000"]);
    if takeovers > 0 {
        assert!(
            stdout(&ls).contains("taken over from a dispatcher"),
            "{}",
            stdout(&ls)
        );
    }
    drop(db);
}

/// A loopback HTTP receiver that answers 200 to everything and keeps each request line.
fn heartbeat_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the head, then the answer.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            keep.lock().unwrap().push(line.trim().to_owned());
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (addr, seen)
}

#[test]
fn the_heartbeat_is_called_every_minute_of_the_daemons_clock() {
    let (addr, seen) = heartbeat_receiver();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!("heartbeat_url = \"http://{addr}/ping/abc\"\n"),
    );
    let count = |n: usize| {
        d.wait_until(&format!("{n} heartbeats"), LONG, || {
            let s = seen.lock().unwrap();
            (s.len() >= n).then(|| s.clone())
        })
    };
    let first = count(1);
    assert_eq!(first[0], "GET /ping/abc HTTP/1.1");
    // No real minute passes in this test: each beat comes from a minute of the test clock.
    d.advance_clock("1m");
    count(2);
    d.advance_clock("1m");
    let all = count(3);
    assert!(all.iter().all(|l| l == "GET /ping/abc HTTP/1.1"), "{all:?}");
}

#[test]
fn a_heartbeat_that_fails_is_logged_and_the_daemon_goes_on() {
    // Nothing listens on this port: every call is refused.
    let port = free_port();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "heartbeat_url = \"http://127.0.0.1:{port}/secret-path\"\n[services.sleeper]\ncommand = \"sleep 3600\"\n"
        ),
    );
    d.wait_state("sleeper", "up", LONG);
    d.wait_until("the failure in the daemon's log", LONG, || {
        d.daemon_log().contains("heartbeat failed").then_some(())
    });
    assert!(
        !d.daemon_log().contains("secret-path"),
        "the URL's path is not logged"
    );
    d.advance_clock("1m");
    assert_eq!(d.state("sleeper"), "up");
}

#[test]
fn a_bad_heartbeat_url_is_a_config_error_with_its_place() {
    let d = TestDaemon::prepare(BIN, "heartbeat_url = \"ftp://example.com/x\"\n");
    let out = d.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(text.contains(":17 (daemon.heartbeat_url)"), "{text}");
    assert!(text.contains("not an http(s) URL"), "{text}");
}

/// Break-it (session 11): `Ann@X.org` and `ann@x.org` were two subscribers and two mails, and
/// a route's recipients in two cases two mails as well. One person is one subscriber (kept as
/// first written, its domain in lower case) and one recipient: an announcement mails each
/// once.
#[test]
fn an_address_in_two_cases_is_one_subscriber_and_one_mail() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let public: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let toml = config(&sink, public, &db, "").replace(
        "recipients = [\"ops@example.com\"]",
        "recipients = [\"Ops@Example.com\", \"ops@example.com\", \"OPS@EXAMPLE.COM\"]",
    );
    let d = TestDaemon::start_on_test_clock(BIN, &toml);
    d.wait_state("db", "up", LONG);
    crate::subscribe_confirmed(&d, &sink, public, "Ann@x.org", &[]);
    for other in ["ann@X.org", "ANN@x.ORG"] {
        let a = subscribe(public, &format!(r#"{{"email": "{other}"}}"#));
        assert_eq!(a.code, 202, "{}", a.text());
    }
    let all = subscribers(&d);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["email"], "Ann@x.org");
    let now = d.advance_clock("0s");
    schedule(&d, now);
    d.wait_until("the announcement's rows to be sent", LONG, || {
        let rows = d.api_get("/api/v1/notify?limit=100");
        let rows = rows.as_array()?;
        (rows.iter().filter(|r| r["kind"] == "announced").count() >= 2
            && rows.iter().all(|r| r["state"] == "sent"))
        .then_some(())
    });
    let announced: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("PostgreSQL 17")
        })
        .map(|m| m["to"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert!(announced.contains(&"Ann@x.org".to_owned()), "{announced:?}");
    assert!(
        announced.contains(&"Ops@example.com".to_owned()),
        "{announced:?}"
    );
}
