//! Maintenance windows end to end (issue 16, items 1 to 3), on a driven clock: a window a
//! week ahead is announced, reminded a day and an hour before, started (its service in
//! maintenance: a failing probe opens no incident), overruns while the service is down and
//! completes once it is back; the lead-time policy refuses a window announced too late
//! unless forced with a reason; a reminder due while the daemon was down is sent once.

use std::net::TcpListener;

use serde_json::Value;
use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, stderr, stdout};

fn db_on_clock() -> (TestDaemon, TcpListener) {
    db_on_clock_with("")
}

/// `db` on a driven clock, after `toml` (a `[maintenance]` table, say).
fn db_on_clock_with(toml: &str) -> (TestDaemon, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "{toml}\n[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\nincident_after = \"0s\"\n"
        ),
    );
    d.wait_state("db", "up", LONG);
    (d, listener)
}

fn window(d: &TestDaemon, id: i64) -> Value {
    let out = d.cli(&["maint", "show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn steps(d: &TestDaemon, id: i64) -> Vec<String> {
    window(d, id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the window has taken `want` (and, if it moved on, says what came after).
fn wait_steps(d: &TestDaemon, id: i64, want: &[&str]) {
    let got = d.wait_until(&format!("window {id} to have taken {want:?}"), LONG, || {
        let got = steps(d, id);
        (got.len() >= want.len()).then_some(got)
    });
    assert_eq!(got[..want.len()], *want, "{got:?}");
}

/// Schedules a window on `db` starting `ahead` from the daemon's now, lasting `length`.
fn add(d: &TestDaemon, ahead: &str, length: &str, extra: &[&str]) -> std::process::Output {
    let now: jiff::Timestamp = d.advance_clock("0s");
    let ahead =
        jiff::SignedDuration::try_from(upkeep_core::duration::parse(ahead).unwrap()).unwrap();
    let start = (now + ahead).to_string();
    let mut args = vec![
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        "PostgreSQL 17",
        "--reason",
        "security fixes",
        "--start",
        &start,
        "--for",
        length,
        "--services",
        "db",
        "--alternative",
        "the read replica at db2",
        "--follow-up",
        "https://status.example.com",
        "--json",
    ];
    args.extend_from_slice(extra);
    d.cli(&args)
}

fn id_of(out: &std::process::Output) -> i64 {
    assert!(out.status.success(), "{}", stderr(out));
    let w: Value = serde_json::from_str(&stdout(out)).unwrap();
    w["id"].as_i64().unwrap()
}

fn incidents(d: &TestDaemon) -> usize {
    d.api_get("/api/v1/incidents?service=db")
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_window_a_week_ahead_lives_its_whole_life_on_a_driven_clock() {
    let (d, listener) = db_on_clock();
    let addr = listener.local_addr().unwrap();
    let id = id_of(&add(&d, "8d", "2h", &[]));
    wait_steps(&d, id, &["announced"]);
    let w = window(&d, id);
    assert_eq!(w["status"], "scheduled", "{w}");
    assert_eq!(w["alternative"], "the read replica at db2");
    let listed = stdout(&d.cli(&["maint", "ls", "--tz", "Asia/Shanghai"]));
    assert!(
        listed.contains("PostgreSQL 17") && listed.contains("CST"),
        "{listed}"
    );

    d.advance_clock("7d");
    wait_steps(&d, id, &["announced", "reminder"]);
    d.advance_clock("23h");
    wait_steps(&d, id, &["announced", "reminder", "reminder"]);
    d.advance_clock("1h");
    wait_steps(&d, id, &["announced", "reminder", "reminder", "started"]);
    d.wait_state("db", "maintenance", LONG);

    // The work takes db down: no incident, and it stays in maintenance.
    drop(listener);
    d.wait_until("db's probe to fail", LONG, || {
        (d.service("db")["info"]["probes"]["tcp"]["health"] == "down").then_some(())
    });
    assert_eq!(d.state("db"), "maintenance");
    assert_eq!(incidents(&d), 0);

    // The expected end passes with db still down: an overrun, still in maintenance.
    d.advance_clock("2h");
    wait_steps(
        &d,
        id,
        &["announced", "reminder", "reminder", "started", "overrun"],
    );
    assert_eq!(window(&d, id)["status"], "overrun");
    assert_eq!(d.state("db"), "maintenance");

    // Back: completed by itself, db out of maintenance, still no incident.
    let _back = TcpListener::bind(addr).unwrap();
    wait_steps(
        &d,
        id,
        &[
            "announced",
            "reminder",
            "reminder",
            "started",
            "overrun",
            "completed",
        ],
    );
    d.wait_state("db", "up", LONG);
    assert_eq!(incidents(&d), 0);
    let shown = stdout(&d.cli(&["maint", "show", &id.to_string()]));
    for field in [
        "security fixes",
        "db (outage)",
        "the read replica",
        "status.example.com",
        "overrun",
    ] {
        assert!(shown.contains(field), "{field} in {shown}");
    }
    // Done: not listed any more, but with --all.
    d.wait_until("the window to leave the list", LONG, || {
        (!stdout(&d.cli(&["maint", "ls"])).contains("PostgreSQL 17")).then_some(())
    });
    assert!(stdout(&d.cli(&["maint", "ls", "--all"])).contains("PostgreSQL 17"));
}

#[test]
fn a_window_announced_too_late_is_refused_unless_forced_with_a_reason() {
    let (d, _listener) = db_on_clock();
    // 2 h of work in 3 h: needs a day's notice.
    let out = add(&d, "3h", "2h", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs 1 d notice") && err.contains("at the earliest"),
        "{err}"
    );
    // 5 h of work in 3 days: needs a week.
    let err = stderr(&add(&d, "3d", "5h", &[]));
    assert!(err.contains("7 d notice"), "{err}");
    // The CLI says how to force it.
    assert!(stderr(&out).contains("--force --why"), "{}", stderr(&out));
    // --force without --why is a usage error; with it, scheduled and recorded.
    assert_eq!(add(&d, "3h", "2h", &["--force"]).status.code(), Some(2));
    // A why of invisible characters alone says nothing (break-it, session 10).
    for blank in ["\u{200b}", " \u{200b}\u{2060} ", "\u{feff}"] {
        let out = add(&d, "3h", "2h", &["--force", "--why", blank]);
        assert_eq!(out.status.code(), Some(2), "{blank:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("--why"),
            "{blank:?}: {}",
            stderr(&out)
        );
    }
    let id = id_of(&add(
        &d,
        "3h",
        "2h",
        &["--force", "--why", "the disk is failing"],
    ));
    let w = window(&d, id);
    assert_eq!(w["forced_why"], "the disk is failing", "{w}");
    assert!(
        w["created_by"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    // An emergency may start at once.
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "emergency",
        "--title",
        "disk swap",
        "--start",
        &d.advance_clock("0s").to_string(),
        "--for",
        "30m",
        "--services",
        "db",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("db", "maintenance", LONG);
}

#[test]
fn a_reminder_due_while_the_daemon_was_down_is_sent_once() {
    let (mut d, _listener) = db_on_clock();
    let id = id_of(&add(&d, "2d", "1h", &[]));
    wait_steps(&d, id, &["announced"]);
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    // The 24 h reminder falls due while no daemon runs: start the clock past it.
    let offset = std::fs::read_to_string(d.data_dir.join("test-clock-offset-ms"))
        .map(|t| t.trim().parse::<i64>().unwrap())
        .unwrap_or(0);
    std::fs::write(
        d.data_dir.join("test-clock-offset-ms"),
        (offset + 25 * 3_600_000).to_string(),
    )
    .unwrap();
    d.launch();
    wait_steps(&d, id, &["announced", "reminder"]);
    // Killed again, and started: nothing new.
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    d.advance_clock("1m");
    assert_eq!(steps(&d, id), ["announced", "reminder"]);
    // Started again only after the window began: no late reminder, the work starts.
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let offset: i64 = std::fs::read_to_string(d.data_dir.join("test-clock-offset-ms"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(
        d.data_dir.join("test-clock-offset-ms"),
        (offset + 23 * 3_600_000 + 5 * 60_000).to_string(),
    )
    .unwrap();
    d.launch();
    wait_steps(&d, id, &["announced", "reminder", "started"]);
    d.wait_state("db", "maintenance", LONG);
}

#[test]
fn the_lead_time_policy_and_the_reminders_come_from_the_config() {
    let (d, _listener) =
        db_on_clock_with("[maintenance]\nshort_notice = \"1h\"\nreminders = [\"30m\"]\n");
    // Two hours ahead is enough notice here; the one reminder comes half an hour before.
    let id = id_of(&add(&d, "2h", "1h", &[]));
    wait_steps(&d, id, &["announced"]);
    d.advance_clock("89m");
    assert_eq!(steps(&d, id), ["announced"]);
    d.advance_clock("1m");
    wait_steps(&d, id, &["announced", "reminder"]);
    let reminder = &window(&d, id)["steps"][1];
    assert_eq!(reminder["before_s"], 1800, "{reminder}");
    // Less than an hour's notice is still refused, naming the policy's notice.
    let err = stderr(&add(&d, "30m", "1h", &[]));
    assert!(err.contains("needs 1 h notice"), "{err}");
}

/// Issue 16, item 9: the feeds parse with independent parsers (Python's icalendar and
/// feedparser), carry every window (recurring ones with their rule in their zone, edits
/// counted, cancelled ones marked), and the announcements answer 304 to their own ETag.
#[test]
fn the_feeds_parse_with_independent_parsers() {
    let port = upkeep_testkit::free_port();
    let (d, _listener) = db_on_clock_with(&format!("public_listen = \"127.0.0.1:{port}\"\n"));
    let weekly = id_of(&add(
        &d,
        "8d",
        "2h",
        &["--repeat", "FREQ=WEEKLY;BYDAY=SU", "--tz", "Europe/Berlin"],
    ));
    let edited = id_of(&add(&d, "9d", "1h", &[]));
    let cancelled = id_of(&add(&d, "10d", "1h", &[]));
    assert!(
        d.cli(&[
            "maint",
            "edit",
            &edited.to_string(),
            "--title",
            "PostgreSQL 17.1"
        ])
        .status
        .success()
    );
    assert!(
        d.cli(&["maint", "cancel", &cancelled.to_string()])
            .status
            .success()
    );
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/read_feeds.py"
        ))
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let feeds: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ical = &feeds["ical"];
    assert_eq!(ical["status"], 200);
    assert!(
        ical["type"].as_str().unwrap().starts_with("text/calendar"),
        "{ical}"
    );
    let events = ical["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{ical}");
    let by_uid = |id: i64| {
        events
            .iter()
            .find(|e| {
                e["uid"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("window-{id}@"))
            })
            .unwrap_or_else(|| panic!("window {id} in {ical}"))
    };
    let w = by_uid(weekly);
    assert_eq!(w["rrule"], "FREQ=WEEKLY;BYDAY=SU", "{w}");
    assert_eq!(w["tzid"], "Europe/Berlin", "{w}");
    assert!(
        w["description"]
            .as_str()
            .unwrap()
            .contains("the read replica at db2"),
        "{w}"
    );
    let e = by_uid(edited);
    assert_eq!(
        (e["sequence"].as_i64(), e["status"].as_str()),
        (Some(1), Some("CONFIRMED")),
        "{e}"
    );
    assert!(e["summary"].as_str().unwrap().contains("PostgreSQL 17.1"));
    assert_eq!(by_uid(cancelled)["status"], "CANCELLED");
    let atom = &feeds["atom"];
    assert_eq!(
        (atom["status"].as_i64(), atom["bozo"].as_bool()),
        (Some(200), Some(false)),
        "{atom}"
    );
    assert_eq!(atom["titles"].as_array().unwrap().len(), 3, "{atom}");
    let ann = &feeds["announcements"];
    assert_eq!(
        (
            ann["status"].as_i64(),
            ann["again"].as_i64(),
            ann["count"].as_i64()
        ),
        (Some(200), Some(304), Some(3)),
        "{ann}"
    );
    // Nothing about who scheduled them goes out.
    let (_, body) = d.try_api("GET", "/api/v1/announcements", None).unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("created_by") && !text.contains("uid 0"),
        "{text}"
    );
}

/// What the fresh-eyes tester found: racing steps, steps on finished windows, an early start
/// that kept its planned end, extensions without limit, and maintenance by hand over a
/// window's.
#[test]
fn operators_steps_are_checked_and_never_contradict_each_other() {
    let (d, _listener) = db_on_clock();
    let id = id_of(&add(&d, "3d", "2h", &[]));
    // Started early: it lasts its two hours from now, not until its planned end.
    assert!(d.cli(&["maint", "start", &id.to_string()]).status.success());
    let w = window(&d, id);
    let (start, end): (jiff::Timestamp, jiff::Timestamp) = (
        w["current"]["start"].as_str().unwrap().parse().unwrap(),
        w["current"]["end"].as_str().unwrap().parse().unwrap(),
    );
    let now = d.advance_clock("0s");
    // Shown from when it began (break-it, session 11: the planned start 3 days on, with an
    // end two hours from now, before it, and an "extended" step nobody took).
    assert!(start <= now, "{w}");
    assert_eq!(
        end.duration_since(start),
        jiff::SignedDuration::from_hours(2),
        "{w}"
    );
    assert!(
        !steps(&d, id).iter().any(|s| s.starts_with("extended")),
        "{w}"
    );
    d.wait_state("db", "maintenance", LONG);
    // Maintenance by hand cannot end or change the window's.
    let out = d.cli(&["maintenance", "db", "--end"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("maintenance window {id}")),
        "{}",
        stderr(&out)
    );
    // No extension past a month.
    let out = d.cli(&["maint", "extend", &id.to_string(), "--by", "40d"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A finish and a cancel racing: one wins, the other is refused.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let action = if i % 2 == 0 { "finish" } else { "cancel" };
            d.cli_spawn(&["maint", action, &id.to_string()])
        })
        .collect();
    let won = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| o.status.success())
        .count();
    assert_eq!(won, 1, "exactly one step ends it");
    let ends: Vec<String> = steps(&d, id)
        .into_iter()
        .filter(|s| s == "completed" || s == "cancelled")
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    // Over: neither edited nor cancelled now.
    assert_eq!(
        d.cli(&["maint", "cancel", &id.to_string()]).status.code(),
        Some(2)
    );
    let out = d.cli(&["maint", "edit", &id.to_string(), "--title", "again"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // An edit that makes a window longer than its notice allows is refused like an add.
    let short = id_of(&add(&d, "3d", "1h", &[]));
    let out = d.cli(&["maint", "edit", &short.to_string(), "--for", "30d"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("7 d notice"), "{}", stderr(&out));
}

/// Moves the daemon's clock forward to `at` (an RFC 3339 time after its now).
fn advance_to(d: &TestDaemon, at: &str) {
    let now = d.advance_clock("0s");
    let at: jiff::Timestamp = at.parse().unwrap();
    let secs = at.duration_since(now).as_secs();
    assert!(secs >= 0, "the clock is already past {at}: {now}");
    d.advance_clock(&format!("{secs}s"));
}

/// The steps taken, each with the start of its occurrence.
fn steps_with_occurrence(d: &TestDaemon, id: i64) -> Vec<(String, String)> {
    window(d, id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let at: jiff::Timestamp = s["occurrence"].as_str().unwrap().parse().unwrap();
            (s["step"].as_str().unwrap().to_owned(), at.to_string())
        })
        .collect()
}

/// Waits until the window has taken one step more than `before`, and checks that it is
/// `step` of the occurrence starting at `occurrence`.
fn wait_next_step(d: &TestDaemon, id: i64, before: usize, step: &str, occurrence: &str) {
    let got = d.wait_until(&format!("{step} of {occurrence}"), LONG, || {
        let got = steps_with_occurrence(d, id);
        (got.len() > before).then_some(got)
    });
    assert_eq!(got.len(), before + 1, "one step at a time: {got:?}");
    assert_eq!(
        got[before],
        (step.to_owned(), occurrence.to_owned()),
        "{got:?}"
    );
}

#[test]
fn a_weekly_window_keeps_its_local_hour_across_berlins_change_to_summer_time() {
    // Sundays at 03:00 in Berlin: 02:00 UTC in winter; from 28 March 2027 (clocks go
    // forward at 02:00), 01:00 UTC. A rule read in UTC, or a zone applied once, would start
    // the second occurrence an hour late.
    let (d, _listener) = db_on_clock();
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "maintenance",
        "--title",
        "Weekly vacuum",
        "--reason",
        "routine vacuum",
        "--start",
        "2027-03-21T03:00",
        "--tz",
        "Europe/Berlin",
        "--for",
        "1h",
        "--repeat",
        "FREQ=WEEKLY;BYDAY=SU",
        "--services",
        "db",
        "--json",
    ]);
    let id = id_of(&out);
    wait_steps(&d, id, &["announced"]);

    let winter = "2027-03-21T02:00:00Z";
    let summer = "2027-03-28T01:00:00Z";
    // Each moment, and the step it brings: the reminders a day and an hour ahead, the start,
    // the completion at the expected end (db is up).
    for (occurrence, moments) in [
        (
            winter,
            [
                ("2027-03-20T02:00:00Z", "reminder"),
                ("2027-03-21T01:00:00Z", "reminder"),
                ("2027-03-21T02:00:00Z", "started"),
                ("2027-03-21T03:00:00Z", "completed"),
            ],
        ),
        (
            summer,
            [
                ("2027-03-27T01:00:00Z", "reminder"),
                ("2027-03-28T00:00:00Z", "reminder"),
                ("2027-03-28T01:00:00Z", "started"),
                ("2027-03-28T02:00:00Z", "completed"),
            ],
        ),
    ] {
        for (at, step) in moments {
            let before = steps_with_occurrence(&d, id).len();
            let just_before: jiff::Timestamp = at.parse().unwrap();
            advance_to(
                &d,
                &(just_before - jiff::SignedDuration::from_secs(60)).to_string(),
            );
            let early = steps_with_occurrence(&d, id);
            assert_eq!(early.len(), before, "{step} came early for {at}: {early:?}");
            if step == "started" {
                assert_eq!(d.state("db"), "up", "in maintenance before {at}");
            }
            advance_to(&d, at);
            wait_next_step(&d, id, before, step, occurrence);
            if step == "started" {
                d.wait_state("db", "maintenance", LONG);
            }
            if step == "completed" {
                d.wait_state("db", "up", LONG);
            }
        }
    }
    // Nothing twice: four steps for each occurrence, and one announcement.
    let all = steps_with_occurrence(&d, id);
    assert_eq!(all.len(), 9, "{all:?}");
    assert_eq!(incidents(&d), 0);
    // Shown at the reader's wall-clock hour: 03:00 in Berlin on both sides of the change.
    let shown = stdout(&d.cli(&["maint", "show", &id.to_string(), "--tz", "Europe/Berlin"]));
    assert!(shown.contains("03:00"), "{shown}");
}

/// Break-it finding (session 9): `maint add --start` took an offset of `+25:00` and a leap
/// second `:60` (read as `:59`) without a word, and so did the API. Both are refused, saying
/// why (exit 2 for the CLI, 400 for the API), and no window is kept.
#[test]
fn an_offset_beyond_23_59_or_a_leap_second_is_refused_by_the_cli_and_the_api() {
    let (d, _listener) = db_on_clock();
    let now: jiff::Timestamp = d.advance_clock("0s");
    let day = now
        .checked_add(jiff::SignedDuration::from_hours(24 * 10))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    for (start, why) in [
        (format!("{day}T02:00+25:00"), "beyond ±23:59"),
        (format!("{day} 23:59:60"), "leap second"),
    ] {
        let out = d.cli(&[
            "maint",
            "add",
            "--kind",
            "upgrade",
            "--title",
            "t",
            "--reason",
            "r",
            "--start",
            &start,
            "--for",
            "1h",
            "--services",
            "db",
        ]);
        assert_eq!(out.status.code(), Some(2), "{start}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("`{start}`")) && err.contains(why),
            "{err}"
        );
    }
    for (start, end, why) in [
        ("02:00:00+25:00", "03:00:00Z", "beyond ±23:59"),
        ("02:00:00Z", "23:59:60Z", "leap second"),
    ] {
        let body = serde_json::json!({
            "spec": {
                "kind": "upgrade", "title": "t", "reason": "r",
                "start": format!("{day}T{start}"), "end": format!("{day}T{end}"),
                "services": [{ "service": "db", "impact": "outage" }],
            }
        });
        let (code, answer) = d.try_api("POST", "/api/v1/windows", Some(&body)).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains(why), "{answer}");
    }
    assert_eq!(d.api_get("/api/v1/windows"), serde_json::json!([]));
}

/// Break-it findings (session 9): `upkeep status` of a service in a window showed `→ --end`
/// (a CLI flag for the window's end), and `/api/v1/windows/0` was a 400 where
/// `/api/v1/incidents/0` is a 404.
#[test]
fn status_shows_a_windows_end_and_an_unknown_window_is_a_404_like_an_incident() {
    let (d, _listener) = db_on_clock();
    let now = d.advance_clock("0s");
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "emergency",
        "--title",
        "disk swap",
        "--start",
        &now.to_string(),
        "--for",
        "30m",
        "--services",
        "db",
        "--json",
    ]);
    let id = id_of(&out);
    d.wait_state("db", "maintenance", LONG);
    let end: jiff::Timestamp = window(&d, id)["current"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end = end.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let text = stdout(&d.cli(&["status", "db"]));
    assert!(
        text.contains(&format!(
            "{end} (the end of window {id}; later if it overruns)"
        )) && !text.contains("--end"),
        "{text}"
    );
    let zh = std::process::Command::new(BIN)
        .args(["-c"])
        .arg(&d.config)
        .args(["status", "db"])
        .env("UPKEEP_LANG", "zh_CN.UTF-8")
        .output()
        .unwrap();
    let text = stdout(&zh);
    assert!(
        text.contains(&format!("{end}（维护窗口 {id} 的结束时间；如超时则延后）")),
        "{text}"
    );
    // By hand, with no end: said in words.
    assert!(
        d.cli(&["maint", "finish", &id.to_string()])
            .status
            .success()
    );
    d.wait_state("db", "up", LONG);
    assert!(d.cli(&["maintenance", "db"]).status.success());
    d.wait_state("db", "maintenance", LONG);
    let text = stdout(&d.cli(&["status", "db"]));
    assert!(
        text.contains("until ended by hand (`upkeep maintenance db --end`)"),
        "{text}"
    );

    // An unknown number is a 404 for both; what is no number (past i64) a 400 for both.
    for (path, said) in [
        ("/api/v1/windows/0", "no maintenance window number 0"),
        ("/api/v1/windows/-1", "no maintenance window number -1"),
        ("/api/v1/incidents/0", "no incident number 0"),
    ] {
        let (code, body) = d.try_api("GET", path, None).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.contains(said), "{path}: {body}");
    }
    for (path, said) in [
        (
            "/api/v1/windows/99999999999999999999",
            "is not a window number",
        ),
        (
            "/api/v1/incidents/99999999999999999999",
            "is not an incident number",
        ),
    ] {
        let (code, body) = d.try_api("GET", path, None).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains(said), "{path}: {body}");
    }
}
