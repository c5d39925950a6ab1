//! The OpenAPI document (issue 17, item 5): what `GET /api/v1/openapi.json` serves is a valid
//! OpenAPI 3.1 document (checked by Python's openapi-spec-validator, installed by
//! scripts/test), and every operation it lists is one the daemon really serves: over TCP
//! without a token, a public one is answered by its handler and a gated one is refused with a
//! 401 (the gate runs only for a route that exists: an unknown one is the router's own 404);
//! the socket-only ones are answered over the socket. That no API route is served without
//! being described is checked beside the router (upkeep-web `openapi.rs`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use serde_json::Value;
use upkeep_testkit::{TestDaemon, free_addr, http};

use crate::{LONG, stderr};

/// A path with each `{param}` filled with something of the right shape.
fn filled(path: &str) -> String {
    path.replace("{name}", "web")
        .replace("{target}", "web")
        .replace("{action}", "restart")
        .replace("{id}", "999")
        .replace("{email}", "nobody@example.com")
}

/// The router's own answer to a path or a method it does not have.
fn is_fallback(code: u16, body: &str) -> bool {
    code == 405 || (code == 404 && body.contains("no API route"))
}

/// A daemon serving `listen` on a free port, with one service up: (daemon, listen).
fn web_on_tcp() -> (TestDaemon, SocketAddr) {
    let addr = free_addr();
    let mut d = TestDaemon::prepare(crate::BIN, "[services.web]\ncommand = \"sleep 1000\"\n")
        .with_daemon_keys(&format!("listen = \"{addr}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    (d, addr)
}

#[test]
fn the_openapi_document_validates_and_every_operation_in_it_is_served() {
    let (d, addr) = web_on_tcp();

    // The same document over TCP without a token and over the socket.
    let a = http(addr, "GET", "/api/v1/openapi.json", &[], b"").unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
    let doc: Value = a.json();
    assert_eq!(d.api_get("/api/v1/openapi.json"), doc);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let mut validator = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with openapi-spec-validator (scripts/test installs it)");
    validator
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = validator.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}",
        stderr(&out)
    );

    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let method = method.to_uppercase();
            let tag = op["tags"][0].as_str().unwrap();
            let url = filled(path);
            // A follow (logs, streams) is never asked for: the first answer is enough.
            if tag == "users" {
                // Served on the control socket only: over TCP it does not exist.
                let tcp = http(addr, &method, &url, &[], b"{").unwrap();
                assert_eq!(tcp.code, 404, "{method} {url} over TCP: {}", tcp.text());
                let (code, body) = d
                    .try_api(&method, &url, Some(&serde_json::json!({"password": ""})))
                    .unwrap();
                let body = String::from_utf8_lossy(&body);
                assert!(!is_fallback(code, &body), "{method} {url}: {code} {body}");
            } else if tag == "public" {
                if url.ends_with("/stream") {
                    continue; // The page's event stream: never ends; /api/v1/stream is in statuspage tests.
                }
                let body: &[u8] = if method == "GET" { b"" } else { b"{" };
                let a = http(addr, &method, &url, &[], body).unwrap();
                assert!(
                    !is_fallback(a.code, &a.text()),
                    "{method} {url}: {} {}",
                    a.code,
                    a.text()
                );
            } else {
                let a = http(addr, &method, &url, &[], b"").unwrap();
                assert_eq!(
                    a.code,
                    401,
                    "{method} {url} ({tag}) without a token: {}",
                    a.text()
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    // The list is the router's: the routes every other test uses are in it.
    for must in [
        "GET /api/v1/services",
        "POST /api/v1/services/{target}/{action}",
        "POST /api/v1/windows",
        "PUT /api/v1/incidents/{id}/postmortem",
        "GET /api/v1/subscribers",
        "GET /metrics",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not in {checked:#?}"
        );
    }
    assert_eq!(d.state("web"), "up");
}

/// The status and Content-Type of the answer to `GET path` (with `auth`, a bearer token),
/// from its head alone: a stream's body never ends.
fn head_of(addr: SocketAddr, path: &str, auth: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (code, content_type)
}

/// Break-it, session 8: the streams and the logs were sent without the Content-Type the
/// document promised. Every GET operation the daemon answers with a 200 (streams and log
/// follows included, read from their head) says the Content-Type its 200 names.
#[test]
fn every_get_is_answered_with_the_content_type_the_document_names() {
    let (d, addr) = web_on_tcp();
    let out = d.cli(&["token", "create", "doc", "--scope", "read", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = read["secret"].as_str().unwrap().to_owned();
    let doc = http(addr, "GET", "/api/v1/openapi.json", &[], b"")
        .unwrap()
        .json();
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        if op["tags"][0] == "users" {
            continue; // The socket's own.
        }
        let promised: Vec<&str> = op["responses"]["200"]["content"]
            .as_object()
            .map(|c| c.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut urls = vec![filled(path)];
        if path.ends_with("/logs") {
            urls.push(format!("{}?follow=true", filled(path)));
        }
        for url in urls {
            let (code, content_type) = head_of(addr, &url, &read);
            if code != 200 {
                continue; // `{id}` 999 and the like: no such thing, a JSON error.
            }
            assert!(
                promised.contains(&content_type.as_str()),
                "GET {url}: sent {content_type:?}, the document names {promised:?}"
            );
            checked.push(url);
        }
    }
    for must in [
        "/api/v1/stream",
        "/api/v1/events/stream",
        "/api/v1/live/services",
        "/api/v1/services/web/logs",
        "/api/v1/services/web/logs?follow=true",
        "/api/v1/services",
        "/metrics",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not in {checked:#?}"
        );
    }
}
