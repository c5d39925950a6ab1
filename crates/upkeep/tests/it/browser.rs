//! The status page in a real browser (issue 17): Debian's chromium, headless, driven by
//! playwright-core (`tests/fixtures/browser/statuspage.mjs`, installed by scripts/test) against
//! the real daemon's public listener. The browser's zone is chromium's TZ, its language the
//! context's locale. Set UPKEEP_SCREENSHOTS=DIR to keep a full-page PNG per language there.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use upkeep_testkit::{TestDaemon, http};

use crate::statuspage::public_daemon;
use crate::{LONG, stderr, stdout};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/browser");

fn node(addr: SocketAddr, tz: &str, locale: &str, args: &[&str]) -> Command {
    assert!(
        std::path::Path::new(FIXTURE)
            .join("node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed in {FIXTURE}: run scripts/test (it runs npm ci there and installs chromium)"
    );
    let mut c = Command::new("node");
    c.arg(format!("{FIXTURE}/statuspage.mjs"))
        .arg(format!("http://{addr}/"))
        .args(args)
        .env("TZ", tz)
        .env("LOCALE", locale);
    c
}

/// What the page shows in a browser in `tz` and `locale`.
fn show(addr: SocketAddr, tz: &str, locale: &str, shot: &str) -> Value {
    let mut args = vec!["show"];
    let path = std::env::var("UPKEEP_SCREENSHOTS")
        .ok()
        .map(|d| format!("{d}/{shot}"));
    if let Some(p) = &path {
        args.push(p);
    }
    let out = node(addr, tz, locale, &args).output().unwrap();
    assert!(
        out.status.success(),
        "browser: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

fn wait_page(addr: SocketAddr, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + LONG;
    loop {
        let a = http(addr, "GET", "/", &[], b"").unwrap();
        if a.code == 200 && ok(&a.text()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}:\n{}",
            a.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn services(db: SocketAddr) -> String {
    format!(
        "[services.web]\ncommand = \"sleep 1000\"\ngroup = \"Shop\"\ndisplay_name = \"Web shop\"\n\n\
[services.db]\ndisplay_name = \"Database\"\nincident_after = \"0s\"\nprobes = [{{ kind = \"tcp\", addr = \"{db}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
    )
}

fn db_daemon() -> (TestDaemon, SocketAddr, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, addr) = public_daemon(&services(listener.local_addr().unwrap()));
    d.wait_state("db", "up", LONG);
    d.wait_state("web", "up", LONG);
    wait_page(addr, "all up", |p| p.contains("All systems operational"));
    (d, addr, listener)
}

#[test]
fn a_browser_shows_states_bars_an_incident_and_maintenance_at_its_own_local_time() {
    let (d, addr, listener) = db_daemon();
    drop(listener);
    d.wait_state("db", "down", LONG);
    // Maintenance the day after tomorrow at 02:00 UTC, with markup in its reason.
    let now = jiff::Timestamp::now();
    let day = now.as_second().div_euclid(86_400) + 2;
    let start = jiff::Timestamp::from_second(day * 86_400 + 2 * 3600).unwrap();
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        "Checkout upgrade",
        "--reason",
        "<script id=\"injected\">document.title='x'</script> new payment library",
        "--start",
        &start.to_string(),
        "--for",
        "1h",
        "--services",
        "web",
        "--alternative",
        "call us",
        "--follow-up",
        "ops@example.com",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_page(addr, "the incident and the window", |p| {
        p.contains("Incident on Database") && p.contains("Checkout upgrade")
    });

    let en = show(addr, "Asia/Tokyo", "en-US", "statuspage-en.png");
    assert_eq!(en["lang"], "en", "{en}");
    assert_eq!(en["banner"], "Some services are down", "{en}");
    let row = |v: &Value, name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {v}"))
    };
    assert_eq!(row(&en, "web")["state"], "Operational", "{en}");
    assert_eq!(row(&en, "web")["display"], "Web shop", "{en}");
    assert_eq!(row(&en, "db")["state"], "Down", "{en}");
    let today = now.strftime("%Y-%m-%d").to_string();
    for name in ["web", "db"] {
        let r = row(&en, name);
        assert!(r["bar_cells"].as_u64().unwrap() >= 1, "{r}");
        assert!(
            r["bar_titles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str().unwrap().starts_with(&today)),
            "today's cell for {name}: {r}"
        );
    }
    assert_eq!(en["incidents"][0], "Incident on Database", "{en}");
    // 02:00 UTC is 11:00 in Tokyo, on the same day.
    let tokyo = start.to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    let shown = en["windows"][0]["times"][0].as_str().unwrap();
    assert!(
        shown.contains("11:00")
            && shown.contains("GMT+9")
            && shown.contains(&tokyo.strftime("%b %-d").to_string()),
        "start in Tokyo time: {shown} ({en})"
    );
    assert!(
        en["windows"][0]["countdown"]
            .as_str()
            .unwrap()
            .starts_with("starts in "),
        "{en}"
    );
    assert!(
        en["reasons"][0]
            .as_str()
            .unwrap()
            .contains("<script id=\"injected\">"),
        "shown as text: {en}"
    );
    assert_eq!(en["injected"], false, "{en}");
    assert_eq!(
        en["problems"],
        serde_json::json!([]),
        "no script error, no CSP violation: {en}"
    );

    let zh = show(addr, "Asia/Shanghai", "zh-CN", "statuspage-zh.png");
    assert_eq!(zh["lang"], "zh-CN", "{zh}");
    assert_eq!(zh["banner"], "部分服务中断", "{zh}");
    assert_eq!(row(&zh, "db")["state"], "中断", "{zh}");
    let shown = zh["windows"][0]["times"][0].as_str().unwrap();
    assert!(
        shown.contains("10:00"),
        "start in Shanghai time: {shown} ({zh})"
    );
    assert!(
        zh["windows"][0]["heading"]
            .as_str()
            .unwrap()
            .contains("即将进行"),
        "{zh}"
    );
    assert_eq!(zh["problems"], serde_json::json!([]), "{zh}");
}

#[test]
fn the_page_in_a_browser_updates_itself_when_a_service_goes_down() {
    let (d, addr, listener) = db_daemon();
    let mut child = node(addr, "UTC", "en-US", &["live", "db", "Down"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "ready", "the browser did not load the page");
    drop(listener);
    d.wait_state("db", "down", LONG);
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "the row did not turn Down without a reload: {rest:?} {err}"
    );
    let v: Value = serde_json::from_str(&rest.join("")).unwrap();
    assert_eq!(v["banner"], "Some services are down", "{v}");
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
}

/// Runs the fixture in `mode` (`submit`, `visit`) at `url`; what the answer page shows.
fn browse(url: &str, locale: &str, args: &[&str]) -> Value {
    assert!(
        std::path::Path::new(FIXTURE)
            .join("node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed in {FIXTURE}: run scripts/test"
    );
    let out = Command::new("node")
        .arg(format!("{FIXTURE}/statuspage.mjs"))
        .arg(url)
        .args(args)
        .env("TZ", "UTC")
        .env("LOCALE", locale)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "browser: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

/// A daemon with `db` public, `secret` not, mail to `sink` and subscribers on.
fn forms_daemon(sink: &upkeep_testkit::SmtpSink) -> (TestDaemon, SocketAddr, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let (d, addr) = public_daemon(&format!(
        "[services.db]\ndisplay_name = \"Database\"\nprobes = [{{ kind = \"tcp\", addr = \"{db}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\
[services.web]\ncommand = \"sleep 1000\"\n\
[notify]\npublic_url = \"http://public/\"\n\
{}\
[notify.subscribers]\nnotice = [\"announced\"]\n",
        sink.ops_mail_channel()
    ));
    d.wait_state("db", "up", LONG);
    wait_page(addr, "the links to the forms", |p| {
        p.contains("href=\"/subscribe\"")
    });
    (d, addr, listener)
}

#[test]
fn a_browser_subscribes_by_the_form_and_confirms_with_the_mailed_link() {
    let sink = upkeep_testkit::SmtpSink::start();
    let (d, addr, _db) = forms_daemon(&sink);
    let done = browse(
        &format!("http://{addr}/subscribe"),
        "zh-CN",
        &["submit", "subscribe", "email=ann@example.com", "service=db"],
    );
    assert_eq!(done["status"], 202, "{done}");
    assert_eq!(done["lang"], "zh-CN", "{done}");
    assert_eq!(done["title"], "请查收邮件", "{done}");
    assert_eq!(done["problems"], serde_json::json!([]), "{done}");
    let mail = d.wait_until("the confirmation mail", LONG, || {
        sink.messages()
            .into_iter()
            .find(|m| m["to"] == "ann@example.com")
    });
    let text = upkeep_testkit::SmtpSink::text(&mail);
    let at = text
        .find("http://public/api/v1/subscribe/confirm?token=")
        .unwrap_or_else(|| panic!("no confirmation link in\n{text}"));
    let link: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let link = link.replacen("http://public", &format!("http://{addr}"), 1);
    // The link's page asks; its button confirms (a GET alone confirms nothing).
    let confirmed = browse(&link, "zh-CN", &["submit", "confirm"]);
    assert_eq!(confirmed["status"], 200, "{confirmed}");
    assert_eq!(confirmed["title"], "订阅已确认", "{confirmed}");
    let out = d.cli(&["subscribers", "ls", "--json"]);
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s[0]["email"], "ann@example.com", "{s}");
    assert_eq!(s[0]["services"], serde_json::json!(["db"]), "{s}");
    assert_eq!(s[0]["lang"], "zh-CN", "{s}");
    assert!(s[0]["confirmed"].is_string(), "{s}");
}

#[test]
fn feedback_typed_in_a_browser_is_kept_and_shown_as_text() {
    let sink = upkeep_testkit::SmtpSink::start();
    let (d, addr, _db) = forms_daemon(&sink);
    let message = "<script id=\"injected\">document.title='x'</script> the page is slow";
    let done = browse(
        &format!("http://{addr}/feedback"),
        "en-US",
        &[
            "submit",
            "feedback",
            &format!("message={message}"),
            "service=db",
            "email=ann@example.com",
        ],
    );
    assert_eq!(done["status"], 200, "{done}");
    assert_eq!(done["title"], "Thank you", "{done}");
    assert_eq!(done["injected"], false, "{done}");
    assert_eq!(done["problems"], serde_json::json!([]), "{done}");
    let out = d.cli(&["feedback", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["message"], message, "{list}");
    assert_eq!(list[0]["service"], "db", "{list}");
    let out = d.cli(&["feedback"]);
    assert!(stdout(&out).contains(message), "{}", stdout(&out));
}

/// An admin signs in with a real browser, schedules a maintenance window with the form (the
/// optional script shows the lead-time rule while they type), and it shows on the public page;
/// then opens an incident by hand with a first update. The `<script>` in the window's title is
/// text on both pages, and in the incident's title and update on its admin page. Set
/// UPKEEP_SCREENSHOTS=DIR for PNGs of two admin pages (docs/admin-en.png and
/// docs/admin-incidents-en.png are those).
#[test]
fn an_admin_schedules_a_window_in_a_browser_and_the_public_page_shows_it() {
    let admin = upkeep_testkit::free_addr();
    let public = upkeep_testkit::free_addr();
    let mut d = TestDaemon::prepare(
        crate::BIN,
        "[services.web]\ncommand = \"sleep 1000\"\ndisplay_name = \"Web shop\"\n",
    );
    d.add_daemon_keys(&format!(
        "listen = \"{admin}\"\npublic_listen = \"{public}\"\n"
    ));
    d.launch();
    d.wait_state("web", "up", LONG);
    let password = "correct horse battery";
    let out = d.cli_with_stdin(&["user", "add", "ada"], &format!("{password}\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Three days ahead at 02:00 UTC: past the 24 h notice a one-hour window needs.
    let day = jiff::Timestamp::now().as_second().div_euclid(86_400) + 3;
    let start = jiff::Timestamp::from_second(day * 86_400 + 2 * 3600).unwrap();
    let title = "<script id=\"injected\">document.title='x'</script> Checkout upgrade";
    let mut args = vec![
        format!("{FIXTURE}/admin.mjs"),
        format!("http://{admin}"),
        format!("http://{public}/"),
        "ada".into(),
        password.into(),
        start.strftime("%Y-%m-%dT%H:%M").to_string(),
        title.into(),
    ];
    if let Ok(dir) = std::env::var("UPKEEP_SCREENSHOTS") {
        args.push(format!("{dir}/admin-en.png"));
    }
    assert!(
        std::path::Path::new(FIXTURE)
            .join("node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed in {FIXTURE}: run scripts/test"
    );
    let out = Command::new("node").args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "browser: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let seen: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        seen["problems"],
        serde_json::json!([]),
        "no CSP violation: {seen}"
    );
    let rule = seen["rule"].as_str().unwrap();
    assert!(
        rule.contains("notice of 1 d") && rule.contains("enough notice"),
        "{seen}"
    );
    assert_eq!(seen["rows"][0], title, "the title is shown as text: {seen}");
    assert_eq!(
        seen["listed"][0], title,
        "the incident list names a hand-opened incident by its title: {seen}"
    );
    assert!(
        seen["headings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().contains(title)),
        "the public page shows it: {seen}"
    );
    assert_eq!(seen["injectedAdmin"], false, "{seen}");
    assert_eq!(seen["injectedPublic"], false, "{seen}");
    assert_eq!(
        seen["updates"][0], title,
        "the update is shown as text: {seen}"
    );
    assert_eq!(seen["injectedIncident"], false, "{seen}");
    let incidents = d.api_get("/api/v1/incidents");
    let notes = &d.api_get(&format!("/api/v1/incidents/{}", incidents[0]["id"]))["notes"];
    assert_eq!(notes["opened_by"]["name"], "ada", "{notes}");
    let windows = d.api_get("/api/v1/windows");
    assert_eq!(windows[0]["created_by"]["name"], "ada", "{windows}");
    assert_eq!(windows[0]["created_by"]["via"], "session", "{windows}");
    assert_eq!(windows[0]["start"], start.to_string(), "{windows}");
}
