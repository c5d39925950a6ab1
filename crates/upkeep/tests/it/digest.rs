//! The daily digest end to end (issue 16, item 5): a real SMTP server (aiosmtpd), the
//! daemon on a driven clock, the default routes (routine notices to the email channel as
//! the daily digest, important ones at once), on SQLite or, with UPKEEP_TEST_STORE=postgres,
//! PostgreSQL. Three routine notices planned during the night are one mail at 08:00 in
//! `[notify] timezone`, listing all three in order with their fields, while an important
//! one goes at once; `notify ls` shows the digest rows waiting with their time; a daemon
//! SIGKILLed before the digest's time still sends it, once.

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon};

use crate::{BIN, LONG, stderr, stdout};

fn config(sink: &SmtpSink) -> String {
    format!(
        "[services.db]\ncommand = \"sleep 1000\"\n\n[notify]\ntimezone = \"Asia/Shanghai\"\n{}",
        sink.ops_mail_channel()
    )
}

/// Schedules a window on `db` 8 days from the daemon's `now`: routine unless `priority`.
fn schedule(d: &TestDaemon, now: jiff::Timestamp, title: &str, priority: Option<&str>) {
    let start = (now + jiff::SignedDuration::from_hours(8 * 24)).to_string();
    let mut args = vec![
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        title,
        "--reason",
        "security fixes",
        "--start",
        &start,
        "--for",
        "2h",
        "--services",
        "db",
        "--impact",
        "outage",
        "--alternative",
        "the read replica at db2",
    ];
    if let Some(p) = priority {
        args.extend(["--priority", p]);
    }
    let out = d.cli(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn notices(d: &TestDaemon) -> Vec<Value> {
    d.api_get("/api/v1/notify?limit=1000")
        .as_array()
        .unwrap()
        .clone()
}

/// The next 08:00 in Shanghai after `now`.
fn next_eight(now: jiff::Timestamp) -> jiff::Timestamp {
    next_at(now, 8)
}

/// The next `hour`:00 in Shanghai after `now`.
fn next_at(now: jiff::Timestamp, hour: i8) -> jiff::Timestamp {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let today = now.to_zoned(tz.clone()).date();
    let at = |d: jiff::civil::Date| {
        d.at(hour, 0, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
    };
    if at(today) > now {
        at(today)
    } else {
        at(today.tomorrow().unwrap())
    }
}

/// Moves the daemon's clock to `to` (from `now`).
fn advance_to(d: &TestDaemon, now: jiff::Timestamp, to: jiff::Timestamp) -> jiff::Timestamp {
    let secs = to.duration_since(now).as_secs().max(0);
    d.advance_clock(&format!("{secs}s"))
}

/// The digest rows, once all `n` are planned, and the time they wait for.
fn digest_rows(d: &TestDaemon, n: usize) -> (Vec<Value>, jiff::Timestamp) {
    let rows = d.wait_until(&format!("{n} digest rows"), LONG, || {
        let rows: Vec<Value> = notices(d)
            .into_iter()
            .filter(|r| r["digest"] == true)
            .collect();
        (rows.len() == n).then_some(rows)
    });
    let next: jiff::Timestamp = rows[0]["next"].as_str().unwrap().parse().unwrap();
    assert!(
        rows.iter().all(|r| r["next"] == rows[0]["next"]),
        "{rows:#?}"
    );
    (rows, next)
}

#[test]
fn three_routine_notices_are_one_mail_at_eight_local_and_an_important_one_goes_at_once() {
    let sink = SmtpSink::start();
    let d = TestDaemon::start_on_test_clock(BIN, &config(&sink));
    let now = d.advance_clock("0s");
    for title in ["first window", "second window", "third window"] {
        schedule(&d, now, title, None);
    }
    schedule(&d, now, "important window", Some("important"));
    let mail = d.wait_until("the important notice", LONG, || {
        sink.messages().into_iter().next()
    });
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains("important window"),
        "{mail}"
    );
    let (rows, at) = digest_rows(&d, 3);
    assert_eq!(at, next_eight(now), "08:00 in Shanghai");
    assert!(rows.iter().all(|r| r["state"] == "pending"), "{rows:#?}");
    // `notify ls` says they wait for the digest, and when (in the reader's zone).
    let out = d.cli(&["notify", "ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let local = at
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string();
    let ls = stdout(&out);
    assert_eq!(
        ls.matches(&format!("waiting for the digest at {local}"))
            .count(),
        3,
        "{ls}"
    );
    // Ten minutes before: nothing more.
    let now = advance_to(&d, now, at - jiff::SignedDuration::from_mins(10));
    assert_eq!(sink.count(), 1, "{:#?}", sink.messages());
    advance_to(&d, now, at);
    let mails = d.wait_until("the digest", LONG, || {
        let m = sink.messages();
        (m.len() >= 2).then_some(m)
    });
    let digest = &mails[1];
    assert_eq!(
        digest["subject"],
        "3 routine notices: first window, second window, third window"
    );
    let text = SmtpSink::text(digest);
    let places: Vec<usize> = [
        "1. Scheduled maintenance: first window",
        "2. Scheduled maintenance: second window",
        "3. Scheduled maintenance: third window",
    ]
    .iter()
    .map(|l| text.find(l).unwrap_or_else(|| panic!("{l:?} in {text}")))
    .collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        text.matches("Meanwhile: the read replica at db2").count(),
        3,
        "{text}"
    );
    assert!(text.contains("CST (UTC+08:00)"), "{text}");
    d.wait_until("every row marked sent", LONG, || {
        notices(&d)
            .iter()
            .all(|r| r["state"] == "sent")
            .then_some(())
    });
    assert_eq!(sink.count(), 2, "one digest, nothing more");
}

#[test]
fn a_daemon_killed_before_the_digest_sends_it_once_after_its_restart() {
    let sink = SmtpSink::start();
    let mut d = TestDaemon::start_on_test_clock(BIN, &config(&sink));
    let now = d.advance_clock("0s");
    for title in ["first window", "second window", "third window"] {
        schedule(&d, now, title, None);
    }
    let (_, at) = digest_rows(&d, 3);
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    let now = d.advance_clock("0s");
    let (_, again) = digest_rows(&d, 3);
    assert_eq!(again, at, "the rows still wait for the same digest");
    assert_eq!(sink.count(), 0);
    let now = advance_to(&d, now, at);
    let mails = d.wait_until("the digest", LONG, || {
        let m = sink.messages();
        (!m.is_empty()).then_some(m)
    });
    assert!(
        mails[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("3 routine notices:"),
        "{}",
        mails[0]
    );
    d.wait_until("every row marked sent", LONG, || {
        notices(&d)
            .iter()
            .all(|r| r["state"] == "sent")
            .then_some(())
    });
    // Killed again and a day on: the digest was sent; nothing goes twice.
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    let _ = now;
    d.advance_clock("1d");
    assert_eq!(sink.count(), 1, "{:#?}", sink.messages());
    assert!(notices(&d).iter().all(|r| r["state"] == "sent"));
}

/// Break-it (session 11): a reload that moved `digest_at` left the rows already queued at the
/// old time, so two digests went out, at the old time and at the new. Now the queued rows
/// move to the new time with the reload, and one digest holds them all.
#[test]
fn a_reload_that_moves_digest_at_sends_one_digest_at_the_new_time() {
    let sink = SmtpSink::start();
    let d = TestDaemon::start_on_test_clock(BIN, &config(&sink));
    let now = d.advance_clock("0s");
    schedule(&d, now, "first window", None);
    let (_, eight) = digest_rows(&d, 1);
    assert_eq!(eight, next_eight(now));
    d.write_services(&config(&sink).replace("[notify]\n", "[notify]\ndigest_at = \"09:00\"\n"));
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The next 09:00: an hour after the old time, or, run between 08:00 and 09:00 in
    // Shanghai, today's, before it (the test holds either way).
    let nine = next_at(now, 9);
    let (_, at) = digest_rows(&d, 1);
    assert_eq!(at, nine, "the queued row waits for the new time");
    schedule(&d, now, "second window", None);
    let (_, at) = digest_rows(&d, 2);
    assert_eq!(at, nine);
    // Past the old time a test notice (sent at once) is leased in a pass of the dispatcher
    // that also leases whatever digest is due then: none is, there. At the new time, one
    // digest holds both. The two moments in the order they come.
    const DIGEST: &str = "2 routine notices: first window, second window";
    let old_pass = eight + jiff::SignedDuration::from_mins(10);
    let mut moments = [(old_pass, "Test notice"), (nine, DIGEST)];
    moments.sort();
    let mut now = now;
    for (n, (at, what)) in moments.iter().enumerate() {
        now = advance_to(&d, now, *at);
        if *what != DIGEST {
            let out = d.cli(&["notify", "test", "mail"]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        d.wait_until(what, LONG, || (sink.count() > n).then_some(()));
    }
    d.wait_until("every row marked sent", LONG, || {
        notices(&d)
            .iter()
            .all(|r| r["state"] == "sent")
            .then_some(())
    });
    let mails = sink.messages();
    let subjects: Vec<&str> = mails.iter().filter_map(|m| m["subject"].as_str()).collect();
    assert_eq!(
        subjects.len(),
        2,
        "the test notice and one digest: {subjects:#?}"
    );
    for (subject, (_, what)) in subjects.iter().zip(&moments) {
        assert!(subject.contains(what), "{subjects:?}");
    }
}
