//! Notices end to end (issue 16, items 4 to 6 and 8): a real SMTP server (aiosmtpd) and an
//! HTTP receiver on loopback, the daemon on a driven clock. A window scheduled 8 days ahead is
//! mailed with every content field in English and in Chinese, then reminded and started as
//! the clock moves; a receiver down for an hour gets every notice once it is back, exactly
//! once by idempotency key; a daemon SIGKILLed while it holds leases sends every row once
//! after its restart (by Message-ID), any resend counted; a drill pages nobody, and a real
//! incident sends two notices, the second, damped, with its duration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon, WebhookReceiver};

use crate::{BIN, LONG, stderr, stdout};

fn db_probe(listener: &TcpListener) -> String {
    format!(
        "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n",
        listener.local_addr().unwrap()
    )
}

/// Schedules a window on `db` starting `ahead_hours` from the daemon's now.
fn schedule(d: &TestDaemon, now: jiff::Timestamp, ahead_hours: i64) -> (i64, jiff::Timestamp) {
    // Not rounded up: each step must be due once the test moved the clock to its mark.
    let start = now + jiff::SignedDuration::from_hours(ahead_hours);
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        "PostgreSQL 17",
        "--reason",
        "security fixes for the database",
        "--start",
        &start.to_string(),
        "--for",
        "2h",
        "--services",
        "db",
        "--impact",
        "outage",
        "--alternative",
        "the read replica at db2",
        "--follow-up",
        "https://status.example.com/help",
        "--priority",
        "important",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w: Value = serde_json::from_str(&stdout(&out)).unwrap();
    (w["id"].as_i64().unwrap(), start)
}

fn notices(d: &TestDaemon, state: Option<&str>) -> Vec<Value> {
    let path = match state {
        Some(s) => format!("/api/v1/notify?state={s}&limit=10000"),
        None => "/api/v1/notify?limit=10000".into(),
    };
    d.api_get(&path).as_array().unwrap().clone()
}

/// Waits until the sink has `n` messages and returns them.
fn wait_mail(d: &TestDaemon, sink: &SmtpSink, n: usize) -> Vec<Value> {
    d.wait_until(&format!("{n} messages at the SMTP sink"), LONG, || {
        let m = sink.messages();
        (m.len() >= n).then_some(m)
    })
}

fn local(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
        .strftime("%Y-%m-%d %H:%M CST (UTC+08:00)")
        .to_string()
}

/// The window's notices only: a jump of the test clock can fail a probe check in flight, and
/// the incident that makes is not this test's business.
const KINDS: &str = r#"["announced", "reminder", "started", "test"]"#;

#[test]
fn a_window_8_days_ahead_is_mailed_with_every_field_in_english_and_chinese() {
    let sink = SmtpSink::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "{}[notify]\ntimezone = \"Asia/Shanghai\"\npublic_url = \"https://status.example.com/\"\n{}\n[[notify.routes]]\nnotice = {KINDS}\nchannels = [\"mail\"]\nrecipients = [\"ops@example.com\"]\ncontinue = true\n\n[[notify.routes]]\nnotice = {KINDS}\nchannels = [\"mail\"]\nrecipients = [\"yunwei@example.com\"]\nlanguage = \"zh-CN\"\n",
            db_probe(&listener),
            sink.mail_channel("")
        ),
    );
    d.wait_state("db", "up", LONG);
    let now = d.advance_clock("0s");
    let (id, start) = schedule(&d, now, 8 * 24);
    let end = start + jiff::SignedDuration::from_hours(2);
    let mails = wait_mail(&d, &sink, 2);
    let by_to = |to: &str| {
        mails
            .iter()
            .find(|m| m["to"].as_str().unwrap().contains(to))
            .unwrap_or_else(|| panic!("no mail to {to}: {mails:?}"))
            .clone()
    };
    let (en, zh) = (by_to("ops@example.com"), by_to("yunwei@example.com"));
    let link = format!("https://status.example.com/windows/{id}");
    let every = [
        "PostgreSQL 17",
        "security fixes for the database",
        &local(start),
        &local(end),
        "db",
        "the read replica at db2",
        "https://status.example.com/help",
        &link,
        "Asia/Shanghai",
    ];
    for (mail, words) in [
        (
            &en,
            ["Scheduled maintenance", "Important", "outage", "Reason:"],
        ),
        (&zh, ["计划维护", "重要", "不可用", "原因："]),
    ] {
        let text = SmtpSink::text(mail);
        for want in every.iter().copied().chain(words) {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        // The HTML part says the same (escaped).
        let html = mail["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["content_type"] == "text/html")
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            html.contains("PostgreSQL 17") && html.contains(&local(start)),
            "{html}"
        );
    }
    assert!(zh["subject"].as_str().unwrap().contains("计划维护"), "{zh}");
    assert!(
        en["subject"]
            .as_str()
            .unwrap()
            .starts_with("[Important] Scheduled maintenance"),
        "{en}"
    );

    // Reminders a day and an hour before, then the start, each as the clock gets there.
    d.advance_clock("7d");
    wait_mail(&d, &sink, 4);
    d.advance_clock("23h");
    wait_mail(&d, &sink, 6);
    d.advance_clock("1h");
    let mails = wait_mail(&d, &sink, 8);
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    let count = |needle: &str| subjects.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(
        (
            count("Maintenance reminder"),
            count("维护提醒"),
            count("Maintenance started"),
            count("维护已开始")
        ),
        (2, 2, 1, 1),
        "{subjects:#?}"
    );
    let ids: BTreeSet<&str> = mails
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 8, "each notice its own Message-ID");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("<upk-") && id.ends_with("@example.com>")),
        "{ids:?}"
    );
    // The outbox says the same: eight rows, sent (a row is marked sent once the server's
    // answer is in, which can come just after the sink has the mail).
    let sent = d.wait_until("eight outbox rows sent", LONG, || {
        let sent = notices(&d, Some("sent"));
        (sent.len() == 8).then_some(sent)
    });
    assert_eq!(sent.len(), 8, "{sent:#?}");
    let out = d.cli(&["notify", "ls", "--state", "sent"]);
    assert!(
        out.status.success() && stdout(&out).contains("reminder"),
        "{}",
        stdout(&out)
    );
    drop(listener);
}

#[test]
fn a_receiver_down_for_an_hour_gets_every_notice_once_it_is_back() {
    let mut hook = WebhookReceiver::down_from_start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("hook-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "{}[notify.channels.hook]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"{}\"\n\n[[notify.routes]]\nnotice = {KINDS}\nchannels = [\"hook\"]\n",
            db_probe(&listener),
            hook.url("/hook"),
            secret.display()
        ),
    );
    d.wait_state("db", "up", LONG);
    let now = d.advance_clock("0s");
    schedule(&d, now, 8 * 24);
    let out = d.cli(&["notify", "test", "hook"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until("both notices to fail once", LONG, || {
        let rows = notices(&d, Some("pending"));
        (rows.len() == 2 && rows.iter().all(|r| r["attempts"].as_u64() >= Some(1))).then_some(rows)
    });
    // An hour down: tried again meanwhile, still pending.
    d.advance_clock("1h");
    let rows = d.wait_until("the notices to be tried again", LONG, || {
        let rows = notices(&d, Some("pending"));
        (rows.len() == 2 && rows.iter().all(|r| r["attempts"].as_u64() >= Some(2))).then_some(rows)
    });
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{rows:#?}"
    );
    assert!(hook.requests().is_empty());
    // Back: within the longest backoff, everything arrives; what comes later goes at once.
    hook.up();
    d.advance_clock("10m");
    d.wait_until("both notices to be sent", LONG, || {
        (notices(&d, Some("sent")).len() == 2).then_some(())
    });
    d.advance_clock("7d");
    d.wait_until("the reminder to be sent", LONG, || {
        (notices(&d, Some("sent")).len() == 3).then_some(())
    });
    let rows = notices(&d, None);
    let keys: BTreeSet<String> = rows
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in hook.requests() {
        let key = r["headers"]["idempotency-key"].as_str().unwrap().to_owned();
        assert_eq!(r["json"]["idempotency_key"], key.as_str());
        *seen.entry(key).or_default() += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        keys,
        "every notice arrived"
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "each exactly once: {seen:?}"
    );
    let kinds: BTreeSet<String> = hook
        .requests()
        .iter()
        .map(|r| r["json"]["notice"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["announced", "reminder", "test"].map(String::from).into(),
        "{kinds:?}"
    );
    drop(listener);
}

#[test]
fn a_daemon_killed_while_sending_sends_every_notice_once_after_its_restart() {
    let sink = SmtpSink::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let n = 60;
    let recipients: Vec<String> = (0..n).map(|i| format!("\"r{i}@example.com\"")).collect();
    let mut d = TestDaemon::start(
        BIN,
        &format!(
            "{}{}\n[[notify.routes]]\nchannels = [\"mail\"]\nrecipients = [{}]\n",
            db_probe(&listener),
            sink.mail_channel("concurrency = 2\nrate = \"20/s\"\n"),
            recipients.join(", ")
        ),
    );
    d.wait_state("db", "up", LONG);
    let now: jiff::Timestamp = jiff::Timestamp::now();
    schedule(&d, now, 8 * 24);
    d.wait_until("some notices sent and some leased", LONG, || {
        let sent = sink.messages().len();
        let leased = notices(&d, Some("sending")).len();
        (sent >= 5 && leased >= 1).then_some(())
    });
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let before = sink.messages().len();
    assert!(before < n, "the kill came mid-send ({before} of {n})");
    d.launch();
    d.wait_until(
        "every notice to be sent after the restart",
        Duration::from_secs(60),
        || (notices(&d, Some("sent")).len() == n).then_some(()),
    );
    let mails = sink.messages();
    let mut per_id: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for m in &mails {
        let e = per_id
            .entry(m["message_id"].as_str().unwrap().to_owned())
            .or_insert((0, m["to"].as_str().unwrap().to_owned()));
        e.0 += 1;
    }
    assert_eq!(per_id.len(), n, "one distinct message per recipient");
    let to: BTreeSet<&str> = per_id.values().map(|(_, to)| to.as_str()).collect();
    assert_eq!(to.len(), n, "each recipient has its own");
    let resent = mails.len() - n;
    let takeovers: u64 = notices(&d, None)
        .iter()
        .map(|r| r["takeovers"].as_u64().unwrap())
        .sum();
    eprintln!(
        "{n} notices, {before} before the kill, {resent} resent (same Message-ID), {takeovers} rows taken over"
    );
    assert!(
        resent as u64 <= takeovers,
        "every resend is a counted takeover ({resent} > {takeovers})"
    );
    drop(listener);
}

#[test]
fn a_drill_pages_nobody_and_an_incident_sends_its_opening_and_its_resolution() {
    let sink = SmtpSink::start();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "[services.s]\ncommand = \"sleep 1000\"\nincident_after = \"0s\"\nrunbook = \"https://wiki.example.com/runbooks/s\"\nprobes = [{{ kind = \"process\", every = \"100ms\", failures = 3, grace = \"0s\" }}]\n\n[notify]\n{}",
            sink.ops_mail_channel()
        ),
    );
    d.wait_state("s", "up", LONG);
    let out = d.cli(&["drill", "s", "--fault", "crash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("s", "up", LONG);
    // A real crash.
    let pid = d.pid("s").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_new_pid("s", pid, LONG);
    let incidents: Value =
        serde_json::from_str(&stdout(&d.cli(&["incidents", "s", "--json"]))).unwrap();
    let drills: Vec<bool> = incidents
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["drill"].as_bool().unwrap())
        .collect();
    assert_eq!(
        drills,
        [false, true],
        "newest first: the real one, the drill's"
    );
    let opened = wait_mail(&d, &sink, 1);
    let text = SmtpSink::text(&opened[0]);
    assert!(
        opened[0]["subject"]
            .as_str()
            .unwrap()
            .contains("Incident: s"),
        "{}",
        opened[0]
    );
    assert!(
        text.contains("https://wiki.example.com/runbooks/s"),
        "{text}"
    );
    // The resolution came within the flap interval: held until ten minutes after the opening.
    d.wait_until("the resolution to be planned", LONG, || {
        (notices(&d, None).len() == 2).then_some(())
    });
    assert_eq!(sink.messages().len(), 1);
    d.advance_clock("10m");
    let mails = wait_mail(&d, &sink, 2);
    let resolved = SmtpSink::text(&mails[1]);
    assert!(
        mails[1]["subject"]
            .as_str()
            .unwrap()
            .contains("Incident resolved: s"),
        "{}",
        mails[1]
    );
    assert!(
        resolved.contains("Duration:") && resolved.contains("Ended:"),
        "{resolved}"
    );
    // The drill's incident, planned before the real one's, sent nothing.
    let rows = notices(&d, None);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(sink.messages().len(), 2);
}

#[test]
fn notify_test_sends_through_the_outbox_and_a_failed_notice_is_retried() {
    let sink = SmtpSink::start();
    let d = crate::daemon(&format!(
        "[services.s]\ncommand = \"sleep 1000\"\n\n[notify]\n{}",
        sink.ops_mail_channel()
    ));
    let out = d.cli(&["notify", "test", "mail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("through mail"), "{}", stdout(&out));
    let mails = wait_mail(&d, &sink, 1);
    assert!(
        mails[0]["subject"]
            .as_str()
            .unwrap()
            .contains("Test notice"),
        "{}",
        mails[0]
    );
    assert_eq!(mails[0]["to"], "ops@example.com");
    // A recipient the server refuses for good: failed, with the server's verdict.
    let out = d.cli(&[
        "notify",
        "test",
        "mail",
        "--to",
        "permfail@example.com",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let planned: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = planned[0]["id"].as_i64().unwrap();
    let failed = d.wait_until("the refused notice to fail", LONG, || {
        notices(&d, Some("failed"))
            .into_iter()
            .find(|r| r["id"] == id)
    });
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["last_error"].as_str().unwrap().contains("refused"),
        "{failed}"
    );
    let listed = stdout(&d.cli(&["notify", "ls", "--state", "failed"]));
    assert!(
        listed.contains("permfail@example.com") && listed.contains("refused"),
        "{listed}"
    );
    // Retried: pending again, tried again, refused again.
    let out = d.cli(&["notify", "retry", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("pending again"), "{}", stdout(&out));
    d.wait_until("the retried notice to be refused again", LONG, || {
        notices(&d, Some("failed"))
            .into_iter()
            .find(|r| r["id"] == id && r["attempts"] == 1 && r["due"] != failed["due"])
    });
    // What cannot be: a sent notice retried, an unknown channel, a bad recipient.
    let sent = notices(&d, Some("sent"))[0]["id"].as_i64().unwrap();
    let out = d.cli(&["notify", "retry", &sent.to_string()]);
    assert!(
        !out.status.success() && stderr(&out).contains("not failed"),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&["notify", "test", "pager"]);
    assert!(
        !out.status.success() && stderr(&out).contains("no channel named `pager`"),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&["notify", "test", "mail", "--to", "not an address"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not an email address"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sink.messages().len(),
        1,
        "refused mail never counts as delivered"
    );
}

#[test]
fn a_channel_without_its_secret_stops_the_start_with_its_place_in_the_file() {
    let mut d = TestDaemon::prepare(
        BIN,
        "[services.s]\ncommand = \"sleep 1000\"\n\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"UPKEEP_TEST_NO_SUCH_SECRET\"\n\n[[notify.routes]]\nchannels = [\"hook\"]\n",
    );
    d.spawn_daemon();
    let status = d.wait_exit(LONG);
    assert_eq!(status.code(), Some(2), "{}", d.daemon_log());
    let log = d.daemon_log();
    assert!(
        log.contains("UPKEEP_TEST_NO_SUCH_SECRET is not set"),
        "{log}"
    );
    let config = std::fs::read_to_string(&d.config).unwrap();
    let line = config
        .lines()
        .position(|l| l.starts_with("secret_env"))
        .unwrap()
        + 1;
    let place = format!("upkeep.toml:{line}:14 (notify.channels.hook.secret_env)");
    assert!(log.contains(&place), "{place} not in:\n{log}");
    assert!(!d.socket().exists(), "no service started, no API served");
}

/// HMAC-SHA256 (RFC 2104), to check a webhook's signature as its receiver would.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Whether `request` is signed with `secret` (`sha256=` over `<timestamp>.<body>`).
fn signed_with(request: &Value, secret: &str) -> bool {
    let headers = &request["headers"];
    let timestamp = headers["x-upkeep-timestamp"].as_str().unwrap_or_default();
    let message = format!(
        "{timestamp}.{}",
        request["body"].as_str().unwrap_or_default()
    );
    headers["x-upkeep-signature"].as_str()
        == Some(&format!(
            "sha256={}",
            hex::encode(hmac_sha256(secret.as_bytes(), message.as_bytes()))
        ))
}

/// Break-it (session 11): a secret file rotated under an unchanged config was not read
/// again by `upkeep reload`: the webhook kept signing with the old secret. Now every reload
/// builds `[notify]` again, its files read: the next notice is signed with the new secret.
#[test]
fn a_reload_reads_a_rotated_secret_file_though_the_config_is_unchanged() {
    let hook = WebhookReceiver::start();
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("hook-secret");
    std::fs::write(&secret, "first secret\n").unwrap();
    let d = crate::daemon(&format!(
        "[services.s]\ncommand = \"sleep 1000\"\n\n[notify]\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"{}\"\n",
        hook.url("/hook"),
        secret.display()
    ));
    let send = |n: usize| {
        let out = d.cli(&["notify", "test", "hook"]);
        assert!(out.status.success(), "{}", stderr(&out));
        d.wait_until(&format!("{n} requests at the receiver"), LONG, || {
            let r = hook.requests();
            (r.len() >= n).then_some(r)
        })
    };
    let first = send(1);
    assert!(signed_with(&first[0], "first secret"), "{:#}", first[0]);
    std::fs::write(&secret, "second secret\n").unwrap();
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let both = send(2);
    assert!(signed_with(&both[1], "second secret"), "{:#}", both[1]);
    assert!(!signed_with(&both[1], "first secret"));
    // A secret file gone: the reload is refused at its place, and the notices go on.
    std::fs::remove_file(&secret).unwrap();
    let out = d.cli(&["reload"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("secret_file"), "{}", stderr(&out));
    let all = send(3);
    assert!(signed_with(&all[2], "second secret"), "{:#}", all[2]);
}
