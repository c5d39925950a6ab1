//! Requests that stall and streams that last (break-it, session 8): 520 `POST
//! /api/v1/subscribe` with a `Content-Length` and no body, from 130 loopback addresses, held
//! `listen` and `public_listen` for good (both answered 503 to everyone), and 520 held event
//! streams with a read token did the same to `listen`. Now a request must arrive whole
//! within `daemon.request_timeout` (a 408 and the connection closed), a connection whose
//! body is still coming gives way to a newcomer on a full listener like an idle one, and
//! every long-lived answer holds one of the listener's 256 stream permits, never a
//! connection permit. Real daemon, real sockets from many 127.0.0.x addresses.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use upkeep_testkit::{TestDaemon, connect_from, free_addr, http_from};

use crate::{LONG, stderr, stdout};

/// A daemon with both TCP listeners and `daemon_keys` in its `[daemon]` table: (daemon,
/// listen, public_listen).
fn daemon_with(daemon_keys: &str) -> (TestDaemon, SocketAddr, SocketAddr) {
    let (api, public) = (free_addr(), free_addr());
    let mut d = TestDaemon::prepare(crate::BIN, "[services.web]\ncommand = \"sleep 1000\"\n")
        .with_daemon_keys(&format!(
            "listen = \"{api}\"\npublic_listen = \"{public}\"\n{daemon_keys}"
        ));
    d.launch();
    d.wait_state("web", "up", LONG);
    (d, api, public)
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A subscription whose head says 100 bytes of body and whose body never comes.
const STALLED: &[u8] =
    b"POST /api/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em";

/// Everything the daemon sends on `s` until it closes it (a minute at most).
fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the daemon did not close the connection within a minute: {e}"),
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the daemon has closed `s`.
fn closed_by_daemon(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_request_whose_body_never_comes_is_answered_408_on_every_listener() {
    let (d, api, public) = daemon_with("request_timeout = \"1s\"\n");
    let token = {
        let out = d.cli(&["token", "create", "ci", "--scope", "write", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["secret"].as_str().unwrap().to_owned()
    };
    let gated = format!(
        "POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 10\r\n\r\n{{"
    );
    let trickled_form =
        b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 50\r\n\r\nemail=a".to_vec();
    for (addr, request) in [
        (public, STALLED.to_vec()),
        (api, STALLED.to_vec()),
        (api, gated.into_bytes()),
        (public, trickled_form),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&request).unwrap();
        let answer = read_to_close(&mut s);
        let first = String::from_utf8_lossy(&request[..30]).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{addr} {first}: {answer}"
        );
        assert!(
            answer.contains("did not arrive whole within 1s"),
            "{addr} {first}: {answer}"
        );
    }
    // A whole request is answered as ever.
    let a = http_from(loopback(2), public, "GET", "/api/v1/health", &[], b"").unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
}

#[test]
fn stalled_bodies_from_many_addresses_give_way_to_a_whole_request() {
    let limit = upkeep_testkit::raise_open_files();
    assert!(
        limit >= 5000,
        "the open-file limit is {limit}: raise the hard limit to run this"
    );
    // A deadline far away: only giving way can free a stalled connection's place.
    let (d, api, public) = daemon_with("request_timeout = \"5m\"\n");
    for addr in [public, api] {
        // 30 addresses × 32 subscriptions whose body never comes: more than the 512
        // connections a listener holds.
        let mut stalled: Vec<TcpStream> = Vec::new();
        for host in 10..40 {
            for _ in 0..32 {
                let mut s = connect_from(loopback(host), addr).unwrap();
                s.write_all(STALLED).unwrap();
                stalled.push(s);
            }
        }
        d.wait_until(
            "the daemon to shed the stalled connections past 512",
            LONG,
            || {
                let shed = stalled.iter().filter(|s| closed_by_daemon(s)).count();
                (shed >= stalled.len() - 512).then_some(())
            },
        );
        let a = http_from(loopback(2), addr, "GET", "/api/v1/health", &[], b"").unwrap();
        assert_eq!(a.code, 200, "{addr}: {}", a.text());
        let whole = br#"{"email": "someone@example.com"}"#;
        let a = http_from(loopback(3), addr, "POST", "/api/v1/subscribe", &[], whole).unwrap();
        // No [notify.subscribers]: the daemon takes none, and says so.
        assert_eq!(a.code, 404, "{addr}: {}", a.text());
        assert!(a.text().contains("takes no subscriptions"), "{}", a.text());
    }
    let out = d.cli(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Opens `path` on `addr` from `from` with `auth` and reads the answer's head: (the stream,
/// its head, lowercased).
fn open(from: IpAddr, addr: SocketAddr, path: &str, auth: &str) -> (TcpStream, String) {
    let mut s = connect_from(from, addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).to_lowercase())
}

#[test]
fn every_long_lived_stream_is_under_one_cap_and_plain_requests_still_get_in() {
    let (d, api, _public) = daemon_with("max_connections_per_address = 300\n");
    let read = {
        let out = d.cli(&["token", "create", "dash", "--scope", "read", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["secret"].as_str().unwrap().to_owned()
    };
    let kinds = [
        "/api/v1/events/stream",
        "/api/v1/live/services",
        "/api/v1/services/web/logs?follow=true",
        "/api/v1/stream",
    ];
    // The listener's 256 stream permits, taken by the four kinds of stream together.
    let mut held = Vec::new();
    for i in 0..256 {
        let path = kinds[i % kinds.len()];
        let (s, head) = open(loopback(10), api, path, &read);
        assert!(
            head.starts_with("http/1.1 200"),
            "stream {i} {path}: {head}"
        );
        held.push(s);
    }
    // Past the cap, each kind of stream is refused and its connection closed...
    for path in kinds {
        let (mut s, head) = open(loopback(11), api, path, &read);
        assert!(head.starts_with("http/1.1 503"), "{path}: {head}");
        assert!(head.contains("retry-after: 30"), "{path}: {head}");
        let body = read_to_close(&mut s);
        assert!(body.contains("too many live streams"), "{path}: {body}");
    }
    // ...and plain requests are answered.
    let a = http_from(
        loopback(12),
        api,
        "GET",
        "/api/v1/services",
        &[("Authorization", &format!("Bearer {read}"))],
        b"",
    )
    .unwrap();
    assert_eq!(a.code, 200, "{}", a.text());
    // A stream that closes gives its permit back.
    drop(held.remove(253)); // a live list: it writes every 2 s, so its end is seen
    d.wait_until("a stream permit to come back", LONG, || {
        let (_s, head) = open(loopback(13), api, kinds[0], &read);
        head.starts_with("http/1.1 200").then_some(())
    });
}
