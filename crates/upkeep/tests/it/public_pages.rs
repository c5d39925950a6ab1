//! The pages notices link to, end to end (issue 17, break-it): a real daemon with a real SMTP
//! server and a public listener. The very links in the mails (`<public_url>incidents/N`,
//! `<public_url>windows/N`) answer 200 on `public_listen` with the incident's timeline, the
//! updates people wrote and its post-mortem, or the window's times, services, reason and
//! alternative, in English and Chinese; nothing there, on the page or in the feeds names a
//! service that is `public = false`, and a window or incident of hidden services alone is a
//! 404 like an unknown one.

use std::net::SocketAddr;

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon, free_addr, http};

use crate::{LONG, cli_json};

/// `web` (public) and `hiddendb` (`public = false`), mail to ops for every notice, at once
/// (routine ones too: the default routes would gather those into the daily digest).
fn mailing_daemon(sink: &SmtpSink) -> (TestDaemon, SocketAddr) {
    let public = free_addr();
    let mut d = TestDaemon::prepare(
        crate::BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\n\n\
             [services.hiddendb]\ncommand = \"sleep 1000\"\npublic = false\n\n\
             [notify]\npublic_url = \"http://{public}/\"\n\
             {}\n\
             [[notify.routes]]\nchannels = [\"mail\"]\n",
            sink.ops_mail_channel()
        ),
    );
    d.add_daemon_keys(&format!("public_listen = \"{public}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    (d, public)
}

/// The first mail whose subject contains `subject`.
fn mail(d: &TestDaemon, sink: &SmtpSink, subject: &str) -> Value {
    d.wait_until(&format!("a mail about {subject:?}"), LONG, || {
        sink.messages()
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains(subject))
    })
}

fn get(public: SocketAddr, path: &str) -> (u16, String) {
    let a = http(public, "GET", path, &[], b"").unwrap();
    (a.code, a.text())
}

/// Schedules a window (8 days ahead: past every lead-time rule) on `services`.
fn schedule(d: &TestDaemon, title: &str, services: &str) -> i64 {
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8 * 24);
    let w = cli_json(
        d,
        &[
            "maint",
            "add",
            "--kind",
            "upgrade",
            "--title",
            title,
            "--reason",
            "security fixes",
            "--start",
            &start.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "--tz",
            "Asia/Shanghai",
            "--for",
            "2h",
            "--services",
            services,
            "--alternative",
            "the read-only replica",
            "--json",
        ],
    );
    w["id"].as_i64().unwrap()
}

#[test]
fn issue_17_the_links_in_notices_answer_on_the_public_listener() {
    let sink = SmtpSink::start();
    let (d, public) = mailing_daemon(&sink);

    // An incident, an update people wrote (with markup), its resolution and post-mortem.
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
            "identified",
            "<script>alert(1)</script> a bad route",
            "--json",
        ],
    );
    let update = mail(&d, &sink, "Incident update");
    let link = SmtpSink::link(&update, public, "/incidents/");
    assert_eq!(link, format!("/incidents/{id}"));
    let (code, page) = get(public, &link);
    assert_eq!(code, 200, "{link}: {page}");
    assert!(
        page.contains("CDN down") && page.contains("Incident opened"),
        "{page}"
    );
    assert!(
        page.contains("Identified: &lt;script&gt;alert(1)"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    cli_json(&d, &["incident", "resolve", &id, "rerouted", "--json"]);
    let pm = d.data_dir.join("pm.toml");
    std::fs::write(
        &pm,
        "summary = \"a route was withdrawn\"\nroot_cause = \"a typo in the BGP config\"\nwhys = [\"a\", \"b\", \"c\", \"d\", \"e\"]\n",
    )
    .unwrap();
    cli_json(
        &d,
        &[
            "incident",
            "postmortem",
            &id,
            "--file",
            pm.to_str().unwrap(),
            "--json",
        ],
    );
    let (code, zh) = get(public, &format!("{link}?lang=zh-CN"));
    assert_eq!(code, 200, "{zh}");
    assert!(
        zh.contains("lang=\"zh-CN\"") && zh.contains("事后复盘") && zh.contains("BGP"),
        "{zh}"
    );

    // A window on a public and a hidden service: its link shows it, without the hidden one.
    let wid = schedule(&d, "PostgreSQL 17", "web,hiddendb");
    let announced = mail(&d, &sink, "PostgreSQL 17");
    let link = SmtpSink::link(&announced, public, "/windows/");
    assert_eq!(link, format!("/windows/{wid}"));
    let (code, page) = get(public, &link);
    assert_eq!(code, 200, "{link}: {page}");
    assert!(
        page.contains("PostgreSQL 17")
            && page.contains("security fixes")
            && page.contains("read-only replica")
            && page.contains("Asia&#x2f;Shanghai"),
        "{page}"
    );
    assert!(page.contains("web (unavailable)"), "{page}");
    assert!(!page.contains("hiddendb"), "{page}");
    let (code, zh) = get(public, &format!("{link}?lang=zh-CN"));
    assert_eq!(code, 200);
    assert!(zh.contains("当地时间") && zh.contains("升级"), "{zh}");

    // Nothing public names the hidden service: page, announcements, feeds.
    for path in [
        "/",
        "/api/v1/announcements",
        "/feeds/maintenance.ics",
        "/feeds/atom.xml",
    ] {
        let text = d.wait_until(&format!("the window on {path}"), LONG, || {
            let (code, text) = get(public, path);
            (code == 200 && text.contains("PostgreSQL 17")).then_some(text)
        });
        assert!(!text.contains("hiddendb"), "{path}: {text}");
    }

    // A window of hidden services alone, an incident of one, a drill's, an unknown id: 404,
    // all alike.
    let hidden = schedule(&d, "Hidden work", "hiddendb");
    let detail = cli_json(
        &d,
        &[
            "incident",
            "open",
            "--service",
            "hiddendb",
            "--title",
            "quiet",
            "--json",
        ],
    );
    let hidden_incident = detail["incident"]["id"].as_i64().unwrap();
    for path in [
        format!("/windows/{hidden}"),
        format!("/incidents/{hidden_incident}"),
        "/windows/999".into(),
        "/incidents/999".into(),
        "/incidents/x".into(),
    ] {
        let (code, text) = get(public, &path);
        assert_eq!(code, 404, "{path}: {text}");
        assert!(
            !text.contains("hiddendb") && !text.contains("quiet"),
            "{text}"
        );
    }
    let (_, ann) = get(public, "/api/v1/announcements");
    assert!(!ann.contains("Hidden work"), "{ann}");
}
