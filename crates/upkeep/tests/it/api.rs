//! The API over TCP (`daemon.listen`, `daemon.public_listen`) and its bearer tokens, and the
//! named operator of every action (issue 15, items 8 and 6): a real daemon, real sockets, the
//! real CLI making and revoking tokens.

use std::net::SocketAddr;

use serde_json::Value;
use upkeep_testkit::{
    Answer, TestDaemon, bearer, connect_from, free_addr, free_port, http, http_from,
};

use crate::{LONG, stderr, stdout};

/// A daemon with `daemon_keys` added to its `[daemon]` table.
fn daemon_with(daemon_keys: &str, services: &str) -> TestDaemon {
    let mut d = TestDaemon::prepare(crate::BIN, services);
    d.add_daemon_keys(daemon_keys);
    d.launch();
    d
}

/// A daemon serving the API on a TCP port; its address.
fn tcp_daemon(services: &str) -> (TestDaemon, SocketAddr) {
    let addr = free_addr();
    let d = daemon_with(&format!("listen = \"{addr}\"\n"), services);
    (d, addr)
}

/// Makes a token with the CLI; its secret.
fn token(d: &TestDaemon, name: &str, scope: &str) -> String {
    let out = d.cli(&["token", "create", name, "--scope", scope, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

fn call(addr: SocketAddr, method: &str, path: &str, secret: Option<&str>) -> Answer {
    let auth = secret.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(addr, method, path, &headers, b"").unwrap()
}

/// The name the daemon's user has (the tests run the CLI as the same user).
fn my_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid:{}", nix::unistd::geteuid()))
}

const SLEEPER: &str = "[services.web]\ncommand = \"sleep 1000\"\n";

#[test]
fn tokens_are_made_listed_and_revoked_without_a_daemon() {
    let d = TestDaemon::prepare(crate::BIN, SLEEPER);
    let out = d.cli(&["token", "create", "ci", "--scope", "read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text
        .split_whitespace()
        .find(|w| w.starts_with("upk_"))
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_owned();
    assert_eq!(secret.len(), 68, "{text}");
    assert!(
        d.cli(&["token", "create", "deploy", "--scope", "write"])
            .status
            .success()
    );

    // Listed by name and scope; never the secret, in the list or in the file.
    let ls = stdout(&d.cli(&["token", "ls"]));
    assert!(ls.contains("ci") && ls.contains("read"), "{ls}");
    assert!(ls.contains("deploy") && ls.contains("write"), "{ls}");
    assert!(!ls.contains(&secret[4..]), "{ls}");
    let file = d.data_dir.join("tokens.json");
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            .contains(&secret[4..])
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let json: Value = serde_json::from_str(&stdout(&d.cli(&["token", "ls", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2, "{json}");
    assert!(json[0].get("sha256").is_none(), "{json}");

    // A name taken, a name unknown, a name that is a path: usage errors that say so.
    let out = d.cli(&["token", "create", "ci", "--scope", "write"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    let out = d.cli(&["token", "revoke", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no token named"), "{}", stderr(&out));
    for bad in ["a/b", "../x", "-x", ""] {
        let out = d.cli(&["token", "create", bad, "--scope", "read"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    let out = d.cli(&["token", "create", "x", "--scope", "admin"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = d.cli(&["token", "revoke", "ci"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ls = stdout(&d.cli(&["token", "ls"]));
    assert!(!ls.contains("ci ") && ls.contains("deploy"), "{ls}");
}

#[test]
fn tcp_routes_need_a_token_of_their_scope_and_a_revoke_works_at_once() {
    let (d, addr) = tcp_daemon(SLEEPER);
    d.wait_state("web", "up", LONG);
    let read = token(&d, "dashboard", "read");
    let write = token(&d, "deployer", "write");

    // No token: 401 with a Bearer challenge, in JSON.
    let a = call(addr, "GET", "/api/v1/services", None);
    assert_eq!(a.code, 401, "{}", a.text());
    assert!(a.head.contains("www-authenticate: bearer"), "{}", a.head);
    assert!(a.json()["error"].as_str().unwrap().contains("token"));
    // A bad token: 401, invalid_token.
    let bad = format!("upk_{}", "0".repeat(64));
    for secret in [bad.as_str(), "nonsense", &read[..30]] {
        let a = call(addr, "GET", "/api/v1/services", Some(secret));
        assert_eq!(a.code, 401, "{secret}: {}", a.text());
        assert!(a.head.contains("error=\"invalid_token\""), "{}", a.head);
    }
    // Read: the GET routes, /metrics among them.
    let a = call(addr, "GET", "/api/v1/services", Some(&read));
    assert_eq!(a.code, 200, "{}", a.text());
    assert_eq!(a.json()[0]["name"], "web");
    assert_eq!(call(addr, "GET", "/metrics", Some(&read)).code, 200);
    assert_eq!(call(addr, "GET", "/metrics", None).code, 401);
    let who = call(addr, "GET", "/api/v1/whoami", Some(&read)).json();
    assert_eq!(
        (who["name"].as_str(), who["via"].as_str()),
        (Some("dashboard"), Some("tcp"))
    );
    // ... but not the actions: 403.
    let a = call(addr, "POST", "/api/v1/services/web/restart", Some(&read));
    assert_eq!(a.code, 403, "{}", a.text());
    assert!(a.head.contains("insufficient_scope"), "{}", a.head);
    assert!(a.json()["error"].as_str().unwrap().contains("dashboard"));

    // Write: the action, named after the token, with the client's address.
    let pid = d.pid("web").unwrap();
    let a = call(addr, "POST", "/api/v1/services/web/restart", Some(&write));
    assert_eq!(a.code, 200, "{}", a.text());
    let by = &a.json()["by"];
    assert_eq!(by["name"], "deployer", "{by}");
    assert_eq!(by["via"], "tcp", "{by}");
    assert!(
        by["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{by}"
    );
    d.wait_new_pid("web", pid, LONG);
    let events = d.events("web");
    let requested = events
        .iter()
        .rfind(|(k, _)| k == "restart_requested")
        .expect("a restart_requested event");
    assert_eq!(
        requested.1["by"]["principal"]["name"], "deployer",
        "{events:?}"
    );
    // Write implies read.
    assert_eq!(call(addr, "GET", "/api/v1/events", Some(&write)).code, 200);

    // Revoked: refused from the next request on, without a restart of the daemon.
    assert!(d.cli(&["token", "revoke", "deployer"]).status.success());
    let a = call(addr, "POST", "/api/v1/services/web/stop", Some(&write));
    assert_eq!(a.code, 401, "{}", a.text());
    assert_eq!(d.state("web"), "up");
    // A new token of the same name is another secret: the old one stays refused.
    let again = token(&d, "deployer", "write");
    assert_eq!(
        call(addr, "GET", "/api/v1/services", Some(&write)).code,
        401
    );
    assert_eq!(
        call(addr, "GET", "/api/v1/services", Some(&again)).code,
        200
    );
}

#[test]
fn bad_input_over_tcp_is_a_4xx_with_a_json_message() {
    let (d, addr) = tcp_daemon(SLEEPER);
    let write = token(&d, "ops", "write");
    let (k, v) = bearer(&write);
    let auth = [(k, v.as_str())];
    let cases: [(&str, &str, Vec<u8>, u16); 8] = [
        ("POST", "/api/v1/services", b"{not json".to_vec(), 400),
        (
            "POST",
            "/api/v1/services",
            br#"{"name":"a/b","command":["x"]}"#.to_vec(),
            400,
        ),
        ("POST", "/api/v1/services/web/explode", Vec::new(), 400),
        ("POST", "/api/v1/services/%FF/start", Vec::new(), 400),
        (
            "POST",
            "/api/v1/drills",
            br#"{"service":"web","fault":"meteor"}"#.to_vec(),
            400,
        ),
        ("GET", "/api/v1/events?limit=-1", Vec::new(), 400),
        // Larger than any body of the API: refused before a route sees it.
        ("POST", "/api/v1/services", vec![b'x'; 1 << 20], 413),
        ("GET", "/api/v1/nosuch", Vec::new(), 404),
    ];
    for (method, path, body, code) in cases {
        let a = http(addr, method, path, &auth, &body).unwrap();
        assert_eq!(a.code, code, "{method} {path}: {}", a.text());
        assert!(
            a.json()["error"].is_string(),
            "{method} {path}: {}",
            a.text()
        );
    }
    // Absurd Authorization headers: refused, never a 500, and the daemon goes on.
    for value in [
        format!("Bearer {}", "a".repeat(4000)),
        "Bearer \u{e9}t\u{e9}".to_owned(),
        "Bearer ../../etc/passwd".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
    ] {
        let a = http(
            addr,
            "GET",
            "/api/v1/services",
            &[("Authorization", &value)],
            b"",
        )
        .unwrap();
        assert_eq!(a.code, 401, "{value:.40}: {}", a.text());
    }
    // Control characters are not HTTP: hyper refuses the request itself.
    let a = http(
        addr,
        "GET",
        "/api/v1/services",
        &[("Authorization", "Bearer \u{7f}\u{1}")],
        b"",
    )
    .unwrap();
    assert_eq!(a.code, 400, "{}", a.text());
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let a = http(
        addr,
        "GET",
        "/api/v1/services",
        &[("Authorization", &huge)],
        b"",
    )
    .unwrap();
    assert_eq!(a.code, 431, "{}", a.text());
    assert_eq!(
        call(addr, "GET", "/api/v1/services", Some(&write)).code,
        200
    );
}

/// Break-it, session 10: a body that did not fit was answered with serde's "Failed to
/// deserialize the JSON body into the target type: ..." first. The answer says what is
/// wrong in our words, then which field and how.
#[test]
fn a_body_that_does_not_fit_is_refused_naming_the_field_in_our_words() {
    let (d, addr) = tcp_daemon(SLEEPER);
    let write = token(&d, "ops", "write");
    let (k, v) = bearer(&write);
    let auth = [(k, v.as_str())];
    let cases: [(&[u8], &str, &str); 4] = [
        (
            br#"{"name":"a","command":"sleep"}"#,
            "a field of the request body is wrong or missing: command: invalid type: string",
            "a sequence",
        ),
        (
            br#"{"command":["x"]}"#,
            "a field of the request body is wrong or missing: ",
            "missing field `name`",
        ),
        (
            br#"{"name":"a","command":["x"],"colour":"red"}"#,
            "a field of the request body is wrong or missing: ",
            "unknown field `colour`",
        ),
        (
            b"{not json",
            "the request body is not valid JSON: ",
            "line 1 column 2",
        ),
    ];
    for (body, starts, says) in cases {
        let a = http(addr, "POST", "/api/v1/services", &auth, body).unwrap();
        assert!(a.code == 400 || a.code == 422, "{}", a.text());
        let error = a.json()["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(starts), "{error}");
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("Failed to"), "{error}");
    }
}

#[test]
fn public_routes_reveal_no_command_path_env_or_log() {
    let marker = format!("mark{}", upkeep_testkit::unique());
    let services = format!(
        "[services.web]\ncommand = [\"sh\", \"-c\", \"echo log-{marker}; echo err-{marker} >&2; exec sleep 1000 # cmd-{marker}\"]\nenv = {{ SECRET_{marker} = \"env-{marker}\" }}\n"
    );
    let (d, addr) = tcp_daemon(&services);
    d.wait_state("web", "up", LONG);
    d.wait_until("the service's log line", LONG, || {
        stdout(&d.cli(&["logs", "web"]))
            .contains(&format!("log-{marker}"))
            .then_some(())
    });
    for path in ["/api/v1/health", "/api/v1/status"] {
        let a = call(addr, "GET", path, None);
        assert_eq!(a.code, 200, "{path}: {}", a.text());
        let text = a.text();
        assert!(!text.contains(&marker), "{path} reveals: {text}");
        let data_dir = d.data_dir.display().to_string();
        assert!(
            !text.contains(&data_dir),
            "{path} reveals the data dir: {text}"
        );
        assert!(
            !text.contains("sleep") && !text.contains("\"pid\""),
            "{path}: {text}"
        );
    }
    let status = call(addr, "GET", "/api/v1/status", None).json();
    assert_eq!(status[0]["name"], "web");
    assert_eq!(status[0]["state"], "up");
    let row = status[0].as_object().unwrap();
    let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["name", "since", "state"], "{status}");
    // The route that does show it is behind a token.
    assert_eq!(call(addr, "GET", "/api/v1/services/web", None).code, 401);
    assert_eq!(
        call(addr, "GET", "/api/v1/services/web/logs", None).code,
        401
    );
}

#[test]
fn public_listen_serves_only_the_public_routes() {
    let (api, public): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let d = daemon_with(
        &format!("listen = \"{api}\"\npublic_listen = \"{public}\"\n"),
        SLEEPER,
    );
    d.wait_state("web", "up", LONG);
    let write = token(&d, "ops", "write");
    assert_eq!(
        call(public, "GET", "/api/v1/status", None).json()[0]["name"],
        "web"
    );
    assert_eq!(call(public, "GET", "/api/v1/health", None).code, 200);
    // Not there at all, with a token or without.
    for (method, path) in [
        ("GET", "/api/v1/services"),
        ("GET", "/api/v1/services/web"),
        ("GET", "/api/v1/events"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/services/web/stop"),
        ("POST", "/api/v1/shutdown"),
    ] {
        let a = call(public, method, path, Some(&write));
        assert_eq!(a.code, 404, "{method} {path}: {}", a.text());
    }
    assert_eq!(d.state("web"), "up");
    // `listen` serves the public routes too, and the rest.
    assert_eq!(call(api, "GET", "/api/v1/status", None).code, 200);
    assert_eq!(call(api, "GET", "/api/v1/services", Some(&write)).code, 200);
}

#[test]
fn every_operator_action_over_the_socket_names_the_user() {
    let me = my_name();
    let d = crate::daemon(
        "[services.web]\ncommand = \"sleep 1000\"\nprobes = [{ kind = \"process\", every = \"100ms\", grace = \"0s\" }]\n",
    );
    d.wait_state("web", "up", LONG);
    let run = |args: &[&str]| {
        let out = d.cli(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    // The answers name who asked.
    for args in [
        &["stop", "web"][..],
        &["start", "web"],
        &["restart", "web"],
        &["maintenance", "web", "--reason", "disk"],
        &["maintenance", "web", "--end"],
        &["reload"],
    ] {
        let out = run(args);
        assert!(
            out.contains(&format!("by {me} (socket, uid ")),
            "{args:?}: {out}"
        );
    }
    d.wait_state("web", "up", LONG);
    let drill = run(&["drill", "web", "--fault", "crash", "--json"]);
    let drill: Value = serde_json::from_str(&drill).unwrap();
    assert_eq!(drill[0]["by"]["name"], me.as_str(), "{drill}");

    // And so do the stored events.
    let events: Value = serde_json::from_str(&run(&["events", "--json", "-n", "500"])).unwrap();
    let named = |kind: &str| {
        events.as_array().unwrap().iter().any(|e| {
            e["kind"] == kind
                && e["detail"]["by"]["principal"]["name"] == me.as_str()
                && e["detail"]["by"]["principal"]["via"] == "socket"
        })
    };
    for kind in [
        "stopped",
        "started",
        "restart_requested",
        "maintenance_started",
        "maintenance_ended",
        "config_applied",
        "drill_started",
    ] {
        assert!(named(kind), "no {kind} by {me}: {events:#}");
    }
    // `upkeep events` shows the name.
    let text = run(&["events", "web"]);
    assert!(
        text.contains(&format!("stopped (by {me} (socket")),
        "{text}"
    );
    // An action that changes nothing is still answered with its asker.
    let out = run(&["start", "web"]);
    assert!(out.contains(&me), "{out}");
}

/// A daemon with both TCP listeners: (daemon, listen, public_listen).
fn two_listeners(services: &str) -> (TestDaemon, SocketAddr, SocketAddr) {
    let api = free_addr();
    let public = free_addr();
    let d = daemon_with(
        &format!("listen = \"{api}\"\npublic_listen = \"{public}\"\n"),
        services,
    );
    (d, api, public)
}

fn loopback(last: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))
}

/// Whether the daemon has closed `s` (a connection that sent a request head or part of one).
fn closed_by_daemon(mut s: &std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (a 503) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true, // reset
        }
    }
}

/// Issue 17 ("hardening"): 2,000 idle sockets from one address held all 512 connection
/// permits of `public_listen` (and of `listen`), and the status page answered 503 to
/// everyone for as long as they were held. Now one address holds 32 at most, and the rest of
/// the world, the CLI and supervision go on.
#[test]
fn thousands_of_idle_tcp_connections_lock_out_neither_the_cli_nor_supervision() {
    let limit = upkeep_testkit::raise_open_files();
    assert!(
        limit >= 5000,
        "the open-file limit is {limit}: raise the hard limit to run this"
    );
    let (d, api, public) = two_listeners(SLEEPER);
    d.wait_state("web", "up", LONG);
    let read = token(&d, "dash", "read");
    let mut idle: Vec<std::net::TcpStream> = Vec::new();
    for (addr, path) in [(public, "/"), (api, "/api/v1/health")] {
        idle.extend((0..1000).map(|i| {
            std::net::TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"))
        }));
        // Past its 32, one more from that address is told why, without its request read.
        let a = call(addr, "GET", path, None);
        assert_eq!(a.code, 503, "{addr}{path}: {}", a.text());
        assert!(a.text().contains("from your address"), "{}", a.text());
        // Everyone else is served while the 1,000 are held.
        let a = http_from(loopback(2), addr, "GET", path, &[], b"").unwrap();
        assert_eq!(a.code, 200, "{addr}{path}: {}", a.text());
    }
    let page = http_from(loopback(2), public, "GET", "/", &[], b"").unwrap();
    assert!(page.text().contains("<html"), "{}", page.text());
    // What the daemon refused it closed: at most 32 per listener are still its to hold.
    let open = idle.iter().filter(|s| !closed_by_daemon(s)).count();
    assert!(open <= 64, "{open} of 2,000 idle connections still held");
    // The control socket and supervision are untouched.
    let out = d.cli(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = d.pid("web").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_new_pid("web", pid, LONG);
    drop(idle);
    d.wait_until("the TCP API to answer 127.0.0.1 again", LONG, || {
        http(
            api,
            "GET",
            "/api/v1/services",
            &[("Authorization", &format!("Bearer {read}"))],
            b"",
        )
        .ok()
        .filter(|a| a.code == 200)
    });
}

/// Issue 17: slowloris sockets from many addresses (each within its 32) fill a listener; a
/// client that sends its whole request at once is still served, because a connection that
/// has not sent a request yet gives its place to a newcomer when the listener is full.
#[test]
fn slowloris_from_many_addresses_does_not_keep_a_whole_request_out() {
    use std::io::Write;
    let limit = upkeep_testkit::raise_open_files();
    assert!(
        limit >= 5000,
        "the open-file limit is {limit}: raise the hard limit to run this"
    );
    let (d, api, public) = two_listeners(SLEEPER);
    d.wait_state("web", "up", LONG);
    for addr in [public, api] {
        // 30 addresses × 32 connections, each with half a request head: more than the 512
        // a listener holds.
        let mut loris: Vec<std::net::TcpStream> = Vec::new();
        for host in 10..40 {
            for _ in 0..32 {
                let mut s = connect_from(loopback(host), addr).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
                loris.push(s);
            }
        }
        // The listener is full of them: the oldest were shed for the newer ones.
        d.wait_until(
            "the daemon to shed the slowloris connections past 512",
            LONG,
            || {
                let shed = loris.iter().filter(|s| closed_by_daemon(s)).count();
                (shed >= loris.len() - 512).then_some(())
            },
        );
        let path = if addr == public {
            "/"
        } else {
            "/api/v1/health"
        };
        let a = http_from(loopback(2), addr, "GET", path, &[], b"").unwrap();
        assert_eq!(a.code, 200, "{addr}{path}: {}", a.text());
        // The slowloris client keeps at it: its next half-heads give way too.
        for (i, s) in loris.iter_mut().take(64).enumerate() {
            *s = connect_from(loopback(40 + (i / 32) as u8), addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        }
        let a = http_from(loopback(3), addr, "GET", path, &[], b"").unwrap();
        assert_eq!(a.code, 200, "{addr}{path}: {}", a.text());
    }
    let out = d.cli(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
