//! `[notify]` changed by `upkeep reload` (issue 16): a channel and a route added by a reload
//! get the next notice; a channel removed gets none, and its rows still waiting are failed
//! saying why; a reload whose new channel lacks its secret is refused at the secret's place
//! in the file, and the notices still go the old way. Real receivers on loopback (the SMTP
//! sink, webhook receivers); the notices are windows' announcements, planned through the
//! routes in force when each is planned.

use serde_json::Value;
use upkeep_testkit::{SmtpSink, TestDaemon, WebhookReceiver};

use crate::{LONG, daemon, stderr, stdout};

const DB: &str = "[services.db]\ncommand = \"sleep 1000\"\n\n";

fn mail(sink: &SmtpSink) -> String {
    format!("{}\n", sink.ops_mail_channel())
}

/// The webhooks' signing secret, in a file of its own (kept while the test runs).
fn secret() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hook-secret");
    std::fs::write(&path, "s3cret-of-the-hooks\n").unwrap();
    let shown = path.display().to_string();
    (dir, shown)
}

fn hook(name: &str, receiver: &WebhookReceiver, secret: &str) -> String {
    format!(
        "[notify.channels.{name}]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"{secret}\"\n\n",
        receiver.url(&format!("/{name}"))
    )
}

fn route(channels: &[&str]) -> String {
    let list: Vec<String> = channels.iter().map(|c| format!("\"{c}\"")).collect();
    format!("[[notify.routes]]\nchannels = [{}]\n\n", list.join(", "))
}

fn reload(d: &TestDaemon) -> Value {
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Announces a window on `db` two days ahead: one notice through the routes in force.
fn announce(d: &TestDaemon, title: &str) -> i64 {
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        title,
        "--reason",
        "new disks",
        "--start",
        &start.to_string(),
        "--for",
        "1h",
        "--services",
        "db",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w: Value = serde_json::from_str(&stdout(&out)).unwrap();
    w["id"].as_i64().unwrap()
}

fn rows(d: &TestDaemon) -> Vec<Value> {
    d.api_get("/api/v1/notify?limit=10000")
        .as_array()
        .unwrap()
        .clone()
}

/// The channels the rows of window `title`'s announcement went to, sorted.
fn channels_of(d: &TestDaemon, title: &str) -> Vec<String> {
    let mut c: Vec<String> = rows(d)
        .iter()
        .filter(|r| r.to_string().contains(title))
        .map(|r| r["channel"].as_str().unwrap().to_owned())
        .collect();
    c.sort();
    c
}

fn bodies(r: &WebhookReceiver) -> Vec<String> {
    r.requests().iter().map(|q| q["body"].to_string()).collect()
}

fn wait_requests(d: &TestDaemon, r: &WebhookReceiver, n: usize, what: &str) -> Vec<String> {
    d.wait_until(what, LONG, || {
        let b = bodies(r);
        (b.len() >= n).then_some(b)
    })
}

#[test]
fn a_channel_and_route_added_by_reload_get_the_next_notice_and_a_removed_one_none() {
    let (_dir, key) = secret();
    let sink = SmtpSink::start();
    let hooked = WebhookReceiver::start();
    let down = WebhookReceiver::down_from_start();
    let d = daemon(&format!(
        "{DB}[notify]\n{}{}{}",
        mail(&sink),
        hook("later", &down, &key),
        route(&["mail", "later"])
    ));
    d.wait_state("db", "up", LONG);
    announce(&d, "First window");
    d.wait_until("the first announcement mailed", LONG, || {
        (sink.messages().len() == 1).then_some(())
    });
    // `later` is down: its row waits for a retry.
    d.wait_until("the row of `later` to wait for a retry", LONG, || {
        rows(&d)
            .into_iter()
            .find(|r| r["channel"] == "later" && r["state"] == "pending" && r["attempts"] == 1)
    });

    // A webhook channel and a route to it, by reload; `later` goes.
    d.write_services(&format!(
        "{DB}[notify]\n{}{}{}",
        mail(&sink),
        hook("hook", &hooked, &key),
        route(&["mail", "hook"])
    ));
    let answer = reload(&d);
    assert!(
        answer.get("restart_needed").is_none(),
        "nothing waits: {answer}"
    );
    let failed = d.wait_until("the row of the removed channel to fail", LONG, || {
        rows(&d)
            .into_iter()
            .find(|r| r["channel"] == "later" && r["state"] == "failed")
    });
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("no longer in the config"),
        "{failed}"
    );
    // Break-it, session 10: a retry of it was "pending again" and then pending for good.
    let id = failed["id"].to_string();
    let out = d.cli(&["notify", "retry", &id]);
    assert!(
        !out.status.success() && stderr(&out).contains("no channel named `later`"),
        "{}",
        stderr(&out)
    );
    let again = rows(&d)
        .into_iter()
        .find(|r| r["id"] == failed["id"])
        .unwrap();
    assert_eq!(again["state"], "failed", "{again}");
    announce(&d, "Second window");
    let got = wait_requests(&d, &hooked, 1, "the second announcement at the new webhook");
    assert!(got[0].contains("Second window"), "{got:?}");
    d.wait_until("the second announcement mailed too", LONG, || {
        (sink.messages().len() == 2).then_some(())
    });
    assert_eq!(channels_of(&d, "Second window"), ["hook", "mail"]);
    let out = d.cli(&["notify", "test", "hook"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_requests(&d, &hooked, 2, "a test notice through the new channel");

    // The mail channel removed: the next notice goes to the webhook alone.
    d.write_services(&format!(
        "{DB}[notify]\n{}{}",
        hook("hook", &hooked, &key),
        route(&["hook"])
    ));
    reload(&d);
    announce(&d, "Third window");
    let got = wait_requests(&d, &hooked, 3, "the third announcement at the webhook");
    assert!(got[2].contains("Third window"), "{got:?}");
    assert_eq!(channels_of(&d, "Third window"), ["hook"]);
    assert_eq!(sink.messages().len(), 2, "nothing more mailed");
    let out = d.cli(&["notify", "test", "mail"]);
    assert!(
        !out.status.success() && stderr(&out).contains("no channel named `mail`"),
        "{}",
        stderr(&out)
    );
    assert!(down.requests().is_empty());
}

#[test]
fn a_reload_whose_new_channel_lacks_its_secret_is_refused_and_notices_go_the_old_way() {
    let (_dir, key) = secret();
    let old = WebhookReceiver::start();
    let new = WebhookReceiver::start();
    let d = daemon(&format!(
        "{DB}[notify]\n{}{}",
        hook("old", &old, &key),
        route(&["old"])
    ));
    d.wait_state("db", "up", LONG);
    let good = std::fs::read_to_string(&d.config).unwrap();
    d.write_services(&format!(
        "{DB}[notify]\n{}[notify.channels.new]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"UPKEEP_TEST_NO_SUCH_SECRET\"\n\n{}",
        hook("old", &old, &key),
        new.url("/new"),
        route(&["new"])
    ));
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    let config = std::fs::read_to_string(&d.config).unwrap();
    let line = config
        .lines()
        .position(|l| l.starts_with("secret_env"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "upkeep.toml:{line}:14 (notify.channels.new.secret_env)"
        )) && err.contains("UPKEEP_TEST_NO_SUCH_SECRET is not set"),
        "{err}"
    );
    assert!(err.contains("running config stays in force"), "{err}");
    // The old routing holds: the next notice goes to `old`, none to `new`.
    announce(&d, "After the bad reload");
    let got = wait_requests(&d, &old, 1, "the announcement at the old webhook");
    assert!(got[0].contains("After the bad reload"), "{got:?}");
    assert_eq!(channels_of(&d, "After the bad reload"), ["old"]);
    assert!(new.requests().is_empty());
    // The file put back, nothing waits.
    std::fs::write(&d.config, good).unwrap();
    let answer = reload(&d);
    assert!(
        answer.get("restart_needed").is_none(),
        "nothing waits: {answer}"
    );
}

#[test]
fn notify_added_by_reload_to_a_daemon_started_without_it_sends() {
    let (_dir, key) = secret();
    let hooked = WebhookReceiver::start();
    let d = daemon(DB);
    d.wait_state("db", "up", LONG);
    announce(&d, "Unheard window");
    d.write_services(&format!(
        "{DB}[notify]\n{}{}",
        hook("hook", &hooked, &key),
        route(&["hook"])
    ));
    reload(&d);
    announce(&d, "Heard window");
    let got = wait_requests(&d, &hooked, 1, "the announcement at the webhook");
    assert!(got[0].contains("Heard window"), "{got:?}");
    assert!(channels_of(&d, "Unheard window").is_empty());
}

/// Every reload rebuilt every channel, even one whose settings had not changed: the SMTP
/// channel's idle connections were closed and the next mail opened a new one. A channel
/// whose config and secret values are the same is kept, with its connections; one that
/// changed is built anew.
#[test]
fn a_reload_keeps_an_unchanged_mail_channels_connections() {
    let sink = SmtpSink::start();
    let notify = |extra: &str| format!("[notify]\n{}{extra}\n{}", mail(&sink), route(&["mail"]));
    let d = daemon(&format!("{DB}{}", notify("")));
    d.wait_state("db", "up", LONG);
    // The client's address and port of the connection that brought the mail of `title`.
    let peer_of = |title: &str| {
        announce(&d, title);
        d.wait_until(&format!("the mail of {title} at the sink"), LONG, || {
            let m = sink.messages();
            m.into_iter()
                .find(|m| m.to_string().contains(title))
                .map(|m| m["peer"].clone())
        })
    };
    let first = peer_of("First window");
    assert!(first.is_array(), "{first}");
    // Something else changes: a service is added.
    d.write_services(&format!(
        "{DB}[services.other]\ncommand = \"sleep 1000\"\n\n{}",
        notify("")
    ));
    reload(&d);
    assert_eq!(
        peer_of("Second window"),
        first,
        "the mail went over the connection the channel had open"
    );
    // The channel itself changes: it is built anew, with connections of its own.
    d.write_services(&format!(
        "{DB}[services.other]\ncommand = \"sleep 1000\"\n\n{}",
        notify("timeout = \"20s\"\n")
    ));
    reload(&d);
    assert_ne!(peer_of("Third window"), first);
}
