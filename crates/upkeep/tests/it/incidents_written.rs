//! Incidents people write to, end to end (issue 16): the real daemon with a real SMTP server
//! (aiosmtpd) and its public status page. An update written with the CLI goes out as a mail
//! by the incident's priority and shows (escaped) in the incident's timeline on the page; an
//! incident resolved by hand stays resolved when the probes see the service back, and sends
//! no second resolution, and the service down again at once is a new incident; the post-mortem shows in the history and in `upkeep incident show`;
//! an incident opened by hand for a third party carries its title; bad input is a 4xx.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};
use upkeep_testkit::{SmtpSink, TestDaemon, wait_page};

use crate::statuspage::public_daemon;
use crate::{LONG, cli_json, stderr, stdout};

fn mail_notify(sink: &SmtpSink) -> String {
    format!(
        // Every notice at once (routine ones too: the default routes would gather those
        // into the daily digest).
        "[notify]\n{}\n[[notify.routes]]\nchannels = [\"mail\"]\n",
        sink.ops_mail_channel()
    )
}

/// Waits for a mail whose subject contains `subject`; returns its text part.
fn wait_mail(d: &TestDaemon, sink: &SmtpSink, subject: &str) -> String {
    d.wait_until(&format!("a mail with subject {subject:?}"), LONG, || {
        sink.messages()
            .iter()
            .find(|m| m["subject"].as_str().unwrap_or_default().contains(subject))
            .map(SmtpSink::text)
    })
}

/// (status code, error text) of a write over the control socket.
fn api(d: &TestDaemon, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let (code, body) = d.try_api(method, path, body).unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn an_update_is_mailed_and_shown_and_a_hand_resolution_holds_with_its_postmortem() {
    let sink = SmtpSink::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let (d, addr) = public_daemon(&format!(
        "[services.db]\nincident_after = \"0s\"\npriority = \"P1\"\nprobes = [{{ kind = \"tcp\", addr = \"{db}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\n{}",
        mail_notify(&sink)
    ));
    d.wait_state("db", "up", LONG);
    drop(listener);
    let id = d.wait_until("the probes' incident", LONG, || {
        let list = cli_json(&d, &["incidents", "db", "--json"]);
        list.as_array()?.first()?["id"].as_i64()
    });
    let id_s = id.to_string();
    // The probes' opening goes out as the service's priority says: P1 pages as an emergency.
    let opened = wait_mail(&d, &sink, "Incident: db");
    assert!(opened.contains("Priority: Emergency"), "{opened}");

    let message = "<script>alert(1)</script> the disk is full";
    let detail = cli_json(
        &d,
        &[
            "incident",
            "update",
            &id_s,
            "--status",
            "identified",
            message,
            "--json",
        ],
    );
    let updates = detail["notes"]["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{detail:#}");
    assert_eq!(updates[0]["status"], "identified");
    assert!(
        updates[0]["by"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    let mail = wait_mail(&d, &sink, "Incident update: db (identified)");
    assert!(
        mail.contains(message) && mail.contains("Priority: Emergency"),
        "{mail}"
    );
    // On the page, in the incident's timeline, as text.
    let page = wait_page(addr, "/", "the update in the timeline", |p| {
        p.contains("the disk is full")
    });
    assert!(
        page.contains("Identified: &lt;script&gt;alert(1)&lt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"), "{page}");
    // And in the Atom feed, as an entry of its own, escaped.
    let atom = wait_page(addr, "/feeds/atom.xml", "the update in the feed", |f| {
        f.contains("the disk is full")
    });
    assert!(
        atom.contains(&format!("urn:upkeep:incident:{id}:update:"))
            && atom.contains("[incident · identified] db")
            && !atom.contains("<script>"),
        "{atom}"
    );

    // Resolved by hand while the service is still down.
    let detail = cli_json(
        &d,
        &[
            "incident",
            "resolve",
            &id_s,
            "moved to the spare disk",
            "--json",
        ],
    );
    let resolved_at = detail["incident"]["resolved"].clone();
    assert!(resolved_at.is_string(), "{detail:#}");
    assert!(
        detail["notes"]["resolved_by"]["name"].is_string(),
        "{detail:#}"
    );
    let mail = wait_mail(&d, &sink, "Incident resolved: db");
    assert!(mail.contains("moved to the spare disk"), "{mail}");
    // A resolved incident takes no more updates nor priorities: 409, and the CLI says so.
    let (code, text) = api(
        &d,
        "POST",
        &format!("/api/v1/incidents/{id}/updates"),
        Some(&json!({"status": "monitoring", "message": "late"})),
    );
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("resolved"), "{text}");
    let out = d.cli(&["incident", "priority", &id_s, "P2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // The service comes back: the probes' resolution changes nothing and mails nothing.
    let back = TcpListener::bind(db).unwrap();
    d.wait_state("db", "up", LONG);
    // Up twice: at start, and now.
    d.wait_until("the recovery to be stored", LONG, || {
        (d.events("db")
            .iter()
            .filter(|(k, e)| k == "status_changed" && e["to"] == "up")
            .count()
            == 2)
            .then_some(())
    });
    let now: Value = d.api_get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(now["incident"]["resolved"], resolved_at, "{now:#}");
    // The person's resolution closed the status machine's incident too: it resolves nothing.
    assert!(
        !d.events("db").iter().any(|(k, _)| k == "incident_resolved"),
        "{:?}",
        d.events("db")
    );

    // The post-mortem, from a TOML file; then on the history page and in `incident show`.
    let pm = d.data_dir.join("pm.toml");
    std::fs::write(
        &pm,
        "summary = \"the database's disk filled up\"\nroot_cause = \"logs were never rotated\"\nwhys = [\"disk full\", \"logs grew\", \"no rotation\", \"not in the template\", \"no review\"]\nactions = [\"rotate logs\", \"alert at 80%\"]\n",
    )
    .unwrap();
    cli_json(
        &d,
        &[
            "incident",
            "postmortem",
            &id_s,
            "--file",
            pm.to_str().unwrap(),
            "--json",
        ],
    );
    let history = wait_page(addr, "/history", "the post-mortem", |p| {
        p.contains("logs were never rotated")
    });
    assert!(
        history.contains("Post-mortem") && history.contains("alert at 80%"),
        "{history}"
    );
    let zh = wait_page(
        addr,
        "/history?lang=zh-CN",
        "the post-mortem in Chinese",
        |p| p.contains("事后复盘"),
    );
    assert!(zh.contains("已查明原因"), "{zh}");
    let show = stdout(&d.cli(&["incident", &id_s]));
    assert!(
        show.contains("logs were never rotated") && show.contains("identified"),
        "{show}"
    );
    // Exactly three mails: opened, the update, the hand resolution.
    std::thread::sleep(Duration::from_millis(300));
    let subjects: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");

    // Down again at once (within the flap window): a new incident, the resolved one stays.
    drop(back);
    let again = d.wait_until("a new incident", LONG, || {
        let list = cli_json(&d, &["incidents", "db", "--json"]);
        list.as_array()?
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .find(|n| *n != id)
    });
    assert!(again > id);
    let now: Value = d.api_get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(now["incident"]["resolved"], resolved_at, "{now:#}");
    d.wait_until("the new incident's mail", LONG, || {
        (sink
            .messages()
            .iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Incident: db")
            })
            .count()
            == 2)
            .then_some(())
    });
}

#[test]
fn an_incident_opened_by_hand_routes_by_its_priority_and_bad_input_is_refused() {
    let sink = SmtpSink::start();
    let (d, addr) = public_daemon(&format!(
        "[services.web]\ncommand = \"sleep 1000\"\n\n{}",
        mail_notify(&sink)
    ));
    d.wait_state("web", "up", LONG);
    let detail = cli_json(
        &d,
        &[
            "incident",
            "open",
            "--service",
            "web",
            "--title",
            "payments provider down",
            "--priority",
            "P4",
            "--message",
            "card payments fail at the provider",
            "--json",
        ],
    );
    let id = detail["incident"]["id"].as_i64().unwrap();
    assert_eq!(detail["notes"]["priority"], "P4");
    let mail = wait_mail(&d, &sink, "Incident: payments provider down");
    assert!(
        mail.contains("Priority: Routine") && mail.contains("card payments fail"),
        "{mail}"
    );
    wait_page(addr, "/", "the incident opened by hand", |p| {
        p.contains("payments provider down") && p.contains("card payments fail")
    });
    // Raised to P1: the next update pages as an emergency.
    cli_json(
        &d,
        &["incident", "priority", &id.to_string(), "P1", "--json"],
    );
    cli_json(
        &d,
        &[
            "incident",
            "update",
            &id.to_string(),
            "--status",
            "monitoring",
            "fix deployed",
            "--json",
        ],
    );
    let mail = wait_mail(&d, &sink, "(monitoring)");
    assert!(mail.contains("Priority: Emergency"), "{mail}");

    // Bad input, each a 4xx that says what is wrong.
    let path = format!("/api/v1/incidents/{id}/updates");
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/incidents/999999/updates".into(),
            json!({"status": "identified", "message": "x"}),
            404,
            "no incident number 999999",
        ),
        (
            "POST",
            "/api/v1/incidents/abc/updates".into(),
            json!({"status": "identified", "message": "x"}),
            400,
            "not an incident number",
        ),
        (
            "POST",
            path.clone(),
            json!({"status": "fixed", "message": "x"}),
            400,
            "fixed",
        ),
        (
            "POST",
            path.clone(),
            json!({"status": "identified", "message": "  "}),
            400,
            "must not be empty",
        ),
        (
            "POST",
            path.clone(),
            json!({"status": "identified", "message": "x".repeat(4001)}),
            400,
            "at most 4000",
        ),
        (
            "POST",
            "/api/v1/incidents".into(),
            json!({"service": "nope", "title": "t"}),
            404,
            "no service named nope",
        ),
        (
            "PUT",
            format!("/api/v1/incidents/{id}/priority"),
            json!({"priority": "P9"}),
            400,
            "P9",
        ),
        (
            "PUT",
            format!("/api/v1/incidents/{id}/postmortem"),
            json!({"summary": "s", "root_cause": "r", "whys": ["a", "b", "c", "d"]}),
            400,
            "5 whys",
        ),
        (
            "PUT",
            "/api/v1/incidents/999999/postmortem".into(),
            json!({"summary": "s", "root_cause": "r", "whys": ["a", "b", "c", "d", "e"]}),
            404,
            "no incident",
        ),
    ];
    for (method, path, body, want, says) in cases {
        let (code, text) = api(&d, method, &path, Some(&body));
        assert_eq!(code, want, "{method} {path} {body}: {text}");
        assert!(
            text.contains(says),
            "{method} {path}: {text:?} lacks {says:?}"
        );
    }
    // A post-mortem file with a mistake names the file and the place.
    let pm = d.data_dir.join("pm.toml");
    std::fs::write(&pm, "summary = \"s\"\nroot_cause = 3\n").unwrap();
    let out = d.cli(&[
        "incident",
        "postmortem",
        &id.to_string(),
        "--file",
        pm.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pm.toml:2:"), "{}", stderr(&out));
}

#[test]
fn an_update_reaches_the_subscribers_of_its_service_and_no_one_else() {
    let sink = SmtpSink::start();
    let public = upkeep_testkit::free_addr();
    let notify = mail_notify(&sink).replacen(
        "[notify]\n",
        &format!("[notify]\npublic_url = \"http://{public}/\"\n"),
        1,
    );
    let mut d = TestDaemon::prepare(
        crate::BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\n\n[services.other]\ncommand = \"sleep 1000\"\n\n{notify}[notify.subscribers]\n"
        ),
    );
    d.add_daemon_keys(&format!("public_listen = \"{public}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    for (email, service) in [("ann@example.com", "web"), ("bob@example.com", "other")] {
        crate::subscribe_confirmed(&d, &sink, public, email, &[service]);
    }
    let detail = cli_json(
        &d,
        &[
            "incident",
            "open",
            "--service",
            "web",
            "--title",
            "CDN down",
            "--json",
        ],
    );
    let id = detail["incident"]["id"].as_i64().unwrap().to_string();
    cli_json(
        &d,
        &[
            "incident",
            "update",
            &id,
            "--status",
            "monitoring",
            "traffic moved to the backup CDN",
            "--json",
        ],
    );
    let mail = d.wait_until("ann's update", LONG, || {
        sink.messages().into_iter().find(|m| {
            m["to"].as_str() == Some("ann@example.com")
                && m["subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Incident update")
        })
    });
    let text = SmtpSink::text(&mail);
    assert!(text.contains("traffic moved to the backup CDN"), "{text}");
    assert!(mail["list_unsubscribe"].is_string(), "{mail}");
    // Ops (the route) got it too; bob, who follows another service, got nothing but his
    // confirmation.
    d.wait_until("the route's update mail", LONG, || {
        sink.messages()
            .into_iter()
            .find(|m| {
                m["to"].as_str() == Some("ops@example.com")
                    && m["subject"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Incident update")
            })
            .map(|_| ())
    });
    let to_bob = sink
        .messages()
        .iter()
        .filter(|m| m["to"].as_str() == Some("bob@example.com"))
        .count();
    assert_eq!(to_bob, 1, "{:#?}", sink.messages());
}

/// An incident resolved by hand during an outage stays the outage's last word through a
/// restart of the service (an operator's, or a heal's): the service still down after it
/// opens no new incident until it has been up once; down again after that, it does.
#[test]
fn a_hand_resolution_holds_through_a_restart_until_the_service_has_been_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let d = crate::daemon(&format!(
        "[services.s]\ncommand = \"sleep 1000\"\non_unhealthy = \"alert\"\nincident_after = \"0s\"\n\
         probes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
    ));
    let incidents = |d: &TestDaemon| -> Vec<Value> {
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
    // Restarted by an operator, still down.
    let pid = d.pid("s").unwrap();
    let out = d.cli(&["restart", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until("s to run again, down", LONG, || {
        d.pid("s").filter(|p| *p != pid && d.state("s") == "down")
    });
    // What state decided with that `down` is stored before the reload's own event, which
    // the reload's answer waits for.
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = incidents(&d);
    assert_eq!(
        list.len(),
        1,
        "the restart opened a new incident: {list:#?}"
    );
    // Up once, then down: a new incident.
    let back = TcpListener::bind(addr).unwrap();
    d.wait_state("s", "up", LONG);
    drop(back);
    d.wait_until("a new incident once it was up and went down", LONG, || {
        (incidents(&d).len() == 2).then_some(())
    });
}
