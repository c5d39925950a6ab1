//! Incidents people open stay open, hidden services stay hidden (issues 16 and 17, the
//! break-it findings): the real daemon, a real SMTP server (aiosmtpd), the public listener.
//! An incident opened by hand outlives a `kill -9` and an `upkeep upgrade` of a daemon whose
//! service was up all along, with no "resolved" mailed; a priority raised to P1 reaches the
//! routes that P1 reaches and the old priority did not, through the outbox to SMTP, and no
//! one else; a `public = false` service's incidents and windows reach the operators' routes
//! but no subscriber, the feeds or the announcements; `upkeep incident` exits 1 when the
//! daemon answers 404 or 409.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon, free_addr, http};

use crate::{BIN, LONG, cli_json, stderr, stdout};

fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The outbox rows (`upkeep notify ls --json`): (recipient, kind, subject line stored).
fn outbox(d: &TestDaemon) -> Vec<Value> {
    cli_json(d, &["notify", "ls", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn open_by_hand(d: &TestDaemon, service: &str, title: &str, priority: &str) -> i64 {
    let detail = cli_json(
        d,
        &[
            "incident",
            "open",
            "--service",
            service,
            "--title",
            title,
            "--priority",
            priority,
            "--json",
        ],
    );
    detail["incident"]["id"].as_i64().unwrap()
}

#[test]
fn issue_16_an_incident_opened_by_hand_outlives_kill_9_and_upgrade_and_nothing_says_resolved() {
    let sink = SmtpSink::start();
    let mut d = TestDaemon::start(
        BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\nprobes = [{{ kind = \"process\", every = \"100ms\", grace = \"0s\" }}]\n\n\
             [notify]\n{}",
            sink.ops_mail_channel()
        ),
    );
    d.wait_state("web", "up", LONG);
    let id = open_by_hand(&d, "web", "payments provider down", "P2");
    d.wait_mail(
        &sink,
        Some("ops@example.com"),
        "Incident: payments provider down",
    );

    // The daemon is killed; the next one stops the orphan, starts web again and sees it up.
    let pid = d.pid("web").unwrap();
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    d.wait_new_pid("web", pid, LONG);
    d.wait_state("web", "up", LONG);
    // And is upgraded in place: it adopts web, up all along.
    let out = d.cli(&["upgrade"]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    d.wait_state("web", "up", LONG);
    d.wait_probe_checked_for("web", "process", Duration::from_millis(300));

    // Still open: it takes an update (a resolved one answers 409), mailed like any.
    cli_json(
        &d,
        &[
            "incident",
            "update",
            &id.to_string(),
            "--status",
            "identified",
            "their API answers 503",
        ],
    );
    let detail = cli_json(&d, &["incident", &id.to_string(), "--json"]);
    assert!(detail["incident"]["resolved"].is_null(), "{detail:#}");
    d.wait_mail(
        &sink,
        Some("ops@example.com"),
        "Incident update: payments provider down (identified)",
    );
    // No daemon resolved anything (the events are stored in order, the update's last).
    let resolved: Vec<_> = d
        .events("web")
        .into_iter()
        .filter(|(k, _)| k == "incident_resolved")
        .collect();
    assert!(resolved.is_empty(), "{resolved:?}");
    let said = subjects(&sink);
    assert!(
        !said.iter().any(|s| s.contains("resolved")),
        "a resolution was mailed: {said:?}"
    );
    assert_eq!(said.len(), 2, "{said:?}");
    // Only a person resolves it.
    cli_json(
        &d,
        &["incident", "resolve", &id.to_string(), "it works again"],
    );
    d.wait_mail(
        &sink,
        Some("ops@example.com"),
        "Incident resolved: payments provider down",
    );
}

#[test]
fn issue_16_a_priority_raised_to_p1_reaches_the_routes_p1_reaches_and_no_one_else() {
    let sink = SmtpSink::start();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\n\n\
             [notify]\n{}\
             [[notify.routes]]\npriority = [\"emergency\"]\nchannels = [\"mail\"]\nrecipients = [\"oncall@example.com\"]\n\
             [[notify.routes]]\npriority = [\"important\"]\nchannels = [\"mail\"]\nrecipients = [\"ops@example.com\"]\n",
            sink.mail_channel("")
        ),
    );
    d.wait_state("web", "up", LONG);
    let id = open_by_hand(&d, "web", "checkout slow", "P3").to_string();
    d.wait_mail(&sink, Some("ops@example.com"), "Incident: checkout slow");
    let rows_to = |to: &str| {
        outbox(&d)
            .iter()
            .filter(|r| r["recipient"].as_str() == Some(to))
            .count()
    };
    assert_eq!(
        (rows_to("oncall@example.com"), rows_to("ops@example.com")),
        (0, 1)
    );

    // P1: on call hears of it now, as an emergency; ops heard of it already.
    cli_json(&d, &["incident", "priority", &id, "P1"]);
    let mail = d.wait_mail(&sink, Some("oncall@example.com"), "checkout slow (P1)");
    let text = SmtpSink::text(&mail);
    assert!(
        text.contains("Priority: Emergency") && text.contains("P3 → P1"),
        "{text}"
    );
    assert_eq!(
        (rows_to("oncall@example.com"), rows_to("ops@example.com")),
        (1, 1)
    );
    // The same again, or down to P4 (no route takes routine news here): no one new.
    cli_json(&d, &["incident", "priority", &id, "P1"]);
    cli_json(&d, &["incident", "priority", &id, "P4"]);
    assert_eq!(
        (rows_to("oncall@example.com"), rows_to("ops@example.com")),
        (1, 1)
    );
    // The rows are written with the change: once sent, these are all the mails.
    d.wait_until("every row sent", LONG, || {
        outbox(&d)
            .iter()
            .all(|r| r["state"] == "sent")
            .then_some(())
    });
    assert_eq!(sink.count(), 2, "{:?}", subjects(&sink));
}

/// A daemon with a public service `web`, a hidden one `secret`, ops mailed of everything,
/// and one subscriber of every service, confirmed through the real mail's link.
fn hidden_daemon(sink: &SmtpSink) -> (TestDaemon, SocketAddr) {
    let public = free_addr();
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\n\
             [services.secret]\ncommand = \"sleep 1000\"\npublic = false\n\n\
             [notify]\npublic_url = \"http://{public}/\"\n\
             {}\
             [notify.subscribers]\n\
             [[notify.routes]]\nchannels = [\"mail\"]\n",
            sink.ops_mail_channel()
        ),
    )
    .with_daemon_keys(&format!("public_listen = \"{public}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    crate::subscribe_confirmed(&d, sink, public, "ann@example.com", &[]);
    (d, public)
}

#[test]
fn issue_17_a_hidden_services_incidents_and_windows_reach_operators_only() {
    let sink = SmtpSink::start();
    let (d, public) = hidden_daemon(&sink);
    let hidden = open_by_hand(&d, "secret", "vault sealed", "P2");
    let seen = open_by_hand(&d, "web", "checkout slow", "P2");
    cli_json(
        &d,
        &[
            "incident",
            "update",
            &hidden.to_string(),
            "--status",
            "identified",
            "unsealing the vault",
        ],
    );
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8 * 24)).to_string();
    for (services, title) in [("secret", "vault disks"), ("web,secret", "rack move")] {
        cli_json(
            &d,
            &[
                "maint",
                "add",
                "--kind",
                "maintenance",
                "--title",
                title,
                "--reason",
                "hardware",
                "--start",
                &start,
                "--for",
                "1h",
                "--services",
                services,
                "--json",
            ],
        );
    }
    // Operators hear of everything.
    for subject in [
        "Incident: vault sealed",
        "Incident update: vault sealed (identified)",
        "Incident: checkout slow",
        "Scheduled maintenance: vault disks",
        "Scheduled maintenance: rack move",
    ] {
        d.wait_mail(&sink, Some("ops@example.com"), subject);
    }
    // The subscriber of every service: the public incident, and the shared window naming
    // web alone.
    d.wait_mail(&sink, Some("ann@example.com"), "Incident: checkout slow");
    let shared = d.wait_mail(
        &sink,
        Some("ann@example.com"),
        "Scheduled maintenance: rack move",
    );
    let text = SmtpSink::text(&shared);
    assert!(text.contains("web") && !text.contains("secret"), "{text}");
    // Every row was written with its notice: none other waits for her.
    let hers: Vec<String> = outbox(&d)
        .iter()
        .filter(|r| r["recipient"].as_str() == Some("ann@example.com"))
        .map(|r| r["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        hers.len(),
        3,
        "the confirmation, checkout slow, rack move: {hers:?}"
    );
    let said: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| m["to"].as_str() == Some("ann@example.com"))
        .map(|m| format!("{} {}", m["subject"], SmtpSink::text(m)))
        .collect();
    assert!(
        !said
            .iter()
            .any(|m| m.contains("vault") || m.contains("secret")),
        "{said:?}"
    );

    // The feed, the announcements and the page show the public ones only.
    let atom = http(public, "GET", "/feeds/atom.xml", &[], b"")
        .unwrap()
        .text();
    assert!(
        atom.contains(&format!("urn:upkeep:incident:{seen}"))
            && !atom.contains(&format!("urn:upkeep:incident:{hidden}"))
            && !atom.contains("unsealing")
            && !atom.contains("vault")
            && !atom.contains("secret"),
        "{atom}"
    );
    let list = http(public, "GET", "/api/v1/announcements", &[], b"")
        .unwrap()
        .json();
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(titles, ["rack move"], "{list:#}");
    assert_eq!(list[0]["services"].as_array().unwrap().len(), 1, "{list:#}");
    let ics = http(public, "GET", "/feeds/maintenance.ics", &[], b"")
        .unwrap()
        .text();
    assert!(
        ics.contains("rack move") && !ics.contains("vault") && !ics.contains("secret"),
        "{ics}"
    );
    let page = d.wait_until("the public incident on the page", LONG, || {
        let page = http(public, "GET", "/", &[], b"").unwrap().text();
        page.contains("checkout slow").then_some(page)
    });
    assert!(!page.contains("vault"), "{page}");
}

#[test]
fn issue_16_incident_commands_exit_1_when_the_daemon_refuses() {
    let d = crate::daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    d.wait_state("web", "up", LONG);
    let id = open_by_hand(&d, "web", "slow", "P3").to_string();
    cli_json(&d, &["incident", "resolve", &id]);
    for args in [
        vec!["incident", "999"],
        vec!["incident", "show", "999"],
        vec!["incident", "resolve", "999"],
        vec!["incident", "update", "999", "--status", "identified", "x"],
        vec!["incident", "open", "--service", "nope", "--title", "x"],
        // Resolved: 409.
        vec!["incident", "resolve", &id],
        vec!["incident", "priority", &id, "P1"],
    ] {
        let out = d.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A mistake in the command line is still a usage error.
    for args in [
        vec!["incident", "priority", &id, "P9"],
        vec!["incident", "update", &id, "--status", "fine", "x"],
    ] {
        let out = d.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

/// A window's text naming a hidden service is shown as written, so its writer is warned (the
/// CLI and the API's answer say which field names which service); a window of hidden
/// services alone has no public page, so the operators' mail about it links to none.
#[test]
fn a_window_naming_a_hidden_service_warns_its_writer_and_its_mail_links_no_404() {
    let sink = SmtpSink::start();
    let (d, public) = hidden_daemon(&sink);
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8 * 24)).to_string();
    let add = |services: &str, title: &str| {
        let out = d.cli(&[
            "maint",
            "add",
            "--kind",
            "maintenance",
            "--title",
            title,
            "--reason",
            "new disks for Secret",
            "--start",
            &start,
            "--for",
            "1h",
            "--services",
            services,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let w: Value = serde_json::from_str(&stdout(&out)).unwrap();
        (w, stderr(&out))
    };
    let (w, warned) = add("secret", "vault disks");
    assert_eq!(
        w["names_hidden"],
        serde_json::json!([{ "field": "reason", "service": "secret" }]),
        "{w:#}"
    );
    assert!(
        warned.contains("warning: the reason names `secret`, a service hidden"),
        "{warned}"
    );
    let id = w["id"].as_i64().unwrap();
    let mail = d.wait_mail(
        &sink,
        Some("ops@example.com"),
        "Scheduled maintenance: vault disks",
    );
    let text = SmtpSink::text(&mail);
    assert!(!text.contains(&format!("http://{public}/")), "{text}");
    let page = http(public, "GET", &format!("/windows/{id}"), &[], b"").unwrap();
    assert_eq!(page.code, 404, "no public page: the mail must not link it");
    // A window with a public service links to its page; text naming none warns of nothing.
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "maintenance",
        "--title",
        "web disks",
        "--reason",
        "hardware",
        "--start",
        &start,
        "--for",
        "1h",
        "--services",
        "web,secret",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let w: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(w.get("names_hidden").is_none(), "{w:#}");
    let mail = d.wait_mail(
        &sink,
        Some("ops@example.com"),
        "Scheduled maintenance: web disks",
    );
    let text = SmtpSink::text(&mail);
    assert!(
        text.contains(&format!("http://{public}/windows/{}", w["id"])),
        "{text}"
    );
}

/// Break-it (session 11): an outage's incident that a person resolved while it went on was
/// followed by a new incident for the same outage once the daemon was restarted (killed,
/// or stopped and started). The person's word holds across the restart until the service
/// has been up; down again after that, it is a new incident.
#[test]
fn a_hand_resolution_holds_across_a_daemon_restart_until_the_service_is_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut d = crate::daemon(&format!(
        "[services.s]\ncommand = \"sleep 1000\"\non_unhealthy = \"alert\"\nincident_after = \"0s\"\n\
         probes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
    ));
    // Newest first; read once what state decided is stored (a reload's answer waits for it).
    let incidents = |d: &TestDaemon| -> Vec<Value> {
        let out = d.cli(&["reload"]);
        assert!(out.status.success(), "{}", stderr(&out));
        cli_json(d, &["incidents", "s", "--json"])
            .as_array()
            .unwrap()
            .clone()
    };
    let first = d.wait_until("an incident for s", LONG, || {
        incidents(&d).first().and_then(|i| i["id"].as_i64())
    });
    let out = d.cli(&["incident", "resolve", &first.to_string(), "known, on it"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for signal in [
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let pid = d.pid("s").unwrap();
        d.signal_daemon(signal);
        d.launch();
        d.wait_until("s to run again, down", LONG, || {
            d.pid("s").filter(|p| *p != pid && d.state("s") == "down")
        });
        let list = incidents(&d);
        assert_eq!(
            list.len(),
            1,
            "after {signal}, a new incident for the same outage: {list:#?}"
        );
        assert!(!list[0]["resolved"].is_null(), "{list:#?}");
    }
    // Up once, then down: a new incident.
    let back = std::net::TcpListener::bind(addr).unwrap();
    d.wait_state("s", "up", LONG);
    drop(back);
    d.wait_until("a new incident once it was up and went down", LONG, || {
        (incidents(&d).len() == 2).then_some(())
    });
}
