//! The public forms' caps for everyone together (issue 17, break-it: 200 addresses × 10 posts
//! made 2,000 unconfirmed subscribers and 1,884 confirmation mails in 12 s), end to end on the
//! daemon's test clock with a real SMTP server: past `confirmations_per_hour` a subscription
//! is a 429 with `Retry-After` and a "try later" in the reader's language, nothing is kept and
//! nothing is mailed; an hour later it goes through; past `max_unconfirmed` waiting ones it is
//! refused again. Addresses SMTP cannot carry are refused with a reason, and what strangers
//! write shows in the CLI with bidi controls escaped and long messages cut.

use std::net::SocketAddr;

use serde_json::{Value, json};
use upkeep_testkit::{SmtpSink, TestDaemon, free_addr, http};

use crate::{LONG, stderr, stdout};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn subscribe(public: SocketAddr, email: &str) -> upkeep_testkit::Answer {
    let body = json!({ "email": email }).to_string();
    http(public, "POST", "/api/v1/subscribe", &[], body.as_bytes()).unwrap()
}

fn subscribers(d: &TestDaemon) -> Vec<String> {
    let out = d.cli(&["subscribers", "ls", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["email"].as_str().unwrap().to_owned())
        .collect()
}

fn header<'a>(a: &'a upkeep_testkit::Answer, name: &str) -> Option<&'a str> {
    a.head
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn issue_17_confirmation_mails_have_a_budget_for_everyone_together() {
    let sink = SmtpSink::start();
    let public = free_addr();
    let d = TestDaemon::start_on_test_clock(
        crate::BIN,
        &format!(
            "public_listen = \"{public}\"\n\
             [services.web]\ncommand = \"sleep 1000\"\n\n\
             [notify]\npublic_url = \"http://{public}/\"\n\
             {}\
             [notify.subscribers]\nconfirmations_per_hour = 3\nmax_unconfirmed = 4\n",
            sink.ops_mail_channel()
        ),
    );
    for i in 0..3 {
        let a = subscribe(public, &format!("p{i}@example.com"));
        assert_eq!(a.code, 202, "{}", a.text());
    }
    // The fourth, from anyone: 429, a wait that is true (the hour of the first), no row.
    let a = subscribe(public, "p3@example.com");
    assert_eq!(a.code, 429, "{}", a.text());
    let wait: u64 = header(&a, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    assert!(a.text().contains("Try again in"), "{}", a.text());
    let form = http(
        public,
        "POST",
        "/subscribe",
        &[FORM],
        b"email=p3%40example.com&lang=zh-CN",
    )
    .unwrap();
    assert_eq!(form.code, 429, "{}", form.text());
    assert!(form.text().contains("分钟后再试"), "{}", form.text());
    assert!(header(&form, "retry-after").is_some(), "{}", form.head);
    assert_eq!(subscribers(&d).len(), 3);
    d.wait_until("three confirmation mails", LONG, || {
        (sink.count() == 3).then_some(())
    });

    // An hour on, the budget is back; past four waiting for confirmation, refused again.
    d.advance_clock("61m");
    let a = subscribe(public, "p3@example.com");
    assert_eq!(a.code, 202, "{}", a.text());
    let a = subscribe(public, "p4@example.com");
    assert_eq!(a.code, 429, "{}", a.text());
    assert!(
        a.text().contains("wait for their confirmation"),
        "{}",
        a.text()
    );
    let mut list = subscribers(&d);
    list.sort();
    assert_eq!(
        list,
        [
            "p0@example.com",
            "p1@example.com",
            "p2@example.com",
            "p3@example.com"
        ]
    );
    d.wait_until("the fourth confirmation mail", LONG, || {
        (sink.count() == 4).then_some(())
    });

    // Addresses SMTP cannot carry, over the socket (no limit per address there).
    for (email, why) in [
        ("\u{202e}ann@example.com", "u{202e}"),
        ("jürgen@example.com", "ASCII"),
    ] {
        let (code, body) = d
            .try_api(
                "POST",
                "/api/v1/subscribe",
                Some(&json!({ "email": email })),
            )
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{email}: {body}");
        assert!(body.contains(why), "{email}: {body}");
    }

    // What a stranger writes shows escaped in `upkeep feedback`, a long message cut there
    // and whole in --json.
    let message = format!("\u{202e}txet{}", "x".repeat(300));
    let body = serde_urlencoded::to_string([("message", message.as_str())]).unwrap();
    let origin = ("Origin", "http://upkeep");
    let a = http(
        public,
        "POST",
        "/feedback",
        &[FORM, origin],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
    let table = stdout(&d.cli(&["feedback"]));
    assert!(
        table.contains("\\u{202e}txet") && table.contains('…'),
        "{table}"
    );
    assert!(!table.contains('\u{202e}'), "{table}");
    assert!(!table.contains(&"x".repeat(200)), "{table}");
    let json = stdout(&d.cli(&["feedback", "--json"]));
    assert!(json.contains(&"x".repeat(300)), "{json}");
}

/// Break-it finding (session 9): the hourly budget of confirmation mails was in memory, so a
/// restart (or an upgrade) refilled it and a flood had only to wait for one. It is counted
/// from the outbox: after `upkeep down` and a new start, still refused, and still nothing
/// kept or mailed.
#[test]
fn the_confirmation_budget_survives_a_restart() {
    let sink = SmtpSink::start();
    let public = free_addr();
    let mut d = TestDaemon::start(
        crate::BIN,
        &format!(
            "public_listen = \"{public}\"\n\
             [services.web]\ncommand = \"sleep 1000\"\n\n\
             [notify]\npublic_url = \"http://{public}/\"\n\
             {}\
             [notify.subscribers]\nconfirmations_per_hour = 2\n",
            sink.ops_mail_channel()
        ),
    );
    for i in 0..2 {
        let a = subscribe(public, &format!("p{i}@example.com"));
        assert_eq!(a.code, 202, "{}", a.text());
    }
    assert_eq!(subscribe(public, "p2@example.com").code, 429);
    d.wait_until("two confirmation mails", LONG, || {
        (sink.count() == 2).then_some(())
    });

    let out = d.cli(&["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.wait_exit(LONG).success());
    d.launch();
    let a = subscribe(public, "p3@example.com");
    assert_eq!(a.code, 429, "the restart refilled the budget: {}", a.text());
    let wait: u64 = header(&a, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let mut list = subscribers(&d);
    list.sort();
    assert_eq!(list, ["p0@example.com", "p1@example.com"]);
    assert_eq!(sink.count(), 2);
}

/// The feedback form's 300 messages an hour, everyone together, are counted from the store's
/// rows of the last hour: a restart used to refill the budget (it was kept in memory), so a
/// flood had only to wait for one.
#[test]
fn the_feedback_budget_of_an_hour_outlives_a_restart() {
    let public = free_addr();
    let mut d = TestDaemon::start_on_test_clock(
        crate::BIN,
        &format!(
            "trusted_proxies = [\"127.0.0.1\"]\npublic_listen = \"{public}\"\n\
             [services.web]\ncommand = \"sleep 1000\"\n"
        ),
    );
    // Each from an address of its own (behind the trusted proxy): the limit per address is
    // not what is tested here.
    let post = |i: u32| {
        let from = format!("10.0.{}.{}", i / 256, i % 256);
        http(
            public,
            "POST",
            "/feedback",
            &[
                FORM,
                ("Origin", "http://upkeep"),
                ("X-Forwarded-For", &from),
            ],
            b"message=slow",
        )
        .unwrap()
    };
    d.wait_until("the feedback form to take a message", LONG, || {
        (post(0).code == 200).then_some(())
    });
    for i in 1..300 {
        let a = post(i);
        assert_eq!(a.code, 200, "message {i}: {}", a.text());
    }
    assert_eq!(post(300).code, 429);
    d.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    d.launch();
    let a = post(301);
    assert_eq!(a.code, 429, "the restart refilled the budget: {}", a.text());
    assert!(header(&a, "retry-after").is_some(), "{}", a.head);
    d.advance_clock("61m");
    assert_eq!(post(302).code, 200, "an hour on, the budget is back");
}
