//! The status page's forms and the public listener's hardening end to end (issue 17, items 2
//! and 6): the real daemon on `public_listen`, a real SMTP server (aiosmtpd), forms posted as a
//! browser without JavaScript posts them. Subscribe by the form (public services only, one
//! confirmation mail per address however often it is asked, services added by a reload
//! subscribable); feedback kept, limited per address, listed for operators as text; idle live
//! streams never take the page down; a megabyte body is a 413; a service still starting is
//! said so. (A second one-click unsubscribe: `subscribers::double_opt_in_...`.)

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::Value;
use upkeep_testkit::{Answer, SmtpSink, TestDaemon, free_addr, http, wait_page};

use crate::{BIN, LONG, stderr, stdout};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
/// What a browser sends with a form of the page it got from `upkeep_testkit::http`'s host.
const ORIGIN: (&str, &str) = ("Origin", "http://upkeep");

/// `db` (a tcp probe on the test's listener) and `secret` (public = false), with mail and
/// subscribers on.
fn config(sink: &SmtpSink, public: SocketAddr, db: &TcpListener, more: &str) -> String {
    format!(
        "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\
         [services.secret]\nprobes = [{{ kind = \"tcp\", addr = \"{}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\npublic = false\n\
         {more}\
         [notify]\npublic_url = \"http://{public}/\"\n\
         {}\
         [notify.subscribers]\nnotice = [\"announced\"]\n",
        db.local_addr().unwrap(),
        db.local_addr().unwrap(),
        sink.ops_mail_channel()
    )
}

/// A daemon of [`config`] (`more` services) on a free `public_listen`, `daemon_keys` in its
/// `[daemon]` table: (daemon, public_listen).
fn forms_daemon(
    sink: &SmtpSink,
    db: &TcpListener,
    more: &str,
    daemon_keys: &str,
) -> (TestDaemon, SocketAddr) {
    let public = free_addr();
    let mut d = TestDaemon::prepare(BIN, &config(sink, public, db, more))
        .with_daemon_keys(&format!("public_listen = \"{public}\"\n{daemon_keys}"));
    d.launch();
    (d, public)
}

fn post_form(public: SocketAddr, path: &str, body: &str, lang: Option<&str>) -> Answer {
    let mut headers = vec![FORM, ORIGIN];
    if let Some(l) = lang {
        headers.push(("Accept-Language", l));
    }
    http(public, "POST", path, &headers, body.as_bytes()).unwrap()
}

fn outbox_rows_to(d: &TestDaemon, to: &str) -> usize {
    d.store_sql(&format!(
        "SELECT COUNT(*) FROM outbox WHERE node = '{{node}}' AND recipient = '{to}'"
    ))[0][0]
        .parse()
        .unwrap()
}

#[test]
fn the_subscribe_form_drives_the_double_opt_in_for_public_services_only() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "", "");
    d.wait_state("db", "up", LONG);
    let main = wait_page(public, "/", "a link to the subscription form", |p| {
        p.contains("href=\"/subscribe\"")
    });
    assert!(!main.contains("<form"), "{main}");
    let page = wait_page(public, "/subscribe", "the subscription form", |p| {
        p.contains("action=\"/subscribe\"")
    });
    assert!(page.contains("name=\"service\" value=\"db\""), "{page}");
    assert!(
        !page.contains("secret"),
        "a hidden service is not offered:\n{page}"
    );

    // Bad input: a page saying what to fix, in the reader's language.
    let a = post_form(public, "/subscribe", "email=&lang=en", None);
    assert_eq!(a.code, 400, "{}", a.text());
    assert!(a.text().contains("Write the email address"), "{}", a.text());
    let a = post_form(
        public,
        "/subscribe",
        "email=not+an+address&lang=zh-CN",
        None,
    );
    assert_eq!(a.code, 400, "{}", a.text());
    assert!(
        a.text().contains("未能提交") && a.text().contains("not an email address"),
        "{}",
        a.text()
    );
    let a = post_form(
        public,
        "/subscribe",
        "email=ann%40example.com&service=%3Cb%3Esecret",
        None,
    );
    assert_eq!(a.code, 400, "{}", a.text());
    assert!(
        a.text()
            .contains("no public service named `&lt;b&gt;secret`"),
        "escaped:\n{}",
        a.text()
    );
    for (body, name) in [
        (
            r#"{"email": "ann@example.com", "services": ["secret"]}"#,
            "secret",
        ),
        (
            r#"{"email": "ann@example.com", "services": ["nope"]}"#,
            "nope",
        ),
    ] {
        let a = http(public, "POST", "/api/v1/subscribe", &[], body.as_bytes()).unwrap();
        assert_eq!(a.code, 400, "{}", a.text());
        let hint = a.json()["hint"].as_str().unwrap().to_owned();
        assert!(
            a.text()
                .contains(&format!("no public service named `{name}`"))
                && hint.contains("db")
                && !hint.contains("secret"),
            "the hint names public services only: {}",
            a.text()
        );
    }
    let a = http(
        public,
        "POST",
        "/subscribe",
        &[("Content-Type", "application/json")],
        br#"{"email": "ann@example.com"}"#,
    )
    .unwrap();
    assert_eq!(a.code, 415, "{}", a.text());
    assert_eq!(outbox_rows_to(&d, "ann@example.com"), 0, "nothing planned");

    // The form subscribes; the 202 page says the mail is on its way, once per 10 minutes.
    let a = post_form(
        public,
        "/subscribe",
        "email=ann%40Example.COM&service=db&lang=zh-CN",
        None,
    );
    assert_eq!(a.code, 202, "{}", a.text());
    assert!(
        a.text().contains("请查收邮件") && a.text().contains("10 分钟"),
        "{}",
        a.text()
    );
    assert_eq!(
        outbox_rows_to(&d, "ann@example.com"),
        1,
        "{:?}",
        d.store_sql("SELECT recipient, channel, kind, node FROM outbox")
    );
    // Asked again, by the form and by the API: the same answer, no second mail.
    let a = post_form(public, "/subscribe", "email=ann%40example.com", Some("en"));
    assert_eq!(a.code, 202, "{}", a.text());
    assert!(
        a.text()
            .contains("at most one confirmation mail every 10 minutes"),
        "{}",
        a.text()
    );
    let a = http(
        public,
        "POST",
        "/api/v1/subscribe",
        &[],
        br#"{"email": "ann@example.com"}"#,
    )
    .unwrap();
    assert_eq!(a.code, 202, "{}", a.text());
    assert!(a.json()["message"].as_str().unwrap().contains("10 minutes"));
    assert_eq!(
        outbox_rows_to(&d, "ann@example.com"),
        1,
        "one confirmation mail per address per 10 minutes"
    );
    let confirm = d.wait_until("the confirmation mail", LONG, || {
        sink.messages()
            .into_iter()
            .find(|m| m["to"] == "ann@example.com")
    });
    assert!(
        SmtpSink::text(&confirm).contains("确认"),
        "in the form's language"
    );
    let path = SmtpSink::link(&confirm, public, "/api/v1/subscribe/confirm?token=");
    let ok = http(public, "POST", &path, &[], b"").unwrap();
    assert_eq!(ok.code, 200, "{}", ok.text());
    let out = d.cli(&["subscribers", "ls", "--json"]);
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s[0]["services"], serde_json::json!(["db"]));
    assert!(s[0]["confirmed"].is_string(), "{s}");

    // A service added by a reload is offered and may be subscribed to.
    d.write_services(&config(
        &sink,
        public,
        &db,
        "[services.extra]\ncommand = \"sleep 1000\"\n",
    ));
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_page(public, "/subscribe", "the new service offered", |p| {
        p.contains("name=\"service\" value=\"extra\"")
    });
    let a = post_form(
        public,
        "/subscribe",
        "email=bob%40example.com&service=extra",
        None,
    );
    assert_eq!(a.code, 202, "{}", a.text());
    assert_eq!(outbox_rows_to(&d, "bob@example.com"), 1);
    drop(db);
}

#[test]
fn feedback_is_kept_limited_per_address_and_listed_as_text() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "", "");
    d.wait_state("db", "up", LONG);
    let page = wait_page(public, "/feedback", "the feedback form", |p| {
        p.contains("action=\"/feedback\"")
    });
    assert!(page.contains("<option value=\"db\">db</option>"), "{page}");

    let a = post_form(
        public,
        "/feedback",
        "message=%3Cscript%3Ealert(1)%3C%2Fscript%3E+checkout+is+slow&email=ann%40example.com&service=db&lang=en",
        None,
    );
    assert_eq!(a.code, 200, "{}", a.text());
    assert!(a.text().contains("Thank you"), "{}", a.text());
    // Bad input, each a 4xx page with a message (and each counted by the limit).
    let long = format!("message={}", "a".repeat(4001));
    for (body, code, want) in [
        ("message=+&lang=en", 400, "Write a message first"),
        (long.as_str(), 413, "at most 4000"),
        (
            "message=hi&service=secret",
            400,
            "no public service named `secret`",
        ),
        ("message=hi&email=nope", 400, "not an email address"),
    ] {
        let a = post_form(public, "/feedback", body, None);
        assert_eq!(a.code, code, "{body}: {}", a.text());
        assert!(a.text().contains(want), "{body}: {}", a.text());
    }
    // Five from one address in a burst, then 429 with Retry-After.
    let a = post_form(public, "/feedback", "message=again", Some("zh-CN"));
    assert_eq!(a.code, 429, "{}", a.text());
    assert!(
        a.head.to_ascii_lowercase().contains("retry-after"),
        "{}",
        a.head
    );
    assert!(a.text().contains("提交过于频繁"), "{}", a.text());

    // Operators read it: JSON as written, the table with the script as text.
    let out = d.cli(&["feedback", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        list[0]["message"],
        "<script>alert(1)</script> checkout is slow"
    );
    assert_eq!(list[0]["email"], "ann@example.com");
    assert_eq!(list[0]["service"], "db");
    assert_eq!(list[0]["address"], "127.0.0.1");
    let out = d.cli(&["feedback"]);
    assert!(
        stdout(&out).contains("<script>alert(1)</script> checkout is slow"),
        "{}",
        stdout(&out)
    );
    let api = d.api_get("/api/v1/feedback?limit=5");
    assert_eq!(api[0]["id"], list[0]["id"]);
    let (code, body) = d.try_api("GET", "/api/v1/feedback?limit=x", None).unwrap();
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    // Not on the public listener.
    let a = http(public, "GET", "/api/v1/feedback", &[], b"").unwrap();
    assert_eq!(a.code, 404, "{}", a.text());
    drop(db);
}

#[test]
fn idle_streams_cannot_take_the_page_down() {
    let (d, addr) = crate::statuspage::public_daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    d.wait_state("web", "up", LONG);
    wait_page(addr, "/", "the page", |p| p.contains("data-svc=\"web\""));
    // 512 streams opened and left idle (from 16 addresses: one holds 32 connections at most):
    // the first 256 are served, the rest refused.
    let mut open = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for i in 0..512 {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 10 + (i / 32) as u8);
        let mut s = upkeep_testkit::connect_from(from.into(), addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.starts_with("HTTP/1.1 200") {
            served += 1;
            open.push(r);
        } else {
            assert!(line.starts_with("HTTP/1.1 503"), "{line}");
            refused += 1;
        }
    }
    assert_eq!((served, refused), (256, 256));
    // The page and the API still answer, as often as asked.
    for _ in 0..20 {
        let a = http(addr, "GET", "/", &[], b"").unwrap();
        assert_eq!(a.code, 200, "{}", a.text());
    }
    let a = http(addr, "GET", "/api/v1/health", &[], b"").unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
}

#[test]
fn a_megabyte_body_is_a_413_and_what_was_sent_is_not_echoed() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "[services.web]\ncommand = \"sleep 1000\"\n", "");
    d.wait_state("web", "up", LONG);
    let big = format!(r#"{{"email": "{}@example.com"}}"#, "a".repeat(1 << 20));
    for (path, headers) in [
        ("/api/v1/subscribe", &[][..]),
        ("/subscribe", &[FORM][..]),
        ("/feedback", &[FORM][..]),
    ] {
        let a = http(public, "POST", path, headers, big.as_bytes()).unwrap();
        assert_eq!(a.code, 413, "{path}: {}", a.text());
        assert!(a.text().contains("larger than"), "{path}: {}", a.text());
        // A form past the listener's cap (64 KiB, refused unread) gets the form's page, not
        // the API's JSON (issue 17).
        assert_eq!(
            a.text().contains("<html"),
            path != "/api/v1/subscribe",
            "{path}: {}",
            a.text()
        );
    }
    // ...in the reader's language.
    let zh = post_form(
        public,
        "/feedback",
        &"message=".repeat(20_000),
        Some("zh-CN"),
    );
    assert_eq!(zh.code, 413, "{}", zh.text());
    assert!(zh.text().contains("表单超过"), "{}", zh.text());
    // What is shown back never carries a control character raw (issue 17: a NUL was).
    let nul = post_form(
        public,
        "/subscribe",
        "email=a%00%1b%5B2Jb%40example.com",
        None,
    );
    assert!((400..500).contains(&nul.code), "{}", nul.text());
    assert!(
        !nul.text().contains(['\0', '\u{1b}']) && nul.text().contains("a\\0\\u{1b}[2Jb"),
        "{}",
        nul.text()
    );
    // Through the control socket (2 MiB allowed): a megabyte signal name is refused without
    // being quoted back whole, control characters escaped.
    let name = format!("\u{1b}[2J{}", "X".repeat(1 << 20));
    let (code, body) = d
        .try_api(
            "POST",
            "/api/v1/services/web/signal",
            Some(&serde_json::json!({ "signal": name })),
        )
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(code, 400, "{text}");
    assert!(text.len() < 500, "{} bytes: {}", text.len(), &text[..500]);
    assert!(
        text.contains("is not a signal") && !text.contains('\u{1b}'),
        "{text}"
    );
    drop(db);
}

#[test]
fn the_headline_says_a_service_is_still_starting() {
    let (d, addr) = crate::statuspage::public_daemon(
        "[services.slow]\ncommand = \"sleep 1000\"\nready = { log = \"never printed\" }\nready_timeout = \"1h\"\n",
    );
    d.wait_state("slow", "starting", LONG);
    let page = wait_page(addr, "/", "the headline of a starting service", |p| {
        p.contains("data-svc=\"slow\"")
    });
    assert!(
        page.contains("class=\"banner k-starting\">Some services are still starting<"),
        "{page}"
    );
    assert!(
        !page.contains(">All systems operational<"),
        "(the script's table of headlines names it, the banner must not): {page}"
    );
    let zh = http(addr, "GET", "/?lang=zh-CN", &[], b"").unwrap();
    assert!(zh.text().contains("部分服务仍在启动中"), "{}", zh.text());
}

#[test]
fn the_feedback_list_needs_a_read_token_over_tcp() {
    let addr = free_addr();
    let mut d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n")
        .with_daemon_keys(&format!("listen = \"{addr}\"\n"));
    d.launch();
    let out = d.cli(&["token", "create", "reader", "--scope", "read", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = serde_json::from_str::<Value>(&stdout(&out)).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = http(addr, "GET", "/api/v1/feedback", &[], b"").unwrap();
    assert_eq!(a.code, 401, "{}", a.text());
    let auth = format!("Bearer {secret}");
    let a = http(
        addr,
        "GET",
        "/api/v1/feedback?limit=10",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
    assert_eq!(a.json(), serde_json::json!([]));
    // The form is public on this listener too; its message is then listed.
    let a = post_form(addr, "/feedback", "message=hello", None);
    assert_eq!(a.code, 200, "{}", a.text());
    let a = http(
        addr,
        "GET",
        "/api/v1/feedback",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(a.json()[0]["message"], "hello", "{}", a.text());
}

/// Behind a trusted reverse proxy (`trusted_proxies`), the client its `X-Forwarded-For` or
/// `Forwarded` names is the one limited and recorded; a peer that is not trusted is limited by
/// its own address whatever its headers say.
#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "", "trusted_proxies = [\"127.0.0.1\"]\n");
    d.wait_state("db", "up", LONG);
    wait_page(public, "/feedback", "the feedback form", |p| {
        p.contains("action=\"/feedback\"")
    });
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![FORM, ORIGIN];
        all.extend_from_slice(headers);
        http(public, "POST", "/feedback", &all, b"message=hello").unwrap()
    };
    // One client's burst of five, then its 429...
    let one = [("X-Forwarded-For", "1.2.3.4, 203.0.113.9")];
    for _ in 0..5 {
        assert_eq!(post(&one).code, 200);
    }
    assert_eq!(post(&one).code, 429);
    // ...which does not touch another client behind the same proxy (RFC 7239 this time).
    assert_eq!(
        post(&[("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]).code,
        200
    );
    let out = d.cli(&["feedback", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let addresses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["address"].as_str())
        .collect();
    assert_eq!(addresses.len(), 6, "{list}");
    assert_eq!(addresses[0], "2001:db8::7", "newest first: {list}");
    assert!(addresses[1..].iter().all(|a| *a == "203.0.113.9"), "{list}");
}

/// Break-it, session 10: the feedback form took a post with no Origin, so another site's
/// page could send messages in its visitors' names. It must come from this site, by its
/// Origin or, without one, its Referer, as the admin pages' forms must.
#[test]
fn feedback_from_another_site_or_with_no_origin_is_refused() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "", "");
    d.wait_state("db", "up", LONG);
    wait_page(public, "/feedback", "the feedback form", |p| {
        p.contains("action=\"/feedback\"")
    });
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![FORM];
        all.extend_from_slice(headers);
        http(public, "POST", "/feedback", &all, b"message=hello").unwrap()
    };
    for (headers, lang) in [
        (&[][..], "en"),
        (&[("Origin", "http://evil.example")][..], "en"),
        (&[("Referer", "http://evil.example/upkeep")][..], "zh-CN"),
    ] {
        let mut with_lang = headers.to_vec();
        with_lang.push(("Accept-Language", lang));
        let a = post(&with_lang);
        assert_eq!(a.code, 403, "{headers:?}: {}", a.text());
        let want = if lang == "en" {
            "feedback form of this status page"
        } else {
            "留言表单"
        };
        assert!(a.text().contains(want), "{headers:?}: {}", a.text());
    }
    let a = post(&[("Referer", "http://upkeep/feedback")]);
    assert_eq!(a.code, 200, "{}", a.text());
    let out = d.cli(&["feedback", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// Without `trusted_proxies`, forwarding headers are the client's word and change nothing.
#[test]
fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let sink = SmtpSink::start();
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, public) = forms_daemon(&sink, &db, "", "");
    d.wait_state("db", "up", LONG);
    wait_page(public, "/feedback", "the feedback form", |p| {
        p.contains("action=\"/feedback\"")
    });
    for i in 0..6 {
        let forged = format!("198.51.100.{i}");
        let a = http(
            public,
            "POST",
            "/feedback",
            &[FORM, ORIGIN, ("X-Forwarded-For", &forged)],
            b"message=hello",
        )
        .unwrap();
        assert_eq!(a.code, if i < 5 { 200 } else { 429 }, "post {i}");
    }
    let out = d.cli(&["feedback", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|f| f["address"] == "127.0.0.1"),
        "{list}"
    );
}
