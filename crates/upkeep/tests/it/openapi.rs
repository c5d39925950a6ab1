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
use upkeep_testkit::{TestDaemon, free_port, http};

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

#[test]
fn the_openapi_document_validates_and_every_operation_in_it_is_served() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut d = TestDaemon::prepare(crate::BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    let text = std::fs::read_to_string(&d.config).unwrap().replacen(
        "[daemon]\n",
        &format!("[daemon]\nlisten = \"{addr}\"\n"),
        1,
    );
    std::fs::write(&d.config, text).unwrap();
    d.launch();
    d.wait_state("web", "up", LONG);

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
