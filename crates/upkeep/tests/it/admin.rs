//! The admin pages end to end (issue 17, items 4 and 6): a user made with `upkeep user add`
//! (password on stdin), signing in at `/admin/login` on the daemon's `listen` over real TCP,
//! with a small cookie jar standing in for a browser. A good password opens a session, a bad
//! one does not, and too many attempts on one account are refused whatever the password; a
//! form POST without the session's CSRF token, with a wrong one, or from another origin is a
//! 403 and does nothing; an action that passes is recorded with the user's name; a session
//! ends at logout and when its user is removed. Incidents are opened, updated (the update
//! goes out as a notice), resolved and given a post-mortem from their pages, and feedback with
//! a script in it is listed as text.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use upkeep_testkit::{Answer, SmtpSink, TestDaemon, free_addr, http};

use crate::{LONG, stderr};

const PASSWORD: &str = "correct horse battery";
/// The host the test client names (`upkeep_testkit::http` sends `Host: upkeep`).
const ORIGIN: &str = "http://upkeep";

fn admin_daemon() -> (TestDaemon, SocketAddr) {
    admin_daemon_with("")
}

/// The admin daemon with `more` config after its service.
fn admin_daemon_with(more: &str) -> (TestDaemon, SocketAddr) {
    let addr = free_addr();
    let mut d = TestDaemon::prepare(
        crate::BIN,
        &format!("[services.web]\ncommand = [\"sleep\", \"1000\"]\n{more}"),
    );
    d.add_daemon_keys(&format!("listen = \"{addr}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    (d, addr)
}

fn add_user(d: &TestDaemon, name: &str) {
    let out = d.cli_with_stdin(&["user", "add", name], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A browser's cookie jar and the requests it sends.
struct Jar {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Jar {
    fn new(addr: SocketAddr) -> Jar {
        Jar {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let a = http(self.addr, method, path, &headers, body).unwrap();
        // The head is lowercased; our cookies' names and hex values are lowercase anyway.
        for line in a.head.lines() {
            if let Some(v) = line.strip_prefix("set-cookie: ") {
                let pair = v.split(';').next().unwrap();
                let (k, val) = pair.split_once('=').unwrap();
                if val.is_empty() || v.contains("max-age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.into(), val.into());
                }
            }
        }
        a
    }

    fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], b"")
    }

    /// A form POST from this site's pages.
    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_from(path, form, Some(ORIGIN))
    }

    fn post_from(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut headers = vec![];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        self.send("POST", path, &headers, body.as_bytes())
    }

    fn login(&mut self, user: &str, password: &str) -> Answer {
        let page = self.get("/admin/login");
        assert_eq!(page.code, 200, "{}", page.text());
        let token = csrf_of(&page.text());
        self.post(
            "/admin/login",
            &[("csrf", &token), ("user", user), ("password", password)],
        )
    }

    /// The session's CSRF token, from a page's forms.
    fn csrf(&mut self) -> String {
        let page = self.get("/admin/services");
        assert_eq!(page.code, 200, "{}", page.text());
        csrf_of(&page.text())
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn location(a: &Answer) -> &str {
    a.head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or("")
}

#[test]
fn login_good_bad_and_throttled() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    // A password too short, or a name that is not one, is refused.
    let short = d.cli_with_stdin(&["user", "add", "bob"], "short\n");
    assert!(!short.status.success());
    assert!(
        stderr(&short).contains("shorter than"),
        "{}",
        stderr(&short)
    );
    let named = d.cli_with_stdin(&["user", "add", "<b>"], &format!("{PASSWORD}\n"));
    assert_eq!(named.status.code(), Some(2), "{}", stderr(&named));

    let mut jar = Jar::new(addr);
    // Not signed in: the pages send to the login form.
    let a = jar.get("/admin/services");
    assert_eq!((a.code, location(&a)), (303, "/admin/login"), "{}", a.head);

    let bad = jar.login("ada", "wrong password!");
    assert_eq!(bad.code, 401, "{}", bad.text());
    assert!(bad.text().contains("Wrong user name or password"));
    assert!(!jar.cookies.contains_key("upkeep_session"));
    let unknown = jar.login("nobody", PASSWORD);
    assert_eq!(unknown.code, 401);

    let good = jar.login("ada", PASSWORD);
    assert_eq!(
        (good.code, location(&good)),
        (303, "/admin/services"),
        "{}",
        good.text()
    );
    let set = good
        .head
        .lines()
        .find(|l| l.starts_with("set-cookie: upkeep_session="))
        .expect("a session cookie");
    for attr in ["httponly", "samesite=strict", "path=/admin", "max-age="] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("secure"), "plain HTTP: not Secure ({set})");
    let page = jar.get("/admin/services");
    assert_eq!(page.code, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("data-service=\"web\""), "{html}");
    assert!(html.contains("ada"), "the user's name is shown");
    let csp = page
        .head
        .lines()
        .find(|l| l.starts_with("content-security-policy:"))
        .expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Behind a proxy that says the client came over HTTPS, the cookie is Secure.
    let mut tls = Jar::new(addr);
    let form = tls.send(
        "GET",
        "/admin/login",
        &[("X-Forwarded-Proto", "https")],
        b"",
    );
    let token = csrf_of(&form.text());
    let body = serde_urlencoded::to_string([
        ("csrf", token.as_str()),
        ("user", "ada"),
        ("password", PASSWORD),
    ])
    .unwrap();
    let a = tls.send(
        "POST",
        "/admin/login",
        &[("Origin", "https://upkeep"), ("X-Forwarded-Proto", "https")],
        body.as_bytes(),
    );
    assert_eq!(a.code, 303, "{}", a.text());
    assert!(
        a.head
            .lines()
            .any(|l| l.starts_with("set-cookie: upkeep_session=") && l.contains("; secure")),
        "{}",
        a.head
    );

    let users = d.cli(&["user", "ls", "--json"]);
    let users: serde_json::Value = serde_json::from_slice(&users.stdout).unwrap();
    assert_eq!(users[0]["name"], "ada", "{users}");
    assert_eq!(users[0]["sessions"], 2, "{users}");
    assert!(!users.to_string().contains("argon2"), "no hash is listed");

    // Throttled: the account has had 3 attempts (1 bad, 2 good); 2 more bad ones spend its
    // burst of 5, and then even the right password is refused, with Retry-After.
    assert_eq!(jar.login("ada", "wrong again!!").code, 401);
    assert_eq!(jar.login("ada", "and again!!!!").code, 401);
    let held = jar.login("ada", PASSWORD);
    assert_eq!(held.code, 429, "{}", held.text());
    assert!(held.head.contains("retry-after: "), "{}", held.head);
    assert!(held.text().contains("Too many attempts"), "{}", held.text());
    // Another account from the same address is not held up by ada's quota.
    add_user(&d, "bob");
    assert_eq!(Jar::new(addr).login("bob", PASSWORD).code, 303);
}

#[test]
fn a_form_without_the_sessions_token_or_from_elsewhere_is_refused() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let token = jar.csrf();
    let pid = d.pid("web").unwrap();
    let restart = "/admin/services/web/restart";
    let refused = [
        jar.post(restart, &[]),
        jar.post(restart, &[("csrf", "0000")]),
        jar.post(restart, &[("csrf", &token[..token.len() - 1])]),
        jar.post_from(restart, &[("csrf", &token)], Some("http://evil.example")),
        jar.post_from(restart, &[("csrf", &token)], None),
    ];
    for a in &refused {
        assert_eq!(a.code, 403, "{}", a.text());
    }
    // A login form from another site is refused too, and one without its own token.
    let mut other = Jar::new(addr);
    let page = other.get("/admin/login");
    let login_token = csrf_of(&page.text());
    let form = [
        ("csrf", login_token.as_str()),
        ("user", "ada"),
        ("password", PASSWORD),
    ];
    assert_eq!(
        other
            .post_from("/admin/login", &form, Some("http://evil.example"))
            .code,
        403
    );
    let no_token = [("user", "ada"), ("password", PASSWORD)];
    assert_eq!(other.post("/admin/login", &no_token).code, 403);
    assert_eq!(d.pid("web"), Some(pid), "nothing was restarted");

    // With the token, from this site: done, and recorded with the user's name.
    let a = jar.post(restart, &[("csrf", &token)]);
    assert_eq!(
        (a.code, location(&a)),
        (303, "/admin/services"),
        "{}",
        a.text()
    );
    d.wait_new_pid("web", pid, LONG);
    let events = d.events("web");
    let asked = events
        .iter()
        .rfind(|(k, _)| k == "restart_requested")
        .expect("a restart_requested event");
    let by = &asked.1["by"]["principal"];
    assert_eq!(by["name"], "ada", "{events:?}");
    assert_eq!(by["via"], "session", "{events:?}");
    assert!(
        by["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{by}"
    );
    // ...and shown on the page of who did what.
    let audit = jar.get("/admin/audit").text();
    assert!(
        audit.contains("restart_requested") && audit.contains(">ada<"),
        "{audit}"
    );

    // A window scheduled too late for the lead-time rule is refused with the earliest start.
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2))
        .strftime("%Y-%m-%dT%H:%M")
        .to_string();
    let late = jar.post(
        "/admin/windows",
        &[
            ("csrf", &token),
            ("kind", "maintenance"),
            ("title", "<script>alert(1)</script>"),
            ("reason", "disks"),
            ("start", &soon),
            ("tz", "UTC"),
            ("duration", "1h"),
            ("service", "web"),
        ],
    );
    assert_eq!(late.code, 422, "{}", late.text());
    assert!(late.text().contains("notice"), "{}", late.text());
    let forced = jar.post(
        "/admin/windows",
        &[
            ("csrf", &token),
            ("kind", "maintenance"),
            ("title", "<script>alert(1)</script>"),
            ("reason", "disks"),
            ("start", &soon),
            ("tz", "UTC"),
            ("duration", "1h"),
            ("service", "web"),
            ("force_why", "the disk is failing"),
        ],
    );
    assert_eq!(forced.code, 303, "{}", forced.text());
    let list = jar.get("/admin/windows").text();
    assert!(!list.contains("<script>alert"), "{list}");
    assert!(list.contains("&lt;script&gt;alert(1)"), "{list}");
    let windows = d.api_get("/api/v1/windows");
    assert_eq!(windows[0]["created_by"]["name"], "ada", "{windows}");
    assert_eq!(windows[0]["forced_why"], "the disk is failing", "{windows}");
    // Edited from its page (the form comes filled in), then cancelled from its button.
    let id = windows[0]["id"].as_i64().unwrap();
    let edit = jar.get(&format!("/admin/windows/{id}"));
    assert_eq!(edit.code, 200, "{}", edit.text());
    assert!(edit.text().contains("value=\"disks\""), "{}", edit.text());
    let a = jar.post(
        &format!("/admin/windows/{id}"),
        &[
            ("csrf", &token),
            ("kind", "repair"),
            ("title", "New disks"),
            ("reason", "disks"),
            ("start", &soon),
            ("tz", "UTC"),
            ("duration", "90m"),
            ("service", "web"),
            ("force_why", "the disk is failing"),
        ],
    );
    assert_eq!(a.code, 303, "{}", a.text());
    let edited = d.api_get(&format!("/api/v1/windows/{id}"));
    assert_eq!(
        (edited["title"].as_str(), edited["kind"].as_str()),
        (Some("New disks"), Some("repair")),
        "{edited}"
    );
    let a = jar.post(&format!("/admin/windows/{id}/cancel"), &[("csrf", &token)]);
    assert_eq!(a.code, 303, "{}", a.text());
    assert_eq!(
        d.api_get(&format!("/api/v1/windows/{id}"))["status"],
        "cancelled"
    );
}

#[test]
fn the_pages_show_logs_the_outbox_and_subscribers_in_the_readers_language() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let service = jar.get("/admin/services/web");
    assert_eq!(service.code, 200, "{}", service.text());
    assert!(
        service.text().contains("id=\"stdout\""),
        "{}",
        service.text()
    );
    let missing = jar.get("/admin/services/nope");
    assert_eq!(missing.code, 404, "{}", missing.text());
    for page in [
        "/admin/outbox",
        "/admin/subscribers",
        "/admin/audit",
        "/admin/windows",
    ] {
        let a = jar.get(page);
        assert_eq!(a.code, 200, "{page}: {}", a.text());
    }
    assert!(
        jar.get("/admin/subscribers")
            .text()
            .contains("not configured")
    );
    let zh = jar.send(
        "GET",
        "/admin/services",
        &[("Accept-Language", "zh-CN,zh;q=0.9")],
        b"",
    );
    assert!(
        zh.text().contains("lang=\"zh-CN\"") && zh.text().contains("重启"),
        "{}",
        zh.text()
    );
    // The JSON API and the public routes keep their own gates: a session is not a token.
    let api = jar.get("/api/v1/services");
    assert_eq!(api.code, 401, "{}", api.text());
}

#[test]
fn a_session_ends_at_logout_and_when_its_user_is_removed() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let (mut one, mut two) = (Jar::new(addr), Jar::new(addr));
    assert_eq!(one.login("ada", PASSWORD).code, 303);
    assert_eq!(two.login("ada", PASSWORD).code, 303);
    let (t1, t2) = (one.csrf(), two.csrf());
    let stale = one.cookies.clone();

    let out = one.post("/admin/logout", &[("csrf", &t1)]);
    assert_eq!(
        (out.code, location(&out)),
        (303, "/admin/login"),
        "{}",
        out.text()
    );
    // The browser dropped its cookie; one that kept a copy is refused all the same.
    one.cookies = stale;
    let a = one.get("/admin/services");
    assert_eq!((a.code, location(&a)), (303, "/admin/login"));
    let pid = d.pid("web").unwrap();
    assert_eq!(
        one.post("/admin/services/web/stop", &[("csrf", &t1)]).code,
        403
    );
    assert_eq!(d.pid("web"), Some(pid));

    // The other session lives on until ada is removed.
    assert_eq!(two.get("/admin/services").code, 200);
    let rm = d.cli(&["user", "rm", "ada"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let a = two.get("/admin/services");
    assert_eq!((a.code, location(&a)), (303, "/admin/login"));
    assert_eq!(
        two.post("/admin/services/web/stop", &[("csrf", &t2)]).code,
        403
    );
    // Added again under the same name, ada does not get the old session back.
    add_user(&d, "ada");
    assert_eq!(two.get("/admin/services").code, 303);
    assert_eq!(d.pid("web"), Some(pid), "nothing was stopped");
    // A new password ends the sessions of the old one.
    let mut three = Jar::new(addr);
    assert_eq!(three.login("ada", PASSWORD).code, 303);
    let out = d.cli_with_stdin(&["user", "passwd", "ada"], "another long password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(three.get("/admin/services").code, 303);
    assert_eq!(Jar::new(addr).login("ada", PASSWORD).code, 401);
}

/// Issue 18: a 10 MiB password line on stdin ended `upkeep user add` with SIGPIPE (exit 141,
/// no word said) when the daemon refused the body. The CLI reads at most a kibibyte of it and
/// refuses a longer one, saying so; the daemon refuses one too, whoever sends it.
#[test]
fn issue_18_a_password_longer_than_a_kibibyte_is_refused_with_a_reason() {
    let (d, _) = admin_daemon();
    let huge = format!("{}\n", "x".repeat(10 << 20));
    for verb in ["add", "passwd"] {
        let out = d.cli_with_stdin(&["user", verb, "ada"], &huge);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the password is longer than 1024 bytes"),
            "{verb}: {}",
            stderr(&out)
        );
    }
    let fits = d.cli_with_stdin(&["user", "add", "ada"], &format!("{}\n", "y".repeat(1024)));
    assert!(fits.status.success(), "{}", stderr(&fits));
    let body = serde_json::json!({ "name": "bob", "password": "z".repeat(1025) });
    let (code, text) = d.try_api("POST", "/api/v1/users", Some(&body)).unwrap();
    let text = String::from_utf8_lossy(&text);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("longer than 1024 bytes"), "{text}");
}

/// Issue 16 (break-it): the window form read `2026-12-01T10:00-05:00` as 10:00 in the chosen
/// zone (14 h off with Asia/Tokyo) and refused `...Z`; it took a window in 1970 with a forced
/// reason, and the zones `Factory` and `posixrules`. Now it reads times as the CLI does.
#[test]
fn issue_16_the_window_form_keeps_an_offset_and_refuses_absurd_windows() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let token = jar.csrf();
    // Three days ahead: past the lead-time rule's notice for a short window.
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(72);
    let at = jiff::Timestamp::from_second(at.as_second() / 60 * 60).unwrap();
    let new_york = at.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-5)));
    let mut post = |title: &str, start: &str, tz: &str, why: &str| {
        jar.post(
            "/admin/windows",
            &[
                ("csrf", &token),
                ("kind", "maintenance"),
                ("title", title),
                ("reason", "disks"),
                ("start", start),
                ("tz", tz),
                ("duration", "1h"),
                ("service", "web"),
                ("force_why", why),
            ],
        )
    };
    let offset = new_york.strftime("%Y-%m-%dT%H:%M%:z").to_string();
    let a = post("offset", &offset, "Asia/Tokyo", "");
    assert_eq!(a.code, 303, "{offset}: {}", a.text());
    let zulu = at.strftime("%Y-%m-%dT%H:%MZ").to_string();
    let a = post("zulu", &zulu, "Asia/Tokyo", "");
    assert_eq!(a.code, 303, "{zulu}: {}", a.text());
    let windows = d.api_get("/api/v1/windows");
    let start_of = |title: &str| {
        windows
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["title"] == title)
            .map(|w| w["start"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no window {title} in {windows}"))
    };
    assert_eq!(start_of("offset"), at.to_string(), "{windows}");
    assert_eq!(start_of("zulu"), at.to_string(), "{windows}");
    assert_eq!(windows[0]["tz"], "Asia/Tokyo", "{windows}");

    // Refused whatever the reason given: over before it is announced, years off, a zone of
    // no place, a wall time the zone skips.
    for (start, tz, want) in [
        ("1970-01-01T00:00", "UTC", "over before it is announced"),
        ("2206-01-01T00:00", "UTC", "more than two years ahead"),
        (&zulu[..16], "Factory", "not a time zone of a place"),
        (&zulu[..16], "posixrules", "not a time zone of a place"),
    ] {
        let a = post("absurd", start, tz, "the disk is failing");
        assert_eq!(a.code, 422, "{start} {tz}: {}", a.text());
        assert!(a.text().contains(want), "{start} {tz}: {}", a.text());
    }
    assert_eq!(d.api_get("/api/v1/windows").as_array().unwrap().len(), 2);
}

/// The form's redirect target's last segment, as a number: the incident a form wrote to.
fn id_of(a: &Answer) -> i64 {
    let to = location(a);
    assert!(
        to.starts_with("/admin/incidents/"),
        "{}\n{}",
        a.head,
        a.text()
    );
    to.rsplit('/').next().unwrap().parse().unwrap()
}

#[test]
fn incidents_are_written_from_their_pages_and_each_write_goes_through_the_daemon() {
    let sink = SmtpSink::start();
    let (d, addr) = admin_daemon_with(&format!("[notify]\n{}", sink.ops_mail_channel()));
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    // Not signed in: both pages send to the login form, and a form is refused.
    for page in ["/admin/incidents", "/admin/incidents/1", "/admin/feedback"] {
        let a = jar.get(page);
        assert_eq!((a.code, location(&a)), (303, "/admin/login"), "{page}");
    }
    assert_eq!(
        jar.post("/admin/incidents", &[("service", "web"), ("title", "x")])
            .code,
        403
    );
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let token = jar.csrf();
    let list = jar.get("/admin/incidents");
    assert_eq!(list.code, 200, "{}", list.text());
    assert!(
        list.text().contains("href=\"/admin/incidents\""),
        "in the nav"
    );
    assert!(
        list.text().contains("href=\"/admin/feedback\""),
        "in the nav"
    );

    // Opened by hand (the incident a third party causes), with a title that is a script.
    let title = "<script>alert(1)</script> payments provider down";
    let a = jar.post(
        "/admin/incidents",
        &[
            ("csrf", &token),
            ("service", "web"),
            ("title", title),
            ("priority", "P2"),
            ("message", ""),
        ],
    );
    assert_eq!(a.code, 303, "{}", a.text());
    let id = id_of(&a);
    let page = format!("/admin/incidents/{id}");
    let list = jar.get("/admin/incidents").text();
    assert!(list.contains(&format!("data-incident=\"{id}\"")), "{list}");
    let api = d.api_get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(api["notes"]["title"], title, "{api:#}");
    assert_eq!(api["notes"]["opened_by"]["name"], "ada", "{api:#}");

    // An update without the session's token, with a wrong one, or from elsewhere: refused,
    // and nothing written.
    let path = format!("{page}/updates");
    let update = [("status", "identified"), ("message", "ignored")];
    let wrong = [("csrf", "0000"), update[0], update[1]];
    let right = [("csrf", token.as_str()), update[0], update[1]];
    for a in [
        jar.post(&path, &update),
        jar.post(&path, &wrong),
        jar.post_from(&path, &right, Some("http://evil.example")),
    ] {
        assert_eq!(a.code, 403, "{}", a.text());
    }
    // A status that is not one, and an empty message, are refused with a reason.
    let bad = jar.post(
        &path,
        &[("csrf", &token), ("status", "fixed"), ("message", "x")],
    );
    assert_eq!(bad.code, 422, "{}", bad.text());
    assert!(
        bad.text().contains("`fixed` is not a status"),
        "{}",
        bad.text()
    );
    let empty = jar.post(
        &path,
        &[("csrf", &token), ("status", "identified"), ("message", " ")],
    );
    assert_eq!(empty.code, 422, "{}", empty.text());
    assert!(empty.text().contains("message: must not be empty"));
    let api = d.api_get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(api["notes"]["updates"], serde_json::json!([]), "{api:#}");

    // The update: in the API with ada's name, out as a notice, on the page as text.
    let message = "<script>alert(2)</script> the provider confirms an outage";
    let a = jar.post(
        &path,
        &[
            ("csrf", &token),
            ("status", "identified"),
            ("message", message),
        ],
    );
    assert_eq!((a.code, id_of(&a)), (303, id), "{}", a.text());
    let api = d.api_get(&format!("/api/v1/incidents/{id}"));
    let updates = api["notes"]["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{api:#}");
    assert_eq!(updates[0]["status"], "identified");
    assert_eq!(updates[0]["message"], message);
    assert_eq!(updates[0]["by"]["name"], "ada");
    assert_eq!(updates[0]["by"]["via"], "session");
    let notice = d.wait_until("the update's notice in the outbox", LONG, || {
        let rows = d.api_get("/api/v1/notify?limit=100");
        rows.as_array()?
            .iter()
            .find(|n| n["kind"] == "incident_updated")
            .cloned()
    });
    assert_eq!(notice["recipient"], "ops@example.com", "{notice}");
    let outbox = jar.get("/admin/outbox").text();
    assert!(
        outbox.contains(&format!("data-notice=\"{}\"", notice["id"])),
        "{outbox}"
    );
    let html = jar.get(&page).text();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(2)&lt;&#x2f;script&gt; the provider confirms"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(1)"), "the title: {html}");

    // The post-mortem: four whys are refused (the API's rule), five are kept and read back.
    let pm = format!("{page}/postmortem");
    let mut form = vec![
        ("csrf", token.as_str()),
        ("summary", "Payments failed for 20 minutes"),
        ("root_cause", "A certificate expired at the provider"),
        ("why", "the provider's API refused TLS"),
        ("why", "its certificate had expired"),
        ("why", "its renewal job had failed"),
        ("why", "nobody watched the renewal job"),
    ];
    let four = jar.post(&pm, &form);
    assert_eq!(four.code, 422, "{}", four.text());
    assert!(four.text().contains("5 whys"), "{}", four.text());
    form.push(("why", "its alerts went to a list nobody reads"));
    form.push((
        "actions",
        "watch their status page\r\n\r\nalert on TLS errors\r\n",
    ));
    let a = jar.post(&pm, &form);
    assert_eq!(a.code, 303, "{}", a.text());
    let written = &d.api_get(&format!("/api/v1/incidents/{id}"))["notes"]["postmortem"];
    assert_eq!(written["summary"], "Payments failed for 20 minutes");
    assert_eq!(
        written["root_cause"],
        "A certificate expired at the provider"
    );
    assert_eq!(written["whys"].as_array().unwrap().len(), 5, "{written}");
    assert_eq!(written["whys"][4], "its alerts went to a list nobody reads");
    assert_eq!(
        written["actions"],
        serde_json::json!(["watch their status page", "alert on TLS errors"])
    );
    assert_eq!(written["by"]["name"], "ada");
    // The editor comes back filled in.
    let html = jar.get(&page).text();
    assert!(
        html.contains("value=\"its alerts went to a list nobody reads\""),
        "{html}"
    );

    // Resolved from its button, with a last word; then it takes no update, only its post-mortem.
    let a = jar.post(
        &format!("{page}/resolve"),
        &[("csrf", &token), ("message", "the provider renewed it")],
    );
    assert_eq!(a.code, 303, "{}", a.text());
    let api = d.api_get(&format!("/api/v1/incidents/{id}"));
    assert!(api["incident"]["resolved"].is_string(), "{api:#}");
    assert_eq!(api["notes"]["resolved_by"]["name"], "ada", "{api:#}");
    let late = jar.post(
        &path,
        &[("csrf", &token), ("status", "monitoring"), ("message", "x")],
    );
    assert_eq!(late.code, 409, "{}", late.text());
    assert!(late.text().contains("resolved"), "{}", late.text());
    let html = jar.get(&page).text();
    assert!(!html.contains("id=\"update\""), "no update form: {html}");
    assert!(html.contains("id=\"postmortem\""), "{html}");
    let list = jar.get("/admin/incidents").text();
    assert!(list.contains("No incident is open."), "{list}");
    // Each write is on the page of who did what, with ada's name.
    let audit = jar.get("/admin/audit").text();
    assert!(
        audit.matches("incident_noted").count() >= 4 && audit.contains(">ada<"),
        "{audit}"
    );
    // An unknown incident, or one that is not a number, is a 404.
    assert_eq!(jar.get("/admin/incidents/999").code, 404);
    assert_eq!(jar.get("/admin/incidents/x").code, 404);
    assert_eq!(jar.get("/admin/incidents?page=x").code, 422);
    // In Chinese for a zh-CN reader.
    let zh = jar.send("GET", &page, &[("Accept-Language", "zh-CN")], b"");
    assert!(zh.text().contains("事后复盘"), "{}", zh.text());
}

#[test]
fn feedback_is_listed_newest_first_with_a_script_as_text() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let form = [form, ("Origin", ORIGIN)];
    for body in [
        "message=first",
        "message=%3Cscript%3Ealert(1)%3C%2Fscript%3E+checkout+is+slow&email=ann%40example.com&service=web",
    ] {
        let a = http(addr, "POST", "/feedback", &form, body.as_bytes()).unwrap();
        assert_eq!(a.code, 200, "{}", a.text());
    }
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let a = jar.get("/admin/feedback");
    assert_eq!(a.code, 200, "{}", a.text());
    let html = a.text();
    assert!(!html.contains("<script>alert"), "{html}");
    let script = html
        .find("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; checkout is slow")
        .expect("the message as text");
    let first = html.find(">first<").expect("the first message");
    assert!(script < first, "newest first: {html}");
    for want in ["ann@example.com", ">web<", ">127.0.0.1<"] {
        assert!(html.contains(want), "{want}: {html}");
    }
    assert!(!html.contains("rel=\"next\""), "one page: {html}");
    let bad = jar.get("/admin/feedback?page=0");
    assert_eq!(bad.code, 422, "{}", bad.text());
    assert!(bad.text().contains("not a page number"), "{}", bad.text());
    drop(d);
}

/// Every admin list reads `?page=` with one parser: a page that is not a number is a 422 page
/// naming it, the windows list too (it answered 200 to `?page=abc`, ignoring it).
#[test]
fn every_admin_list_refuses_a_page_that_is_not_a_number() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    for list in [
        "incidents",
        "feedback",
        "outbox",
        "subscribers",
        "audit",
        "windows",
    ] {
        let bad = jar.get(&format!("/admin/{list}?page=abc"));
        assert_eq!(bad.code, 422, "{list}: {}", bad.text());
        assert!(
            bad.text().contains("`abc` is not a page number"),
            "{list}: {}",
            bad.text()
        );
        let first = jar.get(&format!("/admin/{list}?page=1"));
        assert_eq!(first.code, 200, "{list}: {}", first.text());
    }
    drop(d);
}

/// Break-it, session 8: a 100 kB login form was a 400 ("the form did not arrive whole"),
/// where every other form over the listener's cap is a 413.
#[test]
fn a_login_form_larger_than_the_listener_takes_is_a_413() {
    let (_d, addr) = admin_daemon();
    let mut jar = Jar::new(addr);
    let page = jar.get("/admin/login");
    let token = csrf_of(&page.text());
    let huge = "x".repeat(100_000);
    let a = jar.post(
        "/admin/login",
        &[("csrf", &token), ("user", "ada"), ("password", &huge)],
    );
    assert_eq!(a.code, 413, "{}", a.text());
    assert!(a.text().contains("larger than 64 KiB"), "{}", a.text());
}

/// Break-it, session 10: the incident forms' refusals for a body too large (413) and one
/// not whole in time (408) were the API's JSON, where every other refusal of the admin
/// pages is a page.
#[test]
fn an_incident_form_too_large_or_too_slow_is_refused_with_a_page() {
    use std::io::{Read, Write};
    let addr = free_addr();
    let mut d = TestDaemon::prepare(
        crate::BIN,
        "[services.web]\ncommand = [\"sleep\", \"1000\"]\n",
    );
    d.add_daemon_keys(&format!("listen = \"{addr}\"\nrequest_timeout = \"1s\"\n"));
    d.launch();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let token = jar.csrf();
    let huge = "x".repeat(100_000);
    let a = jar.post(
        "/admin/incidents/1/updates",
        &[
            ("csrf", &token),
            ("status", "identified"),
            ("message", &huge),
        ],
    );
    assert_eq!(a.code, 413, "{}", a.text());
    assert!(a.head.contains("content-type: text/html"), "{}", a.head);
    assert!(a.text().contains("larger than"), "{}", a.text());

    // A body that never comes whole.
    let cookie = jar
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /admin/incidents/1/updates HTTP/1.1\r\nHost: upkeep\r\nOrigin: {ORIGIN}\r\n\
         Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\ncsrf="
    )
    .unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("content-type: text/html"), "{answer}");
    assert!(
        answer.contains("did not arrive whole within 1s"),
        "{answer}"
    );
}

/// The text of `html` from the heading that contains `from` to the next heading.
fn section<'a>(html: &'a str, from: &str) -> &'a str {
    let start = html.find(from).unwrap_or_else(|| panic!("{from}: {html}"));
    let rest = &html[start..];
    let end = rest[1..].find("<h2").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// Rows `1..=n` of a list, made in the store from outside as SQL both engines take.
fn numbered(n: u32, insert: &str) -> String {
    format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) {insert}"
    )
}

#[test]
fn every_admin_list_pages_past_its_200th_page_and_open_incidents_are_found_however_old() {
    let (d, addr) = admin_daemon();
    add_user(&d, "ada");
    let mut jar = Jar::new(addr);
    assert_eq!(jar.login("ada", PASSWORD).code, 303);
    let token = jar.csrf();
    let opened = jar.post(
        "/admin/incidents",
        &[
            ("csrf", &token),
            ("service", "web"),
            ("title", "Payments provider down"),
        ],
    );
    assert_eq!(opened.code, 303, "{}", opened.text());
    // 10,101 feedback messages: page 203 is the first one (the pages stopped at 200).
    d.store_sql(&numbered(
        10_101,
        "INSERT INTO feedback (node, message, lang, created_ms)
         SELECT '{node}', 'message ' || i, 'en', 1000 * i FROM n",
    ));
    // An outage that began before 600 others ended, still open.
    d.store_sql(
        "INSERT INTO incidents (node, service, started_ms, opened_ms, resolved_ms, reason)
         VALUES ('{node}', 'web', 1000, 1000, NULL, 'the long outage')",
    );
    d.store_sql(&numbered(
        600,
        "INSERT INTO incidents (node, service, started_ms, opened_ms, resolved_ms, reason)
         SELECT '{node}', 'web', 10000 * i, 10000 * i, 10000 * i + 1, 'short ' || i FROM n",
    ));
    // Keys unique to this node: the end-to-end tests share one PostgreSQL database.
    d.store_sql(&numbered(
        60,
        "INSERT INTO outbox (node, channel, recipient, kind, subject, notice, idem_key, state,
                             due_ms, next_ms, created_ms)
         SELECT '{node}', 'mail', 'ops' || i || '@example.com', 'announced', 'window:1', '{}',
                '{node}-key-' || i, 'sent', i, i, i FROM n",
    ));
    // 60 actions of a person whose name the detail records (not marked interventions: found
    // by the principal), numbered past the daemon's own events.
    d.store_sql(&numbered(
        60,
        "INSERT INTO events (node, seq, at_ms, service, kind, detail)
         SELECT '{node}', 1000000 + i, 1000 * i, 'web', 'stopped',
                '{\"kind\":\"stopped\",\"by\":{\"principal\":{\"name\":\"bot' || i
                || '\",\"via\":\"socket\",\"from\":null}}}' FROM n",
    ));
    let a = jar.get("/admin/feedback?page=203");
    assert_eq!(a.code, 200, "{}", a.text());
    let html = a.text();
    assert!(html.contains(">message 1<"), "{html}");
    assert!(!html.contains(">message 2<"), "{html}");
    assert!(html.contains("href=\"/admin/feedback?page=202\""), "{html}");
    assert!(!html.contains("rel=\"next\""), "the last page: {html}");
    let page = jar.get("/admin/feedback?page=202").text();
    assert!(
        page.contains(">message 51<") && page.contains(">message 2<"),
        "{page}"
    );

    // The open incident is on every page of the list, though 600 are newer; page 13 is
    // the oldest one.
    let list = jar.get("/admin/incidents").text();
    let open = section(&list, "<h2>Open incidents");
    assert!(open.contains("the long outage"), "{open}");
    assert!(
        open.contains("Payments provider down"),
        "a hand-opened title: {open}"
    );
    let last = jar.get("/admin/incidents?page=13");
    assert_eq!(last.code, 200, "{}", last.text());
    let last = last.text();
    let recent = section(&last, "<h2>Recent incidents");
    assert!(
        recent.contains("the long outage") && recent.contains("short 1<"),
        "{recent}"
    );
    assert!(!last.contains("rel=\"next\""), "{last}");

    // The outbox and who did what (subscribers need [notify]; the store suite pages them):
    // 50 a page, newest first, the next page linked.
    for (path, first, second) in [
        ("outbox", ">ops60@example.com<", ">ops10@example.com<"),
        ("audit", ">bot60<", ">bot10<"),
    ] {
        let one = jar.get(&format!("/admin/{path}")).text();
        assert!(
            one.contains(first) && !one.contains(second),
            "{path}: {one}"
        );
        assert!(
            one.contains(&format!("href=\"/admin/{path}?page=2\"")),
            "{path}: {one}"
        );
        let two = jar.get(&format!("/admin/{path}?page=2"));
        assert_eq!(two.code, 200, "{path}: {}", two.text());
        let two = two.text();
        assert!(
            two.contains(second) && !two.contains(first),
            "{path}: {two}"
        );
    }
    let bad = jar.get("/admin/audit?page=0");
    assert_eq!(bad.code, 422, "{}", bad.text());
}
